"""The "Compare runs" box under "Your runs" (logic: training/evaluation/compare.py).

Pick two to four of your runs (`#train-compare-pick`), press Compare
(`#train-compare-run`): the loss curves overlaid (`#train-compare-chart`), the
settings side by side (`#train-compare-settings`), the metrics with the paired
difference (`#train-compare-metrics`) and what cannot be compared
(`#train-compare-note`). `#train-compare-open-<i>` opens the i-th compared run
in the tab, as "Show run" does.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import gradio as gr

from training.evaluation import compare
from training.run import runs

MAX = compare.MAX_RUNS


def pick_update(run_ids: Any, chosen: Any = None):
    """The picker's choices: the learner's runs, newest first; keeps what is still there."""
    choices = compare.pick_choices(runs.learner_runs(run_ids))
    ids = {rid for _, rid in choices}
    return gr.update(choices=choices, value=[r for r in (chosen or []) if r in ids])


def compare_handler(run_ids: Any, chosen: Any):
    """-> (note md, chart html, settings html, metrics html, compared ids, *open buttons)."""
    v = compare.view(run_ids, chosen)
    buttons = [gr.update(visible=i < len(v["ids"]), value=f"Open {v['names'][i]}" if i < len(v["ids"]) else "Open")
               for i in range(MAX)]
    return (v["note"], v["chart"], v["settings"], v["metrics"], v["ids"], *buttons)


def build_compare(c: SimpleNamespace) -> None:
    """Inside step 3, below "Your runs"."""
    with gr.Accordion("Compare runs", open=False, elem_id="train-compare") as c.compare_box:
        c.compare_pick = gr.CheckboxGroup([], label=f"Pick 2 to {MAX} of your runs", elem_id="train-compare-pick")
        c.compare_btn = gr.Button("Compare", size="sm", elem_id="train-compare-run")
        c.compare_ids = gr.State([])
        c.compare_note = gr.Markdown(elem_id="train-compare-note")
        c.compare_chart = gr.HTML("", elem_id="train-compare-chart", elem_classes="curve")
        c.compare_settings = gr.HTML("", elem_id="train-compare-settings", css_template=compare.CSS)
        c.compare_metrics = gr.HTML("", elem_id="train-compare-metrics", css_template=compare.CSS)
        with gr.Row():
            c.compare_open = [gr.Button("Open", size="sm", visible=False, elem_id=f"train-compare-open-{i}")
                              for i in range(MAX)]


def wire_compare(c: SimpleNamespace, attach: Callable, after: Callable) -> None:
    """`attach(run_ids, chosen)` shows a run in the tab (outputs `c.attach_out`); `after(run_id)`
    opens the steps that fit it (outputs `c.steps`)."""
    c.compare_box.expand(pick_update, [c.run_ids, c.compare_pick], c.compare_pick, api_visibility="private")
    c.my_runs.change(pick_update, [c.run_ids, c.compare_pick], c.compare_pick, api_visibility="private")
    c.compare_btn.click(compare_handler, [c.run_ids, c.compare_pick],
                        [c.compare_note, c.compare_chart, c.compare_settings, c.compare_metrics, c.compare_ids,
                         *c.compare_open], api_name="compare_runs")
    for i, btn in enumerate(c.compare_open):
        def open_run(run_ids, ids, i=i):
            return attach(run_ids, ids[i] if i < len(ids or []) else None)
        btn.click(open_run, [c.run_ids, c.compare_ids], c.attach_out, api_visibility="private").then(
            after, c.run_id, c.steps, api_visibility="private")
