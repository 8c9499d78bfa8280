"""Run in a process of its own with the ZeroGPU stand-in active (tests/test_zerogpu_standin.py):
exercises the real `spaces` package against the fake scheduler and prints one JSON line per case.

Tokens come from argv (JSON {case: token}); a case's token goes in as the X-IP-Token header of
a gradio request, as the Hub's proxy sends it from the browser.
"""
from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from devtools import zerogpu  # noqa: E402

zerogpu.activate()
import gradio as gr  # noqa: E402
import spaces  # noqa: E402
import torch  # noqa: E402
from gradio.context import LocalContext  # noqa: E402

TOKENS = json.loads(sys.argv[1])


@spaces.GPU(duration=lambda n, **k: 7)
def steps(n: int, pause: float = 0.0):
    for i in range(n):
        if pause:
            time.sleep(pause)
        yield {"i": i, "pid": os.getpid(), "cuda": torch.cuda.is_available()}


@spaces.GPU(duration=60)
def minute():
    yield {"ran": True}


@spaces.GPU(duration=400)
def too_long():
    yield {"ran": True}


@spaces.GPU(duration=2)
def overruns():
    for i in range(1000):
        time.sleep(0.2)
        yield {"i": i}


@spaces.GPU(duration=5)
def yields_tensor():
    yield {"loss": torch.tensor(1.5)}


@spaces.GPU(duration=5)
def takes(fn):
    yield {"ok": True}


@spaces.GPU(duration=5)
def raises(kind: str):
    if kind == "gradio":
        raise gr.Error("a message for the learner")
    raise ValueError("internal detail")
    yield  # pragma: no cover


@spaces.GPU(duration=10, size="xlarge")
def big():
    yield {"ok": True}


@spaces.GPU(duration=5)
def plain(x: int) -> dict:
    return {"x": x * 2, "pid": os.getpid()}


def as_learner(case: str) -> None:
    token = TOKENS.get(case)
    LocalContext.request.set(gr.Request(headers={"x-ip-token": token} if token else {}) if token else None)


def run(case: str, fn, *args, **kwargs) -> None:
    as_learner(case)
    out: dict = {"case": case, "yields": []}
    started = time.monotonic()
    try:
        result = fn(*args, **kwargs)
        if hasattr(result, "__next__"):
            for value in result:
                out["yields"].append(value)
        else:
            out["result"] = result
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out["error"] = {"type": type(exc).__name__, "title": getattr(exc, "title", None),
                        "message": str(getattr(exc, "message", exc))}
    out["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(out), flush=True)


print(json.dumps({"case": "parent", "pid": os.getpid(), "cuda": torch.cuda.is_available(),
                  "device": torch.cuda.get_device_name()}), flush=True)
run("plain", steps, 3)
run("again", steps, 2)
run("plain_function", plain, 21)
run("refused_free", minute)
run("refused_signed_out", minute)
run("refused_no_token", minute)
run("illegal", too_long)
run("queue_timeout", minute)
run("unavailable", minute)
run("killed", overruns)
run("tensor", yields_tensor)
run("closure", takes, lambda: 1)
run("gradio_error", raises, "gradio")
run("other_error", raises, "value")
run("xlarge", big)
print(json.dumps({"case": "cuda_in_parent", **zerogpu.cuda_touched_in_parent()}), flush=True)
