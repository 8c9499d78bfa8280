"""LoRA configuration advisor: exact trainable-parameter counts, memory, ready-to-run config.

    >>> count_lora_params("SmolLM2-135M", 8, ["q_proj", "v_proj"])["trainable_params"]
    460800

Counts are exact for the listed architectures (Llama-style decoder blocks:
q/k/v/o attention projections and a gated MLP). PEFT's LoRA adds, per adapted
``nn.Linear(in, out)``, ``lora_A`` of shape (r, in) and ``lora_B`` of shape
(out, r): r·(in + out) parameters, no bias. Memory figures are estimates and
are labelled as such.
"""
from __future__ import annotations

import json
import math
from typing import Any

from labs.tools.spec import ToolSpec, enum, num
from training.run import config

# Real dimensions from each model's config.json on the Hub (checked by hand;
# head_dim is hidden/heads for all of these). Biases: Qwen2 has q/k/v biases
# in the base model, which LoRA does not add to, so they only matter for the
# total parameter count.
PRESETS: dict[str, dict[str, Any]] = {
    "SmolLM2-135M": dict(hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", hidden_size=576,
                         intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, head_dim=64, vocab_size=49152,
                         tie_word_embeddings=True, qkv_bias=False),
    "SmolLM2-360M": dict(hub_id="HuggingFaceTB/SmolLM2-360M-Instruct", hidden_size=960,
                         intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                         num_key_value_heads=5, head_dim=64, vocab_size=49152,
                         tie_word_embeddings=True, qkv_bias=False),
    "SmolLM2-1.7B": dict(hub_id="HuggingFaceTB/SmolLM2-1.7B-Instruct", hidden_size=2048,
                         intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                         num_key_value_heads=32, head_dim=64, vocab_size=49152,
                         tie_word_embeddings=True, qkv_bias=False),
    "Qwen2.5-0.5B": dict(hub_id="Qwen/Qwen2.5-0.5B-Instruct", hidden_size=896,
                         intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, head_dim=64, vocab_size=151936,
                         tie_word_embeddings=True, qkv_bias=True),
    "Qwen2.5-7B": dict(hub_id="Qwen/Qwen2.5-7B-Instruct", hidden_size=3584,
                       intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, head_dim=128, vocab_size=152064,
                       tie_word_embeddings=False, qkv_bias=True),
    "Llama-3.1-8B": dict(hub_id="meta-llama/Llama-3.1-8B-Instruct", hidden_size=4096,
                         intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=128256,
                         tie_word_embeddings=False, qkv_bias=False),
    "Mistral-7B": dict(hub_id="mistralai/Mistral-7B-Instruct-v0.3", hidden_size=4096,
                       intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, head_dim=128, vocab_size=32768,
                       tie_word_embeddings=False, qkv_bias=False),
}

# The run config's table (training/run/config.py TARGET_MODULE_CHOICES): "qv", "attention",
# "all-linear", each a list of Llama-style projection names. MODULES: every projection of a
# block, attention (q, k, v, o) then the gated MLP, in the order they sit in the block.
TARGET_SETS = {key: tuple(mods) for key, mods in config.TARGET_MODULE_CHOICES.items()}
MODULES = TARGET_SETS["all-linear"]
ATTENTION_MODULES = TARGET_SETS["attention"]
TASK_KINDS = ("style", "format", "domain", "preference", "general")

_ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size")


