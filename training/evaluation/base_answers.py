"""The base model's evaluation answers, kept for the next run that asks the same questions.

Greedy answers are a function of the base model's weights, the prompts in their order, the
token cap, the JSON stop, the rows per batch and where the numbers are computed
(device, dtype, torch and transformers versions). Learners on one server mostly evaluate
runs of the same base on the same built-in split: the first evaluation answers both sides,
every later one only its tuned side (about half the time, and half the GPU quota on ZeroGPU).
Kept under `<data_dir>/base_answers/`, removed with the runs' retention (`sweep`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.config import data_dir
from training.run import runs


def folder() -> Path:
    return data_dir() / "base_answers"


def ttl_s() -> float:
    return runs.run_ttl_hours() * 3600


def _weights_stamp(model_path: str) -> list:
    """The weight files' names, sizes and times: a rebuilt or updated base gets a new key."""
    path = Path(model_path)
    if not path.is_dir():
        return [str(model_path)]
    return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in path.iterdir()
                  if p.suffix in (".safetensors", ".bin", ".json"))


def key(model_path: str, prompts: list, cap: int, json_stop: bool, rows_per_call: int, device: str,
        dtype: str, threads: int) -> str:
    import torch
    import transformers
    what = {"model": str(model_path), "weights": _weights_stamp(model_path), "prompts": prompts, "cap": int(cap),
            "json_stop": bool(json_stop), "rows": int(rows_per_call), "device": device, "dtype": dtype,
            "threads": int(threads),
            "torch": torch.__version__, "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def load(k: str, n: int) -> list[str] | None:
    """The kept answers for this key (n of them), or None."""
    try:
        answers = json.loads((folder() / f"{k}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(answers, list) and len(answers) == n and all(isinstance(a, str) for a in answers)
    return answers if ok else None


def save(k: str, answers: list[str]) -> None:
    folder().mkdir(parents=True, exist_ok=True)
    path = folder() / f"{k}.json"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def sweep(now: float | None = None) -> int:
    """Remove answers not used for the runs' TTL; returns how many."""
    now = time.time() if now is None else now
    removed = 0
    for p in folder().glob("*.json") if folder().is_dir() else []:
        try:
            if now - p.stat().st_mtime > ttl_s():
                p.unlink()
                removed += 1
        except OSError:
            pass  # a concurrent sweep got there first
    return removed


def touch(k: str) -> None:
    """Used again: kept for another TTL."""
    try:
        os.utime(folder() / f"{k}.json")
    except OSError:
        pass
