"""ZeroGPU wrapping of a training slice.

On a ZeroGPU Space, `@spaces.GPU` runs `train_slice_gpu` in a forked worker
that holds a GPU for the requested duration; elsewhere the decorator returns
the function unchanged, so CPU runs take exactly the same path.

Inside, the trainer runs in a thread and reports through a queue; the
generator yields plain dicts (pickled across the fork, so never tensors).
All state that must survive the call (checkpoint, log, status, STOP flag)
lives on disk in the run directory, which the worker and the app share.

`spaces` must be imported before anything touches CUDA: this module imports
no torch at all, and the UI imports it before any training.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from typing import Iterator

import spaces

from training.run import runs
from training.run.runs import RunStatus

_DONE = object()
SAVE_MARGIN_S = 15


def slice_duration(run_id: str, max_slice_steps: int | None = None) -> int:
    """Seconds to ask ZeroGPU for one slice, from the plan stored with the run.

    Called by `spaces` with the task's own arguments before scheduling; an
    honest, small request keeps the learner's quota for later slices.
    """
    try:
        plan = runs.read_run(run_id)["plan"]
        seconds = int(plan["gpu_duration_s"])
        if max_slice_steps:
            seconds = min(seconds, int(25 + max_slice_steps * float(plan["s_per_step"]) * 1.3))
        return max(15, seconds)
    except Exception:  # a missing run fails later with a clear message; ask for the default
        return 60


@spaces.GPU(duration=slice_duration)
def train_slice_gpu(run_id: str, max_slice_steps: int | None = None) -> Iterator[dict]:
    """Train one slice; yields progress dicts, the last one {"kind": "slice_end", "status": ...}."""
    from training.run import engine  # heavy imports happen inside the GPU worker

    events: queue.Queue = queue.Queue()
    result: dict = {}
    deadline = None
    if os.environ.get("SPACES_ZERO_GPU"):
        # ZeroGPU kills the worker when the requested time is up: leave room to save.
        deadline = time.monotonic() + slice_duration(run_id, max_slice_steps) - SAVE_MARGIN_S

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
        yield {k: v for k, v in event.items() if isinstance(v, (str, int, float, bool, type(None)))}
    thread.join()
    info = result.get("info") or {}
    yield {"kind": "slice_end", "status": str(info.get("status", RunStatus.FAILED)), "step": info.get("step"),
           "message": info.get("message") or result.get("error", "")}


def train_until_done(run_id: str, max_slice_steps: int | None = None) -> Iterator[dict]:
    """Run slices one after another until the run is finished, stopped or failed."""
    while True:
        last: dict = {}
        for event in train_slice_gpu(run_id, max_slice_steps):
            last = event
            yield event
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


def _eval_duration(run_id: str, n_samples: int | None = 5, design: dict | None = None, *a, **k) -> int:
    # Two batched greedy passes per batch of examples, seconds each on a GPU, plus loading;
    # the adversarial cases are answered in the same batches.
    cases = len((design or {}).get("cases") or []) or 6
    return int(min(180, 30 + 2 * (max(1, int(n_samples or 36)) + cases)))


def _forget_models_on_zerogpu() -> None:
    """On ZeroGPU a GPU task runs in a forked worker: the app process's model cache is not
    visible there, whatever the worker caches dies with it (or, when ZeroGPU reuses an idle
    worker, would sit on a GPU that has been handed back). So there each GPU call loads the
    model once and releases it at the end; turns within one call (and a streamed reply)
    still use one load. Off ZeroGPU the same code keeps the model cached between calls."""
    if os.environ.get("SPACES_ZERO_GPU"):
        from training.evaluation.inference import MODEL_CACHE
        MODEL_CACHE.clear()


@spaces.GPU(duration=_eval_duration)
def evaluate_gpu(run_id: str, n_samples: int | None = 5, design: dict | None = None) -> Iterator[dict]:
    """Base vs tuned on the test split and the design's adversarial cases
    (training.evaluation.evaluate.evaluate_stream), on the GPU when there is one. Yields its progress
    dicts (plain data: they are pickled across ZeroGPU's fork), the last one {"kind": "done", "metrics": ...}."""
    from training.evaluation import evaluate
    try:
        yield from evaluate.evaluate_stream(run_id, n_samples=n_samples, design=design)
    finally:
        _forget_models_on_zerogpu()


@spaces.GPU(duration=30)
def chat_gpu(run_id: str, history: list, text: str, use_adapter: bool = True) -> Iterator[list]:
    """One chat turn with the tuned (or base) model; yields the history as the reply grows (plain dicts)."""
    from training.evaluation import inference
    try:
        yield from inference.chat_stream(run_id, history, text, use_adapter=use_adapter)
    finally:
        _forget_models_on_zerogpu()
