# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "trl==1.16.0",
#     "peft==0.21.2",
#     "transformers==5.24.0",
#     "datasets==5.2.0",
#     "accelerate==1.15.0",
#     "huggingface_hub==2.4.0",
#     "pyyaml",
# ]
# ///
"""Train a Fine-Tuning Lab recipe on every GPU of the machine, then push the adapter to the Hub.

Self-contained (uv reads the dependencies above), so the same file runs

* on Hugging Face Jobs, launched by the app or by hand:
      hf jobs uv run --flavor a10g-small --secrets HF_TOKEN \
          -v hf://datasets/<you>/<recipe-repo>:/recipe ftlab_job.py --recipe /recipe --push-to <you>/<model>
* on your own machine, from the unzipped recipe folder:
      uv run ftlab_job.py --push-to <you>/<model>

It trains what `trl sft|dpo --config <method>.yaml` trains (the recipe's config, parsed by
TRL's own parser; the trainer built as TRL's CLI builds it), adding only a line per log
event that the app reads back (`FTLAB_LOG {...}`). With several GPUs it relaunches itself
under `accelerate launch` with one process per GPU. At the end the first process pushes the
adapter, tokenizer, a model card and the loss log to the model repository (needs HF_TOKEN
with write access). Failures print `FTLAB_ERROR {...}` with the kind (oom) before exiting.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

LOG_TAG = "FTLAB_LOG "
ERROR_TAG = "FTLAB_ERROR "
DONE_TAG = "FTLAB_DONE "
LOG_FILE = "ftlab_log.jsonl"
EXIT_OOM = 3
# What a published adapter folder keeps (never optimizer state or pickles).
KEEP = (".json", ".safetensors", ".jinja", ".txt", ".model")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parent),
                   help="folder with sft.yaml or dpo.yaml and data/ (default: this file's folder)")
    p.add_argument("--push-to", default="", help="model repository for the adapter, e.g. you/my-adapter")
    p.add_argument("--public", action="store_true", help="create the model repository public (default private)")
    p.add_argument("--model", default="", help="another base model than the recipe's (e.g. a bigger one)")
    p.add_argument("--max-steps", type=int, default=0, help="override the run's step count (smoke tests)")
    p.add_argument("--output-dir", default="ftlab-output")
    p.add_argument("--cpu", action="store_true", help="train on the CPU in fp32 (a local smoke test)")
    p.add_argument("--processes", type=int, default=0,
                   help="training processes (default: one per GPU); with --cpu, CPU processes (gloo)")
    p.add_argument("--no-push", action="store_true", help=argparse.SUPPRESS)  # set for the accelerate children
    return p.parse_args(argv)


def find_config(recipe: Path) -> tuple[str, Path]:
    for method in ("sft", "dpo"):
        if (recipe / f"{method}.yaml").is_file():
            return method, recipe / f"{method}.yaml"
    raise SystemExit(f"No sft.yaml or dpo.yaml in {recipe}: point --recipe at the unzipped recipe folder.")


def gpu_count(cpu: bool) -> int:
    if cpu:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def trl_argv(args: argparse.Namespace, config: Path, gpus: int) -> list[str]:
    """Command-line overrides on top of the recipe's config (what `trl <method>` would be given)."""
    import yaml

    cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    out = ["--config", str(config), "--dataset_name", str(config.parent / "data"),
           "--output_dir", args.output_dir, "--disable_tqdm", "true"]
    if args.model:
        out += ["--model_name_or_path", args.model]
    if args.max_steps:
        out += ["--max_steps", str(args.max_steps)]
    if args.cpu:
        out += ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32"]
    accum = int(cfg.get("gradient_accumulation_steps") or 1)
    if gpus > 1 and accum % gpus == 0:
        # Keep the run's effective batch (per-device batch x accumulation x GPUs).
        out += ["--gradient_accumulation_steps", str(accum // gpus)]
    return out


def log_callback(out_dir: Path):
    from transformers import TrainerCallback

    class FtlabLog(TrainerCallback):
        """One JSON line per logged step on stdout (and in ftlab_log.jsonl): the app's log events."""

        def __init__(self):
            self.t0 = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero:
                return
            event = {"step": int(state.global_step), "elapsed": round(time.monotonic() - self.t0, 2)}
            for key in ("loss", "eval_loss", "learning_rate"):
                if key in (logs or {}):
                    event[key] = float(logs[key])
            if len(event) > 2:
                print(LOG_TAG + json.dumps(event), flush=True)
                with open(out_dir / LOG_FILE, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(event) + "\n")

    return FtlabLog()


def train(args: argparse.Namespace, gpus: int) -> Path:
    """The recipe's training, built like `trl sft|dpo` main builds it. -> the output folder."""
    import importlib

    from datasets import load_dataset
    from trl import get_peft_config, get_quantization_config

    method, config = find_config(Path(args.recipe))
    cli = importlib.import_module(f"trl.scripts.{method}")
    script_args, training_args, model_args, _ = cli.make_parser().parse_args_and_config(
        trl_argv(args, config, gpus), fail_with_unknown_args=True)
    training_args.model_init_kwargs = {**(training_args.model_init_kwargs or {}),
                                       "revision": model_args.model_revision, "dtype": model_args.dtype,
                                       "attn_implementation": model_args.attn_implementation}
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(script_args.dataset_name)
    trainer_cls = getattr(importlib.import_module("trl"), f"{method.upper()}Trainer")
    trainer = trainer_cls(
        model=model_args.model_name_or_path, args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=dataset[script_args.dataset_test_split] if training_args.eval_strategy != "no" else None,
        quantization_config=get_quantization_config(model_args), peft_config=get_peft_config(model_args),
        callbacks=[log_callback(out)])
    trainer.train()
    trainer.save_model(str(out))
    return out


def run_training(args: argparse.Namespace, argv: list[str]) -> Path:
    """Train here (one device) or under accelerate on every GPU; an OOM is named before exiting."""
    gpus = args.processes or gpu_count(args.cpu)
    print(LOG_TAG + json.dumps({"event": "start", "processes": gpus}), flush=True)
    if gpus > 1 and "LOCAL_RANK" not in os.environ:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
               str(Path(__file__).resolve()), *argv, "--no-push"]
        code = subprocess.call(cmd)
        if code:
            sys.exit(code)  # the failing process already printed its FTLAB_ERROR line
        return Path(args.output_dir)
    try:
        return train(args, gpus)
    except Exception as exc:  # noqa: BLE001 - an OOM gets its own line, everything else re-raises
        if "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError":
            print(ERROR_TAG + json.dumps({"kind": "oom", "gpus": gpus}), flush=True)
            sys.exit(EXIT_OOM)
        raise


def model_card(repo_id: str, config: Path, events: list[dict], base: str) -> str:
    losses = [e for e in events if "loss" in e]
    evals = [e for e in events if "eval_loss" in e]
    last = f"{losses[-1]['loss']:.4f} at step {losses[-1]['step']}" if losses else "not logged"
    best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
    return (f"---\nbase_model: {base}\nlibrary_name: peft\npipeline_tag: text-generation\n"
            f"tags:\n- lora\n- trl\n- fine-tuning-lab\n---\n\n# {repo_id}\n\n"
            f"A LoRA adapter for `{base}`, trained on Hugging Face Jobs from a Fine-Tuning Lab recipe.\n\n"
            f"- Last training loss: {last}\n"
            + (f"- Best eval loss: {best['eval_loss']:.4f} at step {best['step']}\n" if best else "")
            + f"- Loss log: `{LOG_FILE}` (one JSON line per step)\n\n"
            f"## Training config\n\n```yaml\n{config.read_text(encoding='utf-8')}```\n")


def push(args: argparse.Namespace, out: Path) -> None:
    """Adapter, tokenizer, card and loss log to the model repository (HF_TOKEN from the environment)."""
    from huggingface_hub import HfApi

    _, config = find_config(Path(args.recipe))
    folder = out / "publish"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for f in out.iterdir():
        if f.is_file() and (f.suffix in KEEP or f.name == LOG_FILE) and f.name != "training_args.bin":
            shutil.copy2(f, folder / f.name)
    events = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines() if line.strip()] \
        if (out / LOG_FILE).is_file() else []
    base = json.loads((out / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
    (folder / "README.md").write_text(model_card(args.push_to, config, events, base), encoding="utf-8")
    api = HfApi()
    api.create_repo(args.push_to, private=not args.public, exist_ok=True)
    api.upload_folder(repo_id=args.push_to, folder_path=str(folder),
                      commit_message="LoRA adapter trained on Hugging Face Jobs (Fine-Tuning Lab recipe)")
    print(DONE_TAG + json.dumps({"repo": args.push_to}), flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out = run_training(args, argv)
    if "LOCAL_RANK" in os.environ and args.no_push:
        return  # an accelerate child: the parent pushes once everyone is done
    if args.push_to:
        push(args, out)
    else:
        print(DONE_TAG + json.dumps({"repo": None, "output_dir": str(out)}), flush=True)


if __name__ == "__main__":
    main()
