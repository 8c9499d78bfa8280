"""Export a run as a recipe for bigger hardware, built on existing tools (TRL + accelerate).

The zip holds:

    <name>/sft.yaml or dpo.yaml   a config `trl sft --config` / `trl dpo --config` reads
    <name>/fsdp.yaml              accelerate config: multi-GPU FSDP (v2)
    <name>/zero3.yaml             accelerate config: multi-GPU DeepSpeed ZeRO-3
    <name>/data/train.jsonl       the exact rows the run trained on
    <name>/data/validation.jsonl  and the rows it validated on (when there were any)
    <name>/README.md              what each file is and the commands to run

The config names the dataset as the local folder `data` (datasets picks the
splits from the file names), so the commands are run from inside the folder.
No torch here; nothing from the config reaches a shell on our side.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from training import model_card

ACCELERATE_FSDP = """\
# accelerate config for multi-GPU training with FSDP (version 2), one machine.
# Set num_processes to the number of GPUs you have.
compute_environment: LOCAL_MACHINE
debug: false
distributed_type: FSDP
downcast_bf16: 'no'
enable_cpu_affinity: false
fsdp_config:
  fsdp_activation_checkpointing: false
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_cpu_ram_efficient_loading: true
  fsdp_offload_params: false
  fsdp_reshard_after_forward: true
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_version: 2
machine_rank: 0
main_training_function: main
mixed_precision: bf16
num_machines: 1
num_processes: {gpus}
rdzv_backend: static
same_network: true
tpu_env: []
tpu_use_cluster: false
tpu_use_sudo: false
use_cpu: false
"""

ACCELERATE_ZERO3 = """\
# accelerate config for multi-GPU training with DeepSpeed ZeRO stage 3, one machine.
# Needs `pip install deepspeed`. Set num_processes to the number of GPUs you have.
compute_environment: LOCAL_MACHINE
debug: false
deepspeed_config:
  deepspeed_multinode_launcher: standard
  offload_optimizer_device: none
  offload_param_device: none
  zero3_init_flag: true
  zero3_save_16bit_model: true
  zero_stage: 3
distributed_type: DEEPSPEED
downcast_bf16: 'no'
machine_rank: 0
main_training_function: main
mixed_precision: bf16
num_machines: 1
num_processes: {gpus}
rdzv_backend: static
same_network: true
tpu_env: []
tpu_use_cluster: false
tpu_use_sudo: false
use_cpu: false
"""


def _rows(run_dir: Path, split: str) -> list[dict]:
    """Rows of a split as the run saved them (data/<split>.jsonl; older layout: <split>.jsonl)."""
    for path in (run_dir / "data" / f"{split}.jsonl", run_dir / f"{split}.jsonl"):
        if path.is_file():
            rows = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
            return rows
    return []


def trl_config(run: dict, *, has_validation: bool, output_dir: str = "output") -> dict:
    """The keys of TRL's ScriptArguments, SFTConfig/DPOConfig and ModelConfig for this run."""
    s = model_card.run_summary(run)
    target = s["target_modules"]
    config = {
        "model_name_or_path": s["base_model"],
        "dataset_name": "data",
        "dataset_train_split": "train",
        "output_dir": output_dir,
        "use_peft": True,
        "lora_r": int(s["lora_r"]),
        "lora_alpha": int(s["lora_alpha"]),
        "lora_dropout": float(s["lora_dropout"]),
        "lora_target_modules": list(target) if isinstance(target, (list, tuple)) else [str(target)],
        "learning_rate": float(s["learning_rate"]),
        "num_train_epochs": float(s["epochs"]),
        "per_device_train_batch_size": int(s["batch_size"]),
        "gradient_accumulation_steps": int(s["grad_accum"]),
        "max_length": int(s["max_length"]),
        "seed": int(s["seed"]),
        "logging_steps": 10,
        "save_strategy": "epoch",
        "report_to": "none",
    }
    if s["scheduler"]:
        config["lr_scheduler_type"] = str(s["scheduler"])
    if s["warmup_ratio"] is not None and 0 <= float(s["warmup_ratio"]) < 1:
        # transformers 5 dropped warmup_ratio: a float in [0, 1) for warmup_steps is the ratio.
        config["warmup_steps"] = float(s["warmup_ratio"])
    if s["max_steps"]:
        config["max_steps"] = int(s["max_steps"])
    if has_validation:
        config.update({"dataset_test_split": "validation", "eval_strategy": "epoch",
                       "per_device_eval_batch_size": int(s["batch_size"])})
    else:
        config["eval_strategy"] = "no"
    if s["method"] == "dpo":
        config["beta"] = float(s["beta"])
    return config


