"""Export a run as a recipe for bigger hardware, built on existing tools (TRL + accelerate).

The zip holds:

    <name>/sft.yaml or dpo.yaml   a config `trl sft --config` / `trl dpo --config` reads
    <name>/fsdp.yaml              accelerate config: multi-GPU FSDP (v2)
    <name>/zero3.yaml             accelerate config: multi-GPU DeepSpeed ZeRO-3
    <name>/data/train.jsonl       the rows the run trained on, as TRL prompt/completion (SFT)
                                  or preference (DPO) rows split where the app split them
    <name>/data/validation.jsonl  and the rows it validated on (when there were any)
    <name>/ftlab_job.py           self-contained uv script (PEP 723): the same training on every
                                  GPU of a machine, then a push to the Hub (Hugging Face Jobs or local)
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

from core.config import env_int
from training.hub import model_card
from training.run.config import trl_args

# The engine checkpoints every FTLAB_CHECKPOINT_EVERY steps (training/run/engine.py).
CHECKPOINT_EVERY = env_int("FTLAB_CHECKPOINT_EVERY", 50)
# The uv script shipped in the zip (and run on Hugging Face Jobs by training/hub/jobs.py).
JOB_SCRIPT = Path(__file__).with_name("ftlab_job.py")

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
    """The keys of TRL's ScriptArguments, SFTConfig/DPOConfig and ModelConfig for this run.

    The training and LoRA keys come from `config.trl_args`, the same mapping the
    engine trains with; what is added here is where the data is and the cadence
    of saving that the engine does through its own callback."""
    s = model_card.run_summary(run)
    cfg = s["config"]
    total = int(run.get("total_steps") or cfg.total_steps(0))
    train, model = trl_args(cfg, total_steps=total, has_eval=has_validation)
    bf16 = run.get("precision") == "bf16"
    config = {"model_name_or_path": s["base_model"], "dtype": "bfloat16" if bf16 else "float32",
              "dataset_name": "data", "dataset_train_split": "train", "output_dir": output_dir,
              **model, **train, "bf16": bf16}
    if has_validation:
        # The app keeps the adapter from the best eval loss (engine best_adapter/): the
        # same with a checkpoint at each evaluation and the best one loaded at the end.
        config.update({"dataset_test_split": "validation", "save_strategy": "steps",
                       "save_steps": cfg.eval_steps, "load_best_model_at_end": True,
                       "metric_for_best_model": "eval_loss", "greater_is_better": False})
    else:
        config.update({"save_strategy": "steps", "save_steps": CHECKPOINT_EVERY})
    return config


def _recipe_rows(run_dir: Path, run: dict, method: str) -> tuple[list[dict], list[dict]]:
    """(train, validation) rows in the form that makes TRL train what the app trained:
    SFT rows as prompt/completion split where the app splits them (so TRL's
    completion-only loss masks the same tokens), preference rows as the engine
    built them, and the validation rows the run evaluated on."""
    from training.data import checks

    convert = checks.prompt_completion_row if method == "sft" else checks.preference_row
    n_eval = run.get("eval_rows")
    validation = _rows(run_dir, "validation")[:n_eval] if n_eval is not None else _rows(run_dir, "validation")
    out = []
    for rows in (_rows(run_dir, "train"), validation):
        out.append([r for r in (convert(row) for row in rows) if r is not None])
    return out[0], out[1]


def _yaml(config: dict, method: str) -> str:
    import yaml

    head = (f"# TRL {method.upper()} config exported by Fine-Tuning Lab.\n"
            f"# Run from this folder:  trl {method} --config {method}.yaml\n"
            "# Any key can be overridden on the command line, e.g. --max_steps 100.\n")
    return head + yaml.safe_dump(config, sort_keys=False)


README = """# Training recipe: {base_model} + LoRA ({METHOD})

This folder reproduces a Fine-Tuning Lab run with TRL's own command-line tool,
so it can move from a shared GPU slice to your own machine or a cluster.

