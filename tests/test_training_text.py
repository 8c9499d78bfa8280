"""What the Training tab says, computed without Gradio: training/run/status.py and
training/evaluation/report.py (the tab's handlers only turn these into component updates)."""
from __future__ import annotations

from training.evaluation import report
from training.run import status


def test_run_lines_without_a_run():
    assert status.status_md(None) == "No run yet." and status.progress_md(None) == ""
    assert status.run_view(None)[:2] == ("No run yet.", "")
    assert status.effective_batch_md(4, 2).startswith("**Effective batch = 4 × 2 = 8**")
    assert "fill in" in status.effective_batch_md("", 2)


def test_evaluation_lines():
    event = {"done": 2, "n": 5, "answers": 4, "total_answers": 10, "elapsed": 12.0, "eta": 30.0, "cases": 3}
    assert report.progress_md(event) == ("⏳ **2 / 5 examples compared** + 3 adversarial cases (4 of 10 answers "
                                         "in) · 12 s elapsed · at most ~30 s left")
    assert report.starting_md(1) == "⏳ Loading the model and starting on 1 test example…"
    assert "default number" in report.starting_md(None)
    done = report.summary_md({"n": 5, "seconds": 40.0, "adversarial": []})
    assert done.startswith("Evaluated 5 held-out test examples in 40 s") and "Only the tuned" not in done
    again = report.summary_md({"n": 5, "seconds": 20.0, "adversarial": [], "base_reused": True})
    assert "Only the tuned model answered this time" in again


def test_slider_settings_per_device():
    gpu, cpu = report.slider(36, "cuda"), report.slider(36, "cpu")
    assert gpu["maximum"] == cpu["maximum"] == 36 and gpu["value"] == 36 and cpu["value"] < 36
    assert "on this CPU" in cpu["info"] and report.slider(3, "cpu")["value"] == 3


def test_a_click_without_cases_runs_the_design_without_them():
    design = {"source": "lab4", "metrics": ["exact_match"], "cases": [{"title": "x"}], "note": "n"}
    same, note = report.design_for("rid", design, True)
    assert same is design and note == "n"
    bare, note = report.design_for("rid", design, False)
    assert bare["cases"] == [] and design["cases"] and report.CASES_LABEL in note
