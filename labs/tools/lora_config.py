"""LoRA config recommender (stub; being filled in)."""
from __future__ import annotations

PRESETS = {k: {} for k in ("SmolLM2-135M", "SmolLM2-360M", "SmolLM2-1.7B", "Qwen2.5-0.5B",
                           "Qwen2.5-7B", "Llama-3.1-8B", "Mistral-7B")}
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TASK_KINDS = ("style", "format", "domain", "preference", "general")


def recommend_lora_config(**kwargs) -> dict:
    raise NotImplementedError


def count_lora_params(model, r, target_modules) -> dict:
    raise NotImplementedError


def lora_markdown(result: dict) -> str:
    return ""


def count_markdown(result: dict) -> str:
    return ""
