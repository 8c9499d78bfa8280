"""The app as a ZeroGPU Space runs it, with the stand-in (tests only).

`launch(fake, folder, data_dir, **knobs)` starts this file in a process of its own with the
environment `FakeZeroGPU.app_env` gives: the real `spaces` package in ZeroGPU mode, pointed at
the fake scheduler. Run as a script, it builds and serves the app and writes what the main
process did with CUDA to $FTLAB_TEST_CUDA_REPORT: once after importing and building the app,
and again on SIGUSR1. On a ZeroGPU Space the main process has no GPU: `spaces` emulates one
there, so a tensor put "on CUDA" here would become an emulated one (`cuda_aliases`), and a real
CUDA init raises; both must stay at zero.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def launch(fake, folder: Path, data_dir: Path, **knobs: str) -> tuple[subprocess.Popen, str]:
    """Start the app against `fake`; -> (process, url). Output goes to <folder>/app.log."""
    from devtools.zerogpu import free_port

    port = free_port()
    env = dict(os.environ, **fake.app_env(folder), **knobs, FTLAB_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1",
               GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1", FTLAB_TEST_CUDA_REPORT=str(folder / "cuda.json"))
    env.pop("ANTHROPIC_API_KEY", None)
    log_path = folder / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while "http://" not in log_path.read_text() and proc.poll() is None:
        if time.monotonic() > deadline:
            stop(proc)
            raise AssertionError("the app did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)
    if proc.poll() is not None:
        raise AssertionError("the app exited:\n" + log_path.read_text()[-3000:])
    return proc, f"http://127.0.0.1:{port}/"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import app

    demo = app.build_app()  # imports training.gpu.calls, which activates the stand-in, then `spaces`
    import torch  # imported by `spaces`

    from devtools import zerogpu

    inits, reports = [], []
    emulated_init = torch._C._cuda_init  # spaces' patch: raises if real CUDA is ever initialised here

    def counting_init():
        inits.append(1)
        return emulated_init()

    torch._C._cuda_init = counting_init

    def report(*_args) -> None:
        reports.append(1)
        facts = dict(zerogpu.cuda_touched_in_parent(), cuda_inits=len(inits), report=len(reports),
                     cuda_available_here=torch.cuda.is_available())
        path = os.environ["FTLAB_TEST_CUDA_REPORT"]
        with open(path + ".tmp", "w") as fh:
            json.dump(facts, fh)
        os.replace(path + ".tmp", path)

    report()
    signal.signal(signal.SIGUSR1, report)
    app.launch(demo)


if __name__ == "__main__":
    main()
