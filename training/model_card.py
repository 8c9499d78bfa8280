"""Model card (README.md) and loss-curve PNG for a finished run directory.

Reads what the engine left in the run directory (run.json, log.jsonl,
metrics.json) and writes a card whose YAML header the Hub can index. The
reader is tolerant: a missing or partial file shrinks the card instead of
failing the push, because the adapter is what matters.

No torch or transformers here; matplotlib is imported only when a PNG is drawn.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

LOSS_PNG = "loss_curve.png"

# Licences of the base models the app offers. An adapter is a derivative of its
# base, so it inherits the base licence unless the run says otherwise.
BASE_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "HuggingFaceTB/SmolLM2-360M-Instruct": "apache-2.0",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-0.5B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-1.5B-Instruct": "apache-2.0",
}
DEFAULT_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


# ---------------------------------------------------------------- reading the run
def read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_log(path: Path) -> list[dict]:
    events = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return events
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a half-written last line after a crash must not sink the card
        if isinstance(event, dict):
            events.append(event)
    return events


def _lookup(run: dict, *names, default=None):
    """Find a setting in run.json whether the engine nested it under `config` or not."""
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    hyper = config.get("hparams") or config.get("hyperparameters")
    hyper = hyper if isinstance(hyper, dict) else {}
    for source in (hyper, config, run):
        for name in names:
            if name in source and source[name] not in (None, ""):
                return source[name]
    return default


def run_summary(run: dict) -> dict:
    """The facts the card and the recipe both need, with defaults filled in."""
    method = str(_lookup(run, "method", default="sft")).lower()
    requested = str(_lookup(run, "base_model", "model_id", "base_model_id", default=DEFAULT_BASE))
    effective = str(_lookup(run, "effective_model_id", "effective_model", default=requested))
    # The embedded copy ("embedded/...") has no Hub page: the card and recipe
    # name the Hub model it was rebuilt from, and the card says so.
    embedded = effective.startswith("embedded/") or requested.startswith("embedded/")
    base = DEFAULT_BASE if requested.startswith("embedded/") else requested
    dataset = _lookup(run, "dataset", default={})
    dataset = dataset if isinstance(dataset, dict) else {"name": str(dataset)}
    fingerprint = _lookup(run, "dataset_fingerprint", "fingerprint", default=None)
    if not isinstance(fingerprint, dict):
        fingerprint = dataset.get("fingerprint") if isinstance(dataset.get("fingerprint"), dict) else {}
    hub_id = dataset.get("hub_id") or _lookup(run, "dataset_hub_id", default=None)
    if not hub_id and dataset.get("source") == "hub":
        hub_id = dataset.get("name")
    lora = _lookup(run, "lora", default={})
    lora = lora if isinstance(lora, dict) else {}
    target = lora.get("target_modules", _lookup(run, "target_modules", default="all-linear"))
    if isinstance(target, str):
        # The engine stores a choice name ("qv", "attention", ...); publish the module list.
        from training.checks import TARGET_MODULE_CHOICES

        target = TARGET_MODULE_CHOICES.get(target, target)
    return {
        "method": method if method in ("sft", "dpo") else "sft",
        "base_model": base,
        "license": str(_lookup(run, "license", default=BASE_LICENSES.get(base, "other"))),
        "dataset_name": dataset.get("name") or _lookup(run, "dataset_name", default="uploaded data"),
        "dataset_hub_id": hub_id,
        "fingerprint": fingerprint,
        "lora_r": lora.get("r", _lookup(run, "lora_r", "r", default=8)),
        "lora_alpha": lora.get("alpha", lora.get("lora_alpha", _lookup(run, "lora_alpha", "alpha", default=16))),
        "lora_dropout": lora.get("dropout", lora.get("lora_dropout",
                                                     _lookup(run, "lora_dropout", "dropout", default=0.05))),
        "target_modules": target,
        "scheduler": _lookup(run, "scheduler", "lr_scheduler_type", default=None),
        "warmup_ratio": _lookup(run, "warmup_ratio", default=None),
        "learning_rate": _lookup(run, "learning_rate", "lr", default=2e-4),
        "epochs": _lookup(run, "epochs", "num_train_epochs", default=1),
        "max_steps": _lookup(run, "max_steps", "total_steps", default=None),
        "batch_size": _lookup(run, "batch_size", "per_device_train_batch_size", default=4),
        "grad_accum": _lookup(run, "grad_accum", "gradient_accumulation_steps", default=1),
        "max_length": _lookup(run, "max_length", "max_seq_length", default=512),
        "beta": _lookup(run, "beta", default=0.1),
        "seed": _lookup(run, "seed", default=42),
        "steps_done": run.get("step"),
        "best_step": run.get("best_step"),
        "embedded_base": embedded or bool(_lookup(run, "embedded_base", "base_from_gguf", default=False)),
        "load_id": effective,
    }


# ---------------------------------------------------------------- loss curve
def write_loss_png(events: list[dict], out_path: Path) -> Path | None:
    """The Training tab's loss figure as a PNG; None when there is nothing to draw."""
    from training.charts import loss_figure

    fig = loss_figure(events)
    if fig is None:
        return None
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png")
    return out_path


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- the card
def card_metadata(summary: dict):
    from huggingface_hub import ModelCardData

    tags = [summary["method"], "lora", "peft", "trl", "fine-tuning-lab"]
    return ModelCardData(
        base_model=summary["base_model"],
        library_name="peft",
        pipeline_tag="text-generation",
        license=summary["license"],
        tags=tags,
        datasets=[summary["dataset_hub_id"]] if summary["dataset_hub_id"] else None,
    )


