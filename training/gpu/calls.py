"""Every piece of GPU work as one `@spaces.GPU` call: a training slice, an evaluation, a chat reply.

On a ZeroGPU Space (`SPACES_ZERO_GPU`) `spaces.GPU` runs each call in a worker process forked
for it (or an idle one reused), which holds a GPU for the duration the call asked for and is
killed when that is up; arguments, every yielded value and the result cross the fork by
pickling, so only plain values are yielded (never tensors); globals changed in the worker are
not seen here. Before the call runs, ZeroGPU charges the *requested* duration to the learner's
daily quota, or refuses it. Elsewhere (a CPU, or a Space duplicated onto a dedicated GPU) the
decorator returns the function unchanged and the same code runs in this process
(training/run/device.py says which path is taken).

So each call asks for the least that fits its own work, computed here before it runs
(`slice_request`, `eval_request`, `chat_request`), and `train_until_done` turns a refused or
killed call into a paused run with one clear sentence (training/gpu/zerogpu.py), never a run
left "running". All state that must survive a call (checkpoint, log, status, STOP flag) lives
on disk in the run directory, which the worker and the app share.

`spaces` must be imported before anything touches CUDA: this module imports no torch, and the
UI imports it before any training. Tests put the real package in front of a fake scheduler
(FTLAB_ZEROGPU_STANDIN, devtools/zerogpu.py; refused unless the scheduler is on 127.0.0.1).
"""
from __future__ import annotations

import math
import os
import queue
import threading
import time
from typing import Iterator

if os.environ.get("FTLAB_ZEROGPU_STANDIN", "").strip() == "1":
    from devtools import zerogpu as _standin

    _standin.activate()

import spaces  # noqa: E402  (after the stand-in, before anything touches CUDA)

from core.config import env_float, env_int  # noqa: E402
from training.gpu import zerogpu  # noqa: E402
from training.run import runs  # noqa: E402
from training.run.device import in_zerogpu_worker, on_zerogpu, read_device, remember_zerogpu_device  # noqa: E402
from training.run.runs import RunStatus  # noqa: E402

_DONE = object()
SAVE_MARGIN_S = 15  # at least; a fifth of a longer request
# Evaluation and chat requests, sized from their own work (estimates for a ZeroGPU GPU).
GPU_S_PER_EVAL_EXAMPLE = env_float("FTLAB_GPU_S_PER_EVAL_EXAMPLE", 2.0)  # base + tuned answer, batched
GPU_S_PER_TOKEN = env_float("FTLAB_GPU_S_PER_TOKEN", 0.05)               # one streamed chat token
MAX_EVAL_DURATION_S = env_int("FTLAB_MAX_GPU_EVAL_DURATION", 180)


# ------------------------------------------------------------------ training

