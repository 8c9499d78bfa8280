"""The Lab 3 memory model against what PEFT and autograd really keep.

Tiny Llama-shaped models with LoRA on every linear layer run one forward and
backward pass on the CPU in the mixed-precision setup TRL uses (bf16 weights,
fp32 adapters, autocast). We measure (1) the bytes of every tensor saved for
backward, through ``torch.autograd.graph.saved_tensors_hooks``, and (2) the
peak of memory allocated during the pass, from the profiler's allocation
events, and require the tool's estimate within ±25% of both.

The loss goes through TRL 1.16's fused LM head (`add_fused_lm_head`,
`fused_lm_head=True`), as SFTTrainer and DPOTrainer compute it: the logits are
scored in tiles, never materialised whole. On a GPU the Triton kernel folds each
tile inside one half-precision buffer of 4,096 x 32,768 entries at most (the
estimate's default); the CPU's torch fallback also keeps fp32 temporaries of the
tile (`_forward_tile`/`_backward_tile` in trl/kernels/chunked_logprob.py), so the
CPU check counts CPU_TILE_TEMP_BYTES per entry. "big-vocab" makes them the largest part.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from labs.tools.lora_config import activation_bytes, count_lora_params, recommend_lora_config  # noqa: E402

TOKENS = 384
TOLERANCE = 0.25
# On the CPU, dropout keeps a float32 noise tensor for backward (GPUs keep a
# one-byte mask), so the CPU check counts 4 bytes per masked element.
CPU_MASK_BYTES = 4
# The fused head's torch fallback (CPU) keeps, besides its bf16 buffer, fp32 temporaries of
# each tile at its peak in backward (y, z, log p, p, the gradient and its terms: about seven
# 4-byte copies). Measured 28-29 bytes per (token, vocabulary) entry on top of the buffer.
CPU_TILE_TEMP_BYTES = 28

TINY = {
    "gqa": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=128),
    "wide-mlp": dict(hidden_size=96, intermediate_size=320, num_hidden_layers=3,
                     num_attention_heads=6, num_key_value_heads=3, vocab_size=256),
    "big-vocab": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=4096),
}


def _lora_model(dims: dict, dropout: float, checkpointing: bool):
    from transformers import AutoModelForCausalLM, LlamaConfig
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**dims, attn_implementation="sdpa"),
                                             dtype=torch.bfloat16)
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    # What TRL does with PEFT and checkpointing: gradients flow from layer 0 on.
    model.enable_input_require_grads()
    from trl.trainer.utils import add_fused_lm_head
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout,
                                             target_modules="all-linear"))
    model.train()
    return model


def _measure(model, vocab: int) -> tuple[int, int]:
    """(bytes saved for backward, peak bytes allocated during forward + backward)."""
    from torch.profiler import ProfilerActivity, profile

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:  # weights are not activations
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, vocab, (1, TOKENS), generator=torch.Generator().manual_seed(1))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
        loss.backward()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return sum(saved.values()), peak


@pytest.mark.parametrize("dropout", [0.0, 0.05])
@pytest.mark.parametrize("name", list(TINY))
def test_activation_estimate_matches_saved_tensors_and_peak(name, dropout):
    dims = TINY[name]
    arch = {**dims, "head_dim": dims["hidden_size"] // dims["num_attention_heads"]}
    lora_grads = count_lora_params(arch, 8, "all-linear")["trainable_params"] * 4
    for checkpointing in (False, True):
        saved, peak = _measure(_lora_model(dims, dropout, checkpointing), dims["vocab_size"])
        est = activation_bytes(arch, tokens=TOKENS, r=8, lora_dropout=dropout,
                               activation_checkpointing=checkpointing, mask_bytes=CPU_MASK_BYTES,
                               temp_bytes=CPU_TILE_TEMP_BYTES)
        if not checkpointing:  # with checkpointing the hooks see only the checkpoint's own saves
            # The fused head saves no logits: the final norm's fp32 input, the hidden states it
            # scores (bf16), the targets and two fp32 per-token statistics.
            h = dims["hidden_size"]
            est_saved = est["per_layer"] * dims["num_hidden_layers"] + TOKENS * (4 * h + 4 + 2 * h + 16)
            assert abs(saved / est_saved - 1) <= TOLERANCE, (name, dropout, saved, est_saved)
        est_peak = est["activations"] + est["logits"] + lora_grads
        assert abs(peak / est_peak - 1) <= TOLERANCE, (name, dropout, checkpointing, peak, est_peak)


def test_logits_are_costed_as_trls_fused_head_not_materialised():
    """Issue 23 item 9: SmolLM2-135M at 16 x 1,024 tokens was costed 7.5 GiB of logits, the full
    (tokens, vocabulary) tensor that TRL 1.x never builds; and NF4 at 4.5 bits without double quantisation."""
    from labs.tools.lora_config import NF4_BITS, PRESETS, estimate_memory, logits_bytes

    arch = PRESETS["SmolLM2-135M"]
    assert logits_bytes(arch, 16 * 1024) / 2**30 < 0.5
    mem = estimate_memory(arch, 10**6, quantization="none", batch=16, seq=1024, activation_checkpointing=True)
    assert mem["logits"] < 0.5
    assert NF4_BITS == pytest.approx(4.127, abs=1e-3)
    mistral = PRESETS["Mistral-7B"]
    nf4 = estimate_memory(mistral, 0, quantization="4bit", batch=1, seq=32, activation_checkpointing=True)
    embed = mistral["vocab_size"] * mistral["hidden_size"] * 2 * 2  # untied, 16-bit
    from labs.tools.lora_config import base_param_count
    assert nf4["weights"] == pytest.approx(((base_param_count(mistral) * 2 - embed) * 4.127 / 16 + embed) / 2**30,
                                           abs=0.01)


def test_dropout_and_checkpointing_change_the_estimate_the_way_they_change_memory():
    arch = {**TINY["gqa"], "head_dim": 16}
    no_drop = activation_bytes(arch, tokens=TOKENS, lora_dropout=0.0, activation_checkpointing=False)
    drop = activation_bytes(arch, tokens=TOKENS, lora_dropout=0.05, activation_checkpointing=False)
    ckpt = activation_bytes(arch, tokens=TOKENS, lora_dropout=0.05, activation_checkpointing=True)
    assert drop["activations"] > no_drop["activations"] > ckpt["activations"]


def test_mistral_on_24_gb_keeps_checkpointing_on():
    # The old estimate called this a fit at 21.4 of 21.6 GiB with checkpointing off: an OOM.
    rec = recommend_lora_config("Mistral-7B", 3000, "format", 24)
    assert rec["activation_checkpointing"] and rec["fits"]
    assert "activation_checkpointing=True" in rec["code"]
    assert rec["memory_gib"]["total"] <= 24 * 0.9


def test_checkpointing_goes_off_only_with_a_stated_margin():
    rec = recommend_lora_config("SmolLM2-135M", 2000, "format", 80)
    assert not rec["activation_checkpointing"]
    assert rec["memory_gib"]["total"] <= 80 * 0.75
    assert any("25%" in r for r in rec["reasons"])


@pytest.mark.parametrize("gpu,flag", [("T4", "fp16=True"), ("Tesla V100", "fp16=True"),
                                      ("A100", "bf16=True"), ("", "bf16=True")])
def test_gpus_without_bf16_get_fp16(gpu, flag):
    rec = recommend_lora_config("Llama-3.1-8B", 5000, "format", 16, gpu_name=gpu)
    assert flag in rec["code"]
    other = "bf16=True" if flag == "fp16=True" else "fp16=True"
    assert other not in rec["code"]
    if flag == "fp16=True":
        assert "torch.bfloat16" not in rec["code"]
