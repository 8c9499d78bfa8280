"""The advisor tools as Anthropic tool definitions, plus a safe way to run them.

Every tool is a plain deterministic function in this package. The chat loop
sends ``spec.name``, ``spec.description`` and ``spec.input_schema`` to the
Messages API and answers each ``tool_use`` block with ``run_tool``; the
workbench panels call ``execute`` and show ``render_markdown``.

    >>> from labs.tools.registry import run_tool
    >>> text, is_error = run_tool("count_lora_params",
    ...     {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": ["q_proj", "v_proj"]})

``run_tool`` never raises: unknown tools, schema violations and failures
inside a tool all come back as ``(message, True)`` so one bad call cannot
break a learner's conversation. What goes back to the model is bounded to
``MAX_TOOL_OUTPUT`` characters.
"""
from __future__ import annotations

import json
import math
from typing import Any

from labs.advisors import ADVISORS, LESSON_TO_ADVISOR
from labs.tools import curves, dataset_critic, evaluation, lora_config, strategy
from labs.tools.spec import MAX_PASTE_BYTES, ToolSpec  # noqa: F401  (re-exported)

# Tool results go into the model's context on every later turn; 8k chars is
# plenty for a verdict plus tables and keeps long conversations affordable.
MAX_TOOL_OUTPUT = 8_000

# Each tool module declares its own specs; a new tool module is one more entry here.
TOOL_MODULES = (strategy, dataset_critic, lora_config, curves, evaluation)
TOOLS: dict[str, ToolSpec] = {spec.name: spec for module in TOOL_MODULES for spec in module.SPECS}
ADVISOR_IDS = tuple(ADVISORS)


def tools_for(advisor_id: str) -> list[ToolSpec]:
    """The tools one advisor offers, in the advisor's order (empty for an unknown id)."""
    advisor = ADVISORS.get(LESSON_TO_ADVISOR.get(advisor_id, advisor_id))
    return [TOOLS[name] for name in advisor.tools] if advisor else []


# ---------------------------------------------------------------- validation

_JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and math.isfinite(v) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, dict),
}


def _check(value: Any, schema: dict, where: str) -> str | None:
    """First problem with ``value`` against the subset of JSON Schema we use, or None."""
    if "anyOf" in schema:
        problems = [_check(value, sub, where) for sub in schema["anyOf"]]
        if all(problems):
            return problems[0] if len(set(problems)) == 1 else \
                f"{where}: " + " or ".join(p.split(": ", 1)[-1] for p in problems)
        return None
    kind = schema.get("type")
    if kind and not _JSON_TYPES[kind](value):
        return f"{where}: expected {kind}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: must be one of {', '.join(map(str, schema['enum']))} (got {value!r:.60})"
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: must be at least {schema['minimum']:g} (got {value:g})"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: must be at most {schema['maximum']:g} (got {value:g})"
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            return f"{where}: must be at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where}: too long ({len(value):,} characters, limit {schema['maxLength']:,})"
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            return f"{where}: needs at least {schema['minItems']} item(s)"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where}: too many items ({len(value)}, limit {schema['maxItems']})"
        for i, item in enumerate(value):
            problem = _check(item, schema.get("items", {}), f"{where}[{i}]")
            if problem:
                return problem
    if kind == "object":
        for key in schema.get("required", []):
            if key not in value:
                return f"{where}: missing required field '{key}'"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = sorted(k for k in value if k not in props)
            if extra:
                return (f"{where}: unknown field(s) {', '.join(map(repr, extra))}; "
                        f"allowed: {', '.join(props)}")
        for key, sub in props.items():
            if key in value and value[key] is not None:
                problem = _check(value[key], sub, f"{where}.{key}" if where != "input" else key)
                if problem:
                    return problem
    return None


def validate(name: str, tool_input: Any) -> str | None:
    """Why ``tool_input`` is not acceptable for tool ``name``, or None when it is."""
    spec = TOOLS.get(name)
    if spec is None:
        return f"Unknown tool '{name}'. Available: {', '.join(TOOLS)}."
    if not isinstance(tool_input, dict):
        return f"Tool input must be a JSON object, got {type(tool_input).__name__}."
    if spec.empty_help and any(not str(tool_input.get(key) or "").strip()
                               for key in spec.input_schema.get("required", [])
                               if not isinstance(tool_input.get(key), (list, tuple))):
        return spec.empty_help  # e.g. an empty workbench form: say what to paste
    return _check(tool_input, spec.input_schema, "input")


