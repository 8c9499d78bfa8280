"""Training runs on disk: one directory per run, named by an unguessable id.

Layout under `<data_dir>/runs/<run_id>/` (docs/architecture.md, extended):

    run.json          config, status, step/total_steps, best_step, timestamps, error,
                      owner_pid + heartbeat_at (so a dead process shows as interrupted)
    log.jsonl         one event per line: step, loss | eval_loss | learning_rate, tokens_per_s, elapsed
    data/             train/validation/test JSONL the run was started with (slices re-read them,
                      also inside ZeroGPU's forked worker)
    checkpoint/       last slice's full Trainer state (adapter, optimizer, scheduler, step, RNG)
    best_adapter/     adapter at the best eval loss so far (early stopping restores it)
    adapter/          the final (or best) adapter: PEFT save_pretrained + tokenizer files
    merged/           optional merged model (merge_and_unload), written only after adapter/
    metrics.json      evaluation base vs tuned, and the side-by-side samples
    STOP              present when the learner pressed Stop (a file works across the fork)

No torch here: the UI imports this module.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import zipfile
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable

from core.config import data_dir, env_float, env_int
from core.procs import pid_alive



class RunStatus(StrEnum):
    """A run's status as run.json stores it (a StrEnum: it is written and read as its text)."""
    PLANNED = "planned"          # created, waiting for the training slot
    RUNNING = "running"
    PAUSED = "paused"            # between slices
    STOPPED = "stopped"          # the learner pressed Stop
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process died while it trained


# A run in one of these can go on training (Resume).
RESUMABLE = (RunStatus.PAUSED, RunStatus.INTERRUPTED, RunStatus.STOPPED)
# token_urlsafe(18) gives 24 characters of [A-Za-z0-9_-]; accept a small range
# so a hand-made id can never contain "/" or "..".
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class RunNotFound(LookupError):
    pass


def runs_root() -> Path:
    root = data_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def valid_run_id(run_id: Any) -> bool:
    return isinstance(run_id, str) and bool(RUN_ID_RE.match(run_id))


def new_run_id() -> str:
    return secrets.token_urlsafe(18)


def run_dir(run_id: str) -> Path:
    """The directory of a run. The id is checked before any path is built."""
    if not valid_run_id(run_id):
        raise RunNotFound("That run id is not valid.")
    return runs_root() / run_id


def exists(run_id: Any) -> bool:
    return valid_run_id(run_id) and (run_dir(run_id) / "run.json").is_file()


# ------------------------------------------------------------------ run.json

@contextmanager
def _locked(run_id: str):
    # Serialises read-modify-write of run.json between the UI, the trainer
    # thread and a forked GPU worker.
    path = run_dir(run_id) / ".lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_write_json(path: Path, value: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def create_run(config: dict, datasets: dict[str, list[dict]] | None = None, *, total_steps: int = 0,
               **facts: Any) -> str:
    """Make a run directory with status `planned`; returns its id.

    `config` is the RunConfig as `to_dict` wrote it; `facts` are what the engine
    decided when it made the run (the model it loads and from where, the plan)."""
    run_id = new_run_id()
    path = run_dir(run_id)
    path.mkdir(parents=True)
    (path / "data").mkdir()
    for split, rows in (datasets or {}).items():
        if split not in ("train", "validation", "test"):
            continue
        write_jsonl(path / "data" / f"{split}.jsonl", rows)
    now = time.time()
    _atomic_write_json(path / "run.json", {
        "run_id": run_id, "config": config, **facts, "status": RunStatus.PLANNED, "step": 0,
        "total_steps": int(total_steps), "best_step": None,
        "best_eval_loss": None, "created_at": now, "updated_at": now,
        "error": None, "message": "", "owner_pid": None, "owner_host": None,
        "heartbeat_at": None, "slices": 0,
    })
    return run_id


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash mid-write: skip it, keep the rest
                if isinstance(value, dict):
                    out.append(value)
    except OSError:
        pass
    return out


def read_datasets(run_id: str) -> dict[str, list[dict]]:
    base = run_dir(run_id) / "data"
    return {s: read_jsonl(base / f"{s}.jsonl") for s in ("train", "validation", "test")}


def heartbeat_stale_s() -> float:
    return env_float("FTLAB_HEARTBEAT_STALE_S", 600.0)


