"""Two learners on one launched app (gradio_client, two sessions at once): each sees only
its own progress, chat history and runs; guessed or path-like run ids are refused.

BrowserState (progress, run ids) travels with each client's request, gr.State
(current run id, dataset, advisor budget) stays on the server per session, so
the test checks both: what one client sends never shows up in the other's
replies, and server-side state of one session is invisible to the other.
"""
from __future__ import annotations

import threading

import pytest
from gradio_client import Client

from fakes.anthropic_server import FakeAnthropic
from quizzes import grading

KEY = "sk-ant-isolation-SECRET-13579"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _hp():
    from training.run import config
    h = dict(config.defaults("cpu"), max_steps=2, max_length=512, eval_steps=100)
    return [h[k] for k in config.HP_NAMES]


def _right(quiz_id):
    return [next(o["text"] for o in q["options"] if o["correct"]) for q in grading.load_quiz(quiz_id)["questions"]]


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


@pytest.fixture(scope="module")
def launched(module_data_dir):
    fake = FakeAnthropic(default_text="(advisor reply)").start()
    mp = pytest.MonkeyPatch()
    mp.setenv("ANTHROPIC_API_KEY", KEY)
    mp.setenv("ANTHROPIC_BASE_URL", fake.url)
    mp.setenv("FTLAB_CHAT_BACKOFF_S", "0.01")
    from app import build_app
    demo = build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield url, fake
    finally:
        demo.close()
        fake.stop()
        mp.undo()


def _both(fa, fb):
    """Run two client calls at the same time; return both results (re-raising errors)."""
    out: dict = {}

    def go(name, fn):
        try:
            out[name] = fn()
        except BaseException as exc:  # surfaced below
            out[name] = exc

    threads = [threading.Thread(target=go, args=("a", fa)), threading.Thread(target=go, args=("b", fb))]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    for v in out.values():
        if isinstance(v, BaseException):
            raise v
    return out["a"], out["b"]


def test_progress_and_chat_stay_with_their_own_learner(launched):
    url, fake = launched
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    (fa, pa, _), (fb, pb, _) = _both(
        lambda: a.predict({"schema": 2, "lessons_read": ["lesson3"]}, *_right("lesson1"), api_name="/submit_lesson1"),
        lambda: b.predict(None, *_right("lesson2"), api_name="/submit_lesson2"))
    assert pa["best"] == {"lesson1": 4} and pa["lessons_read"] == ["lesson3"]
    assert pb["best"] == {"lesson2": 4} and pb["lessons_read"] == []
    (ha, _), (hb, _) = _both(
        lambda: a.predict([], "Alice's private case: 900 requests a day", api_name="/lab_strategy_send"),
        lambda: b.predict([], "Bob asks about rank 8 vs 16", api_name="/lab_strategy_send"))
    ta, tb = " ".join(map(text_of, ha)), " ".join(map(text_of, hb))
    assert "Alice" in ta and "Bob" not in ta
    assert "Bob" in tb and "Alice" not in tb
    assert KEY not in ta + tb
    # The model saw each conversation separately too.
    bodies = [str(r.body["messages"]) for r in fake.message_requests[-2:]]
    assert all(("Alice" in s) != ("Bob" in s) for s in bodies)


def test_runs_belong_to_the_learner_that_started_them(launched):
    url, _ = launched
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    _both(lambda: a.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler"),
          lambda: b.predict("builtin", "clinical_soap", None, "", "sft", api_name="/load_dataset_handler"))
    ids_a, msg = a.predict(MODEL, "sft", [], *_hp(), api_name="/prepare_run_handler")
    assert len(ids_a) == 1 and "Run created" in msg, msg
    rid = ids_a[0]
    # B has no run: nothing listed, nothing to stop, download, publish or export.
    out = b.predict([], None, api_name="/attach_handler")
    assert out[0]["choices"] == [] and "No run yet" in out[1]
    assert "no run to stop" in b.predict(api_name="/stop_handler")
    assert "Train a model first" in b.predict(api_name="/download_adapter_handler")[1]
    assert "Train a model first" in b.predict(api_name="/evaluate_handler", n_samples=3)[0]
    assert "Train a model first" in b.predict("mine", True, False, "hf_x", api_name="/publish_push")[0]
    assert "Train a model first" in b.predict(api_name="/publish_export")[0]
    assert "no run to resume" in b.predict([], api_name="/resume_check_handler")
    # Guessed, truncated or path-like ids attach to nothing.
    for guess in ("../../etc/passwd", "/etc/passwd", "~", rid[:8], rid + "/../" + rid, "runs/" + rid):
        out = b.predict([guess], None, api_name="/attach_handler")
        assert out[0]["choices"] == [] and "No run yet" in out[1], guess
    # B's start is B's own run; A's is untouched and still listed for A only.
    ids_b, msg = b.predict(MODEL, "sft", [], *_hp(), api_name="/prepare_run_handler")
    assert ids_b != ids_a and rid not in ids_b
    assert [v for _, v in a.predict(ids_a, None, api_name="/attach_handler")[0]["choices"]] == [rid]
    assert "Stopped" in a.predict(api_name="/stop_handler")  # A can stop its queued run; B could not
    from training.run import runs
    assert runs.read_run(ids_b[0])["status"] == "planned"
