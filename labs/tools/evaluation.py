"""Evaluation tools (stub; being filled in)."""
from __future__ import annotations

OUTPUT_FORMATS = ("text", "json", "label", "code")


def score_predictions(predictions, references=None) -> dict:
    raise NotImplementedError


def judge_rubric(task_description, output_format="text", criteria=None, pairwise=False) -> dict:
    raise NotImplementedError


def adversarial_cases(task_description, input_fields=None, examples_per_category=2) -> dict:
    raise NotImplementedError


def monitoring_plan(task_description, requests_per_day=None, output_format="text", risk="medium",
                    baseline_accuracy=None, knowledge_change=None) -> dict:
    raise NotImplementedError


def scores_markdown(result: dict) -> str:
    return ""


def rubric_markdown(result: dict) -> str:
    return ""


def adversarial_markdown(result: dict) -> str:
    return ""


def monitoring_markdown(result: dict) -> str:
    return ""
