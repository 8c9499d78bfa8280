"""Use-case assessment (stub; being filled in)."""
from __future__ import annotations

FORMAT_STRICTNESS = ("loose", "moderate", "strict")
KNOWLEDGE_CHANGE = ("static", "yearly", "monthly", "weekly", "daily")
PRIVACY = ("none", "sensitive", "on_premises")
LATENCY = ("relaxed", "interactive", "realtime")
TASK_KINDS = ("style", "format", "domain", "preference", "general")


def assess_use_case(**kwargs) -> dict:
    raise NotImplementedError("assess_use_case is not finished yet")


def strategy_markdown(result: dict) -> str:
    return ""
