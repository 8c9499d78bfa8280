"""Training throughput on CPU: the app's default SFT recipe vs a plain TRL SFTTrainer.

Same model (embedded SmolLM2-135M), same rows (the first steps x effective-batch
examples of the built-in clinical_soap set, so both sides see the same examples in
one epoch), same LoRA and optimiser hyperparameters (the app's CPU defaults). The
baseline keeps TRL's defaults for everything else: the dataset in TRL's
prompt/completion format, its default collator, no packing, no padding-free, and
TRL's default activation checkpointing.

Each side trains in its own fresh subprocess (so peak RSS is its own), the sides
alternate, and the medians are reported. Both sides get the same instrumentation:
a subclass of SFTTrainer that times the optimiser steps (evaluation time excluded)
and counts, per training batch, the positions, padding and supervised tokens the
collator produced. Eval loss is measured after training by one shared function
(mean cross-entropy per answer token on held-out rows), so both sides are judged alike.

    python -m bench.train                      # 8 steps, 2 repeats per side
    BENCH_TRAIN_STEPS=16 BENCH_TRAIN_REPEATS=3 python -m bench.train
    python -m bench.train --variant '{"padding_free": true}'   # explore one setting
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Row, median, quick, ratio, run_py

N_EVAL_ROWS = 16


# ------------------------------------------------------------------ instrumentation (worker side)

def _instrumented(base_cls):
    """A subclass of an SFTTrainer class that records step time and batch composition."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self, stats):
            self.stats = stats

        def on_train_begin(self, args, state, control, **kw):
            self.stats["t_begin"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            if self.stats.get("t_first_step") is None:
                self.stats["t_first_step"] = now
            self.stats["t_last_step"] = now
            self.stats["eval_s_at_last_step"] = self.stats["eval_s"]
            self.stats["steps"] = int(state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.stats["losses"].append(float(logs["loss"]))

    class Timed(base_cls):
        last = None

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.bench = {"eval_s": 0.0, "losses": [], "train": {"positions": 0, "pad": 0, "supervised": 0,
                                                                 "batches": 0}}
            self._bench_in_eval = False
            inner = self.data_collator

            def counting(features):
                batch = inner(features)
                if not self._bench_in_eval:
                    c = self.bench["train"]
                    ids = batch["input_ids"]
                    c["positions"] += int(ids.numel())
                    if "attention_mask" in batch:
                        c["pad"] += int((batch["attention_mask"] == 0).sum())
                    c["supervised"] += int((batch["labels"][..., 1:] != -100).sum())
                    c["batches"] += 1
                return batch

            self.data_collator = counting
            self.add_callback(Clock(self.bench))
            type(self).last = self

        def evaluate(self, *a, **k):
            t = time.perf_counter()
            self._bench_in_eval = True
            try:
                return super().evaluate(*a, **k)
            finally:
                self._bench_in_eval = False
                self.bench["eval_s"] += time.perf_counter() - t

    return Timed


def _rows(n_train: int):
    from training.data.loading import load_builtin

    splits = load_builtin("clinical_soap")
    return splits.train[:n_train], splits.validation


def eval_loss(model, tokenizer, rows) -> float:
    """Mean cross-entropy per answer token (the tokens encode_sft supervises), batch 1, no padding."""
    import torch

    from training.data.checks import encode_sft

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            enc = encode_sft(tokenizer, row, 1024)
            ids = torch.tensor([enc["input_ids"]])
            labels = torch.tensor(enc["labels"][1:])
            logits = model(input_ids=ids).logits[0, :-1].float()
            mask = labels != -100
            if mask.any():
                total += float(torch.nn.functional.cross_entropy(logits[mask], labels[mask], reduction="sum"))
                count += int(mask.sum())
    return total / max(1, count)


def _model_dir() -> Path:
    """The embedded model, built once into the repo's .data cache (as the tests do).
    BENCH_MODEL_DIR points at another model dir (the smoke test's tiny random Llama)."""
    if os.environ.get("BENCH_MODEL_DIR"):
        return Path(os.environ["BENCH_MODEL_DIR"])
    os.environ.setdefault("FTLAB_DATA_DIR", str(ROOT / ".data"))
    from training.run.base_model import embedded_model_dir
    return embedded_model_dir()


def _on_gpu() -> bool:
    return os.environ.get("BENCH_DEVICE") == "cuda"


def _hparams(steps: int) -> dict:
    """The app's defaults for the device; steps=0 keeps the default length (GPU: one epoch)."""
    from training.run.config import defaults
    h = defaults("cuda" if _on_gpu() else "cpu")
    if steps:
        h["max_steps"] = steps
    return h


def _n_rows(h: dict, steps: int) -> int:
    return steps * h["per_device_train_batch_size"] * h["gradient_accumulation_steps"] if steps else 10**9


def _worker_ours(steps: int) -> dict:
    """The app's path: engine.start_run + engine.run_slice with the CPU defaults."""
    import trl

    from training.run import engine
    from training.run.base_model import EMBEDDED_DIRNAME, EMBEDDED_ID, load_tokenizer

    model_dir = _model_dir()
    data = Path(tempfile.mkdtemp(prefix="bench-ours-"))
    (data / "models").mkdir()
    (data / "models" / EMBEDDED_DIRNAME).symlink_to(model_dir, target_is_directory=True)
    os.environ["FTLAB_DATA_DIR"] = str(data)
    os.environ["HF_HUB_OFFLINE"] = "1"
    h = _hparams(steps)
    train, val = _rows(_n_rows(h, steps))
    Timed = _instrumented(trl.SFTTrainer)
    first_loss = {}

    def on_event(event):
        if "loss" in event and "t" not in first_loss:
            first_loss["t"] = time.perf_counter() - t0
    trl.SFTTrainer = Timed  # the engine imports SFTTrainer from trl at call time
    t0 = time.perf_counter()
    from training.run.config import DataRef, validate
    cfg, errors = validate(h, "sft", base_model=EMBEDDED_ID, dataset=DataRef(name="clinical_soap (bench)"))
    if errors:
        raise ValueError("\n".join(errors))
    run_id = engine.start_run(cfg, {"train": train, "validation": val, "test": []})
    info = engine.run_slice(run_id, max_slice_steps=steps or None, on_event=on_event)
    wall = time.perf_counter() - t0
    if info["status"] != "finished":
        raise RuntimeError(f"run ended {info['status']}: {info.get('error') or info.get('message')}")
    trainer = Timed.last
    tok = load_tokenizer(str(model_dir))
    res = _result(trainer, wall, eval_loss(trainer.model, tok, val[:N_EVAL_ROWS]))
    res["first_loss_s"] = first_loss.get("t")
    shutil.rmtree(data, ignore_errors=True)  # the run dir (checkpoint, adapter) is not needed afterwards
    return res


def _worker_plain(steps: int, opts: dict) -> dict:
    """A plain SFTTrainer. opts={} is the baseline (TRL defaults); keys change one setting each:
    gc (bool), padding_free (bool), group_by_length (bool), batch/accum (ints),
    pretokenized (bool: our encode_sft rows instead of TRL's tokenisation), threads (int)."""
    import peft
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from training.run.base_model import load_tokenizer
    from training.data.checks import completion_pairs, encode_sft
    from training.run.config import TARGET_MODULE_CHOICES

    if opts.get("threads"):
        torch.set_num_threads(int(opts["threads"]))
    model_dir = _model_dir()
    h = _hparams(steps)
    batch = int(opts.get("batch", h["per_device_train_batch_size"]))
    accum = int(opts.get("accum", h["gradient_accumulation_steps"]))
    train, val = _rows(_n_rows(h, steps))
    t0 = time.perf_counter()
    tok = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir),
                                                 dtype=torch.bfloat16 if _on_gpu() else torch.float32)
    lora = peft.LoraConfig(r=int(h["lora_r"]), lora_alpha=float(h["lora_alpha"]),
                           lora_dropout=float(h["lora_dropout"]),
                           target_modules=TARGET_MODULE_CHOICES[h["lora_target_modules"]], task_type="CAUSAL_LM")
    if opts.get("pretokenized"):
        recs = [encode_sft(tok, r, int(h["max_length"])) for r in train]
        ds = Dataset.from_list([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in recs])
    else:
        def pc(row):
            prompt, completion = completion_pairs(row)
            return {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}]}
        ds = Dataset.from_list([pc(r) for r in train])
    kwargs = dict(output_dir=tempfile.mkdtemp(prefix="bench-plain-"), max_steps=steps or -1,
                  num_train_epochs=float(h["num_train_epochs"]), bf16=_on_gpu(),
                  per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                  learning_rate=float(h["learning_rate"]), lr_scheduler_type=h["lr_scheduler_type"],
                  warmup_steps=float(h["warmup_ratio"]), logging_steps=1, save_strategy="no",
                  report_to="none", seed=int(h["seed"]), data_seed=int(h["seed"]), disable_tqdm=True,
                  use_cpu=not _on_gpu(), max_length=int(h["max_length"]))
    if "gc" in opts:
        kwargs["gradient_checkpointing"] = bool(opts["gc"])
    if opts.get("padding_free"):
        kwargs["padding_free"] = True
        kwargs["max_length"] = None  # rows are pre-truncated; TRL refuses max_length without packing
    if opts.get("group_by_length"):
        kwargs["group_by_length"] = True
    Timed = _instrumented(SFTTrainer)
    trainer = Timed(model=model, args=SFTConfig(**kwargs), train_dataset=ds, processing_class=tok,
                    peft_config=lora)
    trainer.train()
    wall = time.perf_counter() - t0
    shutil.rmtree(kwargs["output_dir"], ignore_errors=True)
    return _result(trainer, wall, eval_loss(trainer.model, tok, val[:N_EVAL_ROWS]))