def measured_s_per_step(run_id: str) -> float | None:
    """Seconds per optimizer step this run has shown so far (the median over its logged steps),
    once it has trained two in a row: later slices ask for what the device really does."""
    points = sorted({int(e["step"]): float(e["elapsed"]) for e in runs.read_log(run_id)
                     if "loss" in e and isinstance(e.get("elapsed"), (int, float))}.items())
    rates = [(t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(points, points[1:]) if s2 > s1 and t2 > t1]
    if not rates:
        return None
    rates.sort()
    return rates[len(rates) // 2]


def slice_request(run_id: str, max_slice_steps: int | None = None) -> int:
    """Seconds the next slice asks ZeroGPU for: the steps it will train (what is left of the run,
    at most a slice), at the measured speed once there is one, else the plan's estimate."""
    from training.run import engine

    info = runs.read_run(run_id)
    plan = info["plan"]
    done = (runs.last_checkpoint_step(run_id) or 0) if info.get("has_checkpoint") else 0
    steps = max(1, min(int(max_slice_steps or plan["slice_steps"]), int(info["total_steps"]) - done))
    s_per_step = measured_s_per_step(run_id) or float(plan["s_per_step"])
    return engine.gpu_request_s(steps, s_per_step, float(plan.get("eval_s_per_step") or 0.0))


def _slice_duration(run_id: str, max_slice_steps: int | None = None, request_s: int | None = None) -> int:
    """Called by `spaces` with the task's own arguments before scheduling."""
    if request_s:
        return int(request_s)
    try:
        return slice_request(run_id, max_slice_steps)
    except Exception:  # noqa: BLE001 - a missing run fails in the worker with a clear message
        return 60


@spaces.GPU(duration=_slice_duration)
def train_slice_gpu(run_id: str, max_slice_steps: int | None = None, request_s: int | None = None) -> Iterator[dict]:
    """Train one slice; yields progress dicts, the last one {"kind": "slice_end", "status": ...}."""
    from training.run import engine  # heavy imports happen inside the GPU worker

    hardware = read_device()  # the device as it is, read where the work runs
    runs.update_run(run_id, hardware=hardware)
    deadline = None
    if in_zerogpu_worker():
        remember_zerogpu_device(hardware)
        # ZeroGPU kills the worker when the requested time is up: leave room to save.
        seconds = _slice_duration(run_id, max_slice_steps, request_s)
        deadline = time.monotonic() + seconds - max(SAVE_MARGIN_S, 0.2 * seconds)
    events: queue.Queue = queue.Queue()
    result: dict = {}

    def work() -> None:
        try:
            result["info"] = engine.run_slice(run_id, max_slice_steps=max_slice_steps, on_event=events.put,
                                              deadline=deadline)
        except Exception as exc:  # run_slice records failures itself; this is a last resort
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=work, name=f"train-{run_id[:6]}", daemon=True)
    thread.start()
    while True:
        event = events.get()
        if event is _DONE:
            break
        # Only plain values cross ZeroGPU's fork.
        yield {k: v for k, v in event.items() if isinstance(v, (str, int, float, bool, type(None)))}
    thread.join()
    info = result.get("info") or {}
    yield {"kind": "slice_end", "status": str(info.get("status", RunStatus.FAILED)), "step": info.get("step"),
           "message": info.get("message") or result.get("error", "")}


def _checkpoint_step(run_id: str) -> int:
    return (runs.last_checkpoint_step(run_id) or 0) if (runs.run_dir(run_id) / "checkpoint").is_dir() else 0


def _last_logged_step(run_id: str) -> int:
    return max((int(e.get("step") or 0) for e in runs.read_log(run_id)), default=0)


def _refused(run_id: str, outcome: zerogpu.GpuOutcome, slice_no: int, request: int | None) -> dict:
    """A call ZeroGPU refused before it ran: nothing changed but the status, which becomes
    paused (resumable) even for a run that never started, and the refusal, kept for the page."""
    step = _checkpoint_step(run_id)
    refusal = dict(outcome.to_dict(), what=f"slice {slice_no} of this run", needs_s=request, at=time.time())
    msg = (f"ZeroGPU refused slice {slice_no} ({outcome.kind.replace('_', ' ')}); the run is paused at step "
           f"{step}, nothing lost.")
    runs.update_run(run_id, status=RunStatus.PAUSED, owner_pid=None, message=msg, gpu_refusal=refusal)
    return {"kind": "gpu_refused", "status": str(RunStatus.PAUSED), "step": step, "message": msg}


def _worker_lost(run_id: str, outcome: zerogpu.GpuOutcome, slice_no: int, request: int | None,
                 elapsed: float) -> dict:
    """The slice's worker ended without a result: killed by ZeroGPU at its duration, died (out
    of memory), or failed in `spaces` itself. The run goes back to its last checkpoint, paused."""
    info = runs.read_run(run_id)
    ckpt, last = _checkpoint_step(run_id), _last_logged_step(run_id)
    owner = info.get("owner_pid")
    if outcome.kind != "aborted" and info["status"] == RunStatus.RUNNING and owner != os.getpid() \
            and runs.pid_alive(owner):
        # `spaces` gave up on the call, but its worker lives on with the trainer still running
        # (e.g. a value that failed to pickle): stop it at its next step, with a checkpoint.
        runs.request_stop(run_id)
        msg = (f"The GPU call of slice {slice_no} failed ({outcome.detail[:160]}); the trainer was asked to stop "
               "and save: press Resume once it shows stopped.")
        runs.update_run(run_id, gpu_note=msg)
        return {"kind": "gpu_lost", "status": str(RunStatus.RUNNING), "step": ckpt, "message": msg}
    if outcome.kind == "aborted":
        msg = zerogpu.killed_sentence(slice_no, int(request or 0), elapsed, max(last, ckpt), ckpt,
                                      int(info.get("total_steps") or 0))
    else:
        msg = (f"The GPU call of slice {slice_no} failed ({outcome.detail[:160]}); the run goes on from its "
               f"checkpoint at step {ckpt}: press Resume.")
    if info["status"] in (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.PLANNED, RunStatus.PAUSED):
        # A killed worker's claim on the run dies with it (its pid is gone): release it here.
        # `gpu_note` stays with the run (the message is cleared when the next slice starts).
        runs.update_run(run_id, status=RunStatus.PAUSED, owner_pid=None, message=msg, step=ckpt, gpu_note=msg,
                        gpu_kills=int(info.get("gpu_kills") or 0) + 1)
    status = runs.read_run(run_id)["status"]
    return {"kind": "gpu_lost", "status": str(status), "step": ckpt, "message": msg}


def train_until_done(run_id: str, max_slice_steps: int | None = None) -> Iterator[dict]:
    """Run slices one after another until the run is finished, stopped, failed, or a GPU call is
    refused. A slice killed by ZeroGPU is followed by the next one (from the checkpoint), once
    per checkpoint: a second kill with no progress pauses the run for the learner."""
    killed_at: int | None = None
    while True:
        info = runs.read_run(run_id)
        slice_no = int(info.get("slices") or 0) + 1
        request = slice_request(run_id, max_slice_steps) if on_zerogpu() else None
        started, got_gpu, last = time.monotonic(), False, {}
        try:
            for event in train_slice_gpu(run_id, max_slice_steps, request):
                if not got_gpu:
                    got_gpu = True
                    if info.get("gpu_refusal"):
                        runs.update_run(run_id, gpu_refusal=None)
                last = event
                yield event
        except Exception as exc:  # noqa: BLE001 - ZeroGPU's errors become the run's state
            outcome = zerogpu.classify(exc)
            if outcome is None:
                raise
            if outcome.refused:
                yield _refused(run_id, outcome, slice_no, request)
                return
            end = _worker_lost(run_id, outcome, slice_no, request, time.monotonic() - started)
            yield end
            ckpt = _checkpoint_step(run_id)
            if outcome.kind != "aborted" or end["status"] != RunStatus.PAUSED or killed_at == ckpt:
                return
            killed_at = ckpt
            continue
        status = last.get("status")
        if last.get("kind") != "slice_end" or status != RunStatus.PAUSED:
            return
        if runs.stop_requested(run_id):
            # Stop pressed between slices: no trainer is running to see the flag.
            from training.run.engine import stop_idle_run
            info = stop_idle_run(run_id)
            yield {"kind": "slice_end", "status": str(info["status"]), "step": info.get("step"),
                   "message": info.get("message", "")}
            return


def train_on_cpu(run_id: str) -> Iterator[dict]:
    """Go on training on the CPU (the learner's choice when ZeroGPU refuses): the slices' own code
    without the GPU call around it. On a ZeroGPU Space it runs in a clean process of its own
    (training/gpu/on_cpu.py: `spaces` emulates CUDA in this one, and the Trainer would save CUDA
    RNG state with each checkpoint); elsewhere in this process."""
    runs.update_run(run_id, gpu_refusal=None)
    if on_zerogpu():
        from training.gpu import on_cpu
        yield from on_cpu.run("train", run_id)
        return
    plain = getattr(train_slice_gpu, "__wrapped__", train_slice_gpu)
    while True:
        last: dict = {}
        for event in plain(run_id):
            last = event
            yield event
        if last.get("kind") != "slice_end" or last.get("status") != RunStatus.PAUSED:
            return
        if runs.stop_requested(run_id):
            from training.run.engine import stop_idle_run
            info = stop_idle_run(run_id)
            yield {"kind": "slice_end", "status": str(info["status"]), "step": info.get("step"),
                   "message": info.get("message", "")}
            return


# ------------------------------------------------------------------ evaluation and chat

def evaluate_on_cpu(run_id: str, n_samples: int | None = None, design: dict | None = None) -> Iterator[dict]:
    """The evaluation on the CPU (the choice when ZeroGPU refuses); on ZeroGPU in a clean process
    of its own, as `train_on_cpu`."""
    if on_zerogpu():
        import json

        from training.gpu import on_cpu
        yield from on_cpu.run("evaluate", run_id, str(int(n_samples or 0)), json.dumps(design))
        return
    yield from getattr(evaluate_gpu, "__wrapped__", evaluate_gpu)(run_id, n_samples, design)


def eval_request(run_id: str, n_samples: int | None = None, design: dict | None = None) -> int:
    """Seconds an evaluation asks for: loading, then a base and a tuned answer per example and
    per adversarial case (batched on the GPU), within the cap."""
    from training.evaluation.evaluate import default_n

    try:
        data = runs.read_datasets(run_id)
        test = len(data["test"] or data["validation"])
    except Exception:  # noqa: BLE001 - the worker reports a missing run itself
        test = 36
    n = int(n_samples) if n_samples else default_n(test, "cuda")
    return eval_request_for(n, len((design or {}).get("cases") or []))


def eval_request_for(n_examples: int, n_cases: int) -> int:
    from training.run import engine

    need = engine.GPU_OVERHEAD_S + GPU_S_PER_EVAL_EXAMPLE * (max(1, n_examples) + n_cases)
    return int(min(MAX_EVAL_DURATION_S, max(engine.MIN_GPU_DURATION_S, math.ceil(need))))


def chat_request(max_new_tokens: int | None = None) -> int:
    """Seconds a chat reply asks for: loading the tuned model, then the reply's tokens."""
    from training.evaluation.inference import CHAT_MAX_NEW_TOKENS
    from training.run import engine

    need = engine.GPU_OVERHEAD_S + GPU_S_PER_TOKEN * int(max_new_tokens or CHAT_MAX_NEW_TOKENS)
    return int(min(engine.MAX_GPU_DURATION_S, max(engine.MIN_GPU_DURATION_S, math.ceil(need))))


def _eval_duration(run_id: str, n_samples: int | None = None, design: dict | None = None, *a, **k) -> int:
    return eval_request(run_id, n_samples, design)


def _forget_models_on_zerogpu() -> None:
    """On ZeroGPU a GPU call runs in a forked worker, so the model cache
    (training/evaluation/model_cache.py) cannot cross the fork: this process's cache is not
    visible there, and what the worker loads dies with it or, when ZeroGPU reuses an idle
    worker, would sit on a GPU that has been handed back. So there each GPU call loads the
    model once and releases it at the end; turns within one call (and a streamed reply) still
    use one load. Off ZeroGPU the same code keeps the model cached between calls."""
    if on_zerogpu():
        from training.evaluation.inference import MODEL_CACHE
        MODEL_CACHE.clear()


@spaces.GPU(duration=_eval_duration)
def evaluate_gpu(run_id: str, n_samples: int | None = None, design: dict | None = None) -> Iterator[dict]:
    """Base vs tuned on the test split and the design's adversarial cases
    (training.evaluation.evaluate.evaluate_stream), in its own GPU call. Yields its progress
    dicts (plain data: they are pickled across ZeroGPU's fork), the last one {"kind": "done", "metrics": ...}."""
    from training.evaluation import evaluate
    try:
        yield from evaluate.evaluate_stream(run_id, n_samples=n_samples, design=design)
    finally:
        _forget_models_on_zerogpu()


@spaces.GPU(duration=lambda *a, **k: chat_request())
def chat_gpu(run_id: str, history: list, text: str, use_adapter: bool = True) -> Iterator[list]:
    """One chat turn with the tuned (or base) model in its own GPU call; yields the history as
    the reply grows (plain dicts)."""
    from training.evaluation import inference
    try:
        yield from inference.chat_stream(run_id, history, text, use_adapter=use_adapter)
    finally:
        _forget_models_on_zerogpu()
