"""Gradio wiring of the labs' hand-offs into the Training tab (issue 11).

Thin: what a hand-off changes is decided in training/workflow/handoffs.py (no Gradio);
here it is turned into component updates. app.py calls ``wire_handoffs`` once
both the labs and the tab exist, since the buttons live in one and change the other.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from labs import handoff as lab_handoff
from labs.tools import registry
from training.run import config
from training.workflow import handoffs


def wire_handoffs(labs: dict[str, dict], parts: dict, nav: gr.Tabs, lesson_tabs: dict[str, gr.Tabs]) -> None:
    """Each lab's apply (and Lab 2's fix) button, and the tab's "ask the LoRA advisor" button."""
    hp_inputs = [parts["hyperparameters"][k] for k in config.HP_NAMES]
    for advisor_id, lab in labs.items():
        h = lab["handoff"]
        targets = _targets(parts, nav, h.status)
        inputs = [h.state, parts["origins"], parts["method"], parts["dataset"], parts["eval_design"], *hp_inputs]
        h.apply.click(_applier(parts, nav, h.status), inputs, targets, api_visibility="private")
        if lab_handoff.fix_for([t.name for t in registry.tools_for(advisor_id)]):  # the registry's extra button
            h.fix.click(fix_handler, h.state, [h.state, h.status], api_visibility="private")
    lora_box = labs["lora"]["textbox"]
    parts["ask_advisor"].click(_asker(lora_box, parts["diagnosis"], nav, lesson_tabs["lesson3"]), parts["run_id"],
                               [lora_box, parts["diagnosis"], nav, lesson_tabs["lesson3"]], api_visibility="private")


def _targets(parts: dict, nav: gr.Tabs, status: gr.Markdown) -> list:
    keys = ("method", "model", "source", "builtin", "dataset", "data_md", "step_check", "origins", "provenance",
            "hp_box")
    outs = [parts[k] for k in keys] + list(parts["hyperparameters"].values()) + [nav, status]
    optional = [parts[k] for k in ("eval_design", "eval_cases", "jobs_model") if parts.get(k) is not None]
    return outs + optional


def _applier(parts: dict, nav: gr.Tabs, status: gr.Markdown):
    def apply(h, origins, method, dataset, design, *values):
        from training.run.engine import default_device

        current = dict(zip(config.HP_NAMES, values))
        a = handoffs.apply_handoff(h, current, method, default_device(), design)
        if not a.ok:
            return {status: f"⚠️ {a.message}"}
        out: dict[Any, Any] = {status: f"✅ {a.message}", nav: gr.Tabs(selected="training")}
        data_out, problem = _data_updates(parts, a, dataset)
        if problem:
            return {status: f"⚠️ Not sent (nothing in the Training tab changed): {problem}"}
        out.update(data_out)
        out.update(_setting_updates(parts, a))
        origins = {**(origins if isinstance(origins, dict) else {}), a.origin[0]: a.origin[1]}
        out[parts["origins"]] = origins
        out[parts["provenance"]] = handoffs.origins_md(origins)
        return out
    return apply


def _data_updates(parts: dict, a: handoffs.Applied, current: dict | None) -> tuple[dict, str | None]:
    """(updates, problem): load the built-in set Lab 1 chose or the JSONL Lab 2 sent; open step 2."""
    from training.data import sources
    from training.views.tab import load_dataset_handler, open_when

    if a.builtin:
        d, md = load_dataset_handler(sources.BUILTIN, a.builtin, None, "", a.method, current)
        out = {parts["source"]: sources.BUILTIN, parts["builtin"]: a.builtin}
    elif a.dataset_text:
        d, md = sources.from_text(a.dataset_text, a.method, current, heading="**From Lab 2's critic.** ")
        out = {}
    else:
        return {}, None
    if d is current:  # the loader kept what the learner had: say why, change nothing
        return {}, md
    out.update({parts["dataset"]: d, parts["data_md"]: md, parts["step_check"]: open_when(True)})
    return out, None


def _setting_updates(parts: dict, a: handoffs.Applied) -> dict:
    out: dict[Any, Any] = {parts["hyperparameters"][k]: v for k, v in a.settings.items()}
    if a.settings:  # open the box, so the learner sees what changed
        out[parts["hp_box"]] = gr.Accordion(open=True)
    if a.method:
        out[parts["method"]] = a.method
    if a.model:
        out[parts["model"]] = a.model
    if a.job_model and parts.get("jobs_model") is not None:
        out[parts["jobs_model"]] = a.job_model
    if a.eval_design is not None and parts.get("eval_design") is not None:
        out[parts["eval_design"]] = a.eval_design
        out[parts["eval_cases"]] = True  # the learner designed cases: run them, also on a CPU
    return out


def fix_handler(h: dict | None):
    """A lab's extra fix button (Lab 2: the critic's mechanical fixes), by the function its
    hand-off kind declares; the hand-off stays as it was when the fix cannot help."""
    kind = lab_handoff.kind_of(h)
    if kind is None or kind.fix is None:
        return gr.skip(), "⚠️ Run the critic on your dataset first."
    fixed, message = handoffs.registered(kind.fix[1])(h)
    return (fixed if fixed is not None else gr.skip()), message


def _asker(box, diagnosis, nav, lesson3_tabs):
    def ask(run_id):
        brief = handoffs.run_brief(run_id)
        if brief is None:
            return gr.skip(), "Start a run first: the advisor reads its settings and loss log.", gr.skip(), gr.skip()
        return (brief, "The run's settings and curve are in Lab 3's message box: add your question and press Send.",
                gr.Tabs(selected="lesson3"), gr.Tabs(selected="lesson3-lab"))
    return ask
