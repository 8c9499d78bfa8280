"""Interaction latency under load: N learners' browsers, as raw HTTP + SSE, against the launched app.

The server runs in its own process pinned to one core (as a Space's single worker); the
load generator is one asyncio process pinned to another core, so its cost does not
queue in front of the server's. Each simulated learner does what a browser does:

  GET /  and  GET /config   (the first page)
  opens the session heartbeat stream and fires the page-load events (as the page does)
  then, reading 0.5-3 s before each click (seeded): mark lesson 1 read, submit the
  lesson-1 quiz, submit the module test (paced learners arrive spread over 0.5 s x N);
  each click is POST queue/join and the result
  arrives on the session's one SSE stream (GET queue/data), exactly the sse_v3 protocol
  the Gradio frontend speaks.

Latency is from the click's POST to its process_completed message. Every session sends
its own progress and its own answers (a per-session number of wrong answers) and checks
that what comes back is its own. The server's CPU time is read from /proc before and
after, so the table also says what one request costs the server.

The same load runs against bench/bare.py (plain Gradio, same lessons/quizzes/handlers):
where Gradio's own per-request cost makes the absolute target out of reach, the ratio to
that floor is what the app controls.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PY, ROOT, Row, percentile, quick

CLICKS = ("/mark_read_lesson1", "/submit_lesson1", "/submit_module_test")
TIMEOUT_S = 120  # per request; a request slower than this is an error, not a latency
ARRIVAL_S_PER_SESSION = 0.5  # paced: 50 learners arrive over 25 s, then read and click
SENT = {"requests": 0}  # client process only: page GETs + queue joins made, for server CPU per request


# ------------------------------------------------------------------ the load generator (client process)

def _answers(quiz_id: str, n_wrong: int) -> list[str]:
    from quizzes import grading

    quiz = grading.load_quiz(quiz_id)
    return [next(o["text"] for o in q["options"] if bool(o["correct"]) != (n <= n_wrong))
            for n, q in enumerate(quiz["questions"], start=1)]


class Session:
    """One browser tab: one session hash, one SSE stream that delivers every result of the session."""

    def __init__(self, http, url: str, sh: str):
        self.http, self.url, self.sh = http, url, sh
        self.waiting: dict[str, asyncio.Future] = {}
        self.early: dict[str, dict] = {}   # results that beat their join response
        self.stream: asyncio.Task | None = None

    async def call(self, fn_index: int, data: list, trigger_id: int | None) -> list:
        SENT["requests"] += 1
        r = await self.http.post(f"{self.url}/gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": self.sh, "event_data": None,
            "trigger_id": trigger_id})
        r.raise_for_status()
        eid = r.json()["event_id"]
        fut = asyncio.get_running_loop().create_future()
        if eid in self.early:
            fut.set_result(self.early.pop(eid))
        else:
            self.waiting[eid] = fut
        if self.stream is None or self.stream.done():
            self.stream = asyncio.create_task(self._read_stream())
        msg = await asyncio.wait_for(fut, TIMEOUT_S)
        if not msg.get("success"):
            raise RuntimeError(f"fn {fn_index} failed: {json.dumps(msg.get('output'))[:200]}")
        return msg["output"]["data"]

    async def _read_stream(self) -> None:
        # The server closes the stream (close_stream) once the session has nothing pending;
        # a click after that opens a new one, as the frontend does.
        async with self.http.stream("GET", f"{self.url}/gradio_api/queue/data",
                                    params={"session_hash": self.sh}) as resp:
            buf = b""
            async for chunk in resp.aiter_bytes():
                buf += chunk
                while b"\n\n" in buf:
                    line, buf = buf.split(b"\n\n", 1)
                    if not line.startswith(b"data:"):
                        continue
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "close_stream":
                        return
                    if msg.get("msg") == "process_completed":
                        fut = self.waiting.pop(msg["event_id"], None)
                        if fut is None:
                            self.early[msg["event_id"]] = msg
                        elif not fut.done():
                            fut.set_result(msg)


def _plan(conf: dict) -> dict:
    """fn indexes and trigger ids of the clicks, and the page-load events with their default inputs."""
    comps = {c["id"]: c for c in conf["components"]}
    plan = {"load": [], "heartbeat": bool(conf.get("connect_heartbeat"))}
    for dep in conf["dependencies"]:
        if "/" + str(dep.get("api_name")) in CLICKS:
            plan["/" + dep["api_name"]] = (dep["id"], dep["targets"][0][0])
        elif any(t[1] == "load" for t in dep["targets"]):
            kinds = [comps[i]["type"] for i in dep["inputs"]]
            defaults = [comps[i].get("props", {}).get("value") for i in dep["inputs"]]
            plan["load"].append((dep["id"], kinds, defaults, dep.get("api_name")))
    missing = [c for c in CLICKS if c not in plan]
    if missing:
        raise RuntimeError(f"the app has no {missing}")
    return plan


async def _page(http, url: str) -> int:
    n = 0
    for path in ("/", "/config"):
        SENT["requests"] += 1
        r = await http.get(url + path)
        r.raise_for_status()
        n += len(r.content)
    return n


async def _heartbeat(http, url: str, sh: str) -> None:
    async with http.stream("GET", f"{url}/gradio_api/heartbeat/{sh}") as resp:
        async for _ in resp.aiter_bytes():
            pass


async def _learner(i: int, n: int, http, url: str, plan: dict, think, out: list, errors: list) -> None:
    rng = random.Random(i)
    pause = (lambda: asyncio.sleep(rng.uniform(*think))) if think else (lambda: asyncio.sleep(0))
    marker, wrong_l1, wrong_mt = i % 4 + 1, i % 3, i % 5
    progress = {"schema": 2, "lessons_read": [], "best": {"lesson2": marker}, "test": {}}
    sess = Session(http, url, f"bench{i}-{rng.getrandbits(32):08x}")
    hb = None
    step = "first page"
    try:
        # Paced learners arrive spread over ARRIVAL_S_PER_SESSION * n seconds (a steady stream of
        # new visitors, not 50 page loads in the same second); burst ones all at once.
        await asyncio.sleep(rng.uniform(0, ARRIVAL_S_PER_SESSION * n) if think else 0)
        t = time.perf_counter()
        await _page(http, url)
        out.append(("first page + config", time.perf_counter() - t))
        if plan["heartbeat"]:
            hb = asyncio.create_task(_heartbeat(http, url, sess.sh))
        step = "page-load events"
        t = time.perf_counter()
        # The stored progress goes to every BrowserState input; other inputs get their defaults.
        results = await asyncio.gather(*[
            sess.call(fn, [progress if k == "browserstate" and name == "on_load" else d
                           for k, d in zip(kinds, defaults)], None)
            for fn, kinds, defaults, name in plan["load"]])
        out.append(("page-load events", time.perf_counter() - t))
        for (fn, kinds, defaults, name), res in zip(plan["load"], results):
            if name == "on_load":
                progress = res[0]
        calls = [(CLICKS[0], lambda p: [p]),
                 (CLICKS[1], lambda p: [p, *_answers("lesson1", wrong_l1)]),
                 (CLICKS[2], lambda p: [p, *_answers("module_test", wrong_mt)])]
        for api, make in calls:
            step = api
            await pause()
            fn, trigger = plan[api]
            t = time.perf_counter()
            res = await sess.call(fn, make(progress), trigger)
            out.append((api, time.perf_counter() - t))
            progress = res[0] if api == CLICKS[0] else res[1]
    except Exception as exc:  # noqa: BLE001 - counted and reported as an error row, not a crash
        errors.append(f"session {i} {step}: {type(exc).__name__}: {str(exc)[:200]}")
        return
    finally:
        if hb:
            hb.cancel()  # the tab closes
    best = progress.get("best", {})
    if not (best.get("lesson2") == marker and best.get("lesson1") == 4 - wrong_l1
            and "lesson1" in progress.get("lessons_read", []) and progress.get("test", {}).get("best") == 15 - wrong_mt):
        errors.append(f"session {i}: results not its own: {json.dumps(progress)[:300]}")


async def _drive(url: str, n: int, think) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=3 * n + 10, max_keepalive_connections=3 * n + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_S), limits=limits) as http:
        plan = _plan((await http.get(url + "/config")).json())
        out: list = []
        errors: list = []
        t = time.perf_counter()
        await asyncio.gather(*[_learner(i, n, http, url, plan, think, out, errors) for i in range(n)])
        return {"out": out, "errors": errors, "wall_s": time.perf_counter() - t,
                "client_cpu_s": time.process_time(), "requests": SENT["requests"]}


def client_main(argv: list[str]) -> int:
    """python -m bench.load --client URL N THINK_LO THINK_HI CORE OUT"""
    url, n, lo, hi, core, out = argv[0], int(argv[1]), float(argv[2]), float(argv[3]), int(argv[4]), argv[5]
    if core >= 0:
        os.sched_setaffinity(0, {core})
    res = asyncio.run(_drive(url, n, (lo, hi) if hi > 0 else None))
    Path(out).write_text(json.dumps(res))
    return 0


# ------------------------------------------------------------------ the driver

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cores() -> tuple[int, int]:
    """(server core, client core), or (-1, -1) where there is only one core to use."""
    avail = sorted(os.sched_getaffinity(0))
    return (avail[0], avail[1]) if len(avail) >= 2 else (-1, -1)


def start_server(side: str, core: int) -> tuple[subprocess.Popen, str]:
    from bench.bare import SERVER

    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False",
               FTLAB_DATA_DIR=tempfile.mkdtemp(prefix=f"bench-load-{side}-"))
    proc = subprocess.Popen([PY, "-c", SERVER, side, str(port), str(core)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    _wait_up(url, proc)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=5):
                return
        except OSError:
            # Polling a port that is not yet listening: the server says it is up by answering.
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(url: str, pid: int, n: int, think, core: int) -> dict:
    out = tempfile.mkstemp(prefix="bench-load-", suffix=".json")[1]
    lo, hi = think or (0.0, 0.0)
    cpu0 = cpu_seconds(pid)
    proc = subprocess.run([PY, "-m", "bench.load", "--client", url, str(n), str(lo), str(hi), str(core), out],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    server_cpu = cpu_seconds(pid) - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed:\n{proc.stderr[-2000:]}")
    res = json.loads(Path(out).read_text())
    Path(out).unlink(missing_ok=True)
    res["server_cpu_s"] = server_cpu
    return res


def measure(side: str, n: int, models: dict) -> dict:
    """One server for `side`; each load model in turn against it."""
    server_core, client_core = cores()
    proc, url = start_server(side, server_core)
    try:
        return {name: _load(url, proc.pid, n, think, client_core) for name, think in models.items()}
    finally:
        stop_server(proc)


# ------------------------------------------------------------------ rows

def _ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def _clicks(res: dict) -> list[float]:
    return [x for k, x in res["out"] if k in CLICKS]


def _rows(label: str, n: int, ours: dict, bare: dict, target: bool) -> list[Row]:
    lat_o, lat_b = _clicks(ours), _clicks(bare)
    p95_o, p95_b = percentile(lat_o, 95), percentile(lat_b, 95)
    cpu_o = ours["server_cpu_s"] / max(1, ours["requests"])
    cpu_b = bare["server_cpu_s"] / max(1, bare["requests"])
    rows = [
        Row(f"load ({label}): {n} sessions, clicks p95 latency (bare Gradio: same lessons, quizzes, handlers)",
            _ms(p95_o), _ms(p95_b), f"{p95_o / p95_b:.2f}x" if p95_b else "—",
            "<= 250 ms" if target else "—", met=(p95_o <= 0.250) if target else None),
        Row(f"load ({label}): clicks p95, ours / bare Gradio", f"{p95_o / p95_b:.2f}x" if p95_b else "—",
            "1.00x", "—", "<= 1.2x" if target else "—", met=(p95_o <= 1.2 * p95_b) if target else None),
        Row(f"load ({label}): clicks p50 / max latency",
            f"{_ms(percentile(lat_o, 50))} / {_ms(max(lat_o, default=float('nan')))}",
            f"{_ms(percentile(lat_b, 50))} / {_ms(max(lat_b, default=float('nan')))}"),
        Row(f"load ({label}): errors (incl. results that were not the session's own)", f"{len(ours['errors'])}",
            f"{len(bare['errors'])}", "—", "0", met=not ours["errors"]),
        Row(f"load ({label}): server CPU per request (page GETs + queue events)", f"{cpu_o * 1000:.1f} ms",
            f"{cpu_b * 1000:.1f} ms", f"{cpu_o / cpu_b:.2f}x" if cpu_b else "—"),
    ]
    for kind in ("first page + config", "page-load events", *CLICKS):
        v_o = [x for k, x in ours["out"] if k == kind]
        v_b = [x for k, x in bare["out"] if k == kind]
        if v_o:
            rows.append(Row(f"load ({label}): {kind} p50 / p95",
                            f"{_ms(percentile(v_o, 50))} / {_ms(percentile(v_o, 95))}",
                            f"{_ms(percentile(v_b, 50))} / {_ms(percentile(v_b, 95))}" if v_b else "—"))
    return rows


def run(quick_mode: bool | None = None) -> list[Row]:
    """Two load models, each against the app and against bare Gradio (a fresh server per side).

    paced: N learners arriving over 0.5 s x N, each reading 0.5-3 s before each click
      (seeded): a steady stream of visitors; the target applies here.
    burst: all N sessions fire every step at once; a worst case.
    """
    q = quick() if quick_mode is None else quick_mode
    n = int(os.environ.get("BENCH_SESSIONS") or (3 if q else 50))
    models = {"paced": (0.0, 0.05) if q else (0.5, 3.0), "burst": None}
    res = {side: measure(side, n, models) for side in ("bare", "app")}
    rows = []
    for name in models:
        for side in res:
            for e in res[side][name]["errors"][:5]:
                print(f"  load error ({side}, {name}):", e, file=sys.stderr)
        rows += _rows(name, n, res["app"][name], res["bare"][name], target=name == "paced")
    core = cores()
    rows.append(Row("load: server and load generator pinned to cores",
                    f"server {core[0]}, client {core[1]}" if core[0] >= 0 else "not pinned (one core)"))
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        sys.exit(client_main(sys.argv[2:]))
    from bench.common import table
    print(table(run()))
