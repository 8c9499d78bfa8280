"""ZeroGPU without a GPU: the real `spaces` package driven against a fake of its scheduler.

On a ZeroGPU Space, ``@spaces.GPU`` talks over HTTP to a device scheduler at
``SPACES_ZERO_DEVICE_API_URL`` (``spaces/zero/api.py``): ``POST /schedule`` asks
for a GPU for ``durationSeconds`` (JSON answer, or an SSE queue stream; the
``X-Authenticated`` / ``X-Queuing-Reason`` / ``X-Approve-Result`` headers; a 429
with ``{"left", "wait"}`` when the learner's quota cannot cover the request),
``POST /allow`` hands the GPU to the forked worker's pid, ``POST /release`` gives
it back, ``POST /startup-report`` and ``GET /queue-size``. ``FakeZeroGPU`` serves
those routes on 127.0.0.1 the way the package reads them, and does what the real
scheduler does to the worker: it **kills it (SIGKILL) when the requested
duration is up**. Everything on the app side is the installed package's own
code: the decorator, the forked worker per call, arguments / yields / results
pickled across the fork, the refusal texts (``spaces/zero/client.py``), the
"GPU task aborted" a killed worker gives, the torch patching that makes CUDA
unusable in the parent.

The real package cannot run unchanged on a machine with no CUDA, for three
reasons, and ``activate()`` replaces exactly those, nothing else:

1. ``import spaces`` with ``SPACES_ZERO_GPU=true`` fails on a CPU-only torch
   build: ``spaces/zero/torch/static.py`` calls ``torch.version.cuda.startswith``
   and ``torch.version.cuda`` is None there. ``activate`` imports the package
   with ``torch.version.cuda`` set to a CUDA version for the duration of the
   import only (static.py picks the memory-stats layout from it), then puts it back.
2. The worker's first step (``worker_init`` -> ``spaces.zero.torch.init``) binds
   the GPU with ``torch.Tensor([0]).cuda()``: replaced by a CPU no-op.
3. ``spaces.zero.torch.move`` copies the tensors the parent put "on CUDA" to the
   device and calls ``torch.cuda.synchronize()``: replaced by a check that the
   parent put nothing there (the app's rule; on CPU there is nowhere to move to).

So in the worker the code sees no GPU (``torch.cuda.is_available()`` is False
after the package's own ``unpatch``) and trains on the CPU, while the parent
sees the package's emulated CUDA device, as on a Space.

Quotas (as of 2026): about 2 min a day signed out, 5 min with a free account,
40 min with PRO, charged by the *requested* duration (``size="xlarge"`` twice),
checked before the call runs. The learner is named by the ``X-IP-Token`` JWT
the Hub adds to the browser's requests; ``learner_token(name, auth)`` makes one
(auth None = signed out, "regular" = free account, "pro"). A call without a
token is an anonymous caller sharing one "ip" bucket.

Usage::

    with FakeZeroGPU(quotas={"regular": 60}) as fake:
        env = fake.app_env(tmp_path)                # for the app's process
        ...                                         # launch the app with env
        fake.set_left("ada", 10)                    # the next 60 s request is refused
        fake.freeze(pid)                            # make a worker slow: killed at its duration
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from core.procs import pid_alive

# Daily quotas in seconds by login state (2026): signed out, free account, PRO.
DAILY_QUOTA_S = {None: 120, "regular": 300, "pro": 2400}
DAY_S = 24 * 3600
ANONYMOUS = "ip:127.0.0.1"   # a caller without an X-IP-Token


def learner_token(name: str, auth: str | None = None) -> str:
    """An X-IP-Token for a learner (a JWT as the client decodes it: header.payload.signature).
    `auth`: None (not signed in), "regular" (free account) or "pro"."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part({'sub': name, 'auth': auth})}.fake-signature"


def token_payload(token: str | None) -> dict:
    if not token:
        return {}
    try:
        _, payload, _ = token.split(".")
        return json.loads(base64.urlsafe_b64decode(payload + "=="))
    except Exception:  # noqa: BLE001 - an unreadable token is an anonymous caller
        return {}


