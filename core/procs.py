"""Processes on this machine: is one still alive?"""
from __future__ import annotations

import os
from typing import Any


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid runs on this machine. A zombie (exited or killed,
    not yet reaped by its parent) is not alive: it will never write again."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