| File | What it is |
|---|---|
| `{cfg}` | TRL configuration: model, LoRA settings, optimiser settings, data |
| `data/train.jsonl` | {n_train} training rows as the run trained on them{rows_note} |
| `data/validation.jsonl` | {n_val} validation rows{val_note} |
| `fsdp.yaml` | accelerate config for several GPUs with FSDP |
| `zero3.yaml` | accelerate config for several GPUs with DeepSpeed ZeRO-3 |
| `ftlab_job.py` | a self-contained `uv` script: the same training on every GPU of one machine, then a push |

Training data fingerprint (sha256 of the canonical rows): `{sha256}`.

## Set up

```bash
pip install "trl==1.16.0" "peft==0.21.2" "transformers==5.24.0" "datasets==5.2.0" "accelerate==1.15.0"
```

## One GPU (or CPU)

```bash
cd this-folder
trl {method} --config {cfg}
```

The adapter is written to `{output_dir}/`. `trl` runs the script through
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

## On Hugging Face Jobs (billed to your account)

`ftlab_job.py` declares its own dependencies (PEP 723), trains this config on all GPUs of the
machine (it starts `accelerate launch` itself) and pushes the adapter with a model card.
Put this folder in a private dataset repository, then launch it with the Hub's jobs CLI
(needs a token with the `jobs` scope and write access, and a payment method or credits):

```bash
hf upload --repo-type dataset --private <you>/ftlab-recipe .
hf jobs uv run --flavor a10g-small --secrets HF_TOKEN \
    -v hf://datasets/<you>/ftlab-recipe:/recipe \
    ftlab_job.py --recipe /recipe --push-to <you>/my-adapter
hf jobs hardware   # the flavours and their prices
```

The same script runs on your own machine: `uv run ftlab_job.py --push-to <you>/my-adapter`
(or `--max-steps 2 --cpu` for a smoke test without a GPU, nothing pushed without `--push-to`).

## Quick check before a long job

```bash
trl {method} --config {cfg} --max_steps 2 --output_dir smoke-test
```

On a machine without a GPU add `--use_cpu true` (and `--bf16 false` if the config says `bf16: true`).

## What makes it the same run

The config holds the run's settings under TRL's names (the app trains through the same mapping),
`max_steps` is the run's step count (set `max_steps: -1` to train by `num_train_epochs` instead),
evaluation and logging happen at the same steps, and a checkpoint is saved at each evaluation with the
best one (lowest eval loss) loaded at the end, as the app keeps the adapter from its best eval loss.
With the same base weights, data, seed and precision, the per-step training loss matches the app's.
The app's early stopping (patience {patience}) has no TRL command-line switch;
the best checkpoint is still the one kept.
"""


def _readme(method: str, s: dict, config: dict, n_train: int, n_val: int, gpus: int) -> str:
    fp = s["fingerprint"] or {}
    rows_note = (": prompt/completion pairs split where the app split them, so the loss falls on the same "
                 "answer tokens" if method == "sft" else ": prompt, chosen and rejected answer")
    return README.format(base_model=s["base_model"], method=method, METHOD=method.upper(), cfg=f"{method}.yaml",
                         n_train=n_train, rows_note=rows_note, n_val=n_val,
                         val_note="" if n_val else " (none: evaluation is off)", sha256=fp.get("sha256", "not recorded"),
                         output_dir=config["output_dir"], gpus=gpus, patience=s["config"].early_stopping_patience)


def export_recipe(run_dir: Path, out_dir: Path | None = None, *, gpus: int = 8) -> Path:
    """Write the recipe zip for a run; returns its path (<run_dir>/export/recipe.zip by default)."""
    run_dir = Path(run_dir)
    run = model_card.read_json(run_dir / "run.json")
    if not run:
        raise FileNotFoundError("This run has no run.json, so there is nothing to export.")
    s = model_card.run_summary(run)
    method = s["method"]
    train, validation = _recipe_rows(run_dir, run, method)
    if not train:
        raise FileNotFoundError("This run kept no training rows (data/train.jsonl), so the recipe would be empty.")
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
        shutil.copyfile(JOB_SCRIPT, root / JOB_SCRIPT.name)
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
