"""Bounded time for every call to the Hugging Face Hub.

huggingface_hub 2.4 sends every request (pushes, whoami, model and dataset
downloads) through one shared httpx client created with `timeout=None`, and
some of its calls pass `timeout=None` explicitly: a Hub that accepts the
connection and never answers would hold the caller forever. Two layers:

1. `install()` gives that shared client a `send` that fills every timeout the
   caller left unset or None with `FTLAB_HUB_TIMEOUT_S` (connect, read, write
   and pool), so no request waits without a bound for its next byte.
2. `run_with_deadline(fn, budget_s)` runs `fn` (a whole push) in a worker
   thread and waits at most `budget_s`: the client's retries (up to 5, with
   back-off, ~23 s of sleeps) can no longer stretch the wait, and the gradio
   handler, with its concurrency slot, is free again by the deadline. Inside
   the worker each request's timeouts are clamped to the time left, and a
   request started after the deadline fails at once with `HubTimeout`
   (the client does not retry it), so an abandoned worker ends soon after.
   LFS uploads run in the client's own thread pool, which does not see the
   deadline; those requests are still bounded by layer 1.

Nothing here reads or keeps the token; the worker holds it only until it ends.
"""
from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from core.config import env_float

DEFAULT_TIMEOUT_S = 20.0
# Upload speed a push's deadline allows for. A Space uploads to the Hub far
# faster; at 5 MB/s the largest adapter preset (r=32 on all linear layers of
# SmolLM2-135M, ~39 MB) still hears back within 30 s. A slower uplink needs
# FTLAB_HUB_MIN_UPLOAD_MB_S lowered.
DEFAULT_MIN_UPLOAD_MB_S = 5.0
# Streaming a dataset's first rows takes a handful of requests (repo info, file
# list, parquet footer, row groups), each bounded by timeout_s().
DATASET_BUDGET_FACTOR = 3


class HubTimeout(Exception):
    """The Hub did not answer in time: a request refused after its call's deadline (the client
    never retries this type), or what `run_with_deadline` raises when fn failed on a timeout."""


def timeout_s() -> float:
    """Longest wait for any single Hub operation, and the fixed part of a push's deadline."""
    return max(0.5, env_float("FTLAB_HUB_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def push_budget_s(upload_bytes: int) -> float:
    """Deadline for one push: the fixed bound plus the upload at the slowest speed we accept."""
    rate = max(0.01, env_float("FTLAB_HUB_MIN_UPLOAD_MB_S", DEFAULT_MIN_UPLOAD_MB_S)) * 1_000_000
    return timeout_s() + max(0, upload_bytes) / rate


def dataset_budget_s() -> float:
    """Deadline for loading the first rows of a Hub dataset (several metadata and data requests)."""
    return DATASET_BUDGET_FACTOR * timeout_s()


@dataclass
class Watch:
    """What one deadline-bound call did last; read by the caller when it gives up."""
    started: float  # time.monotonic() values
    deadline: float
    stage: str = ""  # what the last request was for, in the learner's words
    last_status: int | None = None
    timed_out: bool = False  # the latest request hit a timeout or the deadline

    def elapsed(self) -> float:
        return time.monotonic() - self.started


_watch: contextvars.ContextVar[Watch | None] = contextvars.ContextVar("ftlab_hub_watch", default=None)


def stage_of(path: str) -> str:
    if "/whoami" in path:
        return "sign-in"
    if path.endswith("/repos/create"):
        return "creating the repository"
    if "/preupload/" in path or path.endswith("/validate-yaml"):
        return "preparing the upload"
    if "/commit/" in path:
        return "the commit"
    return "uploading files"  # LFS batch, upload and verify URLs


def _bounded(timeouts: dict, watch: Watch | None) -> dict:
    """Fill unset/None timeouts with the bound; inside a deadline, never wait past it."""
    filled = {key: timeout_s() if value is None else value for key, value in timeouts.items()}
    if watch is None:
        return filled  # a caller's explicit timeout (e.g. HF_HUB_DOWNLOAD_TIMEOUT) is kept
    left = watch.deadline - time.monotonic()
    if left <= 0:
        watch.timed_out = True
        raise HubTimeout(watch.stage)
    return {key: min(value, left) for key, value in filled.items()}


def _client_class():
    import httpx2  # huggingface_hub's httpx fork, its only HTTP client

    class BoundedClient(httpx2.Client):
        def send(self, request, **kwargs):
            watch = _watch.get()
            if watch is not None:
                watch.stage = stage_of(request.url.path)
            chosen = request.extensions.get("timeout") or self.timeout.as_dict()
            request.extensions = {**request.extensions, "timeout": _bounded(chosen, watch)}
            try:
                response = super().send(request, **kwargs)
            except httpx2.TimeoutException:
                if watch is not None:
                    watch.timed_out = True
                raise
            if watch is not None:  # an answer, even an error, means the Hub is talking again
                watch.last_status, watch.timed_out = response.status_code, False
            return response

    return BoundedClient


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Make huggingface_hub's shared client bounded (idempotent; call before any Hub request)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        import huggingface_hub
        from huggingface_hub.utils import _http as hf_http  # the hook its default factory uses

        client_class = _client_class()

        def factory():
            # Same as huggingface_hub's default factory (offline check, request ids). Its default
            # timeout stays None so send() fills in FTLAB_HUB_TIMEOUT_S as read at each request.
            return client_class(event_hooks={"request": [hf_http.hf_request_event_hook]},
                                follow_redirects=True, timeout=None)

        huggingface_hub.set_client_factory(factory)
        _installed = True


def run_with_deadline(fn: Callable[[], Any], budget_s: float) -> tuple[bool, Any, Watch]:
    """Run fn() in a worker thread for at most budget_s. -> (finished, its value or None, watch).

    An exception from fn is raised here when it finishes in time (as HubTimeout
    when a timeout caused it); after the deadline its outcome is dropped (the
    worker ends by itself, see above).
    """
    install()
    now = time.monotonic()
    watch = Watch(started=now, deadline=now + budget_s)
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        _watch.set(watch)  # this thread's context only: other pushes keep their own
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="ftlab-hub-call", daemon=True).start()
    if not done.wait(max(0.0, watch.deadline - time.monotonic())):
        watch.timed_out = True
        return False, None, watch
    if "error" in box:
        if watch.timed_out:
            raise HubTimeout(watch.stage) from box["error"]
        raise box["error"]
    return True, box.get("value"), watch
