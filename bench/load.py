"""Interaction latency under load: N concurrent gradio_client sessions against the launched app.

The app runs in its own process (as on a Space); the clients run here, one thread
each. Every session marks lesson 1 read, grades the lesson-1 quiz and grades the
module test, sending its own progress and its own answers (a per-session number of
wrong answers), and checks that what comes back is its own: its earlier scores kept,
its own score recorded. Client set-up (fetching the app config) is not timed.
"""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from bench.common import PY, ROOT, Row, percentile, quick

SERVER = r"""
import os, sys
import app
demo = app.build_app()
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), quiet=True, prevent_thread_lock=False)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return
        except OSError:
            # Polling a port that is not yet listening: the server tells us it is up by answering.
            time.sleep(0.2)
    raise RuntimeError("app did not start")


def _answers(quiz_id: str, n_wrong: int) -> list[str]:
    from quizzes import grading

    quiz = grading.load_quiz(quiz_id)
    picks = []
    for n, q in enumerate(quiz["questions"], start=1):
        wrong = n <= n_wrong
        picks.append(next(o["text"] for o in q["options"] if bool(o["correct"]) != wrong))
    return picks


def _session(i: int, url: str, barrier: threading.Barrier, out: list, errors: list,
             think: tuple[float, float] | None = None) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
    except Exception as exc:  # noqa: BLE001 - counted as an error row, not a crash of the bench
        errors.append(f"session {i}: connect {type(exc).__name__}: {exc}")
        barrier.abort()
        return
    marker = i % 4 + 1                 # this session's own earlier best on lesson 2
    wrong_l1 = i % 3                   # -> expected lesson-1 score 4 - wrong_l1
    wrong_mt = i % 5                   # -> expected module-test score 15 - wrong_mt
    progress = {"schema": 2, "lessons_read": [], "best": {"lesson2": marker}, "test": {}}
    calls = [("/mark_read_lesson1", lambda p: [p]),
             ("/submit_lesson1", lambda p: [p, *_answers("lesson1", wrong_l1)]),
             ("/submit_module_test", lambda p: [p, *_answers("module_test", wrong_mt)])]
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:
        return
    rng = random.Random(i)
    for api, make in calls:
        if think:
            # A learner reads before clicking: paced sessions wait a seeded think time
            # (this is the load model, not synchronisation).
            time.sleep(rng.uniform(*think))
        t = time.perf_counter()
        try:
            res = client.predict(*make(progress), api_name=api)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"session {i} {api}: {type(exc).__name__}: {exc}")
            return
        out.append((api, time.perf_counter() - t))
        progress = res[0] if api == "/mark_read_lesson1" else res[1]
    ok = (progress.get("best", {}).get("lesson2") == marker
          and progress.get("best", {}).get("lesson1") == 4 - wrong_l1
          and "lesson1" in progress.get("lessons_read", [])
          and progress.get("test", {}).get("best") == 15 - wrong_mt)
    if not ok:
        errors.append(f"session {i}: results not its own: {json.dumps(progress)[:300]}")


def _drive(url: str, n: int, think: tuple[float, float] | None) -> tuple[list, list]:
    barrier = threading.Barrier(n)
    out: list = []
    errors: list = []
    threads = [threading.Thread(target=_session, args=(i, url, barrier, out, errors, think), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return out, errors


def _rows(label: str, n: int, out: list, errors: list, target: bool) -> list[Row]:
    lat = [x for _, x in out]
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    p95 = percentile(lat, 95)
    rows = [Row(f"load ({label}): {n} sessions x 3 requests, p95 latency", ms(p95), "—", "—",
                "<= 250 ms" if target else "—", met=(p95 <= 0.250) if target else None),
            Row(f"load ({label}): p50 / max latency",
                f"{ms(percentile(lat, 50))} / {ms(max(lat) if lat else float('nan'))}"),
            Row(f"load ({label}): errors (incl. results that were not the session's own)", f"{len(errors)}",
                "—", "—", "0", met=not errors)]
    for api in ("/mark_read_lesson1", "/submit_lesson1", "/submit_module_test"):
        v = [x for a, x in out if a == api]
        if v:
            rows.append(Row(f"load ({label}): {api} p50 / p95", f"{ms(percentile(v, 50))} / {ms(percentile(v, 95))}"))
    return rows


def run(quick_mode: bool | None = None) -> list[Row]:
    """Two load models against one server process.

    paced: 50 learners active at once, each reading 0.5-3 s before each click (seeded),
      which is what concurrent sessions look like; the target applies here.
    burst: all 50 sessions fire every request at the same instant; a worst case that
      measures how fast the 2 cores (shared by server and 50 client threads) drain it.
    """
    q = quick() if quick_mode is None else quick_mode
    n = int(os.environ.get("BENCH_SESSIONS") or (3 if q else 50))
    # Each gradio_client otherwise starts a telemetry thread that tries the network.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    think = (0.0, 0.05) if q else (0.5, 3.0)
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([PY, "-c", SERVER, str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        paced = _drive(url, n, think)
        burst = _drive(url, n, None)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for e in (paced[1] + burst[1])[:5]:
        print("  load error:", e, file=sys.stderr)
    return _rows("paced", n, *paced, target=True) + _rows("burst", n, *burst, target=False)


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
