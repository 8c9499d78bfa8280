"""Training-curve diagnosis (stub; being filled in)."""
from __future__ import annotations


def diagnose_training_curve(log_text) -> dict:
    raise NotImplementedError


def curve_markdown(result: dict) -> str:
    return ""
