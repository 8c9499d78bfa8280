"""The Lab view for one advisor: task, things to try, example prompts, the chat and a workbench.

Call ``build_lab(advisor_id)`` inside an open ``gr.Blocks`` (the app calls it
inside each lesson's Lab tab). Settings (key, model, base URL, limits) are read
from the environment on every message, so tests can point them at the fake
server after the app is built. Per-learner data lives only in the Chatbot value
and a ``gr.State`` (budget counters); nothing here is stored in module globals.

The workbench runs this lab's tools directly, with no key: one form per tool,
built from the tool's JSON schema, result shown as Markdown.
"""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import gradio as gr

from core.config import env_int
from labs import budget
from labs import handoff as handoff_mod
from labs.advisors import get_advisor
from labs.chat import admit_text, check_user_text, split_for_retry, stream_reply, welcome_history
from labs.tools import examples, registry

# Every chat event across the four labs shares one concurrency group: calls are
# I/O-bound (waiting on Anthropic), so many run at once; 0 means no limit.
CHAT_CONCURRENCY_ID = "advisor-chat"


def chat_concurrency() -> int | None:
    value = env_int("FTLAB_CHAT_CONCURRENCY", 32)
    return None if value <= 0 else value


def _chat_handlers(advisor_id: str):
    """send / retry / clear for one lab. send and retry also yield the lab's hand-off: the
    latest result of a tool the advisor ran that the Training tab can use (labs/handoff.py)."""
    def reply(history, text, session, handoff):
        found: list[dict] = []

        def heard(name, tool_input, result):
            h = handoff_mod.capture(advisor_id, name, tool_input, result, "chat")
            if h is not None:
                found.append(h)
        for updated in stream_reply(advisor_id, history, text, session=session, counter=budget.global_counter(),
                                    on_tool=heard):
            yield updated, (found[-1] if found else handoff)

    def send(history, text, session, handoff=None):
        if not isinstance(text, str) or not text.strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        session = session if isinstance(session, dict) else budget.new_session_state()
        _, problem = admit_text(text)
        # Accepted text leaves the box; refused text (too long, binary) stays so nothing is lost.
        box = "" if problem is None else gr.skip()
        for updated, h in reply(history, text, session, handoff):
            yield updated, box, session, h

    def retry(history, session, handoff=None):
        before, text = split_for_retry(history)
        if text is None:
            yield gr.skip(), gr.skip(), gr.skip()
            return
        session = session if isinstance(session, dict) else budget.new_session_state()
        for updated, h in reply(before, text, session, handoff):
            yield updated, session, h

    def clear():
        return welcome_history(advisor_id)

    return send, retry, clear


# ------------------------------------------------------------------ workbench

_BIG_TEXT = {"text", "log_text", "predictions", "references", "task_description"}


def _string_enum(schema: dict) -> list[str] | None:
    if "enum" in schema and schema.get("type", "string") == "string":
        return list(schema["enum"])
    for sub in schema.get("anyOf", []):
        if sub.get("type") == "string" and "enum" in sub:
            return list(sub["enum"])
    return None


def _number_bounds(schema: dict) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    return f"{low:g} to {high:g}" if low is not None and high is not None else ""


def _field(name: str, schema: dict, required: bool, initial: Any = None):
    """One input component for a schema property, and how to read its value.

    ``initial`` is what the form shows first (labs/tools/examples.py): the tool's
    default or a worked example, so Run works on the form as shown.
    """
    label = name.replace("_", " ") + ("" if required else " (optional)")
    info = (schema.get("description") or "")[:220] or None
    kind = schema.get("type")
    choices = _string_enum(schema)
    if choices:
        value = initial if initial in choices else (choices[0] if required else None)
        return gr.Dropdown(choices=choices, value=value, label=label, info=info), "enum"
    if kind in ("integer", "number"):
        if initial is None:
            # gr.Number cannot be empty: the page shows 0 and sends 0, which gradio
            # range-checks before the tool runs. "Leave empty for automatic" is a
            # textbox; the workbench checks the number and its range itself.
            bounds = _number_bounds(schema)
            hint = "Leave empty to let the tool decide" + (f" (or {bounds})" if bounds else "")
            return gr.Textbox(label=label, info=info, placeholder=hint, lines=1, max_lines=1), f"opt_{kind}"
        comp = gr.Number(value=initial, label=label, info=info, precision=0 if kind == "integer" else None,
                         minimum=schema.get("minimum"), maximum=schema.get("maximum"))
        return comp, kind
    if kind == "boolean":
        return gr.Checkbox(value=bool(initial), label=label, info=info), "boolean"
    if kind == "array":
        text = "\n".join(initial) if isinstance(initial, (list, tuple)) else ""
        return gr.Textbox(value=text, label=label + " (one per line)", info=info, lines=3), "lines"
    if kind == "object":
        return gr.Textbox(label=label + " (JSON)", info=info, lines=3), "json"
    big = name in _BIG_TEXT or schema.get("maxLength", 0) > 4000 or "anyOf" in schema
    text = initial if isinstance(initial, str) else ""
    return gr.Textbox(value=text, label=label, info=info, lines=8 if big else 1, max_lines=30 if big else 1), "text"


