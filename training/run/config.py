"""The run config: every setting of a training run, in one typed table.

`RunConfig` is the only place a training setting is named. Each hyperparameter
field carries its default, its label, its allowed range (or choices) and a
one-line help in its `knob(...)` declaration below; the Training tab builds its
inputs from that table (`HYPERPARAMETERS`), `validate()` checks a learner's
values once, `to_dict()` is what run.json stores and `from_dict()` reads it back
for the engine, the model card, the recipe and the evaluation. `trl_args()` is
the one mapping to TRL's names, used by the engine and by the recipe export.

Why a dataclass and not pydantic: the checks need the learner's words (each
refusal names the field and says what to try), two limits come from the
environment at check time (FTLAB_MAX_STEPS, FTLAB_MAX_LENGTH), and a run
already written must read back without re-checking against today's limits.
Plain dataclasses with the range in field metadata do all three in a few
lines; pydantic's messages and its validation-on-construction would need
overriding at each step. No torch, transformers or gradio here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

from core.config import env_int

METHODS = ("sft", "dpo")
DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Llama/Qwen linear layer names: <x>_proj for the attention (q, k, v, o) and MLP (gate, up, down).
_ATTENTION = [f"{x}_proj" for x in ("q", "k", "v", "o")]
_MLP = [f"{x}_proj" for x in ("gate", "up", "down")]
TARGET_MODULE_CHOICES = {
    "qv": [_ATTENTION[0], _ATTENTION[2]],
    "attention": list(_ATTENTION),
    "all-linear": _ATTENTION + _MLP,
}
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
MIN_MAX_LENGTH = 32


def max_steps_cap() -> int:
    return env_int("FTLAB_MAX_STEPS", 300)


def max_length_cap() -> int:
    return env_int("FTLAB_MAX_LENGTH", 1024)


def knob(default: Any, label: str, help: str, *, lo: float | None = None, hi: float | Callable[[], float] | None = None,
         lo_open: bool = False, hi_open: bool = False, choices: tuple | None = None, fix: str = "",
         trl: str | None = None, whole: bool = False, elem: str | None = None) -> Any:
    """A hyperparameter field: its default plus the table row (label, range, help, TRL name).

    `elem` keeps the tab's element id (`train-hp-<elem>`) of a field renamed to TRL's name."""
    meta = {"label": label, "help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
            "choices": choices, "fix": fix, "trl": trl, "whole": whole, "elem": elem}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataRef:
    """Where the training rows came from (the rows themselves live in the run's data/)."""
    name: str = ""
    source: str = ""           # "builtin" | "upload" | "hub"
    hub_id: str | None = None  # for source "hub"
    fingerprint: dict | None = None

    @classmethod
    def from_source(cls, name: str, source: str) -> "DataRef":
        """From the loaded dataset's `source` text: "builtin:<key>", "upload:<file>", "hub:<owner/name>"."""
        kind, _, rest = (source or "").partition(":")
        return cls(name=name, source=kind, hub_id=rest if kind == "hub" and rest else None)


@dataclass(frozen=True)
class RunConfig:
    method: str = "sft"
    base_model: str = DEFAULT_BASE_MODEL
    dataset: DataRef = field(default_factory=DataRef)
    # ---- the hyperparameter table (order = the Training tab's order and its API's). A field's
    # name is TRL's own name for the setting (what a learner meets next), except warmup_ratio:
    # transformers 5 reads a ratio as a float `warmup_steps`, which reads as a step count.
    lora_r: int = knob(16, "LoRA rank r", "Size of the low-rank update: more capacity, more parameters.",
                       lo=1, hi=256, whole=True, fix="8 or 16 is a good start", trl="lora_r", elem="r")
    lora_alpha: int = knob(32, "LoRA alpha", "The update is scaled by alpha / r; 2 × r is common.",
                           lo=1, hi=1024, whole=True, fix="a common choice is 2 × r", trl="lora_alpha",
                           elem="alpha")
    lora_dropout: float = knob(0.05, "LoRA dropout", "Dropout on the adapter's input during training.",
                               lo=0, hi=1, hi_open=True, fix="0.05 is typical", trl="lora_dropout", elem="dropout")
    lora_target_modules: str = knob("attention", "Target modules", "Which linear layers get an adapter.",
                                    choices=tuple(TARGET_MODULE_CHOICES), trl="lora_target_modules",
                                    elem="target_modules")
    learning_rate: float = knob(2e-4, "Learning rate", "Step size of the optimizer (AdamW).",
                                lo=0, hi=1e-2, lo_open=True,
                                fix="2e-4 suits SFT with LoRA, 5e-5 DPO; above 0.01 LoRA training diverges",
                                trl="learning_rate")
    lr_scheduler_type: str = knob("cosine", "Scheduler", "How the learning rate changes over the run.",
                                  choices=SCHEDULERS, trl="lr_scheduler_type", elem="scheduler")
    warmup_ratio: float = knob(0.05, "Warmup ratio", "Share of the steps spent ramping the learning rate up.",
                               lo=0, hi=0.5, fix="0.03 to 0.1 is typical", trl="warmup_steps")
    num_train_epochs: float = knob(1.0, "Epochs", "Passes over the training set (when max steps is 0).",
                                   lo=0, hi=20, lo_open=True, fix="use 1 to 5; more overfits a small set",
                                   trl="num_train_epochs", elem="epochs")
    max_steps: int = knob(0, "Max steps", "Optimizer steps for the whole run; 0 = from epochs.",
                          lo=0, hi=max_steps_cap, whole=True,
                          fix="export the recipe to train longer on your own hardware", trl="max_steps")
    per_device_train_batch_size: int = knob(4, "Batch size", "Examples per device per forward pass.",
                                            lo=1, hi=64, whole=True,
                                            fix="above 64 will not fit: use gradient accumulation",
                                            trl="per_device_train_batch_size", elem="batch_size")
    gradient_accumulation_steps: int = knob(2, "Gradient accumulation",
                                            "Forward passes summed into one optimizer step.",
                                            lo=1, hi=64, whole=True, fix="1 = no accumulation",
                                            trl="gradient_accumulation_steps", elem="grad_accum")
    max_length: int = knob(512, "Max length", "Tokens kept per example; longer ones are cut off.",
                           lo=MIN_MAX_LENGTH, hi=max_length_cap, whole=True, fix="lower it", trl="max_length")
    eval_steps: int = knob(20, "Evaluate every N steps", "How often the validation loss is measured.",
                           lo=1, hi=100_000, whole=True, fix="every 10 to 50 steps is typical", trl="eval_steps")
    early_stopping_patience: int = knob(3, "Early-stopping patience",
                                        "Stop after this many evaluations without a better eval loss; 0 = off.",
                                        lo=0, hi=1000, whole=True, fix="0 turns it off")
    seed: int = knob(42, "Seed", "Fixes adapter init and data order, so a run can be repeated.",
                     lo=0, hi=2**31, hi_open=True, whole=True, fix="any whole number", trl="seed")
    beta: float = knob(0.1, "DPO beta", "DPO only: how far the policy may move from the reference model (the frozen start).",
                       lo=0, hi=2, lo_open=True, fix="0.1 is typical", trl="beta")

    def hyperparameters(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in HYPERPARAMETERS}

    def to_dict(self) -> dict:
        """What run.json stores under "config"."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Read back what `to_dict` wrote (values were validated when the run was made)."""
        d = upgrade_stored(d)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for k, meta in ((k, f.metadata) for k, f in cls.__dataclass_fields__.items() if f.metadata):
            if meta["whole"] and isinstance(values.get(k), float):  # the old layout kept alpha a float
                values[k] = int(values[k])
        ds = values.get("dataset") or {}
        values["dataset"] = DataRef(**{k: v for k, v in ds.items() if k in DataRef.__dataclass_fields__})
        return cls(**values)

    @property
    def effective_batch(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps for a run: from epochs unless max_steps is set, capped."""
        per_epoch = max(1, math.ceil(n_train / max(1, self.effective_batch)))
        steps = self.max_steps if self.max_steps > 0 else math.ceil(per_epoch * self.num_train_epochs)
        return max(1, min(steps, max_steps_cap()))


HYPERPARAMETERS = tuple(f for f in fields(RunConfig) if f.metadata)

# The names runs stored before the settings took TRL's names (run.json files stay on disk for
# FTLAB_RUN_TTL_HOURS): read through `upgrade_stored`, never written again.
OLD_NAMES = {"r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
             "target_modules": "lora_target_modules", "scheduler": "lr_scheduler_type",
             "epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size",
             "grad_accum": "gradient_accumulation_steps"}


def upgrade_stored(d: dict) -> dict:
    """A stored config in today's names: the pre-config layout `{"hparams": ...}` and the
    pre-TRL names (`r`, `batch_size`, ...) both read back."""
    if "hparams" in d:  # runs written before this type existed
        d = {**d.get("hparams", {}), "method": d.get("method", "sft"), "dataset": d.get("dataset") or {},
             "base_model": d.get("base_model") or d.get("model_id") or DEFAULT_BASE_MODEL}
    return {OLD_NAMES.get(k, k): v for k, v in d.items()}
HP_NAMES = tuple(f.name for f in HYPERPARAMETERS)
SPEC = {f.name: f.metadata for f in HYPERPARAMETERS}
DEFAULTS = {f.name: f.default for f in HYPERPARAMETERS}

# On a CPU (running locally without a GPU) a full epoch of a built-in set takes
# 10+ minutes, so the defaults there are a short run that must still teach the task:
# 64 examples, one per optimizer step, ~3-5 minutes on 2 cores. Measured with
# bench/gain.py (docs/benchmarks.md, "Does the default CPU run teach?"): the former
# 16 steps of 4 examples (the same 64 examples, a quarter of the updates) left
# clinical_soap at eval loss 0.95 and 0% field accuracy (generic JSON, not the
# schema); 64 steps of 1 reach eval loss 0.28 and the schema on every answer.
# Batch 1 also means no padding and the smallest activations (bench/train.py:
# peak RSS 3.19 GB at batch 2 -> 2.11 GB at batch 1). Two validation-loss
# evaluations (steps 32 and 64) keep the curve and the best-adapter choice.
CPU_DEFAULTS: dict[str, Any] = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
                                "max_steps": 64, "eval_steps": 32, "learning_rate": 1e-3, "warmup_ratio": 0.1}
# DPO's own rate, the one the Training tab, Lab 3 and the course state (issue 23, item 3).
# Measured with bench/dpo_lr.py on the built-in preference set (docs/benchmarks.md, "Which
# DPO learning rate?", 16 of the CPU run's 64 steps): with the app's LoRA (r 16, alpha 32:
# alpha/r = 2), 5e-5 reaches held-out reward accuracy 0.75 and margin 0.17 while the chosen
# answers' log-probability rises (-221.9 -> -219.0); 2e-4 moves 3-4x further per step on the
# same pairs (margin 0.63, chosen -212.5), healthy at 16 steps; 5e-6 barely moves (margin
# 0.017, held-out loss 0.685 from 0.693). The default CPU run is 64
# steps: its summed rate at 5e-5 equals the 16-step run's at 2e-4, while 2e-4 over 64 steps
# would be 4x beyond what was measured. TRL's 1e-6 default and its LoRA example's 5e-6
# (alpha/r = 0.5, thousands of steps) are for far longer runs with a 4x smaller LoRA scale.
DPO_DEFAULTS: dict[str, Any] = {"learning_rate": 5e-5, "beta": 0.1}

# The three presets of the Lab 3 (LoRA) lesson: small and fast, the balanced
# default, and a higher-capacity one for harder formats.
PRESETS: dict[str, dict[str, Any]] = {
    "Light: r=8 on q,v": {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_modules": "qv",
                          "learning_rate": 3e-4},
    "Balanced: r=16 on attention": {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                    "lora_target_modules": "attention", "learning_rate": 2e-4},
    "Capacity: r=32 on all linear layers": {"lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.1,
                                            "lora_target_modules": "all-linear", "learning_rate": 1e-4},
}
DEFAULT_PRESET = "Balanced: r=16 on attention"


def _device_defaults(device: str) -> dict[str, Any]:
    return {**DEFAULTS, **(CPU_DEFAULTS if not device.startswith("cuda") else {})}


def defaults(device: str = "cuda", method: str = "sft") -> dict[str, Any]:
    """The hyperparameters a new run starts from on this device for this method."""
    return {**_device_defaults(device), **method_defaults(method, device)}


def method_defaults(method: str, device: str = "cuda") -> dict[str, Any]:
    """The fields that change when the learner switches method (those in DPO_DEFAULTS)."""
    source = DPO_DEFAULTS if method == "dpo" else _device_defaults(device)
    return {k: source[k] for k in DPO_DEFAULTS}


def preset_values(name: str, method: str) -> dict[str, Any] | None:
    """A Lab 3 preset's LoRA settings; under DPO the method's own rate stays."""
    p = PRESETS.get(name)
    if p is None:
        return None
    return {**p, **{k: v for k, v in method_defaults(method).items() if k in p}} if method == "dpo" else dict(p)


# ------------------------------------------------------------------ validation (once)

def _hi(meta) -> float | None:
    return meta["hi"]() if callable(meta["hi"]) else meta["hi"]


def range_hi(name: str) -> float | None:
    """A field's upper limit now (some come from the environment: FTLAB_MAX_STEPS, FTLAB_MAX_LENGTH)."""
    return _hi(SPEC[name])


def _parse(name: str, raw: Any) -> tuple[Any, str | None]:
    meta = SPEC[name]
    if meta["choices"]:
        if raw in meta["choices"]:
            return raw, None
        return None, f"**{meta['label']}** must be one of {', '.join(meta['choices'])}."
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
        if isinstance(raw, bool) or not math.isfinite(value) or (meta["whole"] and value != int(value)):
            raise ValueError
    except (TypeError, ValueError):
        kind = "whole number" if meta["whole"] else "number"
        return None, f"**{meta['label']}** must be a {kind} (got {raw!r})."
    return (int(value) if meta["whole"] else value), None


def range_text(name: str) -> str:
    """The allowed range of a numeric field, in words (for errors and the docs table)."""
    meta = SPEC[name]
    if meta["choices"]:
        return " / ".join(meta["choices"])
    lo, hi = (str(int(v)) if meta["whole"] else f"{v:g}" for v in (meta["lo"], _hi(meta)))
    left = f"above {lo}" if meta["lo_open"] else f"at least {lo}"
    right = f"below {hi}" if meta["hi_open"] else f"at most {hi}"
    return f"{left} and {right}"


def _in_range(name: str, value: float) -> bool:
    meta = SPEC[name]
    lo, hi = meta["lo"], _hi(meta)
    above = value > lo if meta["lo_open"] else value >= lo
    below = value < hi if meta["hi_open"] else value <= hi
    return above and below


def _range_error(name: str) -> str:
    meta = SPEC[name]
    return f"**{meta['label']}** must be {range_text(name)}: {meta['fix']}."


def check_value(name: str, raw: Any) -> tuple[Any, str | None]:
    """One field's value, parsed and range-checked: (value, None) or (None, validate()'s message).
    Lab 3's tool checks the values it is given with this, so it refuses them in the tab's words."""
    value, error = _parse(name, raw)
    if error or SPEC[name]["choices"] or _in_range(name, value):
        return value, error
    return None, _range_error(name)


def validate(values: dict | None, method: str = "sft", *, base_model: str = DEFAULT_BASE_MODEL,
             dataset: DataRef | None = None) -> tuple[RunConfig | None, list[str]]:
    """A learner's values (missing ones take the defaults) -> (RunConfig, []) or (None, messages).

    Each message names the field and what to try. Type errors come first: range
    checks on the defaults that replaced them would only confuse.
    """
    values = dict(values or {})
    errors: list[str] = []
    if method not in METHODS:
        errors.append(f"**Method** must be SFT or DPO (got {method!r}).")
    parsed: dict[str, Any] = {}
    for name in HP_NAMES:
        value, error = _parse(name, values.get(name, DEFAULTS[name]))
        if error:
            errors.append(error)
        parsed[name] = value
    if errors:
        return None, errors
    for name in HP_NAMES:
        if SPEC[name]["choices"] or (name == "beta" and method != "dpo"):
            continue
        epochs = parsed["num_train_epochs"]
        if name == "num_train_epochs" and parsed["max_steps"] > 0 and 0 <= epochs <= SPEC[name]["hi"]:
            continue  # max steps decides the length: epochs may be 0
        if not _in_range(name, parsed[name]):
            errors.append(_range_error(name))
    if errors:
        return None, errors
    return RunConfig(method=method, base_model=base_model, dataset=dataset or DataRef(), **parsed), []


# ------------------------------------------------------------------ TRL's names (engine and recipe)

def trl_args(cfg: RunConfig, *, total_steps: int, has_eval: bool,
             activation_checkpointing: bool = False) -> tuple[dict, dict]:
    """(training args, model args): the run in the names of TRL's SFTConfig/DPOConfig and ModelConfig.

    The engine builds its SFTConfig/DPOConfig and, through `trl.get_peft_config`,
    its LoraConfig from these; the recipe writes the same keys to the YAML that
    `trl sft|dpo --config` reads, and Lab 3's generated script passes them to the
    same classes. So a setting can't mean one thing in the app and another in the
    recipe or in Lab 3's code.

    `activation_checkpointing`: the app's runs train without it (TRL would turn it
    on); Lab 3 turns it on for a GPU its memory estimate says needs it.
    """
    h = cfg.hyperparameters()
    named = {f.name: f.metadata["trl"] for f in HYPERPARAMETERS if f.metadata["trl"]}
    model = {trl: h[k] for k, trl in named.items() if trl.startswith("lora_")}
    model.update(lora_target_modules=list(TARGET_MODULE_CHOICES[cfg.lora_target_modules]), use_peft=True)
    train = {trl: h[k] for k, trl in named.items() if not trl.startswith("lora_") and k != "beta"}
    train.update({
        # transformers 5 reads a float in [0, 1) for warmup_steps as a ratio of the steps.
        "warmup_steps": float(cfg.warmup_ratio),
        # The whole run's step count (from epochs or max steps, capped), so the
        # scheduler and the data order are those of the app's run.
        "max_steps": int(total_steps),
        "per_device_eval_batch_size": cfg.per_device_train_batch_size,
        "data_seed": cfg.seed,
        "logging_steps": 1,
        "eval_strategy": "steps" if has_eval else "no",
        # TRL turns activation checkpointing on by default; for the app's small models it
        # only doubles the compute (measured: ~2x slower steps on CPU). transformers 5 named
        # it `activation_checkpointing` (`gradient_checkpointing` is its deprecated alias,
        # read only when the new name is unset: transformers/training_args.py __post_init__).
        "activation_checkpointing": bool(activation_checkpointing),
        "report_to": "none",
    })
    if cfg.method == "dpo":
        train["beta"] = float(cfg.beta)
    return train, model
