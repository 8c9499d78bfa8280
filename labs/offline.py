"""The advisors' no-key fallback: read a learner's free text into tool inputs.

Without an Anthropic key the chat still answers with this lab's calculator
(``labs.chat.offline_reply``). Each advisor names its planner in
``labs/advisors.py`` (``Advisor.offline_plan``); a planner takes the learner's
message and returns ``[(tool name, tool input, assumptions made), ...]``,
empty when nothing fits. Plain regexes: no model, no network.
"""
from __future__ import annotations

import re

Plan = list[tuple[str, dict, list[str]]]

_JSON_LINE = re.compile(r"^\s*\{.*\}\s*$")
_LOG_LINE = re.compile(r"^\s*(?:step\s*[:=]?\s*)?\d+[\s,;|\t:]+[-+]?(?:\d+\.?\d*|\.\d+|nan|inf)", re.I)
_NUM = r"(\d[\d,]*(?:\.\d+)?\s*[kKmM]?)"

_PRESETS = (  # (pattern, preset) — most specific first
    (r"smollm2?[-\s]?135m|\b135m\b", "SmolLM2-135M"),
    (r"smollm2?[-\s]?360m|\b360m\b", "SmolLM2-360M"),
    (r"smollm2?[-\s]?1\.7b|\b1\.7b\b", "SmolLM2-1.7B"),
    (r"qwen[\w.\s-]*0\.5b|\b0\.5b\b", "Qwen2.5-0.5B"),
    (r"qwen[\w.\s-]*7b", "Qwen2.5-7B"),
    (r"llama[\w.\s-]*8b|llama[-\s]?3", "Llama-3.1-8B"),
    (r"mistral", "Mistral-7B"),
)
_GPUS = (("h200", 141), ("h100", 80), ("a100", 80), ("a6000", 48), ("l40", 48), ("4090", 24), ("3090", 24),
         ("a10g", 24), ("l4", 24), ("t4", 16), ("v100", 16))


def _number(raw: str) -> int:
    raw = raw.strip().replace(",", "").lower()
    mult = 1000 if raw.endswith("k") else 1_000_000 if raw.endswith("m") else 1
    return int(float(raw.rstrip("km").strip()) * mult)


def _json_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if _JSON_LINE.match(ln)]


def _looks_like_loss_log(text: str) -> bool:
    if re.search(r"""["']?(eval_)?loss["']?\s*[:=]""", text) and len(re.findall(r"\d", text)) >= 6:
        return True
    return sum(1 for ln in text.splitlines() if _LOG_LINE.match(ln)) >= 3


def _task_kind(low: str) -> str:
    if re.search(r"json|extract|structured|schema|format", low):
        return "format"
    if re.search(r"tone|style|voice|brand", low):
        return "style"
    if re.search(r"prefer|dpo|chosen|rejected|ranking", low):
        return "preference"
    if re.search(r"medical|clinical|legal|financ|domain|jargon", low):
        return "domain"
    return "general"