def _optional_number(name: str, kind: str, text: str, schema: dict) -> tuple[float | int | None, str | None]:
    """A typed number from an optional text field, or a message naming the field and its range."""
    label = name.replace("_", " ")
    try:
        value = float(text.strip().replace(",", ""))
    except ValueError:
        return None, f"{label} must be a number (or left empty), not {text.strip()[:40]!r}."
    if kind == "opt_integer":
        if not value.is_integer():
            return None, f"{label} must be a whole number."
        value = int(value)
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        return None, f"{label} must be from {_number_bounds(schema)} (got {value:g})."
    return value, None


def workbench_input(spec: registry.ToolSpec, kinds: list[tuple[str, str]], values: tuple) -> tuple[dict | None, str | None]:
    """Turn form values into a tool input dict, or a message saying what is wrong."""
    props = spec.input_schema.get("properties", {})
    tool_input: dict[str, Any] = {}
    for (name, kind), value in zip(kinds, values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if kind == "text":
            value, problem = check_user_text(value)
            if problem:
                return None, f"{name.replace('_', ' ')}: {problem}"
        elif kind in ("opt_integer", "opt_number"):
            value, problem = _optional_number(name, kind, str(value), props.get(name, {}))
            if problem:
                return None, problem
        elif kind == "lines":
            value = [ln.strip() for ln in value.splitlines() if ln.strip()]
        elif kind == "json":
            try:
                value = json.loads(value)
            except ValueError as exc:
                return None, f"{name.replace('_', ' ')} must be JSON ({exc})."
        elif kind == "integer":
            value = int(value)
        elif kind == "boolean" and value is False:
            continue  # unset checkboxes use the tool's default
        tool_input[name] = value
    return tool_input, None


def run_workbench_tool(name: str, kinds: list[tuple[str, str]], *values) -> str:
    """Run one tool from its form and return Markdown (errors included, never raised)."""
    return workbench_result(name, kinds, values)[0]


def workbench_result(name: str, kinds: list[tuple[str, str]], values: tuple) -> tuple[str, dict | None, dict | None]:
    """(Markdown, tool input, result) of one form run; input and result are None on a problem."""
    spec = registry.TOOLS[name]
    tool_input, problem = workbench_input(spec, kinds, values)
    if problem:
        return f"⚠️ {problem}", None, None
    result, error = registry.execute(name, tool_input)
    if error:
        return f"⚠️ {error}", None, None
    return registry.render_markdown(name, result), tool_input, result


def _build_workbench(advisor_id: str, handoff: gr.State) -> dict:
    """One form per tool. A tool whose result the Training tab can use also fills `handoff`
    (a failed run keeps the hand-off the learner already had)."""
    outputs = {}
    with gr.Accordion("🧮 Workbench: run this lab's calculators yourself (no API key needed)", open=False):
        gr.Markdown("These are the same deterministic tools the advisor calls. Fill in a form and press Run.")
        for spec in registry.tools_for(advisor_id):
            props = spec.input_schema.get("properties", {})
            required = set(spec.input_schema.get("required", []))
            with gr.Tab(spec.name.replace("_", " ")):
                gr.Markdown(spec.description)
                comps, kinds = [], []
                # Required fields first, so the form reads top-down.
                initial = examples.initial_values(spec.name)
                for name in sorted(props, key=lambda n: (n not in required, list(props).index(n))):
                    comp, kind = _field(name, props[name], name in required, initial.get(name))
                    comps.append(comp)
                    kinds.append((name, kind))
                run = gr.Button(f"Run {spec.name}", variant="secondary")
                result = gr.Markdown(elem_id=f"wb-{advisor_id}-{spec.name}")

                def handler(*values, _name=spec.name, _kinds=tuple(kinds)):
                    return run_workbench_tool(_name, list(_kinds), *values)

                run.click(handler, comps, result, api_name=f"wb_{advisor_id}_{spec.name}",
                          concurrency_limit=chat_concurrency(), concurrency_id="advisor-workbench")
                if spec.name in handoff_mod.APPLICABLE:
                    def keep(*values, _name=spec.name, _kinds=tuple(kinds)):
                        _, tool_input, out = workbench_result(_name, list(_kinds), values)
                        h = handoff_mod.capture(advisor_id, _name, tool_input, out, "workbench")
                        return h if h is not None else gr.skip()
                    run.click(keep, comps, handoff, api_visibility="private")
                outputs[spec.name] = {"inputs": comps, "button": run, "result": result}
    return outputs


# ----------------------------------------------------------------- the view

def build_lab(advisor_id: str) -> dict:
    """Build one lab inside an open Blocks; returns its components by name."""
    advisor = get_advisor(advisor_id)
    aid = advisor.id
    gr.Markdown(f"## Lab {advisor.number}: {advisor.name}\n{advisor.tagline}")
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("### Your task\n" + advisor.task)
        with gr.Column(scale=2):
            gr.Markdown("### Things to try\n" + "\n".join(f"- {item}" for item in advisor.things_to_try))

    session = gr.State(budget.new_session_state())
    chatbot = gr.Chatbot(value=welcome_history(aid), label=advisor.name, height=520, elem_id=f"lab-{aid}-chat")
    textbox = gr.Textbox(placeholder="Describe your case, ask a question, or paste data (JSONL, a loss log…)",
                         label="Your message", lines=3, max_lines=15, elem_id=f"lab-{aid}-input")
    with gr.Row():
        send_btn = gr.Button("Send", variant="primary", elem_id=f"lab-{aid}-send")
        retry_btn = gr.Button("Retry", elem_id=f"lab-{aid}-retry")
        clear_btn = gr.Button("Clear chat", elem_id=f"lab-{aid}-clear")
    handoff = _build_handoff(advisor)

    gr.Markdown("**Example prompts** (click one to put it in the box, then edit and send):")
    example_buttons = []
    with gr.Row():
        for i, example in enumerate(advisor.examples):
            first_line = example.splitlines()[0]
            label = first_line if len(first_line) <= 70 else first_line[:67] + "…"
            btn = gr.Button(label, size="sm", elem_id=f"lab-{aid}-example-{i}")
            btn.click(lambda _e=example: _e, None, textbox, api_visibility="private")
            example_buttons.append(btn)

    send, retry, clear = _chat_handlers(aid)
    chat_opts = {"concurrency_limit": chat_concurrency(), "concurrency_id": CHAT_CONCURRENCY_ID}
    send_btn.click(send, [chatbot, textbox, session, handoff.state], [chatbot, textbox, session, handoff.state],
                   api_name=f"lab_{aid}_send", **chat_opts)
    textbox.submit(send, [chatbot, textbox, session, handoff.state], [chatbot, textbox, session, handoff.state],
                   api_visibility="private", **chat_opts)
    retry_btn.click(retry, [chatbot, session, handoff.state], [chatbot, session, handoff.state],
                    api_name=f"lab_{aid}_retry", **chat_opts)
    clear_btn.click(clear, None, chatbot, api_name=f"lab_{aid}_clear")

    workbench = _build_workbench(aid, handoff.state)
    return {"chatbot": chatbot, "textbox": textbox, "send": send_btn, "retry": retry_btn, "clear": clear_btn,
            "session": session, "examples": example_buttons, "workbench": workbench, "handoff": handoff}


def _build_handoff(advisor) -> SimpleNamespace:
    """The lab's hand-off to the Training tab: hidden until the chat or the workbench produced a
    result a run can use; the buttons are wired by training/views/handoff_ui.py (app.py calls it)."""
    h = SimpleNamespace(state=gr.State(None))
    aid = advisor.id
    tools = [t.name for t in registry.tools_for(aid)]
    fix = handoff_mod.fix_for(tools)  # the hand-off registry says which labs offer one (Lab 2)
    with gr.Group(visible=False, elem_id=f"lab-{aid}-handoff") as h.panel:
        h.md = gr.Markdown(elem_id=f"lab-{aid}-handoff-text")
        with gr.Row():
            h.fix = gr.Button(fix[0] if fix else "Fix", visible=fix is not None, elem_id=f"lab-{aid}-fix")
            h.apply = gr.Button(handoff_mod.button_label(tools), variant="primary", elem_id=f"lab-{aid}-apply")
        h.status = gr.Markdown(elem_id=f"lab-{aid}-handoff-status")
    h.state.change(lambda v: (gr.update(visible=bool(v)), handoff_mod.describe(v)), h.state, [h.panel, h.md],
                   api_visibility="private")
    return h
