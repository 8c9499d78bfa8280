"""Checks that run before any training time is spent.

* Hyperparameters: every field range-checked, each refusal names the field and the fix.
* Data: the base model's chat template is applied exactly as training will apply
  it, then we count examples with nothing to learn from (no completion tokens
  left, e.g. cut off by `max_length`), build a token-length histogram, and show
  for one example which tokens carry loss.

Completion-only loss, for any chat template: each example becomes a prompt and
a completion where
    prompt     = template(prompt messages, add_generation_prompt=True)
    completion = template(prompt + answer)[len(prompt):]   (answer + end-of-turn tokens)
so the model learns the answer and when to stop, and never the question. The
same `encode_sft` is used by the engine, so what the check shows is what trains.
This avoids `assistant_only_loss`, which silently trains on nothing with
templates that lack `{% generation %}` markers (TRL issue 4147), SmolLM2's among them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.config import env_int

# ------------------------------------------------------------------ hyperparameters

# Llama/Qwen linear layer names: <x>_proj for the attention (q, k, v, o) and MLP (gate, up, down).
_ATTENTION = [f"{x}_proj" for x in ("q", "k", "v", "o")]
_MLP = [f"{x}_proj" for x in ("gate", "up", "down")]
TARGET_MODULE_CHOICES = {
    "qv": [_ATTENTION[0], _ATTENTION[2]],
    "attention": list(_ATTENTION),
    "all-linear": _ATTENTION + _MLP,
}
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
METHODS = ("sft", "dpo")

DEFAULT_HPARAMS: dict[str, Any] = {
    "r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "attention",
    "learning_rate": 2e-4, "scheduler": "cosine", "warmup_ratio": 0.05,
    "epochs": 1.0, "max_steps": 0,  # 0 = from epochs
    "batch_size": 4, "grad_accum": 2, "max_length": 512,
    "eval_steps": 20, "early_stopping_patience": 3, "seed": 42, "beta": 0.1,
}

# The three presets of the Lab 3 (LoRA) lesson: small and fast, the balanced
# default, and a higher-capacity one for harder formats.
PRESETS: dict[str, dict[str, Any]] = {
    "Light: r=8 on q,v": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "qv",
                          "learning_rate": 3e-4},
    "Balanced: r=16 on attention": {"r": 16, "alpha": 32, "dropout": 0.05,
                                    "target_modules": "attention", "learning_rate": 2e-4},
    "Capacity: r=32 on all linear layers": {"r": 32, "alpha": 64, "dropout": 0.1,
                                            "target_modules": "all-linear", "learning_rate": 1e-4},
}
DPO_DEFAULT_LR = 5e-5

# On a CPU (running locally without a GPU) a full epoch of a built-in set takes
# 10+ minutes, so the defaults there are a short run that still shows the loss
# falling and the output format being learned: ~3 minutes on 2 cores.
# Per-device batch 1 x accumulation 4 (not 2 x 2): the same effective batch with no
# padding and half the stored activations; bench/train.py measured peak RSS 3.19 GB ->
# 2.11 GB and 57 -> 60 supervised tokens/s at the same eval loss (docs/benchmarks.md).
CPU_OVERRIDES: dict[str, Any] = {"batch_size": 1, "grad_accum": 4, "max_steps": 16, "eval_steps": 8,
                                 "learning_rate": 1e-3, "warmup_ratio": 0.1}


def default_hparams(device: str = "cuda") -> dict[str, Any]:
    h = dict(DEFAULT_HPARAMS)
    if not device.startswith("cuda"):
        h.update(CPU_OVERRIDES)
    return h


def max_steps_cap() -> int:
    return env_int("FTLAB_MAX_STEPS", 300)


def max_length_cap() -> int:
    return env_int("FTLAB_MAX_LENGTH", 1024)


MIN_MAX_LENGTH = 32


def _num(h: dict, key: str, kind: type, errors: list[str], label: str) -> Any:
    raw = h.get(key, DEFAULT_HPARAMS.get(key))
    try:
        if isinstance(raw, str):
            raw = raw.strip()
        value = kind(float(raw)) if kind is int else float(raw)
        if kind is int and float(raw) != int(float(raw)):
            raise ValueError
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError
    except (TypeError, ValueError):
        errors.append(f"**{label}** must be a {'whole ' if kind is int else ''}number (got {raw!r}).")
        return DEFAULT_HPARAMS.get(key)
    return value


def validate_hparams(h: dict | None, method: str = "sft") -> tuple[dict, list[str]]:
    """Returns (clean hyperparameters, error messages). Empty errors = OK to train."""
    h = dict(h or {})
    errors: list[str] = []
    out: dict[str, Any] = {}
    if method not in METHODS:
        errors.append(f"**Method** must be SFT or DPO (got {method!r}).")
    out["r"] = _num(h, "r", int, errors, "LoRA rank r")
    out["alpha"] = _num(h, "alpha", float, errors, "LoRA alpha")
    out["dropout"] = _num(h, "dropout", float, errors, "LoRA dropout")
    out["learning_rate"] = _num(h, "learning_rate", float, errors, "Learning rate")
    out["warmup_ratio"] = _num(h, "warmup_ratio", float, errors, "Warmup ratio")
    out["epochs"] = _num(h, "epochs", float, errors, "Epochs")
    out["max_steps"] = _num(h, "max_steps", int, errors, "Max steps")
    out["batch_size"] = _num(h, "batch_size", int, errors, "Batch size")
    out["grad_accum"] = _num(h, "grad_accum", int, errors, "Gradient accumulation")
    out["max_length"] = _num(h, "max_length", int, errors, "Max length")
    out["eval_steps"] = _num(h, "eval_steps", int, errors, "Evaluate every N steps")
    out["early_stopping_patience"] = _num(h, "early_stopping_patience", int, errors, "Early-stopping patience")
    out["seed"] = _num(h, "seed", int, errors, "Seed")
    out["beta"] = _num(h, "beta", float, errors, "DPO beta")
    tm = h.get("target_modules", DEFAULT_HPARAMS["target_modules"])
    out["target_modules"] = tm if tm in TARGET_MODULE_CHOICES else "attention"
    if tm not in TARGET_MODULE_CHOICES:
        errors.append(f"**Target modules** must be one of {', '.join(TARGET_MODULE_CHOICES)}.")
    sch = h.get("scheduler", DEFAULT_HPARAMS["scheduler"])
    out["scheduler"] = sch if sch in SCHEDULERS else "cosine"
    if sch not in SCHEDULERS:
        errors.append(f"**Scheduler** must be one of {', '.join(SCHEDULERS)}.")
    if errors:  # type errors first: range checks on defaults would only confuse
        return out, errors

    if out["learning_rate"] <= 0:
        errors.append("**Learning rate** must be above 0: try 2e-4 for SFT with LoRA, 5e-5 for DPO.")
    elif out["learning_rate"] > 1e-2:
        errors.append("**Learning rate** above 0.01 makes LoRA training diverge: use 1e-4 to 5e-4.")
    if out["r"] < 1:
        errors.append("**LoRA rank r** must be at least 1: 8 or 16 is a good start.")
    elif out["r"] > 256:
        errors.append("**LoRA rank r** above 256 is not allowed here: use 8 to 64.")
    if out["alpha"] <= 0:
        errors.append("**LoRA alpha** must be above 0: a common choice is 2 × r.")
    if not 0 <= out["dropout"] < 1:
        errors.append("**LoRA dropout** must be between 0 and 1 (0.05 is typical).")
    if not 0 <= out["warmup_ratio"] <= 0.5:
        errors.append("**Warmup ratio** must be between 0 and 0.5 (0.03 to 0.1 is typical).")
    if out["batch_size"] < 1:
        errors.append("**Batch size** must be at least 1.")
    elif out["batch_size"] > 64:
        errors.append("**Batch size** above 64 will not fit: use gradient accumulation instead.")
    if out["grad_accum"] < 1:
        errors.append("**Gradient accumulation** must be at least 1 (1 = no accumulation).")
    elif out["grad_accum"] > 64:
        errors.append("**Gradient accumulation** above 64 is not allowed here.")
    if out["epochs"] <= 0 and out["max_steps"] <= 0:
        errors.append("**Epochs** must be above 0 (or set **Max steps**).")
    elif out["epochs"] > 20:
        errors.append("**Epochs** above 20 will overfit a small set: use 1 to 5.")
    if out["max_steps"] < 0:
        errors.append("**Max steps** can't be negative (0 means: use epochs).")
    elif out["max_steps"] > max_steps_cap():
        errors.append(f"**Max steps** is capped at {max_steps_cap()} on this app: lower it, "
                      "or export the recipe to train longer on your own hardware.")
    if out["max_length"] < MIN_MAX_LENGTH:
        errors.append(f"**Max length** must be at least {MIN_MAX_LENGTH} tokens.")
    elif out["max_length"] > max_length_cap():
        errors.append(f"**Max length** is capped at {max_length_cap()} tokens here: lower it.")
    if out["eval_steps"] < 1:
        errors.append("**Evaluate every N steps** must be at least 1.")
    if out["early_stopping_patience"] < 0:
        errors.append("**Early-stopping patience** can't be negative (0 turns it off).")
    if not 0 <= out["seed"] < 2**31:
        errors.append("**Seed** must be between 0 and 2147483647.")
    if method == "dpo" and not 0 < out["beta"] <= 2:
        errors.append("**DPO beta** must be above 0 and at most 2 (0.1 is typical).")
    return out, errors


def effective_batch(h: dict) -> int:
    return int(h.get("batch_size", 1)) * int(h.get("grad_accum", 1))


def total_steps(h: dict, n_train: int) -> int:
    """Optimizer steps for a run: from epochs unless max_steps is set, capped."""
    per_epoch = max(1, math.ceil(n_train / max(1, effective_batch(h))))
    steps = int(h["max_steps"]) if int(h.get("max_steps") or 0) > 0 else math.ceil(per_epoch * float(h["epochs"]))
    return max(1, min(steps, max_steps_cap()))


# ------------------------------------------------------------------ templating

def _text(content: Any) -> str:
    # Gradio / OpenAI-style content may be a list of blocks.
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


def _norm_messages(messages: Any) -> list[dict]:
    return [{"role": m.get("role"), "content": _text(m.get("content"))}
            for m in (messages or []) if isinstance(m, dict)]


def completion_pairs(row: dict) -> tuple[list[dict], str]:
    """(prompt messages, completion text) for an SFT row; uses training.data's when present."""
    try:
        from training.data import completion_pairs as data_pairs
        prompt, completion = data_pairs(row)
        return _norm_messages(prompt), _text(completion)
    except ImportError:
        pass
    except ValueError:
        # DataError (e.g. no final assistant turn): handled below as an example
        # with nothing to train on, which the check counts and reports.
        pass
    if "messages" in row:
        msgs = _norm_messages(row["messages"])
        if msgs and msgs[-1]["role"] == "assistant":
            return msgs[:-1], msgs[-1]["content"]
        return msgs, ""
    prompt = row.get("prompt")
    completion = row.get("completion")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if isinstance(completion, list):
        completion = _text(completion[-1].get("content")) if completion else ""
    return _norm_messages(prompt), completion or ""