def _looks_dead(info: dict) -> bool:
    if info.get("status") != RunStatus.RUNNING:
        return False
    if info.get("owner_host") == socket.gethostname() and not pid_alive(info.get("owner_pid")):
        return True
    beat = info.get("heartbeat_at") or info.get("updated_at") or 0
    return time.time() - float(beat) > heartbeat_stale_s()


def read_run(run_id: str) -> dict:
    """run.json, with a running run whose process died reported as `interrupted`."""
    if not exists(run_id):
        raise RunNotFound("This run no longer exists (runs are deleted after a while).")
    path = run_dir(run_id)
    info = _read_json(path / "run.json")
    if _looks_dead(info):
        with _locked(run_id):
            info = _read_json(path / "run.json")
            if _looks_dead(info):
                info["status"] = RunStatus.INTERRUPTED
                info["message"] = (
                    "The app stopped while this run was training. Its last checkpoint "
                    f"(step {last_checkpoint_step(run_id) or 0}) is kept: resume it or download the adapter.")
                info["updated_at"] = time.time()
                _atomic_write_json(path / "run.json", info)
    info["has_checkpoint"] = (path / "checkpoint").is_dir()
    info["has_adapter"] = (path / "adapter" / "adapter_config.json").is_file()
    return info


def update_run(run_id: str, **fields: Any) -> dict:
    path = run_dir(run_id)
    with _locked(run_id):
        info = _read_json(path / "run.json")
        info.update(fields)
        info["updated_at"] = time.time()
        _atomic_write_json(path / "run.json", info)
    return info


def claim(run_id: str) -> dict:
    """Mark a run as running in this process (pid + heartbeat)."""
    return update_run(run_id, status=RunStatus.RUNNING, owner_pid=os.getpid(),
                      owner_host=socket.gethostname(), heartbeat_at=time.time(),
                      error=None)


def heartbeat(run_id: str, **fields: Any) -> dict:
    return update_run(run_id, heartbeat_at=time.time(), owner_pid=os.getpid(),
                      owner_host=socket.gethostname(), **fields)


def last_checkpoint_step(run_id: str) -> int | None:
    state = _read_json(run_dir(run_id) / "checkpoint" / "trainer_state.json")
    step = state.get("global_step")
    return int(step) if isinstance(step, int) else None


# ------------------------------------------------------------------ log.jsonl

