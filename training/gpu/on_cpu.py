"""The CPU way on when ZeroGPU refuses: training or evaluation in a clean process of its own.

A ZeroGPU Space's main process cannot train on its CPU itself: `spaces` emulates CUDA there
(`torch.cuda.is_available()` is True, a real CUDA call raises), and the Trainer, seeing "CUDA",
saves and restores CUDA RNG state with every checkpoint. So `run(kind, ...)` starts this module
as a process without ZeroGPU in its environment, where torch sees the machine as it is (no GPU),
and reads its progress back: one `FTLAB_EVENT {json}` line per event on stdout.

    python -m training.gpu.on_cpu train <run_id>
    python -m training.gpu.on_cpu evaluate <run_id> <n or 0> <design json>

The child stops (training: at its next step, with a checkpoint) when the app process that
started it is gone, so no run trains on unwatched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent.parent
PREFIX = "FTLAB_EVENT "
ZEROGPU_ENV = ("SPACES_ZERO_GPU", "SPACES_ZERO_DEVICE_API_URL", "FTLAB_ZEROGPU_STANDIN")


def run(kind: str, *args: str) -> Iterator[dict]:
    """Start the child and yield its events; closing the generator (the learner left) stops it."""
    env = {k: v for k, v in os.environ.items() if k not in ZEROGPU_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "training.gpu.on_cpu", kind, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PREFIX):
                yield json.loads(line[len(PREFIX):])
        if proc.wait() != 0:
            raise RuntimeError(f"the CPU process ended with exit code {proc.returncode}")
    finally:
        if proc.poll() is None:
            if kind == "train":
                from training.run import runs
                runs.request_stop(args[0])  # saves a checkpoint at its next step, then ends
                try:
                    proc.wait(timeout=600)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
            proc.wait()


def _emit(event: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def _watch_parent(on_gone) -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        on_gone()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    kind, run_id = argv[0], argv[1]
    from training.gpu import calls  # no ZeroGPU here: `spaces.GPU` is the identity
    from training.run import runs

    if kind == "train":
        _watch_parent(lambda: runs.request_stop(run_id))
        for event in calls.train_on_cpu(run_id):
            _emit(event)
        return 0
    if kind == "evaluate":
        _watch_parent(lambda: os._exit(1))
        n = int(argv[2]) or None
        design = json.loads(argv[3]) if len(argv) > 3 else None
        for event in calls.evaluate_gpu(run_id, n, design):
            _emit(event)
        return 0
    raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
