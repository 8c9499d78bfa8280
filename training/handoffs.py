"""Where the labs and the Training tab meet (issue 11): the learner's own run, read by a lab's tool.

Plain functions, no Gradio: the Training tab's buttons call them.

    >>> diagnose_run(None).startswith("Start a run")
    True
"""
from __future__ import annotations

from core.text import plural
from training import runs

MIN_POINTS = 3  # fewer logged losses say nothing about a curve's shape


def diagnose_run(run_id: str | None) -> str:
    """Lab 3's curve diagnosis on this run's own train and eval loss, as Markdown."""
    from labs.tools import curves

    if not run_id or not runs.exists(run_id):
        return "Start a run first: the diagnosis reads its loss log."
    log = [e for e in runs.read_log(run_id) if "loss" in e or "eval_loss" in e]
    n_train = sum("loss" in e for e in log)
    if n_train < MIN_POINTS:
        return (f"Only {plural(n_train, 'training loss value')} so far: the diagnosis needs at least "
                f"{MIN_POINTS}. Train a few more steps.")
    result = curves.diagnose_training_curve(log)
    return "**Your run, diagnosed by the Lab 3 curve doctor**\n\n" + curves.curve_markdown(result)
