"""A day of learners in one process (issue 26 part 2): does the app stay healthy after many runs?

N tiny runs back to back from S sessions (round robin), each through the Training tab's own
handlers (no browser, no network: the embedded model, loopback only): load a built-in set,
the data check, prepare + train (1 step, max_length 160: the shortest clinical_soap
prompt is 103 tokens), evaluate 2 rows, one chat turn
(tuned), the adapter download and the recipe export. After every run: resident memory,
open file descriptors, threads, files/bytes under the data dir, the download folder and
gradio's cache, and the run's wall time. At the end the retention sweep runs with its clock
moved past every TTL (runs, downloads, the model cache) and the same is measured again.

    FTLAB_DATA_DIR=/tmp/soak .venv/bin/python -m bench.soak --runs 30 --sessions 3
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row

TINY = {"max_steps": 1, "max_length": 160, "eval_steps": 50, "early_stopping_patience": 0,
        "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1}
STEP_TIMEOUT_S = float(os.environ.get("FTLAB_SOAK_STEP_S") or 900)  # one step of one run: a hang fails, not waits


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _tree(path: Path) -> tuple[int, int]:
    files = size = 0
    if path.is_dir():
        for p in path.rglob("*"):
            try:
                if p.is_file():
                    files += 1
                    size += p.stat().st_size
            except OSError:
                pass
    return files, size


def gradio_cache_dir() -> Path:
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def snapshot() -> dict:
    import threading

    from core.config import data_dir
    gc.collect()
    downloads = Path(tempfile.gettempdir()) / "ftlab-downloads"
    return {"rss_mb": _rss_mb(), "fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
            "os_threads": len(os.listdir("/proc/self/task")),
            "data": _tree(data_dir() / "runs"), "downloads": _tree(downloads), "gradio": _tree(gradio_cache_dir())}


def _drain(gen, limit_s: float = STEP_TIMEOUT_S) -> list:
    t0, out = time.monotonic(), []
    for item in gen:
        out.append(item)
        if time.monotonic() - t0 > limit_s:
            gen.close()
            raise TimeoutError("a step ran past its bound")
    return out


def one_run(session: dict, dataset_name: str = "clinical_soap") -> str:
    """One learner's run through the tab's handlers; returns the run id."""
    from training.run import config
    from training.views import publish_ui, tab

    model_id = "embedded/SmolLM2-135M-Instruct"
    values = {**config.defaults("cpu"), **TINY}
    dataset, msg = tab.load_dataset_handler("builtin", dataset_name, None, "", "sft", None)
    assert dataset, msg
    tab.check_handler(dataset, model_id, "sft", values)
    rid, session["run_ids"], msg, go = tab.prepare_run_handler(dataset, model_id, "sft", session["run_ids"], values)
    assert go == "start" and isinstance(rid, str), msg
    _drain(tab.train_handler(rid, go))
    _drain(tab.evaluate_handler(rid, 2, None, False))
    chat = _drain(tab.chat_handler(rid, [], "Summarise: patient has a mild cough for two days.", True))
    assert chat[-1][0][-1]["role"] == "assistant", chat[-1]
    path, msg = tab.download_adapter_handler(rid)
    assert path, msg
    msg, recipe_zip = publish_ui.export_handler(rid)
    assert recipe_zip, msg
    return rid


def sweep(later_s: float) -> dict:
    """The retention sweep with its clock moved forward by `later_s` seconds."""
    from training.evaluation import base_answers
    from training.evaluation.inference import MODEL_CACHE
    from training.run import runs
    now = time.time() + later_s
    removed = runs.cleanup_old_runs(now=now)
    base_answers.sweep(now=now)
    runs.sweep_downloads(now=now)
    MODEL_CACHE.clear()  # its idle release (FTLAB_MODEL_IDLE_SECONDS) runs on its own clock
    return {"runs_removed": removed}


def soak(n_runs: int, n_sessions: int, *, eval_tokens: int = 32, chat_tokens: int = 16, on_run=None,
         dataset: str = "clinical_soap") -> dict:
    """The soak in this process. Answers are capped (`eval_tokens` per evaluation answer,
    `chat_tokens` per chat reply): the soak is about what accumulates, not generation time."""
    from training.evaluation import evaluate, inference
    from training.run import runs
    inference.CHAT_MAX_NEW_TOKENS = int(chat_tokens)
    evaluate.new_token_cap = lambda tokenizer, references: int(eval_tokens)
    before = snapshot()
    sessions = [{"run_ids": []} for _ in range(n_sessions)]
    per_run: list[dict] = []
    for k in range(n_runs):
        t0 = time.monotonic()
        rid = one_run(sessions[k % n_sessions], dataset)
        snap = snapshot()
        snap.update(run=k + 1, wall_s=time.monotonic() - t0, run_id=rid)
        per_run.append(snap)
        if on_run:
            on_run(snap)
    running = [r["run_id"] for s in sessions for r in runs.learner_runs(s["run_ids"]) if r.get("status") == "running"]
    swept = sweep(later_s=max(runs.run_ttl_hours() * 3600, runs.DOWNLOAD_TTL_S) + 3600)
    return {"before": before, "runs": per_run, "after_sweep": snapshot(), "running": running, "swept": swept}


def rows(result: dict, early: int = 3) -> list[Row]:
    runs_ = result["runs"]
    a, b = runs_[min(early, len(runs_)) - 1], runs_[-1]
    before, after = result["before"], result["after_sweep"]
    load = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)"
    na, nb = a["run"], b["run"]

    def tree(t):
        return f"{t[0]} files, {t[1] / 1e6:.1f} MB"

    def back(now, then) -> bool:  # no more files and no more bytes (the sweep may also take older leftovers)
        return now[0] <= then[0] and now[1] <= then[1]
    growth = b["rss_mb"] / a["rss_mb"]
    return [
        Row(f"soak: resident memory after run {nb} vs run {na}", f"{b['rss_mb']:.0f} MB", f"{a['rss_mb']:.0f} MB",
            f"{growth:.2f}x", "≤ 1.15x", load, growth <= 1.15),
        Row(f"soak: open file descriptors, run {nb} vs run {na}", str(b["fds"]), str(a["fds"]),
            target="flat (±2)", machine=load, met=abs(b["fds"] - a["fds"]) <= 2),
        Row(f"soak: threads (Python / OS), run {nb} vs run {na}", f"{b['threads']} / {b['os_threads']}",
            f"{a['threads']} / {a['os_threads']}", target="flat (±2)", machine=load,
            met=abs(b["os_threads"] - a["os_threads"]) <= 2 and abs(b["threads"] - a["threads"]) <= 2),
        Row(f"soak: run wall time, run {nb} vs run {na}", f"{b['wall_s']:.1f} s", f"{a['wall_s']:.1f} s",
            f"{b['wall_s'] / a['wall_s']:.2f}x", machine=load),
        Row(f"soak: data dir runs/ after run {nb} vs run {na}", tree(b["data"]), tree(a["data"]), machine=load),
        Row(f"soak: downloads after run {nb} vs run {na}", tree(b["downloads"]), tree(a["downloads"]), machine=load),
        Row(f"soak: gradio cache after run {nb} vs run {na}", tree(b["gradio"]), tree(a["gradio"]), machine=load),
        Row("soak: data dir runs/ after the sweep vs before the soak", tree(after["data"]), tree(before["data"]),
            target="back to before (or less)", machine=load, met=back(after["data"], before["data"])),
        Row("soak: downloads + gradio cache after the sweep vs before", tree(after["downloads"]) + " + "
            + tree(after["gradio"]), tree(before["downloads"]) + " + " + tree(before["gradio"]),
            target="back to before", machine=load,
            met=back(after["downloads"], before["downloads"]) and back(after["gradio"], before["gradio"])),
        Row("soak: runs left running", str(len(result["running"])), target="0", machine=load,
            met=not result["running"]),
        Row("soak: memory / fds / threads after the sweep", f"{after['rss_mb']:.0f} MB / {after['fds']} / "
            f"{after['os_threads']}", f"{before['rss_mb']:.0f} MB / {before['fds']} / {before['os_threads']} "
            "(before the soak, nothing imported yet)", machine=load),
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--tmp", default="", help="private temp dir (downloads, gradio's cache); default: a new one")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Downloads and gradio's cache live under the temp dir, which other processes on a shared
    # machine also use: a private one, so "back to its size" measures this process only.
    tempfile.tempdir = args.tmp or tempfile.mkdtemp(prefix="ftlab-soak-")
    os.environ["GRADIO_TEMP_DIR"] = str(Path(tempfile.tempdir) / "gradio")

    def say(s: dict) -> None:
        print(f"{time.strftime('%H:%M:%S')} run {s['run']}: {s['wall_s']:.1f} s, rss {s['rss_mb']:.0f} MB, "
              f"fds {s['fds']}, threads {s['threads']}/{s['os_threads']}, runs/ {s['data']}, "
              f"downloads {s['downloads']}, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    result = soak(args.runs, args.sessions, on_run=say)
    from bench.common import table
    print(table(rows(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
