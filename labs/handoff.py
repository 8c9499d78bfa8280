"""What a lab can hand to the Training tab: the latest result of a tool whose output a run can use.

Plain data, no Gradio and no training imports: the lab keeps the hand-off in a
``gr.State`` (filled by the workbench or by the chat when the advisor used the
tool), shows it with ``describe`` and an apply button; ``training/views/handoff_ui.py``
turns it into the tab's settings.

``KINDS`` is the one registry of hand-off kinds: each is declared once here (its lab, the
tools whose results it takes and their button labels, how it is described to the learner,
and the Training-side function that applies it, named as ``"module:function"`` so that
``labs`` never imports ``training``). The lab view, the capture, the description, the apply
path and the Lab 2 fix button all read it; adding a kind is one ``Kind(...)`` here (plus its
applier when no existing one fits) and its test.

    >>> h = capture("lora", "recommend_lora_config", {"model": "SmolLM2-135M"},
    ...             {"lora_r": 16, "lora_alpha": 32, "lora_target_modules": "attention", "learning_rate": 2e-4},
    ...             "workbench")
    >>> h["lab"], h["kind"]
    (3, 'lora_config')
    >>> capture("lora", "count_lora_params", {}, {}, "chat") is None
    True
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator


def _takes_any(tool_input: dict) -> bool:
    return True


@dataclass(frozen=True)
class Kind:
    """One kind of hand-off from a lab to the Training tab."""
    name: str                          # stored in the hand-off as "kind"
    lab: int                           # the lab (lesson) number it comes from
    buttons: dict[str, str]            # tool whose result it takes -> the apply button's label
    what: Callable[[dict], str]        # the hand-off -> what the apply button would hand over (Markdown)
    apply: str                         # "module:function" on the Training side: fn(h, tab) -> Applied
    takes: Callable[[dict], bool] = _takes_any  # whether this tool input can travel (Lab 2: the paste is in it)
    fix: tuple[str, str] | None = None  # an extra button next to apply: (its label, "module:function")


def _what_strategy(h: dict) -> str:
    return f"the recommendation **{h['result'].get('recommendation', '?')}**"


def _what_dataset(h: dict) -> str:
    if h.get("fix_note"):
        return f"your dataset with the critic's mechanical fixes applied ({h['fix_note']})"
    rows = (h["result"].get("summary") or {}).get("usable_examples", 0)
    return f"the dataset the critic checked ({rows} usable rows, no fixes applied yet)"


def _what_lora_config(h: dict) -> str:
    r = h["result"]
    return (f"lora_r={r.get('lora_r')}, lora_alpha={r.get('lora_alpha')}, targets {r.get('lora_target_modules')}, "
            f"learning rate {r.get('learning_rate')}, {r.get('num_train_epochs')} epochs, batch "
            f"{r.get('per_device_train_batch_size')} × {r.get('gradient_accumulation_steps')}, "
            f"max length {r.get('max_length')} for {r.get('model')}")


def _what_eval_design(h: dict) -> str:
    r = h["result"]
    n = len(r.get("cases") or r.get("categories") or [])
    return f"the evaluation design from `{h['tool']}`" + (f" ({n} groups of cases)" if n else "")


_APPLY = "training.workflow.handoffs"
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("strategy", 1, {"assess_use_case": "Use this in the Training tab →"}, _what_strategy,
         f"{_APPLY}:apply_strategy"),
    Kind("dataset", 2, {"critique_jsonl": "Send this dataset to the Training tab →"}, _what_dataset,
         f"{_APPLY}:apply_dataset",
         # The chat shows "(your pasted data)": the text travels in the tool input only.
         takes=lambda i: isinstance(i.get("text"), str),
         fix=("Apply the critic's mechanical fixes", f"{_APPLY}:fix_dataset")),
    Kind("lora_config", 3, {"recommend_lora_config": "Apply this configuration in the Training tab →"},
         _what_lora_config, f"{_APPLY}:apply_lora_config"),
    Kind("eval_design", 4, {"adversarial_cases": "Use these cases in the run's evaluation →",
                            "score_predictions": "Use these metrics in the run's evaluation →"},
         _what_eval_design, f"{_APPLY}:apply_eval_design"),
)}


class _ByTool(Mapping):
    """tool -> its Kind, read from KINDS on every look-up (a kind added there is applicable at once)."""

    def _table(self) -> dict[str, Kind]:
        return {tool: k for k in KINDS.values() for tool in k.buttons}

    def __getitem__(self, tool: str) -> Kind:
        return self._table()[tool]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


APPLICABLE: Mapping[str, Kind] = _ByTool()  # the tools whose results the Training tab can use


def kind_of(h: Any) -> Kind | None:
    """The declared kind of a hand-off (None for anything else, e.g. a stale or tampered state)."""
    return KINDS.get(h.get("kind")) if isinstance(h, dict) else None


def button_label(advisor_tools: list[str]) -> str:
    """The apply button's label for a lab, from the first of its tools that can be applied."""
    return next((APPLICABLE[t].buttons[t] for t in advisor_tools if t in APPLICABLE), "Use in the Training tab →")


def fix_for(advisor_tools: list[str]) -> tuple[str, str] | None:
    """The extra fix a lab offers next to its apply button: (label, "module:function"), if any."""
    return next((APPLICABLE[t].fix for t in advisor_tools if t in APPLICABLE and APPLICABLE[t].fix), None)


def capture(advisor_id: str, tool: str, tool_input: Any, result: Any, via: str,
            now: datetime | None = None) -> dict | None:
    """A hand-off from one tool run, or None when that tool's result cannot be applied."""
    if tool not in APPLICABLE or not isinstance(result, dict) or not isinstance(tool_input, dict):
        return None
    kind = APPLICABLE[tool]
    if not kind.takes(tool_input):
        return None
    at = (now or datetime.now(timezone.utc)).strftime("%H:%M UTC")
    return {"lab": kind.lab, "advisor": advisor_id, "kind": kind.name, "tool": tool, "input": dict(tool_input),
            "result": result, "via": via, "at": at}


def provenance(h: dict) -> str:
    """"Lab 3 (workbench), 14:02 UTC": where a setting came from."""
    return f"Lab {h['lab']} ({h['via']}), {h['at']}"


def describe(h: dict | None) -> str:
    """One Markdown paragraph saying what the apply button would hand over."""
    kind = kind_of(h)
    if kind is None:
        return ""
    return f"**Ready for the Training tab** — {kind.what(h)}. From {provenance(h)}."
