"""What this Space's ZeroGPU GPU was last read as, and what is assumed before any read.

The GPU a ZeroGPU call gets is only visible inside the call's worker, which writes what it read
here (training/gpu/calls.py); the main process, the plan and Lab 3 state it from this file, or
name the assumption. Plain files, no torch.
"""
from __future__ import annotations

import json
import os

from core.config import data_dir

# The Hub's documentation (2026) describes half an RTX PRO 6000 Blackwell by default and the
# whole card with `size="xlarge"` (at twice the quota); older Spaces report an H200 MIG slice.
ASSUMED_ZEROGPU = {"name": "half an NVIDIA RTX PRO 6000 Blackwell", "memory_gb": 48.0}
ASSUMPTION_NOTE = ("the 2026 default; older Spaces get an H200 slice")
LAST_READ_FILE = "zerogpu_device.json"


def remember_zerogpu_device(device: dict) -> None:
    """Kept on disk by a ZeroGPU worker (a GPU it read), for the main process to state."""
    if device.get("kind") != "gpu":
        return
    path = data_dir() / LAST_READ_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(device), encoding="utf-8")
    os.replace(tmp, path)


def last_zerogpu_device() -> dict | None:
    try:
        value = json.loads((data_dir() / LAST_READ_FILE).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) and value.get("name") and value.get("memory_gb") else None
    except (OSError, ValueError):
        return None


def zerogpu_memory() -> tuple[float, str]:
    """(GB, how it is known) for ZeroGPU: as last read by a GPU call, else the assumption."""
    last = last_zerogpu_device()
    if last:
        return float(last["memory_gb"]), f"ZeroGPU: {last['memory_gb']:g} GB, {last['name']} as this Space's last GPU call read it"
    return ASSUMED_ZEROGPU["memory_gb"], (f"ZeroGPU: {ASSUMED_ZEROGPU['memory_gb']:g} GB assumed "
                                          f"({ASSUMED_ZEROGPU['name']}, {ASSUMPTION_NOTE}; not read yet)")
