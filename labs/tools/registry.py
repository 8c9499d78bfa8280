"""The advisor tools as Anthropic tool definitions, plus a safe way to run them.

Every tool is a plain deterministic function in this package. The chat loop
sends ``spec.name``, ``spec.description`` and ``spec.input_schema`` to the
Messages API and answers each ``tool_use`` block with ``run_tool``; the
workbench panels call ``execute`` and show ``render_markdown``.

    >>> from labs.tools.registry import run_tool
    >>> text, is_error = run_tool("count_lora_params",
    ...     {"model": "SmolLM2-135M", "r": 8, "target_modules": ["q_proj", "v_proj"]})

``run_tool`` never raises: unknown tools, schema violations and failures
inside a tool all come back as ``(message, True)`` so one bad call cannot
break a learner's conversation. What goes back to the model is bounded to
``MAX_TOOL_OUTPUT`` characters.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from labs.tools import curves, dataset_critic, evaluation, lora_config, strategy

# Tool results go into the model's context on every later turn; 8k chars is
# plenty for a verdict plus tables and keeps long conversations affordable.
MAX_TOOL_OUTPUT = 8_000
# Same cap as the critic's own check; repeated here so oversize pastes are
# refused before any schema walking.
MAX_PASTE_BYTES = dataset_critic.MAX_PASTE_BYTES

ADVISOR_IDS = ("strategy", "dataset", "lora", "eval")


@dataclass(frozen=True)
class ToolSpec:
    name: str                  # Anthropic tool name, e.g. "assess_use_case"
    description: str
    input_schema: dict         # JSON schema sent to Anthropic
    fn: Callable[..., dict]    # fn(**input) -> JSON-able dict
    advisors: tuple[str, ...]  # which labs offer it
    # Extra (beyond the architecture contract, optional): Markdown renderer
    # the workbench and the no-key fallback use for this tool's result.
    markdown: Callable[[dict], str] | None = None

    def to_anthropic(self) -> dict:
        """The dict the Messages API expects in ``tools=[...]``."""
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}


def _num(minimum: float, maximum: float, desc: str, integer: bool = False) -> dict:
    return {"type": "integer" if integer else "number", "minimum": minimum,
            "maximum": maximum, "description": desc}


def _enum(values: list[str], desc: str) -> dict:
    return {"type": "string", "enum": values, "description": desc}


_TEXT_OR_LINES = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_PASTE_BYTES},
        {"type": "array", "items": {"type": "string"}, "maxItems": 20_000},
    ],
}

_SCHEMAS: dict[str, dict] = {
    "assess_use_case": {
        "type": "object",
        "properties": {
            "format_strictness": _enum(
                list(strategy.FORMAT_STRICTNESS),
                "How exact the output format must be: loose (free prose), moderate "
                "(a house style or template), strict (must parse, e.g. JSON for a program)."),
            "requests_per_day": _num(0, 1e9, "Expected production requests per day.", True),
            "knowledge_change": _enum(
                list(strategy.KNOWLEDGE_CHANGE),
                "How often the facts the answers depend on change."),
            "privacy": _enum(
                list(strategy.PRIVACY),
                "none; sensitive (PII, contracts: vendor terms matter); "
                "on_premises (data may not leave our own infrastructure)."),
            "latency": _enum(
                list(strategy.LATENCY),
                "relaxed (seconds are fine), interactive (about a second), "
                "realtime (a few hundred milliseconds)."),
            "examples_on_hand": _num(0, 1e9, "Labelled examples (or preference pairs) available now.", True),
            "task_kind": _enum(
                list(strategy.TASK_KINDS),
                "Optional. style (tone/voice), format (fixed output structure, extraction), "
                "domain (specialised knowledge/jargon), preference (which of two answers is "
                "better), general."),
            "input_price_per_mtok": _num(0, 1000, "Large hosted model: USD per million input tokens."),
            "output_price_per_mtok": _num(0, 1000, "Large hosted model: USD per million output tokens."),
            "input_tokens_per_request": _num(1, 1_000_000, "Prompt tokens per request with the large model (incl. instructions/few-shot).", True),
            "output_tokens_per_request": _num(1, 100_000, "Output tokens per request.", True),
            "gpu_hourly_usd": _num(0, 1000, "USD per hour for one GPU serving the small tuned model."),
            "serving_hours_per_day": _num(0, 24, "Hours per day the serving GPU is kept running."),
            "requests_per_gpu_hour": _num(1, 10_000_000, "Requests one serving GPU handles per hour.", True),
            "training_gpu_hours": _num(0, 100_000, "GPU hours for one fine-tuning run."),
            "training_gpu_hourly_usd": _num(0, 1000, "USD per hour of the training GPU."),
            "retrains_per_month": _num(0, 100, "Fine-tuning runs per month (retraining cadence)."),
        },
        "required": ["format_strictness", "requests_per_day", "knowledge_change",
                     "privacy", "latency", "examples_on_hand"],
        "additionalProperties": False,
    },
    "critique_jsonl": {
        "type": "object",
        "properties": {
            "text": {"type": "string", "maxLength": MAX_PASTE_BYTES,
                     "description": "The JSONL dataset exactly as pasted, one JSON object per line."},
            "near_duplicate_threshold": _num(
                0.5, 1.0, "Jaccard similarity (character 5-grams, found with MinHash LSH) at or above which two "
                "lines count as near duplicates. Default 0.8."),
        },
        "required": ["text"],
        "additionalProperties": False,
    },
    "recommend_lora_config": {
        "type": "object",
        "properties": {
            "model": _enum(list(lora_config.PRESETS), "Base model preset."),
            "dataset_size": _num(1, 1e9, "Number of training examples.", True),
            "task_kind": _enum(list(lora_config.TASK_KINDS), "What the fine-tune teaches."),
            "gpu_memory_gb": _num(1, 2000, "Memory of the training GPU in GB."),
            "max_seq_length": _num(16, 131_072, "Tokens per training example after truncation. Default 1024.", True),
            "quantization": _enum(["auto", "none", "4bit"], "auto picks 4-bit (QLoRA) only when bf16 weights would not fit."),
            "target_modules": _enum(["auto", "attention", "qv", "all-linear"],
                                    "qv = q_proj+v_proj (LoRA paper / PEFT default), attention = q,k,v,o, all-linear = attention + MLP."),
            "r": _num(1, 1024, "Force a LoRA rank instead of the recommended one.", True),
            "method": _enum(["sft", "dpo"], "Training method. Default sft."),
            "gpu_name": {"type": "string", "maxLength": 60,
                         "description": "Optional GPU name (e.g. T4, V100, A100): GPUs without "
                                        "bf16 get an fp16 config."},
        },
        "required": ["model", "dataset_size", "task_kind", "gpu_memory_gb"],
        "additionalProperties": False,
    },
    "count_lora_params": {
        "type": "object",
        "properties": {
            "model": _enum(list(lora_config.PRESETS), "Base model preset."),
            "r": _num(1, 1024, "LoRA rank.", True),
            "target_modules": {
                "anyOf": [
                    {"type": "string", "enum": ["all-linear", "attention", "qv"]},
                    {"type": "array", "minItems": 1,
                     "items": {"type": "string", "enum": list(lora_config.MODULES)}},
                ],
                "description": "'all-linear', 'attention', 'qv', or a list of module names "
                               f"({', '.join(lora_config.MODULES)}).",
            },
        },
        "required": ["model", "r", "target_modules"],
        "additionalProperties": False,
    },
    "diagnose_training_curve": {
        "type": "object",
        "properties": {
            "log_text": {"type": "string", "maxLength": MAX_PASTE_BYTES,
                         "description": "Training log as pasted: CSV/TSV/space columns (step, train loss, "
                                        "eval loss), Trainer log lines, or a log_history JSON list."},
        },
        "required": ["log_text"],
        "additionalProperties": False,
    },
    "score_predictions": {
        "type": "object",
        "properties": {
            "predictions": dict(_TEXT_OR_LINES, description=(
                "Model outputs: one per line, a list of strings, or JSONL whose lines have "
                "'prediction' and 'reference' keys (then omit references).")),
            "references": dict(_TEXT_OR_LINES, description="Expected outputs, aligned one per line with predictions."),
        },
        "required": ["predictions"],
        "additionalProperties": False,
    },
    "judge_rubric": {
        "type": "object",
        "properties": {
            "task_description": {"type": "string", "minLength": 3, "maxLength": 4000,
                                 "description": "What the fine-tuned model does."},
            "output_format": _enum(list(evaluation.OUTPUT_FORMATS), "Shape of the model's answer."),
            "criteria": {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 10,
                         "description": "Optional extra dimensions to judge."},
            "pairwise": {"type": "boolean", "description": "Compare two answers (A/B) instead of grading one. Default false."},
        },
        "required": ["task_description"],
        "additionalProperties": False,
    },
    "adversarial_cases": {
        "type": "object",
        "properties": {
            "task_description": {"type": "string", "minLength": 3, "maxLength": 4000,
                                 "description": "What the fine-tuned model does."},
            "input_fields": {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 30,
                             "description": "Optional names of fields the input contains."},
            "examples_per_category": _num(1, 5, "Concrete examples per category. Default 2.", True),
        },
        "required": ["task_description"],
        "additionalProperties": False,
    },
    "monitoring_plan": {
        "type": "object",
        "properties": {
            "task_description": {"type": "string", "minLength": 3, "maxLength": 4000,
                                 "description": "What the fine-tuned model does."},
            "requests_per_day": _num(0, 1e9, "Production volume.", True),
            "output_format": _enum(list(evaluation.OUTPUT_FORMATS), "Shape of the model's answer."),
            "risk": _enum(["low", "medium", "high"], "Harm from a wrong answer. Default medium."),
            "baseline_accuracy": _num(0, 1, "Offline accuracy (0-1) at launch, if known."),
            "knowledge_change": _enum(list(strategy.KNOWLEDGE_CHANGE), "How fast the domain changes."),
        },
        "required": ["task_description"],
        "additionalProperties": False,
    },
}

_DESCRIPTIONS = {
    "assess_use_case": (
        "Decide between prompting, RAG, supervised fine-tuning (SFT), DPO and LoRA (or a "
        "combination such as RAG + LoRA SFT) for a use case, with reasons; estimate how much "
        "data is needed (rules of thumb) and compare the monthly cost of a prompted large hosted "
        "model with a fine-tuned small self-hosted one at the stated volume. All prices are "
        "assumptions with defaults returned in the result; pass your own to override them."),
    "critique_jsonl": (
        "Validate a JSONL fine-tuning dataset line by line (chat 'messages', prompt/completion, "
        "or prompt/chosen/rejected preference pairs). Reports problems with line numbers and the "
        "fix, counts, approximate token-length statistics, exact and near-duplicate line pairs "
        "(MinHash), mixed date conventions, assistant outputs that look like JSON but do not "
        "parse, DPO pairs whose chosen equals rejected, and a prioritised fix list."),
    "recommend_lora_config": (
        "Recommend a LoRA/QLoRA setup for a base model preset: r, alpha, learning rate, epochs, "
        "batch and gradient accumulation (effective batch), target modules, the exact number of "
        "trainable parameters for that architecture, a GPU memory estimate and whether it fits, "
        "and ready-to-run Python for peft LoraConfig + trl SFTConfig/DPOConfig."),
    "count_lora_params": (
        "Exact number of trainable LoRA parameters for a model preset, rank r and set of target "
        "modules: sum over layers of r*(in_features+out_features) per adapted projection."),
    "diagnose_training_curve": (
        "Diagnose a pasted training log (step, train loss, eval loss): healthy, overfitting (with "
        "the best eval step), divergence, loss spikes, plateau, NaN/inf, or oscillation, each with "
        "the action to take."),
    "score_predictions": (
        "Score model outputs against references: exact match, token F1, ROUGE-L, JSON validity, "
        "and per-field accuracy for JSON objects (nested keys flattened)."),
    "judge_rubric": (
        "Write an LLM-as-judge rubric for a task: dimensions with 1-5 anchors, a judge prompt "
        "with position- and length-bias mitigations, and the JSON schema the judge must answer in."),
    "adversarial_cases": (
        "Propose adversarial test inputs for a task, by category (empty/missing fields, "
        "contradictions, prompt injection, unusual units/formats, near-duplicates with different "
        "answers, out-of-domain), with concrete examples tailored to the task's wording."),
    "monitoring_plan": (
        "Production monitoring plan for a fine-tuned model: metrics, thresholds, alert rules, "
        "sampling for human review and a revalidation cadence."),
}

_TABLE: list[tuple[str, Callable[..., dict], tuple[str, ...], Callable[[dict], str]]] = [
    ("assess_use_case", strategy.assess_use_case, ("strategy",), strategy.strategy_markdown),
    ("critique_jsonl", dataset_critic.critique_jsonl, ("dataset",), dataset_critic.critique_markdown),
    ("recommend_lora_config", lora_config.recommend_lora_config, ("lora",), lora_config.lora_markdown),
    ("count_lora_params", lora_config.count_lora_params, ("lora",), lora_config.count_markdown),
    ("diagnose_training_curve", curves.diagnose_training_curve, ("lora", "eval"), curves.curve_markdown),
    ("score_predictions", evaluation.score_predictions, ("eval",), evaluation.scores_markdown),
    ("judge_rubric", evaluation.judge_rubric, ("eval",), evaluation.rubric_markdown),
    ("adversarial_cases", evaluation.adversarial_cases, ("eval",), evaluation.adversarial_markdown),
    ("monitoring_plan", evaluation.monitoring_plan, ("eval",), evaluation.monitoring_markdown),
]

TOOLS: dict[str, ToolSpec] = {
    name: ToolSpec(name=name, description=_DESCRIPTIONS[name], input_schema=_SCHEMAS[name],
                   fn=fn, advisors=advisors, markdown=md)
    for name, fn, advisors, md in _TABLE
}


def tools_for(advisor_id: str) -> list[ToolSpec]:
    """The tools one lab offers, in a stable order (empty for an unknown id)."""
    return [spec for spec in TOOLS.values() if advisor_id in spec.advisors]


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
        return None, f"Invalid input for {name}: {problem}"
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