def render_model_card(run_dir: Path, repo_id: str, *, has_loss_png: bool,
                      include_merged: bool = False) -> str:
    """Return the README.md text (YAML header + body) for the run in `run_dir`."""
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json")
    metrics = read_json(run_dir / "metrics.json")
    s = run_summary(run)
    header = card_metadata(s).to_yaml()
    name = repo_id.split("/")[-1]
    method_text = {
        "sft": "supervised fine-tuning (SFT) on prompt/answer examples",
        "dpo": "direct preference optimisation (DPO) on chosen/rejected answer pairs",
    }[s["method"]]
    parts = [
        f"---\n{header}\n---\n",
        f"# {name}\n",
        f"A LoRA adapter for [{s['base_model']}](https://huggingface.co/{s['base_model']}), trained with "
        f"{method_text} in Fine-Tuning Lab using TRL and PEFT. The adapter holds only the low-rank "
        "update; load it on top of the base model.\n",
    ]
    if s["embedded_base"]:
        parts.append(
            "> Note: this run trained against a copy of the base model rebuilt from a 4-bit GGUF file, "
            "so its weights differ slightly from the original checkpoint. Expect small differences when "
            "the adapter is loaded on the original weights.\n"
        )
    parts.append(_config_section(s))
    parts.append(_data_section(s))
    if has_loss_png:
        parts.append(f"## Loss curves\n\n![Training and validation loss]({LOSS_PNG})\n")
    parts.append(_metrics_section(metrics))
    parts.append(_samples_section(metrics))
    parts.append(_usage_section(s, repo_id, include_merged))
    return "\n".join(p for p in parts if p)


def _config_section(s: dict) -> str:
    rows = [
        ("Method", s["method"].upper()),
        ("Base model", f"`{s['base_model']}`"),
        ("LoRA rank r", s["lora_r"]),
        ("LoRA alpha (update scaled by alpha/r)", s["lora_alpha"]),
        ("LoRA dropout", s["lora_dropout"]),
        ("Target modules", f"`{s['target_modules']}`"),
        ("Learning rate", s["learning_rate"]),
        ("Epochs", s["epochs"]),
        ("Max steps", s["max_steps"] if s["max_steps"] is not None else "not set"),
        ("Per-device batch size", s["batch_size"]),
        ("Gradient accumulation", s["grad_accum"]),
        ("Max sequence length", s["max_length"]),
        ("Seed", s["seed"]),
    ]
    if s["method"] == "dpo":
        rows.insert(2, ("DPO beta", s["beta"]))
    if s["steps_done"] is not None:
        rows.append(("Steps completed", s["steps_done"]))
    if s["best_step"] is not None:
        rows.append(("Adapter saved from step", s["best_step"]))
    body = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"## Training configuration\n\n| Setting | Value |\n|---|---|\n{body}\n"


