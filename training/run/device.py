"""Where GPU work runs, where this process may put tensors, and what the GPU is, as read.

Three placements (`placement()`), decided once per process from its environment:

- "zerogpu": a ZeroGPU Space (`SPACES_ZERO_GPU`). Every piece of GPU work is one
  `@spaces.GPU` call in a forked worker (training/gpu/calls.py). The main process has no
  GPU: `spaces` emulates one there (torch.cuda.is_available() says True, real CUDA init
  raises), so `compute_device()` answers "cpu" in it and "cuda" only inside the worker.
- "gpu": a dedicated GPU (a Space duplicated onto GPU hardware, a workstation). The
  decorator is the identity; work runs in this process, on CUDA.
- "cpu": no GPU. The same code path, on the CPU.

No torch at import (the UI imports this module).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from core.gpu import ASSUMED_ZEROGPU, ASSUMPTION_NOTE, last_zerogpu_device, remember_zerogpu_device  # noqa: F401

def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "t", "true")


def on_zerogpu() -> bool:
    """The switch `spaces` itself reads (spaces/config.py)."""
    return _true(os.environ.get("SPACES_ZERO_GPU"))


def in_zerogpu_worker() -> bool:
    """True inside the worker `spaces.GPU` forked for a call (the package's own flag)."""
    wrappers = sys.modules.get("spaces.zero.wrappers")
    return bool(getattr(wrappers, "forked", False))


def _cuda_here() -> bool:
    torch = sys.modules.get("torch")
    if torch is not None:
        return bool(torch.cuda.is_available())
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def placement() -> str:
    """"zerogpu" | "gpu" | "cpu": which path GPU work takes (see the module docstring)."""
    if on_zerogpu():
        return "zerogpu"
    return "gpu" if _cuda_here() else "cpu"


def compute_device() -> str:
    """Where *this* process puts tensors: never CUDA in a ZeroGPU Space's main process."""
    import torch

    if on_zerogpu() and not in_zerogpu_worker():
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def read_device() -> dict:
    """The device this process computes on, read now (call it where the work runs)."""
    if compute_device() == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        return {"kind": "gpu", "name": str(props.name), "memory_gb": round(props.total_memory / 1e9, 1),
                "read_at": time.time()}
    return {"kind": "cpu", "name": "CPU", "cores": os.cpu_count() or 1, "read_at": time.time()}


def driver_model() -> str | None:
    """The GPU model the NVIDIA driver reports to this process (what `spaces` reads to pick its
    emulated device), or None where there is no driver to read."""
    try:
        for folder in Path("/proc/driver/nvidia/gpus").iterdir():
            info = folder / "information"
            if info.is_file():
                for line in info.read_text().splitlines():
                    if line.startswith("Model:"):
                        return line.split("Model:", 1)[1].strip()
    except OSError:
        return None
    return None


def describe_gpu() -> str:
    """The GPU as the plan states it: read when it can be, the assumption named when not."""
    where = placement()
    if where == "gpu":
        if "torch" in sys.modules:
            d = read_device()
            if d["kind"] == "gpu":
                return f"this machine's {d['name']} ({d['memory_gb']:g} GB, read now)"
        return "this machine's GPU (read when the run starts)"
    if where != "zerogpu":
        return "no GPU"
    last = last_zerogpu_device()
    if last:
        when = time.strftime("%d %b %H:%M UTC", time.gmtime(float(last.get("read_at") or 0)))
        return f"ZeroGPU's {last['name']} ({last['memory_gb']:g} GB, read by this Space's last GPU call, {when})"
    model = driver_model()
    if model:
        return (f"ZeroGPU's {model} (as the driver names it; its memory is read when the first GPU call "
                "runs)")
    return (f"ZeroGPU's GPU, assumed to be {ASSUMED_ZEROGPU['name']} ({ASSUMED_ZEROGPU['memory_gb']:g} GB, "
            f"{ASSUMPTION_NOTE}): read when the first GPU call runs")