def _yaml(config: dict, method: str) -> str:
    import yaml

    head = (f"# TRL {method.upper()} config exported by Fine-Tuning Lab.\n"
            f"# Run from this folder:  trl {method} --config {method}.yaml\n"
            "# Any key can be overridden on the command line, e.g. --max_steps 100.\n")
    return head + yaml.safe_dump(config, sort_keys=False)


def _readme(method: str, s: dict, config: dict, n_train: int, n_val: int, gpus: int) -> str:
    cfg = f"{method}.yaml"
    fp = s["fingerprint"] or {}
    return f"""# Training recipe: {s['base_model']} + LoRA ({method.upper()})

This folder reproduces a Fine-Tuning Lab run with TRL's own command-line tool,
so it can move from a shared GPU slice to your own machine or a cluster.

| File | What it is |
|---|---|
| `{cfg}` | TRL configuration: model, LoRA settings, optimiser settings, data |
| `data/train.jsonl` | {n_train} training rows, exactly as the run used them |
| `data/validation.jsonl` | {n_val} validation rows{'' if n_val else ' (none: evaluation is off)'} |
| `fsdp.yaml` | accelerate config for several GPUs with FSDP |
| `zero3.yaml` | accelerate config for several GPUs with DeepSpeed ZeRO-3 |

Training data fingerprint (sha256 of the canonical rows): `{fp.get('sha256', 'not recorded')}`.

## Set up

```bash
pip install "trl==1.16.0" "peft==0.21.2" "transformers==5.24.0" "datasets==5.2.0" "accelerate==1.15.0"
```

## One GPU (or CPU)

```bash
cd this-folder
trl {method} --config {cfg}
```

The adapter is written to `{config['output_dir']}/`. `trl` runs the script through
`accelerate launch`, so the same command works on any single device.

## Several GPUs

Edit `num_processes` in the accelerate file to your GPU count (it says {gpus}), then either

```bash
trl {method} --config {cfg} --accelerate_config fsdp.yaml
```

or call accelerate yourself with the same TRL script:

```bash
accelerate launch --config_file fsdp.yaml -m trl.scripts.{method} --config {cfg}
accelerate launch --config_file zero3.yaml -m trl.scripts.{method} --config {cfg}   # needs deepspeed
```

The effective batch size is per-device batch x gradient accumulation x number of GPUs; with more
GPUs, lower `gradient_accumulation_steps` to keep it where it was, or raise the learning rate with care.
Both accelerate files ask for bf16 mixed precision, which needs a GPU that supports it.

## Quick check before a long job

```bash
trl {method} --config {cfg} --max_steps 2 --output_dir smoke-test
```

TRL turns bf16 on by default, which needs a GPU: on a machine without one, add `--use_cpu true`.
"""


def export_recipe(run_dir: Path, out_dir: Path | None = None, *, gpus: int = 8) -> Path:
    """Write the recipe zip for a run; returns its path (<run_dir>/export/recipe.zip by default)."""
    run_dir = Path(run_dir)
    run = model_card.read_json(run_dir / "run.json")
    if not run:
        raise FileNotFoundError("This run has no run.json, so there is nothing to export.")
    train, validation = _rows(run_dir, "train"), _rows(run_dir, "validation")
    if not train:
        raise FileNotFoundError("This run kept no training rows (data/train.jsonl), so the recipe would be empty.")
    s = model_card.run_summary(run)
    method = s["method"]
    config = trl_config(run, has_validation=bool(validation))
    out_dir = Path(out_dir) if out_dir else run_dir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = f"ftlab-recipe-{method}"
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        root = Path(tmp) / folder
        (root / "data").mkdir(parents=True)
        (root / f"{method}.yaml").write_text(_yaml(config, method), encoding="utf-8")
        (root / "fsdp.yaml").write_text(ACCELERATE_FSDP.format(gpus=gpus), encoding="utf-8")
        (root / "zero3.yaml").write_text(ACCELERATE_ZERO3.format(gpus=gpus), encoding="utf-8")
        for split, rows in (("train", train), ("validation", validation)):
            if rows:
                (root / "data" / f"{split}.jsonl").write_text(
                    "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        (root / "README.md").write_text(_readme(method, s, config, len(train), len(validation), gpus),
                                        encoding="utf-8")
        target = out_dir / "recipe.zip"
        partial = out_dir / "recipe.zip.tmp"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(Path(tmp)).as_posix())
        partial.replace(target)  # never hand out half a zip
    return target


def unpack(zip_path: Path, dest: Path) -> Path:
    """Extract a recipe zip (our own file) and return the recipe folder."""
    dest = Path(dest)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    folders = [p for p in dest.iterdir() if p.is_dir() and p.name.startswith("ftlab-recipe-")]
    if not folders:
        raise FileNotFoundError("no recipe folder in the zip")
    shutil.rmtree(dest / "__MACOSX", ignore_errors=True)
    return folders[0]