def _strategy_input(text: str) -> tuple[dict, list[str]]:
    low = text.lower()
    notes: list[str] = []
    m = re.search(_NUM + r"\s+(?:[a-z-]+\s+){0,4}?(?:per|a|each|every|/)\s*day|" + _NUM + r"\s+(?:[a-z-]+\s+){0,2}?daily", low)
    if m:
        per_day = _number(m.group(1) or m.group(2))
    else:
        per_day = 1000
        notes.append("volume: 1,000 requests a day (you didn't say)")
    m = re.search(_NUM + r"\s+(?:[a-z-]+\s+){0,2}?(?:examples|samples|labell?ed|pairs|records)", low)
    examples = _number(m.group(1)) if m else 0
    if not m:
        notes.append("examples on hand: none yet")
    strict = ("strict" if re.search(r"json|strict|schema|xml|must parse", low)
              else "moderate" if re.search(r"template|format|tone|style|brand", low) else "loose")
    m = re.search(r"(?:chang|updat)\w*\s+(?:\w+\s+){0,3}?(daily|weekly|monthly|yearly|every\s+(day|week|month|year))", low)
    if m:
        word = m.group(2) or m.group(1)
        change = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}.get(word, word)
    else:
        change = "yearly"
        notes.append("knowledge changes: about yearly")
    privacy = ("on_premises" if re.search(r"on[- ]?prem|own servers|may not leave|must not leave|air[- ]?gapped", low)
               else "sensitive" if re.search(r"patient|medical|clinical|health|hipaa|pii|personal|legal|contract", low)
               else "none")
    latency = ("realtime" if re.search(r"real[- ]?time|half a second|\d+\s*ms\b|millisecond", low)
               else "relaxed" if re.search(r"batch|overnight|offline|nightly", low) else "interactive")
    return ({"format_strictness": strict, "requests_per_day": per_day, "knowledge_change": change,
             "privacy": privacy, "latency": latency, "examples_on_hand": examples,
             "task_kind": _task_kind(low)}, notes)


def _lora_input(text: str) -> tuple[dict | None, list[str]]:
    low = text.lower()
    model = next((preset for pat, preset in _PRESETS if re.search(pat, low)), None)
    if model is None:
        return None, []
    notes: list[str] = []
    m = re.search(_NUM + r"\s+(?:[a-z-]+\s+){0,3}?(?:examples|samples|rows|pairs|records|conversations)", low)
    size = _number(m.group(1)) if m else 1000
    if not m:
        notes.append("dataset size: 1,000 examples (you didn't say)")
    m = re.search(r"(\d+(?:\.\d+)?)\s*gb", low)
    gpu = float(m.group(1)) if m else next((gb for name, gb in _GPUS if name in low), None)
    if gpu is None and re.search(r"zero ?gpu|this space", low):
        from core.gpu import zerogpu_memory
        gpu, how = zerogpu_memory()  # as a GPU call last read it, or the assumption by name
        notes.append(f"GPU memory: {how}")
    if gpu is None:
        gpu = 24
        notes.append("GPU memory: 24 GB (you didn't say)")
    return {"model": model, "dataset_size": max(1, size), "task_kind": _task_kind(low), "gpu_memory_gb": gpu}, notes


# ------------------------------------------------------------ one per advisor

def plan_strategy(text: str) -> Plan:
    tool_input, notes = _strategy_input(text)
    return [("assess_use_case", tool_input, notes)]


def plan_dataset(text: str) -> Plan:
    lines = _json_lines(text)
    return [("critique_jsonl", {"text": "\n".join(lines)}, [])] if lines else []


def plan_lora(text: str) -> Plan:
    if _looks_like_loss_log(text):
        return [("diagnose_training_curve", {"log_text": text}, [])]
    tool_input, notes = _lora_input(text)
    return [("recommend_lora_config", tool_input, notes)] if tool_input else []


def plan_eval(text: str) -> Plan:
    low = text.lower()
    lines = _json_lines(text)
    if lines and any('"prediction"' in ln for ln in lines):
        return [("score_predictions", {"predictions": "\n".join(lines)}, [])]
    if _looks_like_loss_log(text):
        return [("diagnose_training_curve", {"log_text": text}, [])]
    task = text.strip()[:4000]
    if len(task) < 3:
        return []
    plan = []
    if re.search(r"rubric|judge", low):
        plan.append(("judge_rubric", {"task_description": task}, []))
    if re.search(r"adversarial|red[- ]?team|attack|break", low):
        plan.append(("adversarial_cases", {"task_description": task}, []))
    if re.search(r"monitor|drift|alert|production", low):
        plan.append(("monitoring_plan", {"task_description": task}, []))
    return plan or [("judge_rubric", {"task_description": task}, []),
                    ("adversarial_cases", {"task_description": task}, [])]