def render_pair(tokenizer, prompt_messages: list[dict], completion: str) -> tuple[str, str]:
    """(prompt text, completion text) as the chat template renders them.

    The completion is what the template adds after the generation prompt for
    the assistant turn: the answer plus end-of-turn token(s).
    """
    prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        prompt_messages + [{"role": "assistant", "content": completion}], tokenize=False)
    if full.startswith(prompt_text):
        return prompt_text, full[len(prompt_text):]
    # Templates that render the last assistant turn differently (e.g. strip
    # reasoning): fall back to the answer + eos so the answer is still trained.
    return prompt_text, completion + (tokenizer.eos_token or "")


def _ids(tokenizer, text: str) -> list[int]:
    # The template already holds every special token it wants; adding BOS again
    # would train on a sequence the model never sees at inference.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_sft(tokenizer, row: dict, max_length: int) -> dict:
    """Token ids and labels (-100 on prompt tokens) for one SFT row, truncated to max_length."""
    prompt_msgs, completion = completion_pairs(row)
    prompt_text, completion_text = render_pair(tokenizer, prompt_msgs, completion)
    p_ids = _ids(tokenizer, prompt_text)
    full_ids = _ids(tokenizer, prompt_text + completion_text)
    # Tokens can merge across the boundary; the completion starts where the two diverge.
    n = 0
    for a, b in zip(p_ids, full_ids):
        if a != b:
            break
        n += 1
    labels = [-100] * n + full_ids[n:]
    if not completion.strip():
        labels = [-100] * len(full_ids)
    full_len = len(full_ids)
    ids, labels = full_ids[:max_length], labels[:max_length]
    supervised = sum(1 for x in labels if x != -100)
    return {"input_ids": ids, "labels": labels, "length": full_len, "prompt_len": n,
            "supervised": supervised, "truncated": full_len > max_length}


