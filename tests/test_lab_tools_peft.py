"""The LoRA calculator against the real libraries: PEFT's own parameter count on
the real architectures (built from configs, no download) and the generated
TRL/PEFT code against the pinned versions' signatures.

Imports torch/transformers/peft inside the tests so collecting this file stays cheap.
"""
from __future__ import annotations

import ast
import dataclasses

import pytest

from labs.tools.lora_config import PRESETS, base_param_count, count_lora_params, recommend_lora_config


def _config_for(name: str):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    a = PRESETS[name]
    kw = dict(hidden_size=a["hidden_size"], intermediate_size=a["intermediate_size"],
              num_hidden_layers=a["num_hidden_layers"], num_attention_heads=a["num_attention_heads"],
              num_key_value_heads=a["num_key_value_heads"], vocab_size=a["vocab_size"],
              tie_word_embeddings=a["tie_word_embeddings"])
    if name.startswith("Qwen"):
        return Qwen2Config(**kw)  # head_dim is derived; q/k/v carry biases
    cls = MistralConfig if name.startswith("Mistral") else LlamaConfig
    return cls(**kw, head_dim=a["head_dim"])


def _peft_trainable(model, r: int, targets) -> int:
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    return trainable


def test_smollm2_135m_q_v_r8_matches_peft_on_the_real_model():
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    # Real weights in memory (random init), the SmolLM2-135M-Instruct architecture.
    model = AutoModelForCausalLM.from_config(_config_for("SmolLM2-135M"))
    assert model.num_parameters() == base_param_count(PRESETS["SmolLM2-135M"]) == 134_515_008
    ours = count_lora_params("SmolLM2-135M", 8, ["q_proj", "v_proj"])["trainable_params"]
    assert ours == 460_800  # 30 layers x 8 x ((576+576) + (576+192))
    assert _peft_trainable(model, 8, ["q_proj", "v_proj"]) == ours


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "SmolLM2-135M"])
@pytest.mark.parametrize("targets,r", [(["q_proj", "v_proj"], 8), ("all-linear", 16)])
def test_every_preset_matches_peft(name, targets, r):
    import torch
    from transformers import AutoModelForCausalLM

    # The meta device builds the exact module tree without allocating weights,
    # so even the 8B presets take well under a second.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_config_for(name))
    assert model.num_parameters() == base_param_count(PRESETS[name])
    ours = count_lora_params(name, r, targets)["trainable_params"]
    assert _peft_trainable(model, r, targets) == ours


def test_all_linear_on_a_tiny_custom_config_matches_peft():
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    dims = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=300, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**dims))
    ours = count_lora_params(dims, 4, "all-linear")
    assert model.num_parameters() == ours["base_params"]  # before PEFT injects its layers
    # per layer: q 4(64+64) + k,v 2*4(64+32) + o 4(64+64) + gate,up 2*4(64+160) + down 4(160+64)
    assert ours["per_layer"] == 512 + 768 + 512 + 1792 + 896
    assert ours["trainable_params"] == 3 * 4480
    assert _peft_trainable(model, 4, "all-linear") == ours["trainable_params"]


@pytest.mark.parametrize("method,task", [("sft", "format"), ("dpo", "preference")])
@pytest.mark.parametrize("gpu", [80, 12])
def test_generated_code_uses_only_real_arguments(method, task, gpu):
    from trl import DPOConfig, ModelConfig, SFTConfig

    rec = recommend_lora_config("Llama-3.1-8B", 5000, task, gpu, method=method)
    tree = ast.parse(rec["code"])  # it is valid Python
    calls = {node.func.id: {kw.arg for kw in node.keywords} for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    fields = {"ModelConfig": ModelConfig, "SFTConfig": SFTConfig, "DPOConfig": DPOConfig}
    for cls_name, cls in fields.items():
        if cls_name in calls:
            allowed = {f.name for f in dataclasses.fields(cls)}
            assert calls[cls_name] <= allowed, calls[cls_name] - allowed
    config_cls = "DPOConfig" if method == "dpo" else "SFTConfig"
    assert config_cls in calls and "ModelConfig" in calls
    # The generated configs are accepted by the pinned TRL (built, not run).
    namespace: dict = {}
    code = rec["code"]
    exec_src = code[:code.index("\n# train.jsonl")].replace(
        "bf16=True", "bf16=False")  # CPU test machine has no bf16 GPU
    exec(compile(exec_src, "<generated>", "exec"), namespace)  # our own generated text, not user input
    args, peft_config = namespace["args"], namespace["peft_config"]
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == rec["effective_batch_size"]
    assert args.learning_rate == rec["learning_rate"] and peft_config.r == rec["lora_r"]
    assert sorted(peft_config.target_modules) == sorted(rec["adapted_modules"])
    assert args.activation_checkpointing == args.gradient_checkpointing == rec["activation_checkpointing"]
    if rec["quantization"] == "4bit":
        from trl import get_quantization_config

        q = get_quantization_config(namespace["model_args"])
        assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
        assert "quantization_config=get_quantization_config(model_args)" in code