def _clean_input(spec: ToolSpec, tool_input: dict) -> dict:
    """Drop explicit nulls (models send them for optional fields) and turn
    integral floats into ints where the schema says integer."""
    out = {}
    for key, value in tool_input.items():
        if value is None:
            continue
        sub = spec.input_schema.get("properties", {}).get(key, {})
        if sub.get("type") == "integer" and isinstance(value, float):
            value = int(value)
        out[key] = value
    return out


def execute(name: str, tool_input: Any) -> tuple[dict | None, str | None]:
    """Validate and run a tool: ``(result, None)`` or ``(None, error message)``.

    For the workbench, which wants the dict to render rather than text."""
    problem = validate(name, tool_input)
    if problem:
        spec = TOOLS.get(name)
        return None, problem if spec and problem == spec.empty_help else f"Invalid input for {name}: {problem}"
    spec = TOOLS[name]
    try:
        result = spec.fn(**_clean_input(spec, tool_input))
    except (ValueError, TypeError, KeyError) as exc:
        # Tools raise ValueError with a learner-facing message for input the
        # schema cannot express (e.g. a log with no numbers in it).
        return None, f"{name} could not use this input: {exc}"
    except Exception as exc:  # a bug in a tool must not end the conversation
        return None, f"{name} failed unexpectedly ({type(exc).__name__}: {exc})"
    return result, None


def render_markdown(name: str, result: dict) -> str:
    """Learner-facing Markdown for a tool result (falls back to a JSON block)."""
    spec = TOOLS.get(name)
    if spec is not None and spec.markdown is not None:
        try:
            return spec.markdown(result)
        except Exception as exc:  # never let rendering hide the numbers
            return f"(could not render: {exc})\n\n```json\n{json.dumps(result, indent=1, default=str)[:MAX_TOOL_OUTPUT]}\n```"
    return f"```json\n{json.dumps(result, indent=1, default=str)[:MAX_TOOL_OUTPUT]}\n```"


# ------------------------------------------------------------- output bound

def _shrink(value: Any, max_items: int, max_str: int) -> Any:
    """Copy of ``value`` with lists cut to ``max_items`` and strings to
    ``max_str``, marking what was dropped so the model does not mistake a
    sample for the whole."""
    if isinstance(value, dict):
        return {k: _shrink(v, max_items, max_str) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_shrink(v, max_items, max_str) for v in list(value)[:max_items]]
        if len(value) > max_items:
            items.append(f"... {len(value) - max_items} more not shown")
        return items
    if isinstance(value, str) and len(value) > max_str:
        return value[:max_str] + f"... [{len(value) - max_str} more chars]"
    return value


def bound_output(result: Any, limit: int = MAX_TOOL_OUTPUT) -> str:
    """Compact JSON of ``result`` no longer than ``limit`` characters.

    Long lists and strings are cut first (keeping the JSON valid); only if
    that is not enough is the text itself truncated, with a note."""
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(text) <= limit:
        return text
    for max_items, max_str in ((50, 2000), (20, 800), (10, 400), (5, 200), (3, 100), (1, 60)):
        shrunk = _shrink(result, max_items, max_str)
        if isinstance(shrunk, dict):
            shrunk = {"note": "Output shortened to fit the tool-result limit; "
                              "lists show their first items only.", **shrunk}
        text = json.dumps(shrunk, ensure_ascii=False, separators=(",", ":"), default=str)
        if len(text) <= limit:
            return text
    note = f"... [truncated: output exceeded {limit:,} characters]"
    return text[: max(0, limit - len(note))] + note


def run_tool(name: str, tool_input: Any) -> tuple[str, bool]:
    """Run a tool for the model: ``(text, is_error)``. Never raises."""
    try:
        result, error = execute(name, tool_input)
        if error is not None:
            return error[:MAX_TOOL_OUTPUT], True
        return bound_output(result), False
    except Exception as exc:  # last line of defence (e.g. unserialisable result)
        return f"{name} failed unexpectedly ({type(exc).__name__})"[:MAX_TOOL_OUTPUT], True
