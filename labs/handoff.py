"""What a lab can hand to the Training tab: the latest result of a tool whose output a run can use.

Plain data, no Gradio and no training imports: the lab keeps the hand-off in a
``gr.State`` (filled by the workbench or by the chat when the advisor used the
tool), shows it with ``describe`` and an apply button; ``training/views/handoff_ui.py``
turns it into the tab's settings.

    >>> h = capture("lora", "recommend_lora_config", {"model": "SmolLM2-135M"},
    ...             {"lora_r": 16, "lora_alpha": 32, "lora_target_modules": "attention", "learning_rate": 2e-4},
    ...             "workbench")
    >>> h["lab"], h["kind"]
    (3, 'lora_config')
    >>> capture("lora", "count_lora_params", {}, {}, "chat") is None
    True
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

# tool -> (lab number, kind of hand-off, what the apply button says)
APPLICABLE: dict[str, tuple[int, str, str]] = {
    "assess_use_case": (1, "strategy", "Use this in the Training tab →"),
    "critique_jsonl": (2, "dataset", "Send this dataset to the Training tab →"),
    "recommend_lora_config": (3, "lora_config", "Apply this configuration in the Training tab →"),
    "adversarial_cases": (4, "eval_design", "Use these cases in the run's evaluation →"),
    "score_predictions": (4, "eval_design", "Use these metrics in the run's evaluation →"),
}


def button_label(advisor_tools: list[str]) -> str:
    """The apply button's label for a lab, from the first of its tools that can be applied."""
    return next((APPLICABLE[t][2] for t in advisor_tools if t in APPLICABLE), "Use in the Training tab →")


def capture(advisor_id: str, tool: str, tool_input: Any, result: Any, via: str,
            now: datetime | None = None) -> dict | None:
    """A hand-off from one tool run, or None when that tool's result cannot be applied."""
    if tool not in APPLICABLE or not isinstance(result, dict) or not isinstance(tool_input, dict):
        return None
    if tool == "critique_jsonl" and not isinstance(tool_input.get("text"), str):
        return None  # the chat shows "(your pasted data)": the text travels in the input only
    lab, kind, _ = APPLICABLE[tool]
    at = (now or datetime.now(timezone.utc)).strftime("%H:%M UTC")
    return {"lab": lab, "advisor": advisor_id, "kind": kind, "tool": tool, "input": dict(tool_input),
            "result": result, "via": via, "at": at}


def provenance(h: dict) -> str:
    """"Lab 3 (workbench), 14:02 UTC": where a setting came from."""
    return f"Lab {h['lab']} ({h['via']}), {h['at']}"


def describe(h: dict | None) -> str:
    """One Markdown paragraph saying what the apply button would hand over."""
    if not h:
        return ""
    r = h["result"]
    kind = h["kind"]
    if kind == "strategy":
        what = f"the recommendation **{r.get('recommendation', '?')}**"
    elif kind == "dataset":
        if h.get("fix_note"):
            what = f"your dataset with the critic's mechanical fixes applied ({h['fix_note']})"
        else:
            rows = (r.get("summary") or {}).get("usable_examples", 0)
            what = f"the dataset the critic checked ({rows} usable rows, no fixes applied yet)"
    elif kind == "lora_config":
        what = (f"lora_r={r.get('lora_r')}, lora_alpha={r.get('lora_alpha')}, targets {r.get('lora_target_modules')}, "
                f"learning rate {r.get('learning_rate')}, {r.get('num_train_epochs')} epochs, batch "
                f"{r.get('per_device_train_batch_size')} × {r.get('gradient_accumulation_steps')}, "
                f"max length {r.get('max_length')} for {r.get('model')}")
    else:
        n = len(r.get("cases") or r.get("categories") or [])
        what = f"the evaluation design from `{h['tool']}`" + (f" ({n} groups of cases)" if n else "")
    return f"**Ready for the Training tab** — {what}. From {provenance(h)}."