def append_log(run_id: str, events: Iterable[dict]) -> None:
    with open(run_dir(run_id) / "log.jsonl", "a", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")
        fh.flush()


def read_log(run_id: str) -> list[dict]:
    if not exists(run_id):
        return []
    return read_jsonl(run_dir(run_id) / "log.jsonl")


def truncate_log_after(run_id: str, step: int) -> None:
    """Drop events logged after `step` (work lost when a run died between checkpoints
    is trained again on resume; without this the curve would show it twice)."""
    path = run_dir(run_id) / "log.jsonl"
    if not path.is_file():
        return
    kept = [e for e in read_jsonl(path) if int(e.get("step", 0)) <= step]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for e in kept:
            fh.write(json.dumps(e) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ stop flag

def request_stop(run_id: str) -> None:
    (run_dir(run_id) / "STOP").write_text("stop requested\n")


def stop_requested(run_id: str) -> bool:
    return (run_dir(run_id) / "STOP").exists()


def clear_stop(run_id: str) -> None:
    try:
        (run_dir(run_id) / "STOP").unlink()
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------ per learner

def clean_run_ids(value: Any, limit: int = 20) -> list[str]:
    """The learner's run ids from BrowserState, whatever was stored there."""
    if not isinstance(value, list):
        return []
    out = [v for v in value if valid_run_id(v)]
    return list(dict.fromkeys(out))[-limit:]


def learner_runs(run_ids: Any) -> list[dict]:
    """Runs of one learner that still exist on disk, newest first."""
    infos = []
    for rid in clean_run_ids(run_ids):
        try:
            infos.append(read_run(rid))
        except RunNotFound:
            continue
    return sorted(infos, key=lambda i: i.get("created_at", 0), reverse=True)


PLANNED_HOLD_S = 1800  # a created run waiting in the GPU queue counts as active for 30 min


def active_run(run_ids: Any) -> str | None:
    """The learner's run that is training or waiting for the GPU, if any (one run at a time)."""
    now = time.time()
    for info in learner_runs(run_ids):
        if info.get("status") == RunStatus.RUNNING:
            return info["run_id"]
        if info.get("status") == RunStatus.PLANNED and now - float(info.get("created_at") or 0) < PLANNED_HOLD_S:
            return info["run_id"]
    return None


def can_resume(info: dict) -> bool:
    """Paused, stopped and interrupted runs go on from their checkpoint; so does a run that
    failed with an unexpected error (not one that blew up: NaN, divergence, out of memory)."""
    status = info.get("status")
    if status in RESUMABLE:
        return True
    return status == RunStatus.FAILED and info.get("failure_kind") == "error"


# ------------------------------------------------------------------ cleanup, zips

def run_ttl_hours() -> float:
    return env_float("FTLAB_RUN_TTL_HOURS", 48.0)


def cleanup_old_runs(ttl_hours: float | None = None, now: float | None = None) -> int:
    """Delete runs not touched for `ttl_hours` (not ones still training). Returns how many."""
    ttl = run_ttl_hours() if ttl_hours is None else ttl_hours
    now = time.time() if now is None else now
    removed = 0
    for path in runs_root().iterdir():
        if not path.is_dir() or not valid_run_id(path.name):
            continue
        info = _read_json(path / "run.json")
        touched = float(info.get("updated_at") or path.stat().st_mtime)
        if now - touched < ttl * 3600:
            continue
        if info.get("status") == RunStatus.RUNNING and not _looks_dead(info):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def artifact_name(run_id: str, sub: str) -> str:
    """What a download is, in its file name: base model, method, kind and day,
    e.g. ``SmolLM2-135M-Instruct-sft-lora-adapter-2026-12-02``."""
    info = read_run(run_id)
    cfg = info.get("config") or {}
    model = str((info.get("model") or {}).get("id") or "model").rstrip("/").split("/")[-1]
    method = str(cfg.get("method") or "").lower()
    kind = {"adapter": "lora-adapter", "merged": "merged", "checkpoint": "checkpoint"}[sub]
    day = time.strftime("%Y-%m-%d", time.gmtime(info.get("created_at") or time.time()))
    name = "-".join(part for part in (model, method, kind, day) if part)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:120]


def zip_dir(run_id: str, sub: str) -> Path:
    """Zip `adapter/` or `merged/` of a run into the run dir; returns the zip path."""
    if sub not in ("adapter", "merged", "checkpoint"):
        raise ValueError("unknown folder")
    src = run_dir(run_id) / sub
    if not src.is_dir():
        raise FileNotFoundError(f"This run has no {sub} yet.")
    out = run_dir(run_id) / f"{artifact_name(run_id, sub)}.zip"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=out.parent)
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(src.rglob("*")):
            if file.is_file():
                zf.write(file, f"{sub}/{file.relative_to(src)}")
    os.replace(tmp, out)
    return out


def max_runs_kept_per_learner() -> int:
    return env_int("FTLAB_MAX_RUNS_PER_LEARNER", 10)


# ------------------------------------------------------------------ downloads

DOWNLOAD_TTL_S = env_float("FTLAB_DOWNLOAD_TTL_S", 3600.0)


def downloadable_copy(path: Path | str | None, now: float | None = None) -> str | None:
    """Copy a run file where gradio may serve it, and sweep old copies.

    The data dir may be /data on a Space, which gradio does not serve, so
    downloads are copied under the temp dir, each into its own unguessable
    folder. Copies older than FTLAB_DOWNLOAD_TTL_S are removed on every call,
    so /tmp does not grow with every click.
    """
    if path is None:
        return None
    base = sweep_downloads(now)
    folder = base / secrets.token_urlsafe(12)
    folder.mkdir()
    target = folder / Path(path).name
    try:
        os.link(path, target)  # same disk: no second copy of a large file (a GGUF export is GBs)
        return str(target)
    except OSError:
        return str(shutil.copy2(path, target))


def sweep_downloads(now: float | None = None) -> Path:
    """Remove download copies older than FTLAB_DOWNLOAD_TTL_S; returns their folder."""
    base = Path(tempfile.gettempdir()) / "ftlab-downloads"
    base.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    for old in base.iterdir():
        try:
            if now - old.stat().st_mtime > DOWNLOAD_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # a concurrent sweep got there first
    return base