def _data_section(s: dict) -> str:
    fp = s["fingerprint"] or {}
    source = f"[{s['dataset_hub_id']}](https://huggingface.co/datasets/{s['dataset_hub_id']})" \
        if s["dataset_hub_id"] else str(s["dataset_name"])
    lines = [f"## Training data\n\nSource: {source}\n"]
    if fp:
        lines.append(
            "Fingerprint of the exact rows used (so anyone can check they hold the same data):\n\n"
            "| sha256 | rows | bytes |\n|---|---|---|\n"
            f"| `{fp.get('sha256', 'unknown')}` | {fp.get('rows', '?')} | {fp.get('bytes', '?')} |\n"
        )
    return "\n".join(lines)


def _metrics_section(metrics: dict) -> str:
    base, tuned = metrics.get("base"), metrics.get("tuned")
    if not isinstance(base, dict) or not isinstance(tuned, dict):
        return "## Evaluation\n\nNo evaluation was recorded for this run.\n"
    keys = [k for k in tuned if _finite(tuned.get(k)) or _finite(base.get(k))]
    if not keys:
        return "## Evaluation\n\nNo evaluation was recorded for this run.\n"
    rows = "\n".join(f"| {k.replace('_', ' ')} | {_fmt(base.get(k))} | {_fmt(tuned.get(k))} |" for k in keys)
    n = metrics.get("n") or metrics.get("examples")
    scope = f" on {n} held-out examples" if n else " on the held-out split"
    return (f"## Evaluation\n\nBase model against the tuned adapter{scope}:\n\n"
            f"| Metric | Base | Tuned |\n|---|---|---|\n{rows}\n")


def _fmt(value) -> str:
    return f"{value:.3f}" if _finite(value) else "n/a"


def _samples_section(metrics: dict, limit: int = 3) -> str:
    samples = metrics.get("samples")
    if not isinstance(samples, list) or not samples:
        return ""
    out = ["## Sample outputs\n"]
    for i, sample in enumerate(samples[:limit], 1):
        if not isinstance(sample, dict):
            continue
        out.append(f"**Example {i}**\n")
        for key, label in (("prompt", "Prompt"), ("reference", "Expected"), ("base", "Base model"),
                           ("tuned", "Tuned adapter")):
            if sample.get(key) is not None:
                text = str(sample[key]).replace("```", "'''")[:1200]
                out.append(f"{label}:\n\n```text\n{text}\n```\n")
    return "\n".join(out)


def _usage_section(s: dict, repo_id: str, include_merged: bool) -> str:
    base = s["base_model"]
    text = f"""## How to use it

Load the base model, then put the adapter on top with PEFT:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel

base = AutoModelForCausalLM.from_pretrained("{base}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
model = PeftModel.from_pretrained(base, "{repo_id}")

messages = [{{"role": "user", "content": "Hello!"}}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
output = model.generate(**inputs, max_new_tokens=128)
print(tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```

## Merging the adapter into the base weights

`merge_and_unload()` adds the scaled update (alpha/r)·B·A into each targeted weight matrix and
returns a plain transformers model with no LoRA layers, so inference skips the extra adapter
matmuls. The merge cannot be undone on that model object, so keep this adapter repository (or a
local `save_pretrained` copy of the adapter) before merging:

```python
model.save_pretrained("adapter-backup")   # keep the small adapter first
merged = model.merge_and_unload()           # plain model, LoRA folded in
merged.save_pretrained("merged-model")
tokenizer.save_pretrained("merged-model")
```

`merge_adapter()` / `unmerge_adapter()` are the reversible pair if you only want to merge temporarily.
"""
    if include_merged:
        text += f"""
An already merged copy is in the `merged/` folder of this repository:

```python
model = AutoModelForCausalLM.from_pretrained("{repo_id}", subfolder="merged")
```
"""
    return text
