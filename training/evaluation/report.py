"""What step 4 of the Training tab says about an evaluation, without Gradio.

The progress line while answers come in, the closing summary, the tables and charts drawn
from (partial) metrics, the design a click runs with, and the count slider's settings. The
tab's `evaluate_handler` and `eval_slider` (`training/views/tab.py`) only turn these into
component updates.
"""
from __future__ import annotations

from training.evaluation import view as eval_view
from training.run import runs

CASES_LABEL = "Also run the adversarial cases"  # the tab's checkbox; the note below names it


def progress_md(event: dict) -> str:
    """One line while an evaluation runs: examples compared, answers in, time, an upper-bound estimate."""
    left = f" · at most ~{event['eta']:.0f} s left" if event.get("eta") is not None else ""
    cases = f" + {event['cases']} adversarial cases" if event.get("cases") else ""
    return (f"⏳ **{event['done']} / {event['n']} examples compared**{cases} ({event['answers']} of "
            f"{event['total_answers']} answers in) · {event['elapsed']:.0f} s elapsed{left}")


def starting_md(n: int | None) -> str:
    count = f"{n} test example{'s' if n != 1 else ''}" if n else "the default number of test examples"
    return f"⏳ Loading the model and starting on {count}…"


REUSED = ("Only the tuned model answered this time: the base model's answers to these same questions "
          "were kept from an earlier evaluation on this server (greedy answers do not change). ")


def summary_md(m: dict) -> str:
    """The line shown once the evaluation is done."""
    cases = len(m.get("adversarial") or [])
    msg = (f"Evaluated {m['n']} held-out test examples"
           + (f" and {cases} adversarial case{'s' if cases != 1 else ''}" if cases else "")
           + f" in {m['seconds']:.0f} s (greedy decoding; base = same model with the adapter switched off). "
           + (REUSED if m.get("base_reused") else "")
           + eval_view.adversarial_summary(m.get("adversarial") or []))
    return msg.strip()


def design_for(run_id: str, design: dict | None, with_cases: bool) -> tuple[dict, str]:
    """(the design this click runs, the note over the adversarial table). None = the run's
    dataset's default; `with_cases` False leaves the cases out this time and says how to run them."""
    from training.evaluation import design as eval_design
    from training.evaluation import evaluate
    design = design or eval_design.default_design(evaluate.run_dataset_name(run_id))
    note = design.get("note", "")
    if not with_cases and design.get("cases") != []:
        design = dict(design, cases=[])
        note = f"Adversarial cases not run this time: tick “{CASES_LABEL}” to run them."
    return design, note


def fields_chart(metrics: dict | None) -> str:
    from training.evaluation import evaluate
    from training.run import charts
    return charts.fields_svg(evaluate.per_field_table(metrics))


def tables(m: dict, note: str = "", chart: bool = True):
    """(metrics rows, side-by-side, per-field chart, adversarial) for (partial) metrics."""
    from training.evaluation import evaluate
    rows = evaluate.metrics_rows(m) if m["n"] else []
    return rows, eval_view.samples_html(m), fields_chart(m) if chart else None, eval_view.adversarial_html(m, note)


def run_test_size(run_id: str | None) -> int:
    """Examples the run can be evaluated on (its test split, else its validation split)."""
    if not run_id or not runs.exists(run_id):
        return 0
    data = runs.read_datasets(run_id)
    return len(data["test"] or data["validation"])


def slider(test_size: int, device: str) -> dict:
    """The count slider for a test split of this size: 1..all of it, the default per device
    (all on a GPU, a ~1-minute subset on a CPU), and the two numbers in its info line."""
    from training.evaluation import evaluate
    n = evaluate.default_n(test_size, device)
    where = "all of them on a GPU" if device.startswith("cuda") else f"{n} on this CPU (about a minute)"
    return {"minimum": 1, "maximum": test_size, "value": n,
            "info": f"{test_size} in the test split; default {where}. More examples, tighter intervals."}
