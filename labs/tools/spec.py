"""What a tool declares about itself so an advisor can offer it (``ToolSpec``).

Each tool module ends with a ``SPECS`` tuple: the Anthropic tool name, the
description and JSON schema the model sees, the function, and the Markdown
renderer the workbench and the no-key fallback show. ``labs/tools/registry.py``
only collects them; which advisor offers which tool is the advisor's business
(``labs/advisors.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# The largest paste any tool (and the chat's offline calculator) accepts.
MAX_PASTE_BYTES = 2_000_000


@dataclass(frozen=True)
class ToolSpec:
    name: str                  # Anthropic tool name, e.g. "assess_use_case"
    description: str
    input_schema: dict         # JSON schema sent to Anthropic
    fn: Callable[..., dict]    # fn(**input) -> JSON-able dict
    markdown: Callable[[dict], str] | None = None  # learner-facing rendering of a result
    # The input is the learner's pasted data (a dataset, a log, predictions):
    # the chat runs the tool on the paste before the model sees it, so the
    # model never has to copy a long paste into a tool call.
    reads_paste: bool = False
    # Said when a required input is missing or blank (e.g. an empty workbench form).
    empty_help: str = ""

    def to_anthropic(self) -> dict:
        """The dict the Messages API expects in ``tools=[...]``."""
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}


def num(minimum: float, maximum: float, desc: str, integer: bool = False) -> dict:
    return {"type": "integer" if integer else "number", "minimum": minimum,
            "maximum": maximum, "description": desc}


def enum(values: list[str], desc: str) -> dict:
    return {"type": "string", "enum": values, "description": desc}


TEXT_OR_LINES = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_PASTE_BYTES},
        {"type": "array", "items": {"type": "string"}, "maxItems": 20_000},
    ],
}