def resolve_arch(model: str | dict) -> tuple[str, dict]:
    """(display name, architecture dict) from a preset name, a Hub id, or a dims dict."""
    if isinstance(model, dict):
        missing = [k for k in _ARCH_KEYS if k not in model]
        if missing:
            raise ValueError(f"custom architecture is missing {', '.join(missing)}")
        arch = dict(model)
        for key in _ARCH_KEYS:
            if not isinstance(arch[key], int) or isinstance(arch[key], bool) or arch[key] < 1:
                raise ValueError(f"{key} must be a positive integer")
        arch.setdefault("head_dim", arch["hidden_size"] // arch["num_attention_heads"])
        arch.setdefault("tie_word_embeddings", False)
        arch.setdefault("qkv_bias", False)
        return str(arch.get("name", "custom")), arch
    if not isinstance(model, str):
        raise ValueError("model must be a preset name")
    wanted = model.strip().lower()
    for name, arch in PRESETS.items():
        # Accept the Hub id and the -Instruct spelling too: learners paste either.
        aliases = {name.lower(), arch["hub_id"].lower(), arch["hub_id"].split("/")[1].lower(),
                   arch["hub_id"].split("/")[1].lower().replace("-instruct", "")}
        if wanted in aliases:
            return name, dict(arch)
    raise ValueError(f"unknown model '{model[:80]}'; presets: {', '.join(PRESETS)}")


def module_shapes(arch: dict) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each projection in one decoder layer."""
    h, i, hd = arch["hidden_size"], arch["intermediate_size"], arch["head_dim"]
    q_out = arch["num_attention_heads"] * hd
    kv_out = arch["num_key_value_heads"] * hd  # grouped-query attention shrinks k/v
    return {"q_proj": (h, q_out), "k_proj": (h, kv_out), "v_proj": (h, kv_out),
            "o_proj": (q_out, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def base_param_count(arch: dict) -> int:
    """Parameters of the whole base model (embeddings, blocks, norms, lm_head)."""
    h = arch["hidden_size"]
    shapes = module_shapes(arch)
    per_layer = sum(a * b for a, b in shapes.values()) + 2 * h  # two RMSNorm weights
    if arch.get("qkv_bias"):
        per_layer += shapes["q_proj"][1] + shapes["k_proj"][1] + shapes["v_proj"][1]
    embed = arch["vocab_size"] * h
    lm_head = 0 if arch.get("tie_word_embeddings") else embed
    return embed + lm_head + per_layer * arch["num_hidden_layers"] + h  # + final norm


def _targets(target_modules: str | list | tuple) -> tuple[str, ...]:
    if isinstance(target_modules, str):
        key = target_modules.strip().lower()
        if key in TARGET_SETS:
            return TARGET_SETS[key]
        target_modules = [t.strip() for t in target_modules.split(",") if t.strip()]
    mods = []
    for mod in target_modules:
        if mod not in MODULES:
            raise ValueError(f"unknown target module '{str(mod)[:40]}'; use {', '.join(MODULES)} "
                             "or 'all-linear'")
        if mod not in mods:
            mods.append(mod)
    if not mods:
        raise ValueError("lora_target_modules is empty")
    return tuple(mods)


def _checked(name: str, raw: Any) -> Any:
    """A value checked against the run config's range for `name`, refused in the tab's words."""
    value, error = config.check_value(name, raw)
    if error:
        raise ValueError(error)
    return value


def count_lora_params(model: str | dict, lora_r: int, lora_target_modules: str | list | tuple) -> dict:
    """Exact LoRA trainable parameters: Σ_layers Σ_targets r·(in + out)."""
    name, arch = resolve_arch(model)
    r = _checked("lora_r", lora_r)
    targets = _targets(lora_target_modules)
    shapes = module_shapes(arch)
    layers = arch["num_hidden_layers"]
    per_module = [{"module": m, "in": shapes[m][0], "out": shapes[m][1],
                   "per_layer": r * (shapes[m][0] + shapes[m][1]),
                   "all_layers": r * (shapes[m][0] + shapes[m][1]) * layers} for m in targets]
    total = sum(row["all_layers"] for row in per_module)
    base = base_param_count(arch)
    return {
        "model": name, "lora_r": r, "lora_target_modules": list(targets), "layers": layers,
        "per_module": per_module, "per_layer": total // layers, "trainable_params": total,
        "base_params": base, "trainable_percent": round(100 * total / base, 4),
        "formula": "sum over layers and target modules of r * (in_features + out_features)",
        "adapter_size_mb_fp32": round(total * 4 / 1e6, 2),
    }


# ---------------------------------------------------------------- memory

GIB = 1024 ** 3
ACT_BYTES = 2  # activations are bf16 or fp16 under mixed precision
# NF4 with double quantisation (QLoRA; the generated code sets bnb_4bit_use_double_quant):
# 4 bits per weight, one 8-bit absmax per block of 64 weights, and one fp32 constant per
# 256 of those blocks: 4 + 8/64 + 32/(64 x 256) = 4.127 bits. Without double quantisation
# each block keeps an fp32 absmax: 4.5 bits.
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
# TRL 1.x scores the LM head with its fused head (trl/trainer/utils.py `add_fused_lm_head`,
# trl/kernels/chunked_logprob.py), for SFT and DPO alike: the (tokens, vocabulary) logits are
# never materialised. It projects tiles of up to 4,096 tokens x 32,768 vocabulary entries
# into one reused half-precision buffer (allocated at that full width) and folds each into
# running log-sum-exp statistics; backward recomputes each tile in place. On a GPU (Triton)
# only the tokens with a label are scored; the estimate counts every token (an upper bound).
LOGIT_TILE_TOKENS = 4096
LOGIT_TILE_VOCAB = 32768


def layer_saved_bytes(arch: dict, targets: tuple | list = MODULES, r: int = 8,
                      lora_dropout: float = 0.05, mask_bytes: int = 1) -> dict:
    """Bytes autograd keeps per token for one decoder layer in mixed precision
    (half-precision weights, fp32 LoRA weights under autocast, SDPA attention).

    Counted from what each op saves for backward, checked against
    ``torch.autograd.graph.saved_tensors_hooks`` in tests/test_lora_memory.py:
    each RMSNorm keeps an fp32 copy of its input; SDPA keeps q, k, v, its output
    and an fp32 log-sum-exp; the gated MLP keeps three i-wide tensors (gate,
    SiLU(gate), up). A frozen base projection keeps nothing (its input is only
    needed for its own weight's gradient), but every adapted module keeps its
    own half-precision copy of its input (PEFT casts
    the input to the fp32 adapter, autocast casts it back) and, when
    lora_dropout > 0, its own dropout mask (1 byte per element on GPU).
    """
    h, i = arch["hidden_size"], arch["intermediate_size"]
    shapes = module_shapes(arch)
    q_out, kv_out = shapes["q_proj"][1], shapes["k_proj"][1]
    heads = arch["num_attention_heads"]
    widths = [shapes[m][0] for m in targets]
    return {
        "norms_fp32": 2 * (4 * h + 4),
        "attention": ACT_BYTES * (2 * q_out + 2 * kv_out) + 4 * heads,
        "mlp": ACT_BYTES * 3 * i,
        "lora_inputs": sum(ACT_BYTES * (w + r) for w in widths),
        "dropout_masks": mask_bytes * sum(widths) if lora_dropout > 0 else 0,
    }


def logits_bytes(arch: dict, tokens: int, *, temp_bytes: int = 0) -> int:
    """Peak bytes of TRL's fused LM head for `tokens` scored tokens.

    Its tile buffer is allocated at full width, LOGIT_TILE_VOCAB columns for up
    to LOGIT_TILE_TOKENS tokens in half precision, whatever the vocabulary; the
    Triton kernel (GPU) folds each tile inside it. The CPU's torch fallback also
    keeps fp32 temporaries of each (tokens, vocabulary chunk) tile: `temp_bytes`
    per entry (0 on a GPU; the CPU test measures them). Per token, the hidden
    state gathered for the head (half precision) and its fp32 gradient. The
    materialised logits this replaces cost about 10 bytes per vocabulary entry
    per token (bf16 logits, their fp32 upcast and log-softmax, the gradient)."""
    rows = min(tokens, LOGIT_TILE_TOKENS)
    buffer = rows * LOGIT_TILE_VOCAB * ACT_BYTES
    temps = rows * min(arch["vocab_size"], LOGIT_TILE_VOCAB) * temp_bytes
    return buffer + temps + tokens * arch["hidden_size"] * (ACT_BYTES + 4)


def activation_bytes(arch: dict, *, tokens: int, targets: tuple | list = MODULES, r: int = 8,
                     lora_dropout: float = 0.05, activation_checkpointing: bool = True,
                     mask_bytes: int = 1, temp_bytes: int = 0) -> dict:
    """Peak activation and logits memory (bytes) of one forward + backward pass."""
    per_layer = sum(layer_saved_bytes(arch, targets, r, lora_dropout, mask_bytes).values()) * tokens
    layers = arch["num_hidden_layers"]
    if activation_checkpointing:
        # Each layer keeps only its input; backward recomputes one layer at a
        # time, so one layer's full set is live on top of the checkpoints.
        acts = layers * tokens * ACT_BYTES * arch["hidden_size"] + per_layer
    else:
        acts = layers * per_layer
    return {"activations": acts, "logits": logits_bytes(arch, tokens, temp_bytes=temp_bytes),
            "per_layer": per_layer}


def estimate_memory(arch: dict, lora_params: int, *, quantization: str, batch: int, seq: int,
                    activation_checkpointing: bool, method: str = "sft",
                    targets: tuple | list = MODULES, r: int = 8, lora_dropout: float = 0.05) -> dict:
    """Training-memory estimate in GiB, split by what uses it (for a GPU, with TRL 1.16).

    Weights: 2 bytes per parameter in bf16/fp16; NF4 with double quantisation
    (NF4_BITS, 4.127 bits) for everything but the embeddings and lm_head, which
    bitsandbytes leaves in 16-bit. LoRA: fp32 weights, gradients and AdamW's two
    moments (16 bytes per parameter) plus autocast's half-precision copy.
    Activations: `activation_bytes`. Logits: TRL's fused LM head (`logits_bytes`),
    a bounded tile rather than the full (tokens, vocabulary) tensor.
    """
    h, V = arch["hidden_size"], arch["vocab_size"]
    base = base_param_count(arch)
    embed = V * h * (1 if arch.get("tie_word_embeddings") else 2)
    if quantization == "4bit":
        weights = (base - embed) * NF4_BITS / 8 + embed * 2
    else:
        weights = base * 2  # bf16 / fp16
    lora_state = lora_params * 18
    # DPO runs chosen and rejected through the policy (and the reference
    # without grads): twice the tokens of SFT.
    tokens = batch * seq * (2 if method == "dpo" else 1)
    act = activation_bytes(arch, tokens=tokens, targets=targets, r=r, lora_dropout=lora_dropout,
                           activation_checkpointing=activation_checkpointing)
    overhead = 1.0 * GIB  # CUDA context, allocator fragmentation
    parts = {"weights": weights, "lora_and_optimizer": lora_state,
             "activations": act["activations"], "logits": act["logits"], "overhead": overhead}
    out = {k: round(v / GIB, 2) for k, v in parts.items()}
    out["total"] = round(sum(parts.values()) / GIB, 2)
    return out


# ---------------------------------------------------------- recommendation

def _rank_for(task_kind: str, dataset_size: int) -> int:
    r = {"style": 8, "format": 16, "domain": 32, "preference": 16, "general": 16}[task_kind]
    if dataset_size < 500:
        r = min(r, 8)  # little data cannot use much capacity; small r overfits less
    elif dataset_size >= 50_000 and task_kind == "domain":
        r = 64
    return r


def _effective_batch(dataset_size: int) -> int:
    if dataset_size < 200:
        return 8
    if dataset_size < 2_000:
        return 16
    if dataset_size < 50_000:
        return 32
    return 64


def _epochs(dataset_size: int, method: str) -> int:
    if method == "dpo":
        return 1 if dataset_size >= 5_000 else 2
    if dataset_size < 1_000:
        return 3
    if dataset_size < 10_000:
        return 2
    return 1


HEADROOM = 0.9  # use at most 90% of the GPU: allocator spikes and fragmentation
# Activation checkpointing is switched off only when the run without it still
# leaves this share of the GPU free: the estimate's stated error bound.
CKPT_OFF_MARGIN = 0.25
# GPUs before Ampere have no bf16 arithmetic; training there uses fp16.
NO_BF16_GPUS = ("t4", "v100", "p100", "p40", "k80", "rtx 20", "titan v", "titan rtx", "quadro rtx")
# The run config's settings Lab 3 recommends (by the config's own names); the rest of a
# recommendation (model, memory, quantization, precision) is Lab 3's, not the run's.
RUN_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate",
                "lr_scheduler_type", "warmup_ratio", "num_train_epochs", "per_device_train_batch_size",
                "gradient_accumulation_steps", "max_length", "eval_steps", "seed")


def _precision(gpu_name: str) -> str:
    low = " ".join(str(gpu_name).lower().split())
    return "fp16" if low and any(g in low for g in NO_BF16_GPUS) else "bf16"


def _estimate(arch, lora_params, targets, r, seq, method, quant, batch, ckpt) -> dict:
    return estimate_memory(arch, lora_params, quantization=quant, batch=batch, seq=seq,
                           activation_checkpointing=ckpt, method=method, targets=targets, r=r,
                           lora_dropout=config.DEFAULTS["lora_dropout"])


def _memory_plan(arch, lora_params, targets, r, seq, method, effective, gib, quantization):
    """(quantization, per-device batch, checkpointing, memory) or None if nothing fits.

    Prefers 16-bit weights, then the largest batch; checkpointing stays on
    unless the run without it leaves CKPT_OFF_MARGIN of the GPU free."""
    quants = ["none", "4bit"] if quantization == "auto" else [quantization]
    batches = [b for b in (16, 8, 4, 2, 1) if b <= effective] or [1]
    for quant in quants:
        for batch in batches:
            off = _estimate(arch, lora_params, targets, r, seq, method, quant, batch, False)
            if off["total"] <= gib * (1 - CKPT_OFF_MARGIN):
                return quant, batch, False, off
            on = _estimate(arch, lora_params, targets, r, seq, method, quant, batch, True)
            if on["total"] <= gib * HEADROOM:
                return quant, batch, True, on
    return None


def _learning_rate(method: str, rank: int, arch: dict) -> tuple[float, str]:
    """(rate, reason), from the run config's defaults: one DPO rate, the SFT rate halved for big runs."""
    if method == "dpo":
        lr = config.DPO_DEFAULTS["learning_rate"]
        return lr, (f"learning_rate={lr:g}: the Training tab's DPO rate (training/run/config.py DPO_DEFAULTS), "
                    "far below LoRA SFT's; measured on the built-in preference set (docs/benchmarks.md). "
                    f"beta={config.DPO_DEFAULTS['beta']:g} limits drift from the reference.")
    lr = config.DEFAULTS["learning_rate"]
    if rank >= 64 or base_param_count(arch) > 5e9:
        lr /= 2
        return lr, (f"learning_rate={lr:g}: half the LoRA default of {lr * 2:g}, for a large rank or a model "
                    "above 5B parameters; full fine-tuning would use 1e-5 to 5e-5.")
    return lr, (f"learning_rate={lr:g}: LoRA usually trains at 1e-4 to 2e-4 (QLoRA's 7B script used 2e-4); "
                "full fine-tuning would use 1e-5 to 5e-5.")


def recommend_lora_config(model: str | dict, dataset_size: int, task_kind: str,
                          gpu_memory_gb: float, max_length: int = config.DEFAULTS["max_length"],
                          quantization: str = "auto", lora_target_modules: str = "auto",
                          lora_r: int | None = None, method: str = "sft", gpu_name: str = "") -> dict:
    """A complete LoRA/QLoRA recipe for a preset, with reasons and a fit check.

    The run settings in the result carry the run config's names and pass its
    checks unchanged (`training.run.config.validate`): ranges, defaults, the
    target-module table and the DPO rate are the config's. ``gpu_name``
    (optional, e.g. "T4") switches the config to fp16 on GPUs without bf16."""
    name, arch = resolve_arch(model)
    if task_kind not in TASK_KINDS:
        raise ValueError(f"task_kind must be one of {', '.join(TASK_KINDS)}")
    if method not in config.METHODS:
        raise ValueError("method must be 'sft' or 'dpo'")
    if task_kind == "preference":
        method = "dpo"
    if dataset_size < 1 or gpu_memory_gb <= 0:
        raise ValueError("dataset_size and gpu_memory_gb must be positive")
    seq = _checked("max_length", max_length)
    reasons: list[str] = []
    warnings: list[str] = []

    rank = _checked("lora_r", lora_r) if lora_r else _rank_for(task_kind, dataset_size)
    reasons.append(f"lora_r={rank}: " + ("as requested." if lora_r else
                   f"{task_kind} tasks with {dataset_size:,} examples; more data and more new "
                   "knowledge justify a larger rank, little data overfits a large one."))
    alpha = 2 * rank
    reasons.append(f"lora_alpha={alpha}: the update is scaled by alpha/r = 2 (alpha = 2r is a "
                   "convention; PEFT's defaults are r=8, alpha=8). Under alpha = 2r the best "
                   "learning rate tends to fall as r grows; with alpha fixed it was found roughly "
                   "independent of r (LoRA Without Regret, 2025). Either way, re-check the rate "
                   "with a short sweep when you change r.")

    if lora_target_modules == "auto":
        if task_kind == "style" and dataset_size < 1_000:
            target_key = "attention"
            reasons.append("targets q,k,v,o: a trade for speed and a small adapter on a light "
                           "style task with little data. Attention-only adapters learned less than "
                           "all-layer ones even at equal parameter count (LoRA Without Regret, "
                           "2025): choose all-linear if the style does not take.")
        else:
            target_key = "all-linear"
            reasons.append("targets all linear layers: the QLoRA paper found adapting every "
                           "linear layer is what matches full fine-tuning quality.")
    else:
        target_key = _checked("lora_target_modules", lora_target_modules)
        reasons.append(f"targets '{target_key}' as requested.")
    targets = TARGET_SETS[target_key]
    counted = count_lora_params(arch, rank, list(targets))

    lr, why = _learning_rate(method, rank, arch)
    reasons.append(why)
    epochs = _epochs(dataset_size, method)
    reasons.append(f"{epochs} epoch(s): with {dataset_size:,} examples; watch eval loss and keep "
                   "the best checkpoint rather than trusting the epoch count.")

    effective = min(_effective_batch(dataset_size), max(1, dataset_size))
    gib = float(gpu_memory_gb)
    plan = _memory_plan(arch, counted["trainable_params"], targets, rank, seq, method,
                        effective, gib, quantization)
    if plan is None:
        quant = "4bit" if quantization in ("auto", "4bit") else quantization
        mem = _estimate(arch, counted["trainable_params"], targets, rank, seq, method, quant, 1, True)
        plan = (quant, 1, True, mem)
        warnings.append(
            f"Does not fit: even with batch 1, activation checkpointing and "
            f"{'4-bit weights' if quant == '4bit' else '16-bit weights'} it needs about "
            f"{mem['total']} GiB of {gib:g} GB. Lower max_length, use 4-bit, "
            "pick a smaller model or a bigger GPU.")
    quant, batch, ckpt, mem = plan
    accumulation = max(1, effective // batch)
    effective = batch * accumulation
    if quant == "4bit":
        reasons.append("4-bit (QLoRA) base weights: bf16 weights would not leave room to train."
                       if quantization == "auto" else "4-bit (QLoRA) base weights as requested.")
    if ckpt:
        reasons.append("activation checkpointing on: about 30% more compute for far "
                       "less activation memory. It stays on unless the run without it still "
                       f"leaves {int(CKPT_OFF_MARGIN * 100)}% of the GPU free, because the "
                       "estimate can be off by about that much.")
    else:
        reasons.append("activation checkpointing off: even without it the estimate leaves "
                       f"more than {int(CKPT_OFF_MARGIN * 100)}% of the GPU free, so the "
                       "recomputation is not worth paying for.")
    precision = _precision(gpu_name)
    if precision == "fp16":
        reasons.append(f"fp16 mixed precision: {gpu_name.strip()} has no bf16 support, so the "
                       "config uses fp16 (with loss scaling) instead.")
    reasons.append(f"per-device batch {batch} x accumulation {accumulation} = effective batch "
                   f"{effective} (x number of GPUs if you use more than one).")
    reasons.append("loss on the answers only: the code turns each `messages` row into prompt and "
                   "completion (the last assistant turn), as the Training tab trains.")
    steps_per_epoch = math.ceil(dataset_size / effective)
    total_steps = steps_per_epoch * epochs
    if total_steps < 30:
        warnings.append(f"Only {total_steps} optimizer steps in total: consider a smaller "
                        "effective batch or more data.")
    if dataset_size < 50:
        warnings.append("Fewer than 50 examples: few-shot prompting may match a fine-tune; "
                        "collect more data first.")
    eval_every = max(1, total_steps // 10)

    settings = {**config.DEFAULTS, "lora_r": rank, "lora_alpha": alpha, "lora_target_modules": target_key,
                "learning_rate": lr, "num_train_epochs": epochs, "per_device_train_batch_size": batch,
                "gradient_accumulation_steps": accumulation, "max_length": seq, "eval_steps": eval_every}
    result = {
        "model": name, "hub_id": arch.get("hub_id", ""), "method": method,
        "architecture": {k: arch[k] for k in (*_ARCH_KEYS, "head_dim", "tie_word_embeddings")},
        **{k: settings[k] for k in RUN_SETTINGS},
        **({"beta": config.DPO_DEFAULTS["beta"]} if method == "dpo" else {}),
        "adapted_modules": list(targets),
        "effective_batch_size": effective,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "quantization": quant, "activation_checkpointing": ckpt,
        "trainable_params": counted["trainable_params"], "base_params": counted["base_params"],
        "trainable_percent": counted["trainable_percent"], "param_breakdown": counted["per_module"],
        "memory_gib": mem, "gpu_memory_gb": gib, "fits": mem["total"] <= gib * HEADROOM,
        "precision": precision, "gpu_name": gpu_name.strip(),
        "reasons": reasons, "warnings": warnings,
        "notes": ["Memory is an estimate: the activation model matches measured "
                  "saved-for-backward tensors within 25% on small Llama-shaped models; real use "
                  "also depends on kernels, padding and the attention implementation.",
                  "LoRA reduces forgetting but does not prevent it: keep a regression eval."],
    }
    result["code"] = config_code(result)
    return result


def run_values(rec: dict) -> dict:
    """The recommendation's run settings, by the run config's names (what `config.validate` takes)."""
    return {k: rec[k] for k in config.HP_NAMES if k in rec}


def _py(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (str, list)) else repr(value)


def _kwargs(d: dict, indent: str = "    ", notes: dict | None = None) -> list[str]:
    notes = notes or {}
    return [f"{indent}{k}={_py(v)},{'  # ' + notes[k] if k in notes else ''}" for k, v in d.items()]


# What the generated code says next to a setting (the value comes from config.trl_args).
_CODE_NOTES = {
    "warmup_steps": "a float below 1 is a fraction of the total steps",
    "activation_checkpointing": "transformers 5's name; gradient_checkpointing is its deprecated alias",
    "beta": "how far the policy may drift from the reference",
    "lora_target_modules": "the run config's table for this key",
}


def config_code(rec: dict) -> str:
    """Ready-to-run Python for trl 1.16 + peft 0.21 from a recommendation.

    The training and LoRA arguments are `training.run.config.trl_args` of the
    recommendation's run config, the mapping the Training tab's engine and its
    recipe export use, so the script trains with the same names, the same
    checkpointing flag and, for `messages` rows, the same loss masking: each row
    becomes a prompt/completion pair split where the app splits it
    (`training.data.checks.prompt_completion_row`), and TRL's completion-only loss
    then trains the assistant's answer only. Added here is only what a script
    needs: where the data is, precision, saving the best checkpoint, quantization."""
    dpo = rec["method"] == "dpo"
    cfg, errors = config.validate(run_values(rec), rec["method"])
    if errors:  # the recommendation is built to pass; a hand-edited one may not
        raise ValueError(" ".join(errors))
    train, model = config.trl_args(cfg, total_steps=rec["total_steps"], has_eval=True,
                                   activation_checkpointing=rec["activation_checkpointing"])
    # A script trains num_train_epochs over whatever train.jsonl holds, not a step count
    # worked out from the dataset size Lab 3 was told.
    train["max_steps"] = -1
    train["logging_steps"] = 10
    half = "float16" if rec.get("precision") == "fp16" else "bfloat16"
    train.update({rec.get("precision", "bf16"): True,
                  "save_strategy": "steps", "save_steps": cfg.eval_steps, "load_best_model_at_end": True,
                  "metric_for_best_model": "eval_loss", "greater_is_better": False})
    cfg_cls, trainer_cls = ("DPOConfig", "DPOTrainer") if dpo else ("SFTConfig", "SFTTrainer")
    q4 = rec["quantization"] == "4bit"
    model_args = {**model}
    if q4:
        model_args.update(dtype=half, load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    lines = ["from datasets import load_dataset",
             f"from trl import {cfg_cls}, ModelConfig, {trainer_cls}, get_peft_config"
             + (", get_quantization_config" if q4 else ""),
             "",
             "# LoRA and (with 4-bit) quantization through TRL's ModelConfig, as `trl sft|dpo --config` and",
             "# the Fine-Tuning Lab run build them.",
             "model_args = ModelConfig(", *_kwargs(model_args, notes=_CODE_NOTES), ")",
             "peft_config = get_peft_config(model_args)", "",
             f"args = {cfg_cls}(", '    output_dir="lora-out",',
             *_kwargs(train, notes={**_CODE_NOTES, "max_steps": "-1: train num_train_epochs over train.jsonl",
                                    "load_best_model_at_end": "restores the lowest eval loss checkpoint"}),
             f'    model_init_kwargs={{"dtype": "{half}"}},  # 16-bit base weights (TRL loads fp32 otherwise)',
             ")"]
    if dpo:
        lines += ["", '# train.jsonl / eval.jsonl: {"prompt", "chosen", "rejected"} per line',
                  'data = load_dataset("json", data_files={"train": "train.jsonl", "eval": "eval.jsonl"})']
    else:
        lines += ["", '# train.jsonl / eval.jsonl: {"messages": [...]} per line, the last one the assistant\'s answer.',
                  "# Train on that answer only (the app's masking): the conversation before it is the prompt,",
                  "# and TRL's completion-only loss leaves the prompt's tokens out of the loss.",
                  "def to_prompt_completion(row):",
                  '    *prompt, answer = row["messages"]',
                  '    return {"prompt": prompt, "completion": [answer]}',
                  "",
                  'data = load_dataset("json", data_files={"train": "train.jsonl", "eval": "eval.jsonl"})',
                  'data = data.map(to_prompt_completion, remove_columns=["messages"])']
    lines += [f"trainer = {trainer_cls}(", f"    model={rec['hub_id'] or rec['model']!r},", "    args=args,",
              '    train_dataset=data["train"],', '    eval_dataset=data["eval"],', "    peft_config=peft_config,"]
    if q4:
        lines.append("    quantization_config=get_quantization_config(model_args),  # NF4, double quantisation")
    lines += [")", "trainer.train()", 'trainer.save_model("lora-out/adapter")']
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------- markdown

def _fmt_int(n: int) -> str:
    return f"{n:,}"


def count_markdown(result: dict) -> str:
    rows = "\n".join(f"| `{m['module']}` | {m['in']:,} | {m['out']:,} | {m['per_layer']:,} | "
                     f"{m['all_layers']:,} |" for m in result["per_module"])
    return (f"### LoRA parameters: {result['model']}, r = {result['lora_r']}\n\n"
            f"| module | in | out | per layer r·(in+out) | x {result['layers']} layers |\n"
            f"|---|---:|---:|---:|---:|\n{rows}\n\n"
            f"**Trainable: {_fmt_int(result['trainable_params'])}** of "
            f"{_fmt_int(result['base_params'])} base parameters "
            f"({result['trainable_percent']}%); adapter ≈ {result['adapter_size_mb_fp32']} MB "
            "in fp32.\n")


def lora_markdown(rec: dict) -> str:
    mem = rec["memory_gib"]
    fit = "✅ fits" if rec["fits"] else "❌ does not fit"
    out = [
        f"### LoRA recipe: {rec['model']} ({rec['method'].upper()})",
        "",
        "| setting | value |", "|---|---|",
        f"| lora_r / lora_alpha | {rec['lora_r']} / {rec['lora_alpha']} (scale alpha/r = "
        f"{rec['lora_alpha'] / rec['lora_r']:g}) |",
        f"| lora_target_modules | {rec['lora_target_modules']}: {', '.join(rec['adapted_modules'])} |",
        f"| learning_rate | {rec['learning_rate']:g}"
        + (f" (beta {rec['beta']:g})" if "beta" in rec else "") + " |",
        f"| num_train_epochs | {rec['num_train_epochs']} ({rec['total_steps']:,} optimizer steps) |",
        f"| per_device_train_batch_size x gradient_accumulation_steps | {rec['per_device_train_batch_size']} x "
        f"{rec['gradient_accumulation_steps']} = **{rec['effective_batch_size']} effective** |",
        f"| max_length | {rec['max_length']:,} tokens |",
        f"| base weights | {'4-bit NF4 (QLoRA)' if rec['quantization'] == '4bit' else rec['precision']} |",
        f"| mixed precision | {rec['precision']} |",
        f"| activation checkpointing | {'on' if rec['activation_checkpointing'] else 'off'} |",
        f"| trainable parameters | **{rec['trainable_params']:,}** ({rec['trainable_percent']}% of "
        f"{rec['base_params']:,}) |",
        "",
        f"**Memory estimate: {mem['total']} GiB on a {rec['gpu_memory_gb']:g} GB GPU: {fit}**",
        "",
        "| weights | LoRA + optimizer | activations | logits | overhead |",
        "|---:|---:|---:|---:|---:|",
        f"| {mem['weights']} | {mem['lora_and_optimizer']} | {mem['activations']} | "
        f"{mem['logits']} | {mem['overhead']} |",
        "",
        "**Why**",
        *[f"- {r}" for r in rec["reasons"]],
    ]
    if rec["warnings"]:
        out += ["", "**Warnings**", *[f"- ⚠️ {w}" for w in rec["warnings"]]]
    out += ["", *[f"_{n}_" for n in rec["notes"]], "", "```python", rec["code"].rstrip(), "```"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------ tool spec

def _field(name: str, desc: str) -> dict:
    """A JSON-schema number for a run-config field: its range and description from the config's table."""
    meta = config.SPEC[name]
    return num(meta["lo"], config.range_hi(name), f"{desc} {meta['help']} Allowed: {config.range_text(name)}.",
               meta["whole"])


TARGET_KEYS = list(config.TARGET_MODULE_CHOICES)

SPECS = (
    ToolSpec(
        name="recommend_lora_config",
        description="Recommend a LoRA/QLoRA setup for a base model preset, in the Training tab's run-config names: "
            "lora_r, lora_alpha, learning_rate, num_train_epochs, per_device_train_batch_size and "
            "gradient_accumulation_steps (effective batch), lora_target_modules, the exact number of "
            "trainable parameters for that architecture, a GPU memory estimate and whether it fits, "
            "and ready-to-run Python for trl SFTConfig/DPOConfig with the same loss masking as the Training tab.",
        input_schema={
            "type": "object",
            "properties": {
                "model": enum(list(PRESETS), "Base model preset."),
                "dataset_size": num(1, 1e9, "Number of training examples.", True),
                "task_kind": enum(list(TASK_KINDS), "What the fine-tune teaches."),
                "gpu_memory_gb": num(1, 2000, "Memory of the training GPU in GB."),
                "max_length": _field("max_length", f"Default {config.DEFAULTS['max_length']}."),
                "quantization": enum(["auto", "none", "4bit"], "auto picks 4-bit (QLoRA) only when bf16 weights would not fit."),
                "lora_target_modules": enum(["auto", *TARGET_KEYS],
                                            "qv = q_proj+v_proj (LoRA paper / PEFT default), attention = q,k,v,o, "
                                            "all-linear = attention + MLP; auto picks one."),
                "lora_r": _field("lora_r", "Force a LoRA rank instead of the recommended one."),
                "method": enum(list(config.METHODS), "Training method. Default sft."),
                "gpu_name": {"type": "string", "maxLength": 60,
                             "description": "Optional GPU name (e.g. T4, V100, A100): GPUs without "
                                            "bf16 get an fp16 config."},
            },
            "required": ["model", "dataset_size", "task_kind", "gpu_memory_gb"],
            "additionalProperties": False,
        },
        fn=recommend_lora_config,
        markdown=lora_markdown,
    ),
    ToolSpec(
        name="count_lora_params",
        description="Exact number of trainable LoRA parameters for a model preset, rank lora_r and "
            "lora_target_modules: sum over layers of lora_r*(in_features+out_features) per adapted projection.",
        input_schema={
            "type": "object",
            "properties": {
                "model": enum(list(PRESETS), "Base model preset."),
                "lora_r": _field("lora_r", "LoRA rank."),
                "lora_target_modules": {
                    "anyOf": [
                        {"type": "string", "enum": TARGET_KEYS},
                        {"type": "array", "minItems": 1,
                         "items": {"type": "string", "enum": list(MODULES)}},
                    ],
                    "description": f"{', '.join(repr(k) for k in TARGET_KEYS)}, or a list of module names "
                                   f"({', '.join(MODULES)}).",
                },
            },
            "required": ["model", "lora_r", "lora_target_modules"],
            "additionalProperties": False,
        },
        fn=count_lora_params,
        markdown=count_markdown,
    ),
)
