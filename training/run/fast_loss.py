"""A cheaper SFT training step on CPU: score only the answer tokens.

TRL 1.16's SFTTrainer already fuses the LM head, but on a device without Triton (any CPU)
it projects *every* position through the 49k-word head (fixed tile shapes, for compilers)
and also computes per-position entropy and top-1 for its logged metrics. In eager mode on a
CPU fixed shapes buy nothing, and the prompt positions carry label -100: their logits are
computed and thrown away. Here the backbone's hidden states are gathered at the supervised
positions first, and only those go through the head and the cross-entropy. The loss is the
same sum over supervised tokens divided by the same count TRL uses, so training follows
the same path (bench/train.py compares eval loss with plain TRL).

(The optimiser needs nothing: transformers 5 already defaults to torch's fused AdamW on CPU.)

Only the training forward is replaced; evaluation, DPO and GPU runs keep TRL's own path.
"""
from __future__ import annotations

from typing import Any


_SCALED_HEAD = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                "logits_scaling")


def install(trainer) -> bool:
    """Swap in the supervised-positions loss on a single-process CPU SFT trainer.

    Returns whether it did (False leaves the trainer exactly as TRL built it)."""
    if trainer.args.device.type != "cpu" or trainer.accelerator.num_processes != 1:
        return False
    if trainer.compute_loss_func is not None or trainer.label_smoother is not None \
            or getattr(trainer.args, "loss_type", "nll") != "nll" or getattr(trainer, "aux_loss_enabled", False):
        return False
    cfg = _causal_lm(trainer.model).config.get_text_config()
    if any(getattr(cfg, k, None) not in (None, 1.0) for k in _SCALED_HEAD):
        return False  # heads that scale or cap logits: TRL's kernel knows how, this path does not
    original = trainer.compute_loss

    def compute_loss(model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or not model.training or "labels" not in inputs or "attention_mask" not in inputs:
            return original(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        trainer._total_train_tokens += int(inputs["attention_mask"].sum())
        trainer._metrics["train"]["num_tokens"] = [trainer._total_train_tokens]
        return supervised_loss(model, inputs, num_items_in_batch)

    trainer.compute_loss = compute_loss
    return True


def _causal_lm(model):
    """The transformers CausalLM under the PEFT wrapper (LoRA layers are injected in place)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supervised_loss(model, inputs: dict[str, Any], num_items_in_batch=None):
    """Mean next-token cross-entropy over positions whose label is not -100 (TRL's normalisation)."""
    import torch
    import torch.nn.functional as F

    lm = _causal_lm(model)
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    kwargs["use_cache"] = False
    hidden = lm.base_model(**kwargs).last_hidden_state[:, :-1]
    labels = inputs["labels"][:, 1:]
    mask = labels != -100
    head = lm.get_output_embeddings()
    logits = F.linear(hidden[mask], head.weight, head.bias)
    total = F.cross_entropy(logits.float(), labels[mask], reduction="sum")
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return total / torch.as_tensor(count, device=total.device)
