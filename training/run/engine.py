"""The training engine: LoRA SFT or DPO with trl + peft, trained in resumable slices.

A run is created on disk (`start_run`), then trained by calling `run_slice`
repeatedly. Each slice trains up to a step budget that fits one ZeroGPU call,
then saves the full Trainer state (adapter, optimizer, scheduler, step, RNG)
to `checkpoint/`; the next slice resumes it with `resume_from_checkpoint`.
Because `max_steps` is the whole run's, the scheduler and data order are the
same as one uninterrupted run.

    from training.run import engine
    run_id = engine.start_run(run_config, splits)      # status "planned"
    while engine.run_slice(run_id)["status"] == RunStatus.PAUSED:
        pass

Everything torch-related is imported inside functions (the UI imports this module).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from core.config import env_float, env_int
from core.text import plural
from training.data import checks
from training.run import runs
from training.run.runs import RunStatus
from training.run.config import RunConfig, trl_args
from training.run.base_model import first_use_costs, model_info, public_id, resolve_model
from training.run.device import compute_device, placement

# Seconds one slice aims to train for. ZeroGPU calls are short and quota is
# counted per requested second, so slices there are small; on CPU the slice
# only bounds how much work a crash can lose.
GPU_SLICE_S = env_float("FTLAB_GPU_SLICE_SECONDS", 90.0)
CPU_SLICE_S = env_float("FTLAB_CPU_SLICE_SECONDS", 300.0)
# Model load + dataset prep + a final save, per slice, on a GPU.
GPU_OVERHEAD_S = env_float("FTLAB_GPU_OVERHEAD_SECONDS", 25.0)
MAX_GPU_DURATION_S = env_int("FTLAB_MAX_GPU_DURATION", 120)
# The shortest request: a slice that must save before ZeroGPU ends it needs some room.
MIN_GPU_DURATION_S = 20
# Seconds per ~256-token sequence on the GPU, when measured (0: the model table's estimate).
GPU_S_PER_SEQUENCE = env_float("FTLAB_GPU_S_PER_SEQUENCE", 0.0)
EVAL_MAX_ROWS = env_int("FTLAB_EVAL_MAX_ROWS", 32)

NAN_MESSAGE = (
    "The loss became NaN or infinite at step {step}: the weights blew up. This usually means the "
    "learning rate is too high. Lower it (e.g. halve it), or add warmup, then start again. "
    "The last good checkpoint and adapter are kept.")
DIVERGE_MESSAGE = (
    "The training loss jumped from {best:.3f} to {now:.3f} at step {step} and kept climbing: the run "
    "is diverging. Lower the learning rate (try a third of it) or raise warmup, then start again. "
    "The last good checkpoint and adapter are kept.")
OOM_MESSAGE = (
    "The device ran out of memory at step {step}. Start a new run with a lower batch size (raise "
    "gradient accumulation to keep the effective batch) or a lower max length. The adapter from the "
    "last checkpoint is kept and downloadable.")


# ------------------------------------------------------------------ the plan

def default_device() -> str:
    """Where training will run, without importing torch (the UI calls this while building):
    on ZeroGPU the GPU worker, though this process itself has no GPU (training/run/device.py)."""
    return "cpu" if placement() == "cpu" else "cuda"


def gpu_s_per_sequence(model_id: str) -> float:
    """Seconds per ~256-token sequence (forward + backward, LoRA) assumed for a GPU: the model
    table's estimate, or FTLAB_GPU_S_PER_SEQUENCE (e.g. measured on the Space's GPU)."""
    return GPU_S_PER_SEQUENCE or model_info(model_id).gpu_s_per_step


def step_seconds(cfg: RunConfig, device: str, avg_tokens: float | None = None) -> float:
    """Seconds one optimizer step is expected to take on `device` ("cuda" or "cpu")."""
    info = model_info(cfg.base_model)
    base = gpu_s_per_sequence(cfg.base_model) if device.startswith("cuda") else info.cpu_s_per_step
    # The reference numbers are for one sequence of ~256 tokens; time grows with
    # the tokens per step. DPO runs policy + reference on chosen and rejected.
    tokens = min(float(avg_tokens or 200.0), float(cfg.max_length))
    s_per_step = base * cfg.effective_batch * max(0.25, tokens / 256.0)
    if cfg.method == "dpo":
        s_per_step *= 3.0
    if device.startswith("cuda"):
        s_per_step = max(s_per_step, 0.08)
    return s_per_step


def gpu_request_s(steps: int, s_per_step: float, eval_s_per_step: float = 0.0) -> int:
    """Seconds one ZeroGPU call asks for to train `steps` steps: loading and saving, the steps
    with a 30% margin, their share of evaluation; the least that fits, within the app's cap."""
    need = GPU_OVERHEAD_S + steps * (s_per_step * 1.3 + eval_s_per_step)
    return int(min(MAX_GPU_DURATION_S, max(MIN_GPU_DURATION_S, math.ceil(need))))