def encode_dpo_lengths(tokenizer, row: dict, max_length: int) -> dict:
    prompt = _norm_messages(row.get("prompt") if isinstance(row.get("prompt"), list)
                            else [{"role": "user", "content": _text(row.get("prompt"))}])
    lens = {}
    for key in ("chosen", "rejected"):
        value = row.get(key)
        answer = _text(value[-1].get("content")) if isinstance(value, list) and value else _text(value)
        p_text, c_text = render_pair(tokenizer, prompt, answer)
        lens[key] = (len(_ids(tokenizer, p_text)), len(_ids(tokenizer, p_text + c_text)))
    p_len = lens["chosen"][0]
    longest = max(lens["chosen"][1], lens["rejected"][1])
    supervised = max(0, min(longest, max_length) - p_len)
    return {"length": longest, "prompt_len": p_len, "supervised": supervised,
            "truncated": longest > max_length}


# ------------------------------------------------------------------ the check

@dataclass
class CheckReport:
    method: str
    max_length: int
    n_rows: int = 0
    n_usable: int = 0
    n_no_supervised: int = 0
    n_truncated: int = 0
    lengths: list[int] = field(default_factory=list)
    supervised_tokens: int = 0
    highlight: list[tuple[str, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def histogram(self, bins: int = 12) -> list[dict]:
        """Rows {"tokens": bin upper edge, "examples": count} for a bar/line plot."""
        if not self.lengths:
            return []
        top = max(max(self.lengths), self.max_length)
        width = max(8, math.ceil(top / bins))
        counts = [0] * (math.ceil(top / width) + 1)
        for n in self.lengths:
            counts[min(n // width, len(counts) - 1)] += 1
        return [{"tokens": (i + 1) * width, "examples": c} for i, c in enumerate(counts)]

    def markdown(self) -> str:
        lines = [f"**Training check** ({self.method.upper()}, max length {self.max_length} tokens)", ""]
        if self.lengths:
            srt = sorted(self.lengths)
            lines.append(f"- {self.n_rows} examples; token length median {srt[len(srt) // 2]}, "
                         f"longest {srt[-1]}.")
        lines.append(f"- {self.n_usable} examples have tokens to learn from "
                     f"({self.supervised_tokens} trained tokens in total).")
        if self.n_no_supervised:
            lines.append(f"- ⚠️ {self.n_no_supervised} examples have **no trained tokens** "
                         "(empty answer, or the prompt alone fills max length): they teach nothing.")
        if self.n_truncated:
            lines.append(f"- ⚠️ {self.n_truncated} examples are **cut off** at max length: the model never "
                         "sees how their answers end. Raise max length or shorten them.")
        for w in self.warnings:
            lines.append(f"- ⚠️ {w}")
        for e in self.errors:
            lines.append(f"- ❌ {e}")
        if self.ok:
            lines.append("- ✅ Ready to train.")
        return "\n".join(lines)


def _highlight(tokenizer, enc: dict) -> list[tuple[str, str | None]]:
    """(text, label) spans for gr.HighlightedText: prompt tokens vs trained tokens."""
    spans: list[tuple[str, str | None]] = []
    for tok_id, lab in zip(enc["input_ids"], enc["labels"]):
        label = "trained" if lab != -100 else "prompt (not trained)"
        piece = tokenizer.decode([tok_id])
        if spans and spans[-1][1] == label:
            spans[-1] = (spans[-1][0] + piece, label)
        else:
            spans.append((piece, label))
    return spans


def check_dataset(tokenizer, rows: list[dict], method: str, max_length: int,
                  example_index: int = 0) -> CheckReport:
    """Apply the template to every row as training will, and report what would be trained."""
    rep = CheckReport(method=method, max_length=int(max_length), n_rows=len(rows))
    if not rows:
        rep.errors.append("The training split is empty: add examples or pick a built-in dataset.")
        return rep
    min_completion = None
    for i, row in enumerate(rows):
        try:
            enc = encode_sft(tokenizer, row, max_length) if method == "sft" \
                else encode_dpo_lengths(tokenizer, row, max_length)
        except Exception as exc:  # a template error on one row must name the row, not crash
            rep.errors.append(f"Example {i + 1} can't be rendered with this model's chat template: {exc}")
            continue
        rep.lengths.append(enc["length"])
        if enc["supervised"] == 0:
            rep.n_no_supervised += 1
        else:
            rep.n_usable += 1
            rep.supervised_tokens += enc["supervised"]
        if enc["truncated"]:
            rep.n_truncated += 1
        need = enc["prompt_len"] + 1
        min_completion = need if min_completion is None else min(min_completion, need)
        if method == "sft" and i == example_index:
            rep.highlight = _highlight(tokenizer, enc)
    if rep.n_usable == 0 and not rep.errors:
        hint = (f" The shortest prompt needs {min_completion} tokens: set max length above that."
                if min_completion and min_completion > max_length else "")
        rep.errors.append("No example has any token to train on, so this run would learn nothing."
                          " Check that each example ends with an assistant answer and that **Max length** "
                          f"({max_length}) leaves room for it.{hint}")
    elif rep.n_rows and rep.n_no_supervised / rep.n_rows > 0.5:
        rep.warnings.append("More than half the examples have nothing to train on.")
    return rep
