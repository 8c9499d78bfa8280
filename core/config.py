"""Configuration read from environment variables, in one place.

Every knob the README documents lives here, so a reader can find what an
environment variable does by searching this file.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default


def data_dir() -> Path:
    """Where runs, caches and uploads live. /data is a Space's persistent disk."""
    explicit = os.environ.get("FTLAB_DATA_DIR", "").strip()
    if explicit:
        path = Path(explicit)
    elif Path("/data").is_dir() and os.access("/data", os.W_OK) and os.environ.get("SPACE_ID"):
        path = Path("/data/ftlab")
    else:
        path = ROOT / ".data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))
