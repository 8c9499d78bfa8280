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

# The built-in sets are synthetic clinical notes written for teaching
# (training/data/datasets/README.md; "preference" draws on both clinical tasks).
# An adapter trained on them is a study object, never a clinical tool (issue 23).
CLINICAL_BUILTINS = frozenset({"clinical_soap", "pharmacy_meds", "preference"})
# Stands in for the user turn of a learner's own data, which the card does not publish.
YOUR_INPUT = "<your input, written like the user turns of the training rows>"


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


def run_config(run: dict):
    """The run's RunConfig, read back through the type that wrote it."""
    from training.run.config import RunConfig

    return RunConfig.from_dict(run.get("config") or {})


def run_summary(run: dict) -> dict:
    """The facts the card and the recipe both need: the typed config plus what the engine recorded."""
    from training.run.base_model import EMBEDDED_ID, public_id

    cfg = run_config(run)
    model = run.get("model") or {}
    loaded = model.get("id") or cfg.base_model
    # The embedded copy ("embedded/...") has no Hub page: the card and recipe
    # name the Hub model it was rebuilt from, and the card says so.
    base = model.get("public_id") or public_id(loaded)
    return {
        "config": cfg,
        "method": cfg.method,
        "builtin": cfg.dataset.name if cfg.dataset.source == "builtin" else None,
        "base_model": base,
        "license": BASE_LICENSES.get(base, "other"),
        "dataset_name": cfg.dataset.name or "uploaded data",
        "dataset_hub_id": cfg.dataset.hub_id,
        "fingerprint": cfg.dataset.fingerprint or {},
        "total_steps": run.get("total_steps"),
        "steps_done": run.get("step"),
        "best_step": run.get("best_step"),
        "embedded_base": loaded == EMBEDDED_ID,
        "load_id": loaded,
        "load_path": model.get("path"),
    }


# ---------------------------------------------------------------- loss curve
def write_loss_png(events: list[dict], out_path: Path) -> Path | None:
    """The Training tab's loss figure as a PNG; None when there is nothing to draw."""
    from training.run.charts import loss_figure

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
    if s["builtin"] in CLINICAL_BUILTINS:
        parts.append(
            "> **Not for clinical use.** This adapter was trained on synthetic clinical notes written for "
            "teaching (no real patients). Its outputs are not medical advice and must not be used to "
            "document, assess or treat real patients: the findings and doses it writes can be wrong.\n"
        )
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
    parts.append(_limitations_section(s, metrics))
    parts.append(_usage_section(s, repo_id, include_merged, example_prompt(run_dir, s)))
    return "\n".join(p for p in parts if p)


def _config_section(s: dict) -> str:
    """The run's settings, labelled as the Training tab labels them (the config table)."""
    from training.run.config import HYPERPARAMETERS, SPEC, TARGET_MODULE_CHOICES

    cfg = s["config"]
    rows = [("Method", s["method"].upper()), ("Base model", f"`{s['base_model']}`")]
    for f in HYPERPARAMETERS:
        if f.name == "beta" and cfg.method != "dpo":
            continue
        value = getattr(cfg, f.name)
        if f.name == "lora_target_modules":
            value = f"`{TARGET_MODULE_CHOICES[value]}`"
        elif f.name == "max_steps" and not value:
            value = "0 (from epochs)"
        rows.append((SPEC[f.name]["label"], value))
    if s["total_steps"]:
        rows.append(("Planned steps", s["total_steps"]))
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


def _first_row(run_dir: Path) -> dict | None:
    """One of the run's own rows (test split first: it was never trained on)."""
    for split in ("test", "validation", "train"):
        for path in (run_dir / "data" / f"{split}.jsonl", run_dir / f"{split}.jsonl"):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    return row
    return None


def _prompt_turns(row: dict) -> list[dict]:
    """The turns before the answer: a messages row without its final assistant turn,
    or a prompt (turns or text) of a prompt/completion or preference row."""
    from core.chat_rows import content_text

    turns = row.get("messages")
    if not isinstance(turns, list):
        turns = row.get("prompt")
    if isinstance(turns, str):
        turns = [{"role": "user", "content": turns}]
    if not isinstance(turns, list):
        return []
    out = [{"role": str(t.get("role")), "content": content_text(t.get("content")) or ""}
           for t in turns if isinstance(t, dict)]
    while out and out[-1]["role"] == "assistant":
        out.pop()
    return out


def example_prompt(run_dir: Path, s: dict) -> list[dict]:
    """The messages the usage example sends: a prompt from the run's own data, so the
    adapter is queried in the format it was trained on, system prompt included (a
    bare "Hello!" is a layout it never saw). A built-in set's row is shown whole; for
    a learner's own data only the system turns are kept and the input is a placeholder."""
    row = _first_row(Path(run_dir))
    turns = _prompt_turns(row) if row else []
    if not s["builtin"]:
        turns = [t for t in turns if t["role"] == "system"] + [{"role": "user", "content": YOUR_INPUT}]
    return turns or [{"role": "user", "content": YOUR_INPUT}]


def _limitations_section(s: dict, metrics: dict) -> str:
    fp = s["fingerprint"] or {}
    rows = f"{fp['rows']} rows" if fp.get("rows") else "a small dataset"
    n = metrics.get("n") or metrics.get("examples")
    scores = (f"The scores above come from {n} held-out examples: a small sample, so treat them as rough "
              "(the app shows their 95% intervals), and they say nothing about inputs unlike the training rows."
              if n else "No held-out evaluation is recorded here: measure it yourself before relying on it.")
    return f"""## Intended use and limitations

Trained in Fine-Tuning Lab, a course on fine-tuning, on {rows} of `{s['dataset_name']}`. It is meant for
studying what fine-tuning changes, not for production use without your own evaluation.

- It works only in the format it was trained on: send the same system prompt and the same kind of input
  (as in the example below). Other requests get the base model's behaviour, or worse.
- {scores}
- Fine-tuning can weaken a model's safety behaviour even on harmless data, and a model can repeat text
  from its training rows: test both before any use beyond study.
- The base model's licence (`{s['license']}`) applies to this adapter too.
"""


def _usage_section(s: dict, repo_id: str, include_merged: bool, messages: list[dict]) -> str:
    base = s["base_model"]
    shown = json.dumps(messages, ensure_ascii=False, indent=4).replace("```", "'''")
    text = f"""## How to use it

Load the base model, then put the adapter on top with PEFT, and ask in the format the adapter was
trained on: the same system prompt and the same kind of input as its training rows.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel

base = AutoModelForCausalLM.from_pretrained("{base}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
model = PeftModel.from_pretrained(base, "{repo_id}")

messages = {shown}
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
# Room for the whole answer: a reply cut at the limit is unfinished (and, for JSON, unparseable).
output = model.generate(**inputs, max_new_tokens=512)
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
