"""Shared pieces of the benchmark scripts: rows, medians, the table, the machine line."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def quick() -> bool:
    """Tiny settings (smoke test): set BENCH_QUICK=1."""
    return os.environ.get("BENCH_QUICK", "").strip() not in ("", "0")


@dataclass
class Row:
    metric: str
    ours: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    machine: str = ""
    met: bool | None = None   # None: informational row

    def cells(self) -> list[str]:
        target = self.target
        if self.met is not None:
            target += " ✅" if self.met else " ❌"
        return [self.metric, self.ours, self.baseline, self.ratio, target, self.machine or machine()]


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100); no interpolation, so p95 is a real sample."""
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, int(round(q / 100 * len(values) + 0.5)) - 1))
    return values[k]


def ratio(ours: float, base: float, digits: int = 2) -> str:
    if not base or base != base or ours != ours:
        return "—"
    return f"{ours / base:.{digits}f}x"


_MACHINE: str | None = None


def machine() -> str:
    """Short description of where the numbers were taken: CPU model, cores, RAM."""
    global _MACHINE  # a description of this host, the same for everyone: safe to cache
    if _MACHINE is None:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        try:
            mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                              if l.startswith("MemTotal")).split()[1])
            mem = f", {mem_kb / 1024 / 1024:.0f} GB RAM"
        except (OSError, StopIteration, ValueError):
            mem = ""
        _MACHINE = f"{cpu}, {os.cpu_count()} cores{mem}"
    return _MACHINE


def table(rows: list[Row]) -> str:
    head = ["metric", "ours", "baseline", "ratio", "target", "machine"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in r.cells()) + " |")
    return "\n".join(lines)


def run_py(code_or_args: list[str], *, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """A fresh interpreter in the repo root (each side of a comparison in its own process)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([PY, *code_or_args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
