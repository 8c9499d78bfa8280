"""Recovery and queueing drills against the real app in a subprocess (CPU, embedded model).

1. A learner starts a tiny run; while it trains, a quiz submit from another learner
   completes (chat and quizzes do not wait behind the GPU queue) and a second learner's
   start waits in the queue with a visible position.
2. The app process is SIGKILLed mid-run and started again: the learner's page finds the run
   interrupted with its last checkpoint, and Resume finishes it.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client

from quizzes import grading

ROOT = Path(__file__).resolve().parent.parent
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _hp():
    from training.run import config
    h = dict(config.defaults("cpu"), lora_r=4, lora_alpha=8, max_steps=4, per_device_train_batch_size=1, gradient_accumulation_steps=1,
             max_length=384, eval_steps=100, early_stopping_patience=0, warmup_ratio=0.0)
    return [h[k] for k in config.HP_NAMES]


def _launch(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, FTLAB_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", FTLAB_CHECKPOINT_EVERY="1",
               GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    env.pop("ANTHROPIC_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-c", "import app; app.launch()"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # blocks until gradio prints its URL (or the process ends)
        if "http://" in line:
            return proc, f"http://127.0.0.1:{port}/"
    raise AssertionError(f"the app did not start (exit {proc.wait()})")


def _step(progress_md: str) -> int:
    m = re.search(r"Step (\d+) /", progress_md or "")
    return int(m.group(1)) if m else 0


def test_queue_then_kill_restart_and_resume(module_data_dir):
    from fakes.anthropic_server import free_port
    from training.run import runs

    port = free_port()
    proc, url = _launch(module_data_dir, port)
    try:
        a, b, c = (Client(url, verbose=False) for _ in range(3))
        a.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler")
        ids, msg = a.predict(MODEL, "sft", [], *_hp(), api_name="/prepare_run_handler")
        assert "Run created" in msg, msg
        rid = ids[0]
        job = a.submit(api_name="/train_handler")
        # Wait (on the job's own updates) until a step past the first checkpoint is logged.
        for out in job:  # each redraw of the progress panel, as the page sees it
            if _step(out[1]) >= 2:
                break
        assert not job.done() and runs.read_run(rid)["status"] == "running"

        # Quizzes answer while the GPU slot is busy.
        answers = [next(o["text"] for o in q["options"] if o["correct"]) for q in grading.load_quiz("lesson1")["questions"]]
        feedback, progress, _ = c.predict(None, *answers, api_name="/submit_lesson1")
        assert "Score: 4/4" in feedback and not job.done()

        # A second learner's start waits in the GPU queue and is told its place.
        b.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler")
        b.predict(MODEL, "sft", [], *_hp(), api_name="/prepare_run_handler")
        queued = b.submit(api_name="/train_handler")
        deadline = time.monotonic() + 60
        while queued.status().rank is None and time.monotonic() < deadline and not job.done():
            time.sleep(0.1)
        st = queued.status()
        assert st.code.name == "IN_QUEUE" and st.rank == 0 and st.queue_size >= 1, st

        proc.send_signal(signal.SIGKILL)  # the app dies mid-run
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc, url = _launch(module_data_dir, port)
    try:
        a = Client(url, verbose=False)
        _choices, status, prog, *_ = a.predict(ids, None, api_name="/attach_handler")
        step = runs.last_checkpoint_step(rid)
        assert "Interrupted" in status and f"last checkpoint (step {step})" in status and step >= 1, status
        assert "Resuming" in a.predict(ids, api_name="/resume_check_handler")
        final = a.predict(api_name="/train_handler_1")
        assert "Finished" in final[0] and "Step 4 / 4" in final[1], final[:2]
        assert runs.read_run(rid)["has_adapter"]
    finally:
        proc.kill()
        proc.wait()