def _result(trainer, wall: float, ev: float) -> dict:
    import torch

    b = trainer.bench
    gpu = {}
    if torch.cuda.is_available():
        gpu = {"peak_vram_mb": torch.cuda.max_memory_allocated() / 2**20, "gpu_name": torch.cuda.get_device_name(),
               "flos": float(getattr(trainer.state, "total_flos", 0.0) or 0.0)}
    train_s = b["t_last_step"] - b["t_begin"] - b.get("eval_s_at_last_step", 0.0)
    c = b["train"]
    return {"wall_s": wall, "train_s": train_s, "steps": b.get("steps"),
            "first_step_s": b["t_first_step"] - b["t_begin"],
            "supervised": c["supervised"], "positions": c["positions"], "pad": c["pad"],
            "sup_tok_per_s": c["supervised"] / train_s if train_s > 0 else None,
            "pad_share": c["pad"] / c["positions"] if c["positions"] else 0.0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "eval_loss": ev, "final_train_loss": b["losses"][-1] if b["losses"] else None,
            "threads": torch.get_num_threads(),
            "gradient_checkpointing": bool(getattr(trainer.args, "gradient_checkpointing", None)),
            "padding_free": bool(getattr(trainer.args, "padding_free", False)), **gpu}


def _worker_step_ab(n_batches: int, repeats: int) -> dict:
    """One process, one model: TRL's SFT loss and training.run.fast_loss, forward + backward on the
    same batches, interleaved (A B, then B A, ...) so load on a shared machine hits both alike."""
    import peft
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from training.run import fast_loss
    from training.run.base_model import load_tokenizer
    from training.data.checks import encode_sft
    from training.run.config import TARGET_MODULE_CHOICES

    model_dir = _model_dir()
    h = _hparams(n_batches)
    train, _ = _rows(n_batches)
    tok = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    lora = peft.LoraConfig(r=int(h["lora_r"]), lora_alpha=float(h["lora_alpha"]), lora_dropout=0.0,
                           target_modules=TARGET_MODULE_CHOICES[h["lora_target_modules"]], task_type="CAUSAL_LM")
    recs = [encode_sft(tok, r, int(h["max_length"])) for r in train]
    ds = Dataset.from_list([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in recs])
    trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench-ab-"), use_cpu=True,
                                                     report_to="none", gradient_checkpointing=False,
                                                     max_length=int(h["max_length"]), dataset_num_proc=None),
                         train_dataset=ds, processing_class=tok, peft_config=lora)
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    model = trainer.model
    model.train()
    batches = [trainer.data_collator([ds[i]]) for i in range(len(ds))]
    sides = {"trl": trainer.compute_loss, "ours": fast_loss.supervised_loss}
    times = {k: [] for k in sides}
    diffs = []
    for r in range(repeats):
        for i, batch in enumerate(batches):
            order = list(sides) if (r + i) % 2 == 0 else list(sides)[::-1]
            losses = {}
            for name in order:
                model.zero_grad(set_to_none=True)
                t = time.perf_counter()
                loss = sides[name](model, dict(batch), num_items_in_batch=None)
                loss.backward()
                times[name].append(time.perf_counter() - t)
                losses[name] = float(loss.detach())
                print(f"  [step-ab {r + 1}/{repeats} batch {i + 1}/{len(batches)}] {name} "
                      f"{times[name][-1] * 1000:.0f} ms", file=sys.stderr, flush=True)
            diffs.append(abs(losses["ours"] - losses["trl"]))
    positions = sum(int(b["input_ids"].numel()) for b in batches)
    supervised = sum(int((b["labels"][..., 1:] != -100).sum()) for b in batches)
    return {"trl_s": median(times["trl"]), "ours_s": median(times["ours"]), "n": len(times["trl"]),
            "max_loss_diff": max(diffs), "supervised_share": supervised / positions,
            "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def step_ab_rows(n_batches: int, repeats: int) -> list[Row]:
    res = _spawn("step-ab", n_batches, {"repeats": repeats})
    return [
        Row(f"train CPU: one training step (forward + backward, batch 1), median of {res['n']} interleaved",
            f"{res['ours_s'] * 1000:.0f} ms", f"{res['trl_s'] * 1000:.0f} ms", ratio(res["trl_s"], res["ours_s"]),
            "— (speed-up)"),
        Row("train CPU: same step, loss difference answer-only vs TRL (max over batches)",
            f"{res['max_loss_diff']:.1e}", "—", "—", "< 1e-4", met=res["max_loss_diff"] < 1e-4),
        Row("train CPU: answer tokens as a share of positions (what the LM head still scores)",
            f"{res['supervised_share'] * 100:.0f}%", "100% (TRL on CPU)"),
    ]


# ------------------------------------------------------------------ driver

def _spawn(side: str, steps: int, opts: dict | None = None, env: dict | None = None) -> dict:
    out = Path(tempfile.mkstemp(prefix="bench-train-", suffix=".json")[1])
    args = ["-m", "bench.train", "--worker", side, "--steps", str(steps), "--out", str(out)]
    if opts:
        args += ["--opts", json.dumps(opts)]
    # nice: the machine is shared; a training run must not starve the others.
    proc = run_py(args, env={"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})},
                  timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    out.unlink(missing_ok=True)
    return result


def compare(steps: int, repeats: int, a=("ours", None), b=("baseline", {}),
            env: dict | None = None) -> tuple[list[dict], list[dict]]:
    ra, rb = [], []
    for i in range(repeats):
        # Alternate which side goes first so drift on a shared machine hits both.
        order = [(a, ra), (b, rb)] if i % 2 == 0 else [(b, rb), (a, ra)]
        for (side, opts), sink in order:
            res = _spawn("plain" if side != "ours" else "ours", steps, opts, env)
            print(f"  [{side} {i + 1}/{repeats}] {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()})}",
                  file=sys.stderr, flush=True)
            sink.append(res)
    return ra, rb


def _med(results, key):
    return median([r[key] for r in results])


def rows_from(ours: list[dict], base: list[dict], label: str = "CPU") -> list[Row]:
    tps_o, tps_b = _med(ours, "sup_tok_per_s"), _med(base, "sup_tok_per_s")
    ev_o, ev_b = _med(ours, "eval_loss"), _med(base, "eval_loss")
    rss_o, rss_b = _med(ours, "peak_rss_mb"), _med(base, "peak_rss_mb")
    steps = ours[0]["steps"]
    n = len(ours)
    return [
        Row(f"train {label}: supervised tokens/s ({steps} steps, median of {n})", f"{tps_o:.0f}", f"{tps_b:.0f}",
            ratio(tps_o, tps_b), ">= 1.5x", met=tps_o >= 1.5 * tps_b),
        Row(f"train {label}: eval loss after training (answer tokens)", f"{ev_o:.4f}", f"{ev_b:.4f}",
            ratio(ev_o, ev_b, 3), "<= baseline", met=ev_o <= ev_b + 1e-4),
        Row(f"train {label}: peak RSS", f"{rss_o / 1024:.2f} GB", f"{rss_b / 1024:.2f} GB",
            ratio(rss_o, rss_b), "<= 2.5 GB", met=rss_o <= 2560),
        Row(f"train {label}: wall time (load + train + evals + saves)", f"{_med(ours, 'wall_s'):.1f} s",
            f"{_med(base, 'wall_s'):.1f} s", ratio(_med(ours, 'wall_s'), _med(base, 'wall_s'))),
        Row(f"train {label}: training-step time (evals excluded)", f"{_med(ours, 'train_s'):.1f} s",
            f"{_med(base, 'train_s'):.1f} s", ratio(_med(ours, 'train_s'), _med(base, 'train_s'))),
        Row(f"train {label}: padding share of positions", f"{_med(ours, 'pad_share') * 100:.1f}%",
            f"{_med(base, 'pad_share') * 100:.1f}%"),
        Row(f"train {label}: supervised tokens per run", f"{_med(ours, 'supervised'):.0f}",
            f"{_med(base, 'supervised'):.0f}"),
    ]


def run(quick_mode: bool | None = None) -> list[Row]:
    q = quick() if quick_mode is None else quick_mode
    steps = int(os.environ.get("BENCH_TRAIN_STEPS") or (1 if q else 8))
    repeats = int(os.environ.get("BENCH_TRAIN_REPEATS") or (1 if q else 2))
    ab = step_ab_rows(2 if q else 8, 1 if q else 3)
    ours, base = compare(steps, repeats)
    return ab + rows_from(ours, base)


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--worker", choices=["ours", "plain", "step-ab"])
    p.add_argument("--step-ab", action="store_true", help="only the interleaved one-step comparison")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--out")
    p.add_argument("--opts", default="{}")
    p.add_argument("--variant", help="JSON opts for a plain-trainer variant, compared against the baseline")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args(argv)
    if a.worker:
        if a.worker == "step-ab":
            res = _worker_step_ab(a.steps, int(json.loads(a.opts).get("repeats", 3)))
        else:
            res = _worker_ours(a.steps) if a.worker == "ours" else _worker_plain(a.steps, json.loads(a.opts))
        Path(a.out).write_text(json.dumps(res))
        return 0
    if a.variant:
        v, b = compare(a.steps, a.repeats, a=("variant", json.loads(a.variant)), b=("baseline", {}))
        from bench.common import table
        print(table(rows_from(v, b, label="variant")))
        return 0
    from bench.common import table
    if a.step_ab:
        print(table(step_ab_rows(a.steps, a.repeats)))
        return 0
    print(table(run()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