def plan(cfg: RunConfig, n_train: int, *, avg_tokens: float | None = None,
         device: str | None = None, where: str | None = None) -> dict:
    """Steps, time estimate and, on ZeroGPU, the seconds each slice asks for.

    `where`: "zerogpu" | "gpu" | "cpu" (training/run/device.py `placement`; default: this
    process's). On ZeroGPU a slice is one GPU call, sized to its own steps; on a dedicated GPU
    or a CPU a slice only bounds what a crash can lose."""
    where = where or (placement() if device is None else ("cpu" if device == "cpu" else placement()))
    if where == "cpu" and device is not None and device.startswith("cuda"):
        where = "gpu"
    device = device or ("cpu" if where == "cpu" else "cuda")
    info = model_info(cfg.base_model)
    total = cfg.total_steps(n_train)
    eff = cfg.effective_batch
    s_per_step = step_seconds(cfg, device, avg_tokens)
    budget = GPU_SLICE_S if where == "zerogpu" else CPU_SLICE_S
    slice_steps = max(1, min(total, int(budget // max(s_per_step, 1e-3))))
    n_slices = math.ceil(total / slice_steps)
    evals = total // max(1, cfg.eval_steps)
    eval_rows = eval_rows_limit(device)
    eval_s = evals * eval_rows * (s_per_step / max(1, eff)) / 3  # forward only: ~1/3 of a train step
    # Loading the model and preparing the data, every slice; plus what only the first run pays.
    overhead = GPU_OVERHEAD_S if device.startswith("cuda") else cpu_load_s(info.params_m)
    first = first_use_costs(cfg.base_model, device)
    first_s = sum(s for s, _ in first)
    est = total * s_per_step + eval_s + n_slices * overhead + first_s
    out = {"total_steps": total, "effective_batch": eff, "s_per_step": round(s_per_step, 3),
           "slice_steps": slice_steps, "n_slices": n_slices, "est_seconds": int(est),
           "device": device, "where": where, "load_s": int(overhead + first_s),
           "first_time": [what for _, what in first], "first_time_s": int(first_s),
           "eval_s_per_step": round(eval_s / max(1, total), 3)}
    if where == "zerogpu":
        # Each slice its own call, each asking for the least that fits its own steps.
        sizes = [min(slice_steps, total - i * slice_steps) for i in range(n_slices)]
        requests = [gpu_request_s(n, s_per_step, out["eval_s_per_step"]) for n in sizes]
        out.update(slice_requests=requests, gpu_total_s=sum(requests), gpu_duration_s=max(requests))
    return out


def cpu_load_s(params_m: float) -> float:
    """Seconds a CPU slice spends loading the (cached) model, preparing the data and saving:
    measured ~2.2 s for the 135M model on 2 idle cores once the libraries are imported
    (the one-time costs are `first_use_costs`); it grows with the weights to read."""
    return 1.0 + 1.2 * params_m / 100


def eval_rows_limit(device: str) -> int:
    """Validation rows evaluated at each eval step. Evaluation is forward-only but runs on
    every eval step; on a CPU a smaller held-out sample keeps it to seconds."""
    return EVAL_MAX_ROWS if device.startswith("cuda") else min(EVAL_MAX_ROWS, 12)


def plan_markdown(p: dict) -> str:
    where = p.get("where") or ("zerogpu" if p["device"].startswith("cuda") else "cpu")
    on = {"zerogpu": "a ZeroGPU GPU", "gpu": "this machine's GPU", "cpu": "this machine's CPU"}[where]
    est = p["est_seconds"]
    about = f"{est:.0f} s" if est < 90 else f"{est / 60:.1f} min"
    load = f"~{p['load_s']} s to load the model and prepare the data" if "load_s" in p else ""
    if p.get("first_time"):
        load += (f", of which ~{p['first_time_s']} s only this first time ({', '.join(p['first_time'])})")
    assumed = " (an estimate for the GPU, not yet measured)" if p["device"].startswith("cuda") else ""
    lines = [f"**Plan:** {plural(p['total_steps'], 'optimizer step')} (effective batch {p['effective_batch']}), "
             f"about **{about}** on {on}: ~{p['s_per_step']:.2f} s per step{assumed}"
             + (f", plus {load}." if load else ".")]
    if where == "zerogpu":
        requests = p.get("slice_requests") or [p["gpu_duration_s"]] * p["n_slices"]
        sizes = ", ".join(f"{r} s" for r in requests[:6]) + (", …" if len(requests) > 6 else "")
        lines.append(f"Trained in {plural(p['n_slices'], 'slice')} of up to {plural(p['slice_steps'], 'step')}; each "
                     f"slice is one ZeroGPU call asking for the least that fits it: {sizes} "
                     f"(**{sum(requests)} s** of GPU in all).")
    else:
        lines.append(f"Trained in {plural(p['n_slices'], 'slice')} of up to {plural(p['slice_steps'], 'step')}; each slice "
                     "ends with a checkpoint, so nothing is lost if the app restarts.")
    return "\n\n".join(lines)


# ------------------------------------------------------------------ run creation

def approx_tokens(rows: list[dict]) -> float:
    """Mean tokens per example without a tokenizer: ~4 characters a token, plus the
    chat template's role markers and default system prompt (~30 tokens)."""
    if not rows:
        return 0.0
    sample = rows[:200]
    return sum(len(json.dumps(r, ensure_ascii=False)) / 4 + 30 for r in sample) / len(sample)


def start_run(cfg: RunConfig, splits: Any) -> str:
    """Resolve the model and write the run dir (status planned). Raises ValueError with the learner's message.

    `cfg` was validated when it was built (config.validate). `splits`: an object with
    train/validation/test lists (training.data.loading.Splits) or a dict.
    """
    get = (lambda k: splits.get(k, [])) if isinstance(splits, dict) else (lambda k: getattr(splits, k))
    train, val, test = list(get("train")), list(get("validation")), list(get("test"))
    if not train:
        raise ValueError("The training split is empty: pick a dataset with examples.")
    effective_id, path, notice = resolve_model(cfg.base_model)
    try:
        from training.data.loading import fingerprint
        cfg = replace(cfg, dataset=replace(cfg.dataset, fingerprint=fingerprint(train + val + test)))
    except ImportError:  # pragma: no cover
        pass
    p = plan(cfg, len(train), avg_tokens=approx_tokens(train))
    # `model`: what is trained (the embedded copy when the Hub is unreachable) and from where;
    # cfg.base_model stays what the learner picked.
    model = {"id": effective_id, "path": path, "notice": notice, "public_id": public_id(effective_id)}
    return runs.create_run(cfg.to_dict(), {"train": train, "validation": val, "test": test},
                           model=model, plan=p, total_steps=p["total_steps"])


# ------------------------------------------------------------------ datasets

def _sft_dataset(tokenizer, rows: list[dict], max_length: int):
    from datasets import Dataset

    encoded = []
    for row in rows:
        enc = checks.encode_sft(tokenizer, row, max_length)
        if enc["supervised"] > 0:  # rows with nothing to train on only add noise to the mean
            encoded.append({"input_ids": enc["input_ids"], "labels": enc["labels"]})
    return Dataset.from_list(encoded) if encoded else None


def _dpo_dataset(rows: list[dict]):
    from datasets import Dataset

    clean = [checks.preference_row(r) for r in rows]
    return Dataset.from_list(clean) if clean else None


# ------------------------------------------------------------------ the callback

# TRL's DPO metrics kept in log.jsonl ("/" -> "_"), train and eval: whether the chosen
# answer wins, by how much, and whether the chosen answer's own log-probability holds
# (rewards/chosen = beta x its log-probability change against the reference: below zero
# with a growing margin, the policy is unlearning both answers).
DPO_LOGGED = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "logps/chosen", "logps/rejected")

class RunEvents:
    """Writes log.jsonl events; enforces Stop, the slice budget, NaN/divergence and early stopping."""

    def __init__(self, run_id: str, *, slice_end: int, total: int, on_event: Callable[[dict], None] | None,
                 elapsed_before: float, patience: int, ckpt_every: int, deadline: float | None = None):
        self.run_id, self.slice_end, self.total, self.on_event = run_id, slice_end, total, on_event
        self.elapsed_before, self.patience, self.ckpt_every = elapsed_before, patience, ckpt_every
        self.deadline = deadline
        self.t0 = time.monotonic()
        self.last_beat = 0.0
        self.last_tok = None
        self.outcome: str | None = None   # None | stopped | nan | diverged | early
        self.message = ""
        prior = [e["loss"] for e in runs.read_log(self.run_id) if isinstance(e.get("loss"), (int, float))]
        self.losses: list[float] = prior
        info = runs.read_run(self.run_id)
        self.best_eval = info.get("best_eval_loss")
        self.best_step = info.get("best_step")
        self.evals_since_best = int(info.get("evals_since_best") or 0)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    def _emit(self, event: dict) -> None:
        runs.append_log(self.run_id, [event])
        if self.on_event:
            self.on_event(dict(event, kind="log"))

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        step = int(state.global_step)
        now = time.monotonic()
        event: dict[str, Any] = {"step": step, "elapsed": round(self.elapsed(), 2)}
        if "loss" in logs:
            loss = float(logs["loss"])
            event["loss"] = loss if math.isfinite(loss) else None
            if "learning_rate" in logs:
                event["learning_rate"] = float(logs["learning_rate"])
            gn = logs.get("grad_norm")
            if isinstance(gn, (int, float)):  # the norm before clipping (transformers logs it each step)
                event["grad_norm"] = float(gn) if math.isfinite(gn) else None
            seen = getattr(state, "num_input_tokens_seen", 0) or 0
            if seen and self.last_tok is not None and now > self.last_tok[1]:
                event["tokens_per_s"] = round((seen - self.last_tok[0]) / (now - self.last_tok[1]), 1)
            if seen:
                self.last_tok = (seen, now)
            for k in DPO_LOGGED:
                if k in logs:
                    event[k.replace("/", "_")] = float(logs[k])
            self._emit(event)
            if not math.isfinite(loss):
                self.outcome, self.message = "nan", NAN_MESSAGE.format(step=step)
                control.should_training_stop = True
                control.should_save = False
                return
            self.losses.append(loss)
            if self._diverging():
                best = min(self.losses[:-3])
                self.outcome = "diverged"
                self.message = DIVERGE_MESSAGE.format(best=best, now=loss, step=step)
                control.should_training_stop = True
                control.should_save = False
        elif "eval_loss" in logs:
            ev = float(logs["eval_loss"])
            event["eval_loss"] = ev if math.isfinite(ev) else None
            for k in DPO_LOGGED:
                if f"eval_{k}" in logs:
                    event[f"eval_{k}".replace("/", "_")] = float(logs[f"eval_{k}"])
            self._emit(event)

    def _diverging(self) -> bool:
        # Three consecutive losses well above the best seen so far: a spike
        # that doesn't come back, not the noise of one bad batch.
        if len(self.losses) < 6:
            return False
        best = min(self.losses[:-3])
        recent = self.losses[-3:]
        return all(x > max(best * 2.5, best + 2.0) for x in recent) and recent[-1] >= recent[0]

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
        ev = (metrics or {}).get("eval_loss")
        if ev is None or not math.isfinite(ev):
            return
        step = int(state.global_step)
        if self.best_eval is None or ev < self.best_eval - 1e-4:
            self.best_eval, self.best_step, self.evals_since_best = float(ev), step, 0
            target = runs.run_dir(self.run_id) / "best_adapter"
            _save_adapter_atomic(kw.get("model") or model, kw.get("processing_class"), target)
        else:
            self.evals_since_best += 1
        runs.update_run(self.run_id, best_eval_loss=self.best_eval, best_step=self.best_step,
                        evals_since_best=self.evals_since_best)
        if self.patience and self.evals_since_best >= self.patience and step < self.total:
            self.outcome = "early"
            self.message = (f"Stopped early at step {step}: the eval loss has not improved for "
                            f"{self.patience} evaluations. The adapter from step {self.best_step} "
                            f"(best eval loss {self.best_eval:.4f}) is kept.")
            control.should_training_stop = True
            control.should_save = True

    def on_step_end(self, args, state, control, **kw):
        step = int(state.global_step)
        now = time.monotonic()
        if now - self.last_beat > 5:
            self.last_beat = now
            runs.heartbeat(self.run_id, step=step, elapsed_s=round(self.elapsed(), 1))
        if self.on_event:
            self.on_event({"kind": "step", "step": step, "total_steps": self.total,
                           "elapsed": round(self.elapsed(), 2)})
        if runs.stop_requested(self.run_id):
            self.outcome = self.outcome or "stopped"
            control.should_training_stop = True
            control.should_save = True
        elif step < self.total and (step >= self.slice_end or (self.deadline is not None and now > self.deadline)):
            # End of the slice's step budget, or of its GPU time (an estimate can be
            # off): checkpoint now rather than be killed by ZeroGPU mid-step.
            control.should_training_stop = True
            control.should_save = True
        elif self.ckpt_every and step % self.ckpt_every == 0 and step < self.total:
            control.should_save = True
        if step >= self.total:
            control.should_save = True

    def on_save(self, args, state, control, **kw):
        # Trainer wrote <work>/checkpoint-N; swap it in as the run's only checkpoint.
        src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if src.is_dir():
            _replace_dir(src, runs.run_dir(self.run_id) / "checkpoint")
            runs.heartbeat(self.run_id, step=int(state.global_step), checkpoint_step=int(state.global_step))


def _make_callback(run_id: str, **kw):
    """A TrainerCallback running RunEvents (transformers is imported only here, when training)."""
    from transformers import TrainerCallback

    return type("RunCallback", (RunEvents, TrainerCallback), {})(run_id, **kw)


def _replace_dir(src: Path, dst: Path) -> None:
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _name_public_base(folder: Path, public_id: str | None) -> None:
    """Make a saved adapter name its public base model, never the local folder it was loaded
    from: PEFT writes the load path (e.g. <data dir>/models/...), which means nothing on the
    Hub and makes `AutoPeftModelForCausalLM.from_pretrained(repo)` fail."""
    cfg_path = folder / "adapter_config.json"
    if not public_id or not cfg_path.is_file():
        return
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = public_id
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
    card = folder / "README.md"
    if card.is_file():  # PEFT's stub card repeats the path in its metadata
        text = card.read_text(encoding="utf-8")
        card.write_text("\n".join(f"base_model: {public_id}" if line.startswith("base_model:") else line
                                  for line in text.splitlines()) + "\n", encoding="utf-8")


def _save_adapter_atomic(model, tokenizer, target: Path, public_id: str | None = None) -> None:
    if model is None:
        return
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    _name_public_base(tmp, public_id)
    _replace_dir(tmp, target)


def _copy_adapter(src: Path, target: Path, public_id: str | None = None) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(
        "optimizer.pt", "scheduler.pt", "rng_state*.pth", "training_args.bin", "trainer_state.json", "scaler.pt"))
    _name_public_base(tmp, public_id)
    _replace_dir(tmp, target)


def _public_id(run_id: str) -> str | None:
    return (runs.read_run(run_id).get("model") or {}).get("public_id")


# ------------------------------------------------------------------ one slice

def _describe_error(exc: BaseException, step: int) -> tuple[str, str]:
    """-> (failure kind "oom" | "error", the learner's message)."""
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return "oom", OOM_MESSAGE.format(step=step)
    return "error", (f"Training stopped at step {step} because of an error ({text[:300]}). The last checkpoint "
                     "is kept: press Resume to try again from it, or download the adapter saved so far.")


def run_slice(run_id: str, *, max_slice_steps: int | None = None,
              on_event: Callable[[dict], None] | None = None, deadline: float | None = None) -> dict:
    """Train one slice of a run. Returns the run's updated run.json.

    `deadline` (time.monotonic() value): end the slice with a checkpoint once it
    passes, whatever the step budget says.

    Never raises for training failures: they are recorded in run.json
    (status `failed`, `error`) and the last checkpoint stays on disk.
    """
    info = runs.read_run(run_id)
    if not runs.can_resume(info) and info["status"] != RunStatus.PLANNED:
        return info  # finished, running elsewhere, or failed in a way that retrying would repeat
    if info["status"] == RunStatus.RUNNING:
        return info  # another slice is training it now; one run trains in one place
    ckpt = runs.run_dir(run_id) / "checkpoint"
    start_step = (runs.last_checkpoint_step(run_id) or 0) if ckpt.is_dir() else 0
    if info["status"] == RunStatus.STOPPED:
        runs.clear_stop(run_id)  # Resume after Stop: the learner wants more steps
    # Events logged after the last checkpoint belong to work that is redone now.
    runs.truncate_log_after(run_id, start_step)
    runs.claim(run_id)
    runs.update_run(run_id, slices=int(info.get("slices") or 0) + 1, step=start_step, message="")
    step_holder = {"step": start_step}
    try:
        result = _train(run_id, info, start_step, ckpt if ckpt.is_dir() else None,
                        max_slice_steps or int(info["plan"]["slice_steps"]), on_event, step_holder, deadline)
    except BaseException as exc:  # noqa: BLE001 - the app must outlive any training failure
        kind, msg = _describe_error(exc, step_holder["step"])
        runs.update_run(run_id, status=RunStatus.FAILED, error=msg, message=msg, owner_pid=None, failure_kind=kind)
        _ensure_adapter_from_checkpoint(run_id)
        if on_event:
            on_event({"kind": "error", "message": msg})
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return runs.read_run(run_id)
    runs.update_run(run_id, owner_pid=None, **result)
    final = runs.read_run(run_id)
    if on_event:
        on_event({"kind": "status", "status": final["status"], "message": final.get("message", "")})
    return final


def _ensure_adapter_from_checkpoint(run_id: str) -> None:
    rdir = runs.run_dir(run_id)
    for src in (rdir / "best_adapter", rdir / "checkpoint"):
        if (src / "adapter_config.json").is_file() and not (rdir / "adapter" / "adapter_config.json").is_file():
            _copy_adapter(src, rdir / "adapter", _public_id(run_id))
            return


def _datasets(cfg: RunConfig, tokenizer, data: dict, n_eval: int):
    """(train, eval) datasets as the trainer gets them; eval is None without validation rows."""
    val_rows = data["validation"][:n_eval]
    if cfg.method == "sft":
        train_ds = _sft_dataset(tokenizer, data["train"], cfg.max_length)
        eval_ds = _sft_dataset(tokenizer, val_rows, cfg.max_length) if val_rows else None
    else:
        train_ds = _dpo_dataset(data["train"])
        eval_ds = _dpo_dataset(val_rows) if val_rows else None
    if train_ds is None:
        raise ValueError("No training example has tokens to learn from (run the data check).")
    return train_ds, eval_ds


def _trainer(cfg: RunConfig, info: dict, tokenizer, train_ds, eval_ds, cb, device: str, bf16: bool):
    """The TRL trainer for a run, built the way `trl sft|dpo --config` builds it.

    The model is given as a path with `model_init_kwargs` and the LoRA settings as
    a `peft_config` from `trl.get_peft_config`, so TRL seeds, loads the model and
    initialises the adapter in the same order as its CLI: the exported recipe then
    trains the same weights (tests/test_recipe_reproduces.py)."""
    from trl import ModelConfig, get_peft_config

    train_args, model_args = trl_args(cfg, total_steps=int(info["total_steps"]), has_eval=eval_ds is not None)
    runtime = dict(output_dir=str(runs.run_dir(info["run_id"]) / "work"), save_strategy="no", disable_tqdm=True,
                   dataloader_num_workers=0, use_cpu=device == "cpu", bf16=bf16, save_only_model=False,
                   model_init_kwargs={"dtype": "bfloat16" if bf16 else "float32", "trust_remote_code": False})
    peft_config = get_peft_config(ModelConfig(**model_args))
    common = dict(model=info["model"]["path"], train_dataset=train_ds, eval_dataset=eval_ds,
                  processing_class=tokenizer, callbacks=[cb], peft_config=peft_config)
    if cfg.method == "sft":
        from trl import SFTConfig, SFTTrainer
        args = SFTConfig(**train_args, **runtime, include_num_input_tokens_seen="non_padding", packing=False)
        trainer = SFTTrainer(args=args, **common)
        from training.run import fast_loss
        fast_loss.install(trainer)  # CPU: answer tokens only through the LM head
    else:
        from trl import DPOConfig, DPOTrainer
        # No ref_model with a PEFT model: TRL computes the reference log-probs
        # with the adapter disabled, i.e. the base model (trl 1.16 dpo_trainer.py).
        trainer = DPOTrainer(args=DPOConfig(**train_args, **runtime), **common)
    from transformers.trainer_callback import PrinterCallback
    # With tqdm off, the Trainer prints every log dict to stdout; our callback already records them.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _train(run_id: str, info: dict, start_step: int, ckpt: Path | None, slice_steps: int, on_event,
           step_holder: dict, deadline: float | None = None) -> dict:
    import torch

    from training.run.base_model import load_tokenizer

    cfg = RunConfig.from_dict(info["config"])
    total = int(info["total_steps"])
    device = compute_device()  # never CUDA in a ZeroGPU Space's main process (a slice on its CPU)
    tokenizer = load_tokenizer(info["model"]["path"])
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    n_eval = eval_rows_limit(device)
    train_ds, eval_ds = _datasets(cfg, tokenizer, runs.read_datasets(run_id), n_eval)
    # The recipe exports the validation rows the run evaluated on, in the precision it trained in.
    runs.update_run(run_id, eval_rows=n_eval if eval_ds is not None else 0, precision="bf16" if bf16 else "fp32")
    patience = cfg.early_stopping_patience if eval_ds is not None else 0
    cb = _make_callback(run_id, slice_end=min(total, start_step + max(1, slice_steps)), total=total,
                        on_event=on_event, elapsed_before=float(info.get("elapsed_s") or 0.0), patience=patience,
                        ckpt_every=env_int("FTLAB_CHECKPOINT_EVERY", 50), deadline=deadline)
    trainer = _trainer(cfg, info, tokenizer, train_ds, eval_ds, cb, device, bf16)
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    finally:
        step_holder["step"] = int(trainer.state.global_step)
    shutil.rmtree(runs.run_dir(run_id) / "work", ignore_errors=True)
    return _outcome(run_id, trainer, tokenizer, cb, total)


