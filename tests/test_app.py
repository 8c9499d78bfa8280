"""The whole app through a launched server, driven by gradio_client."""
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client

from quizzes import grading

ROOT = Path(__file__).resolve().parent.parent


def test_importing_and_building_the_app_does_not_load_torch():
    code = (
        "import sys, app; app.build_app(); "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"heavy modules imported at start: {out.stdout}"


def test_advisor_client_is_warmed_after_launch_not_at_build():
    code = (
        "import sys, app; demo = app.build_app(); built = 'anthropic' in sys.modules; "
        "app.launch(demo, prevent_thread_lock=True, quiet=True, server_port=None); "
        "[t.join(60) for t in __import__('threading').enumerate() if t.name == 'warm-imports']; "
        "print('WARM', built, 'anthropic' in sys.modules); demo.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "WARM False True" in out.stdout.splitlines()


@pytest.fixture(scope="module")
def client():
    from app import build_app

    demo = build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def _answers(quiz_id, wrong=()):
    quiz = grading.load_quiz(quiz_id)
    picks = []
    for n, q in enumerate(quiz["questions"], start=1):
        opts = [o["text"] for o in q["options"] if bool(o["correct"]) != (n in wrong)]
        picks.append(opts[0])
    return picks


def test_quiz_grading_through_the_server(client):
    feedback, progress, summary = client.predict(None, *_answers("lesson2", wrong=(4,)), api_name="/submit_lesson2")
    assert "Score: 3/4" in feedback and "Q4. Not quite" in feedback
    assert progress["best"] == {"lesson2": 3}
    assert "quiz 3/4" in summary


def test_unanswered_questions_are_named_through_the_server(client):
    answers = _answers("lesson1")
    answers[2] = None
    feedback, progress, _ = client.predict({"schema": 2, "best": {"lesson1": 2}}, *answers, api_name="/submit_lesson1")
    assert "Q3" in feedback and "kept" in feedback
    assert progress["best"] == {"lesson1": 2}  # nothing recorded, nothing lost


def test_module_test_pass_and_fail_through_the_server(client):
    feedback, progress, _ = client.predict(None, *_answers("module_test", wrong=(1, 5, 9, 13)), api_name="/submit_module_test")
    assert "11/15" in feedback and "Not passed" in feedback and "Lessons to revisit" in feedback
    assert progress["test"] == {"best": 11, "passed": False}
    feedback, progress, _ = client.predict(progress, *_answers("module_test", wrong=(1, 5, 9)), api_name="/submit_module_test")
    assert "12/15" in feedback and "Passed" in feedback
    assert progress["test"] == {"best": 12, "passed": True}


def test_tampered_progress_is_repaired_not_a_crash(client):
    tampered = {"schema": 2, "lessons_read": ["lesson7"], "best": {"lesson1": 40}, "test": {"best": 99, "passed": True}}
    progress, summary, _ = client.predict(tampered, api_name="/mark_read_lesson3")
    assert progress == {"schema": 2, "lessons_read": ["lesson3"], "best": {}, "test": {"best": None, "passed": False}}
    assert "L3** ✓ read" in summary or "L3 ✓ read" in summary


def test_new_attempt_clears_feedback_and_answers(client):
    result = client.predict(api_name="/new_attempt_lesson4")
    # gr.State (the attempt seed) is not part of the API result: feedback, then the 4 radios.
    assert result[0] == ""
    quiz = grading.load_quiz("lesson4")
    for update, q in zip(result[1:], quiz["questions"]):
        assert update["value"] is None
        assert sorted(c[0] for c in update["choices"]) == sorted(o["text"] for o in q["options"])


def test_new_attempt_reshuffles_options():
    from quizzes.ui import new_attempt

    quiz = grading.load_quiz("lesson4")
    orders = set()
    for seed in range(6):
        out = new_attempt("lesson4", seed=seed)
        assert out[0] == seed and out[1] == ""
        for update, q in zip(out[2:], quiz["questions"]):
            assert update["choices"] == grading.shuffled_options(q, seed) and update["value"] is None
        orders.add(tuple(out[2]["choices"]))
    assert len(orders) > 1


def test_page_load_writes_the_progress_back_only_when_it_repaired_it():
    """The page-load handler can finish after the learner's first click on a busy server: it must
    not put back the progress the page loaded with over the click's newer progress."""
    import app
    from core import progress as prog

    read = dict(prog.empty(), lessons_read=["lesson1"])
    state, summary, notice = app.on_load(read)
    assert state == {"__type__": "update"} and notice == ""  # nothing to repair: the stored value is left alone
    assert "1/9" in summary
    state, summary, notice = app.on_load("not json")
    assert state == prog.empty() and "reset" in notice