@dataclass
class Learner:
    name: str
    auth: str | None
    left: float
    reset_at: float


@dataclass
class Lease:
    token: str                    # the allowToken
    learner: str
    duration: int                 # seconds requested (what the client sent, after its duration factor)
    cost: int                     # seconds charged (2x for xlarge)
    index: int                    # nvidiaIndex
    granted_at: float
    task_id: int = 0              # the client's id of the decorated function
    pid: int | None = None
    released: bool = False
    failed: bool = False
    killed: bool = False
    idle: bool = False            # the client may reuse the worker of the previous lease on this GPU
    killed_at: float | None = None  # time.monotonic() of the kill
    timer: threading.Timer | None = field(default=None, repr=False)


@dataclass
class Call:
    """One /schedule request as the fake saw it, and what it answered."""
    learner: str
    auth: str | None
    duration: int
    size: str | None
    result: str                   # approved | quota-exceeded | illegal-duration | queue-timeout | unavailable
    left_before: float
    cgroup: str
    task_id: int
    at: float


class FakeZeroGPU:
    """The ZeroGPU device scheduler `spaces` talks to, on an ephemeral 127.0.0.1 port."""

    def __init__(self, *, quotas: dict | None = None, gpus: int = 1, max_duration_s: int = 300,
                 queue_timeout_s: float = 60.0, ping_s: float = 0.2, day_s: float = DAY_S,
                 reuse_idle_workers: bool = True):
        self.quotas = {**DAILY_QUOTA_S, **(quotas or {})}
        self.gpus = gpus
        self.max_duration_s = max_duration_s
        self.queue_timeout_s = queue_timeout_s
        self.ping_s = ping_s
        self.day_s = day_s
        self.reuse_idle_workers = reuse_idle_workers
        self.learners: dict[str, Learner] = {}
        self.leases: list[Lease] = []
        self.calls: list[Call] = []
        self.kills: list[int] = []
        self.startup_reports = 0
        self._scripted: list[tuple[str, str | None]] = []   # (fault, learner or None) for a next /schedule
        self._busy: dict[int, Lease] = {}        # nvidiaIndex -> active lease
        self._last: dict[int, Lease] = {}        # nvidiaIndex -> last lease (idle reuse)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.cgroup = f"/fake-zerogpu/{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeZeroGPU":
        fake = self

        class Handler(_Handler):
            scheduler = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-zerogpu", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, and end every worker this scheduler handed a GPU to that is still alive
        (one holding a GPU, or an idle one kept for reuse): a test that stops its app abruptly
        leaves no orphan behind."""
        with self._lock:
            for lease in self.leases:
                if lease.timer:
                    lease.timer.cancel()
            for pid in {lease.pid for lease in self.leases if lease.pid}:
                if pid_alive(pid) and _is_python(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self._changed.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeZeroGPU":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def app_env(self, folder: Path | str) -> dict[str, str]:
        """Environment for the app's process: ZeroGPU on, pointed at this fake, the stand-in
        active (`activate`), and a cgroup file naming the device path the client reports."""
        cgroup = Path(folder) / "zerogpu-cgroup"
        cgroup.write_text(f"5:devices:{self.cgroup}\n0::/\n")
        return {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": self.url,
                "FTLAB_ZEROGPU_STANDIN": "1", "ZEROGPU_PROC_SELF_CGROUP_PATH": str(cgroup)}

    # ------------------------------------------------------------ quota and faults (for tests)

    def learner(self, name: str, auth: str | None = None) -> Learner:
        with self._lock:
            now = time.time()
            got = self.learners.get(name)
            if got is None or now >= got.reset_at:
                got = Learner(name, auth, float(self.quotas[auth]), now + self.day_s)
                self.learners[name] = got
            return got

    def set_left(self, name: str, seconds: float, *, auth: str | None = None,
                 reset_in_s: float | None = None) -> None:
        """What a learner has left today (and, optionally, when it resets)."""
        with self._lock:
            entry = self.learner(name, auth)
            entry.left = float(seconds)
            if reset_in_s is not None:
                entry.reset_at = time.time() + reset_in_s

    def reset_quota(self, name: str) -> None:
        """The day is over for this learner: the full quota is back."""
        with self._lock:
            entry = self.learners.get(name)
            if entry is not None:
                entry.reset_at = 0.0

    def fail_next(self, kind: str, learner: str | None = None) -> None:
        """Script the next /schedule (of `learner`, or anyone's): "queue-timeout" (the queue gives
        up: an SSE stream that ends in `failed`) or "unavailable" (503)."""
        assert kind in ("queue-timeout", "unavailable"), kind
        with self._lock:
            self._scripted.append((kind, learner))

    def freeze(self, pid: int) -> None:
        """Make a worker as slow as can be (SIGSTOP): it stays silent until killed at its duration."""
        os.kill(pid, signal.SIGSTOP)

    def active_pids(self) -> list[int]:
        with self._lock:
            return [l.pid for l in self._busy.values() if l.pid]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Wait (without sleeping blindly) until predicate(self) is true or the timeout passes."""
        end = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
            return True

    # ------------------------------------------------------------ the protocol

    def _identify(self, token: str | None) -> tuple[str, str | None]:
        payload = token_payload(token)
        if not token or not payload.get("sub"):
            return ANONYMOUS, None
        return str(payload["sub"]), payload.get("auth")

    def schedule(self, params: dict) -> tuple[int, dict, Any]:
        """-> (status, headers, body): a dict body is JSON, a generator body is an SSE stream."""
        token = params.get("token")
        name, auth = self._identify(token)
        duration = int(params.get("durationSeconds", 60))
        size = params.get("gpuSize")
        cost = duration * (2 if size == "xlarge" else 1)
        headers = {"X-Authenticated": auth} if auth else {}
        with self._lock:
            learner = self.learner(name, auth)
            call = Call(name, auth, duration, size, "", learner.left, params.get("cgroupPath", ""),
                        int(params.get("taskId", 0)), time.time())
            self.calls.append(call)
            scripted = next((f for f in self._scripted if f[1] in (None, name)), None)
            if scripted is not None:
                self._scripted.remove(scripted)
                scripted = scripted[0]
            wait = max(1, int(learner.reset_at - time.time()))
            if duration > self.max_duration_s or duration <= 0:
                call.result = "illegal-duration"
                self._changed.notify_all()
                return 429, dict(headers, **{"X-Approve-Result": "illegal-duration"}), {"left": int(learner.left), "wait": -1}
            if cost > learner.left:
                call.result = "quota-exceeded"
                self._changed.notify_all()
                return 429, dict(headers, **{"X-Approve-Result": "quota-exceeded"}), {"left": int(learner.left), "wait": wait}
            if scripted == "unavailable":
                call.result = "unavailable"
                self._changed.notify_all()
                return 503, headers, {"detail": "No GPU available"}
            if scripted is None and params.get("enableQueue") in ("false", "False") and self._free_index() is None:
                call.result = "unavailable"
                return 503, headers, {"detail": "No GPU available"}
            if scripted is None and self._free_index() is not None:
                lease = self._grant(learner, duration, cost, call.task_id)
                call.result = "approved"
                return 200, dict(headers, **{"X-Approve-Result": "approved"}), self._answer(lease)
        # Queued: an SSE stream of pings until a GPU frees up (or the queue gives up).
        headers = dict(headers, **{"X-Queuing-Reason": "node", "X-Approve-Result": "approved"})
        return 200, headers, self._queue(learner, duration, cost, call, give_up=scripted == "queue-timeout")

    def _free_index(self) -> int | None:
        return next((i for i in range(self.gpus) if i not in self._busy), None)

    def _grant(self, learner: Learner, duration: int, cost: int, task_id: int = 0) -> Lease:
        index = self._free_index()
        assert index is not None
        learner.left -= cost   # charged by what was asked for, not what will be used
        lease = Lease(uuid.uuid4().hex, learner.name, duration, cost, index, time.monotonic(), task_id)
        # "idle": this GPU's last call was the same function's and ended well, so the client
        # reuses that call's worker (its own, per function) and does not call /allow again.
        previous = self._last.get(index)
        lease.idle = bool(self.reuse_idle_workers and previous and previous.task_id == task_id
                          and previous.released and not previous.failed and not previous.killed
                          and previous.pid and pid_alive(previous.pid))
        if lease.idle:
            lease.pid = previous.pid   # the client reuses that worker and does not call /allow
            self._arm(lease)
        self._busy[index] = lease
        self.leases.append(lease)
        self._changed.notify_all()
        return lease

    def _answer(self, lease: Lease) -> dict:
        return {"idle": lease.idle, "nvidiaIndex": lease.index, "nvidiaUUID": f"GPU-fake-{lease.index}",
                "allowToken": lease.token}

    def _queue(self, learner: Learner, duration: int, cost: int, call: Call, give_up: bool):
        deadline = time.monotonic() + (0 if give_up else self.queue_timeout_s)
        yield "event: ping\n\n"
        while True:
            with self._lock:
                if not give_up and self._free_index() is not None:
                    if cost > learner.left:   # spent meanwhile by another call
                        call.result = "queue-timeout"
                        break
                    lease = self._grant(learner, duration, cost, call.task_id)
                    call.result = "approved"
                    yield f"event: succeeded\ndata: {json.dumps(self._answer(lease))}\n\n"
                    return
                if time.monotonic() >= deadline:
                    call.result = "queue-timeout"
                    self._changed.notify_all()
                    break
                self._changed.wait(self.ping_s)
            yield "event: ping\n\n"
        yield "event: failed\n\n"

    def _arm(self, lease: Lease) -> None:
        """Kill the worker when the requested duration is up (counted from the grant)."""
        if lease.timer is not None:
            return
        left = max(0.0, lease.granted_at + lease.duration - time.monotonic())
        lease.timer = threading.Timer(left, self._expire, args=(lease,))
        lease.timer.daemon = True
        lease.timer.start()

    def _expire(self, lease: Lease) -> None:
        with self._lock:
            if lease.released or lease.pid is None:
                return
            lease.killed = lease.released = lease.failed = True
            lease.killed_at = time.monotonic()
            self._busy.pop(lease.index, None)
            self._last[lease.index] = lease
            self.kills.append(lease.pid)
            try:
                os.kill(lease.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._changed.notify_all()

    def allow(self, params: dict) -> int:
        with self._lock:
            lease = self._find(params.get("allowToken"))
            if lease is None or lease.released:
                return 404
            lease.pid = int(params["pid"])
            self._arm(lease)
            self._changed.notify_all()
            return 200

    def release(self, params: dict) -> int:
        with self._lock:
            lease = self._find(params.get("allowToken"))
            if lease is None or lease.released:
                return 404
            lease.released = True
            lease.failed = params.get("fail") in ("true", "True")
            if lease.timer:
                lease.timer.cancel()
            self._busy.pop(lease.index, None)
            self._last[lease.index] = lease
            self._changed.notify_all()
            return 200

    def _find(self, token: str | None) -> Lease | None:
        return next((l for l in self.leases if l.token == token), None)


def _is_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"python" in fh.read()
    except OSError:
        return False


class _Handler(BaseHTTPRequestHandler):
    scheduler: FakeZeroGPU
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _params(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        return {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}

    def _send(self, status: int, body: Any = None, headers: dict | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if urlparse(self.path).path == "/queue-size":
            self._params()
            return self._send(200, 0.0)
        self._send(404, {"detail": "not found"})

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        params = self._params()
        fake = self.scheduler
        if path == "/startup-report":
            fake.startup_reports += 1
            return self._send(200, {})
        if path == "/allow":
            return self._send(fake.allow(params), {})
        if path == "/release":
            return self._send(fake.release(params), {})
        if path != "/schedule":
            return self._send(404, {"detail": "not found"})
        status, headers, body = fake.schedule(params)
        if isinstance(body, dict):
            return self._send(status, body, headers)
        # SSE: one event per chunk (the client parses each chunk it reads as one event).
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in body:
                data = event.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


# ------------------------------------------------------------------ the app side

def _no_cuda_init() -> None:
    raise AssertionError("Torch not compiled with CUDA enabled")


def _never_in_bad_fork() -> bool:
    return False


def activate() -> None:
    """Import the real `spaces` package in ZeroGPU mode on a machine without CUDA (see the
    module docstring for the three things replaced). Called by the app before its first
    `import spaces` when FTLAB_ZEROGPU_STANDIN=1; refuses anything but a loopback scheduler,
    so it can never be active on a real Space."""
    import sys

    url = os.environ.get("SPACES_ZERO_DEVICE_API_URL", "")
    host = urlparse(url).hostname
    if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true") or host not in ("127.0.0.1", "localhost"):
        raise RuntimeError("The ZeroGPU stand-in runs only with SPACES_ZERO_GPU=true and a scheduler on "
                           f"127.0.0.1 (SPACES_ZERO_DEVICE_API_URL={url!r}).")
    if "spaces" in sys.modules:
        if getattr(sys.modules["spaces"], "_ftlab_standin", False):
            return
        raise RuntimeError("`spaces` was imported before the ZeroGPU stand-in was activated.")
    import torch

    real = torch.version.cuda
    torch.version.cuda = real or "12.8"   # (1) only while the package reads it at import
    if not hasattr(torch._C, "_cuda_init"):
        # (1) The package keeps the real low-level CUDA init to put back in the worker; a CPU build
        # has none. torch itself never calls it there (torch.cuda._lazy_init refuses first).
        torch._C._cuda_init = _no_cuda_init
    if getattr(torch.cuda._is_in_bad_fork, "__name__", "") == "<lambda>":
        # (1) At import the package asks a forked process whether CUDA is in a bad fork: it pickles
        # torch.cuda._is_in_bad_fork, a lambda (not picklable) on a CPU build, where it is always False.
        torch.cuda._is_in_bad_fork = _never_in_bad_fork
    try:
        import spaces
        from spaces.zero import torch as zero_torch
    finally:
        torch.version.cuda = real

    def init(nvidia_uuid: str) -> None:   # (2) no device to bind in the worker
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        _refuse_tensors_across_the_fork()

    def move(callback=None) -> None:      # (3) nothing may have been put on CUDA in the parent
        if zero_torch.size() > 0:
            raise RuntimeError(f"{zero_torch.size()} bytes of tensors were put on CUDA in the main process; "
                               "ZeroGPU would move them to the worker's GPU, the stand-in has none.")

    zero_torch.init = init
    zero_torch.move = move
    spaces._ftlab_standin = True


TENSOR_ACROSS_FORK = ("a torch.Tensor was sent across the ZeroGPU fork; on a Space it would be a CUDA "
                      "tensor the main process may not touch: send plain Python values or file paths")


def _refuse_tensors_across_the_fork() -> None:
    """In the worker: tensors put on the result queue fail to pickle. Here the worker trains on the
    CPU, so a tensor it yields would cross the fork quietly through shared memory; on a Space the
    same tensor sits on the GPU and must not reach the main process. Stricter than the real
    package on purpose: a tensor in a yielded value is a bug either way."""
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch

    def refuse(obj):
        raise pickle.PicklingError(TENSOR_ACROSS_FORK)

    for cls in (torch.Tensor, torch.nn.Parameter):
        ForkingPickler._extra_reducers[cls] = refuse


def cuda_touched_in_parent() -> dict:
    """What the real package's CUDA emulation saw in this (the main) process: tensors put on
    CUDA (`cuda_aliases`), and whether the real CUDA init was reached (the package makes it raise)."""
    from spaces.zero.torch import patching

    return {"cuda_tensors": len(patching.cuda_aliases), "packed": len(patching.tensor_packs)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