def _outcome(run_id: str, trainer, tokenizer, cb, total: int) -> dict:
    """run.json fields for how the slice ended; saves (or restores) the adapter to match."""
    rdir, public = runs.run_dir(run_id), _public_id(run_id)
    step = int(trainer.state.global_step)
    base = {"step": step, "elapsed_s": round(cb.elapsed(), 1), "best_step": cb.best_step,
            "best_eval_loss": cb.best_eval}
    if cb.outcome in ("nan", "diverged"):
        _ensure_adapter_from_checkpoint(run_id)
        return dict(base, status=RunStatus.FAILED, error=cb.message, message=cb.message, failure_kind=cb.outcome)
    if cb.outcome == "stopped":
        runs.clear_stop(run_id)
        _save_adapter_atomic(trainer.model, tokenizer, rdir / "adapter", public)
        return dict(base, status=RunStatus.STOPPED,
                    message=f"Stopped at step {step} of {total}. The adapter trained so far is saved; "
                            "you can resume or evaluate it.")
    if cb.outcome == "early" or step >= total:
        best = rdir / "best_adapter"
        if cb.best_step is not None and (best / "adapter_config.json").is_file() and cb.best_step != step:
            # Early stopping / best-checkpoint restore: the adapter from the best eval loss.
            _copy_adapter(best, rdir / "adapter", public)
            restored = f" The adapter from step {cb.best_step} (lowest eval loss) was kept."
        else:
            _save_adapter_atomic(trainer.model, tokenizer, rdir / "adapter", public)
            restored = ""
        msg = cb.message if cb.outcome == "early" else f"Finished {plural(step, 'step')}.{restored}"
        return dict(base, status=RunStatus.FINISHED, message=msg)
    return dict(base, status=RunStatus.PAUSED,
                message=f"Slice done at step {step} of {total}; the next slice resumes from its checkpoint.")


def stop_idle_run(run_id: str) -> dict:
    """Stop a run that is not training right now (paused between slices, or interrupted):
    its last checkpoint's adapter becomes `adapter/`, so Stop always leaves a usable adapter."""
    info = runs.read_run(run_id)
    if info["status"] in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.STOPPED):
        return info
    if info["status"] == RunStatus.RUNNING:
        runs.request_stop(run_id)  # the training loop sees the flag at its next step
        return info
    rdir = runs.run_dir(run_id)
    if (rdir / "checkpoint" / "adapter_config.json").is_file():
        _copy_adapter(rdir / "checkpoint", rdir / "adapter", _public_id(run_id))
    step = runs.last_checkpoint_step(run_id) or 0
    runs.clear_stop(run_id)
    has = (rdir / "adapter" / "adapter_config.json").is_file()
    msg = (f"Stopped at step {step}. " + ("The adapter from the last checkpoint is saved."
                                           if has else "No checkpoint had been saved yet, so there is no adapter."))
    runs.update_run(run_id, status=RunStatus.STOPPED, step=step, message=msg, owner_pid=None)
    return runs.read_run(run_id)
