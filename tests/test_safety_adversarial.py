"""The adversarial input set (tests/adversarial/inputs.py) through every entry point.

Direct handler calls cover every input x entry point (a raise there is a crash);
a launched app then takes the nastiest ones over the wire and must still answer a
normal request afterwards. Counts are printed; run_counts.py writes them to
tests/adversarial/RESULTS.md.
"""
from __future__ import annotations

import pytest
from gradio_client import Client

from adversarial.inputs import INJECTION, INPUTS, run_all
from quizzes import grading


def test_every_input_through_every_entry_point_is_handled(ftlab_data_dir, capsys):
    r = run_all()
    with capsys.disabled():
        print(f"\nadversarial: tried {r['tried']}, handled {r['handled']}, crashed {r['crashed']}, "
              f"leaked {r['leaked']}")
    assert r["tried"] == len(INPUTS) * r["entry_points"]
    assert r["failures"] == [] and r["ok_after"]


def test_hostile_requests_over_the_wire_leave_the_app_up(ftlab_data_dir):
    from app import build_app
    demo = build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        c = Client(url, verbose=False)
        nested = "[" * 100_000
        _, summary, notice = c.predict(nested, api_name="/mark_read_lesson1")
        assert "**L1** ✓ read" in summary  # the nested junk was reset, the new read kept
        feedback, progress, _ = c.predict(nested, None, None, None, None, api_name="/submit_lesson1")
        assert "answer" in feedback and progress["best"] == {}
        history, box = c.predict([], INJECTION, api_name="/lab_strategy_send")  # no key: offline calculator
        assert "system prompt" not in str(history[-1]).lower() or "calculator" in str(history[-1]).lower()
        out = c.predict(["../../etc/passwd", "/etc/passwd", "~", "$(rm -rf /)"], None, api_name="/attach_handler")
        assert "No run yet" in out[1]
        assert "Hugging Face Hub" in c.predict("hub", None, None, "../../etc/passwd", "sft",
                                               api_name="/load_dataset_handler")
        # A normal request still works afterwards.
        answers = [next(o["text"] for o in q["options"] if o["correct"]) for q in grading.load_quiz("lesson1")["questions"]]
        feedback, progress, _ = c.predict(None, *answers, api_name="/submit_lesson1")
        assert "Score: 4/4" in feedback and progress["best"] == {"lesson1": 4}
    finally:
        demo.close()
