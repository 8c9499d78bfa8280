"""The Training tab on a ZeroGPU Space, end to end without a GPU.

The app runs in its own process as a ZeroGPU Space runs it: the real `spaces` package in
ZeroGPU mode, pointed at the fake scheduler (devtools/zerogpu.py), so every slice, the
evaluation and each chat reply is a `spaces.GPU` call in a forked worker that is charged to the
learner's quota, killed at its requested duration, and refused when the quota cannot cover it.
A learner drives it through gradio_client with the X-IP-Token the Hub's proxy adds.

One tiny SFT run (4 steps, slices of 2) goes through: a refusal before its first slice, a
refusal between slices, Resume once the quota is back, then an evaluation and a chat reply
(each its own call), and an evaluation refused. A reference run of the same config trains in
this process (decorator off) and must give the same losses and the same adapter. A second run
has its worker frozen mid-slice: ZeroGPU kills it at its duration and the run goes on from
its checkpoint.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio_client import Client

from devtools.zerogpu import FakeZeroGPU, learner_token

ROOT = Path(__file__).resolve().parent.parent
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
STEPS, SLICE = 4, 2
# GPU speed assumed by the plan (seconds per 256-token sequence) and per-call load time: set so
# a slice is 2 steps and its first request leaves a loaded 2-core machine room to finish it
# (later slices ask for the speed they measured). A checkpoint every step: on a machine so busy
# that a slice is killed anyway, the next one still goes on from where it was.
KNOBS = {"FTLAB_GPU_S_PER_SEQUENCE": "40", "FTLAB_GPU_SLICE_SECONDS": "45", "FTLAB_GPU_OVERHEAD_SECONDS": "30",
         "FTLAB_EVAL_MAX_ROWS": "2", "FTLAB_CHAT_MAX_NEW_TOKENS": "8", "FTLAB_MAX_GPU_DURATION": "300",
         "FTLAB_CHECKPOINT_EVERY": "1", "FTLAB_GPU_S_PER_EVAL_EXAMPLE": "300", "FTLAB_MAX_GPU_EVAL_DURATION": "600",
         "FTLAB_GPU_S_PER_TOKEN": "20"}
# What the evaluation (1 example, no cases) and a chat reply (8 tokens) ask for: load + their work,
# sized for answers generated on a CPU that other work may slow down a lot.
EVAL_REQUEST = 30 + 300 * 1
CHAT_REQUEST = 30 + 20 * 8
TRAIN_S = 600


def _hp(**over):
    from training.run import config
    h = dict(config.defaults("cpu"), lora_r=4, lora_alpha=8, max_steps=STEPS, per_device_train_batch_size=1,
             gradient_accumulation_steps=1, max_length=128,
             eval_steps=100, early_stopping_patience=0, warmup_ratio=0.0, seed=5)
    h.update(over)
    return [h[k] for k in config.HP_NAMES]


@pytest.fixture(scope="module")
def space(module_data_dir, tmp_path_factory):
    from fakes.zerogpu_app import launch, stop

    folder = tmp_path_factory.mktemp("zerogpu-space")
    # A day's quota that outlasts a busy machine's extra slices; each test sets what is left
    # where it wants a refusal.
    with FakeZeroGPU(quotas={None: 3600, "regular": 3600, "pro": 3600}, max_duration_s=900) as fake:
        proc, url = launch(fake, folder, module_data_dir, **KNOBS)
        try:
            yield SimpleNamespace(fake=fake, url=url, proc=proc, folder=folder, data=module_data_dir)
        finally:
            stop(proc)


def _client(space, name: str, auth: str | None) -> Client:
    return Client(space.url, verbose=False, headers={"x-ip-token": learner_token(name, auth)})


def _start(client: Client) -> tuple[str, tuple]:
    client.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler")
    ids, msg = client.predict(MODEL, "sft", [], *_hp(), api_name="/prepare_run_handler")[:2]
    assert "Run created" in msg, msg
    return ids[-1], client.predict(api_name="/train_handler")


def _resume(client: Client, ids: list[str]) -> tuple:
    assert "Resuming" in client.predict(ids, api_name="/resume_check_handler")
    return client.predict(api_name="/train_handler_1")


def _resume_to_the_end(client: Client, ids: list[str], tries: int = 3) -> tuple:
    """Resume, and again while the run waits paused: what a learner does when a machine far busier
    than the requests assumed has ZeroGPU end slice after slice (on a quiet one, once is enough)."""
    from training.run import runs
    out = _resume(client, ids)
    while runs.read_run(ids[-1])["status"] == "paused" and not runs.read_run(ids[-1]).get("gpu_refusal") and tries:
        tries -= 1
        out = _resume(client, ids)
    return out


def _story(fake, run_id: str | None = None) -> str:
    """What the scheduler saw and the run says, for a failing assertion's message."""
    from training.run import runs
    calls = "; ".join(f"{c.learner} {c.duration}s {c.result}" for c in fake.calls)
    kills = [(l.learner, l.duration) for l in fake.leases if l.killed]
    info = runs.read_run(run_id) if run_id else {}
    keep = ("status", "step", "slices", "message", "error", "gpu_kills", "gpu_note", "gpu_refusal")
    return f"calls: {calls}\nkilled: {kills}\nrun: { {k: info.get(k) for k in keep} }"


def _losses(run_id: str) -> list[tuple[int, float]]:
    from training.run import runs
    return [(e["step"], e["loss"]) for e in runs.read_log(run_id) if "loss" in e]


@pytest.fixture(scope="module")
def flow(space):
    """One learner (free account): refused before the first slice, refused between slices,
    resumed to the end; then an evaluation, a chat reply and a refused evaluation."""
    from training.run import runs

    fake, out = space.fake, SimpleNamespace()
    ada = _client(space, "ada", "regular")
    ada.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler")
    out.plan = ada.predict(MODEL, "sft", *_hp(), api_name="/check_handler")[-1]
    fake.set_left("ada", 5, auth="regular", reset_in_s=3 * 3600)
    out.run_id, out.refused_first = _start(ada)
    out.after_first = runs.read_run(out.run_id)
    first_request = fake.calls[-1].duration
    fake.set_left("ada", first_request + 3, auth="regular")   # enough for one slice, not two
    out.refused_second = _resume(ada, [out.run_id])
    out.after_second = runs.read_run(out.run_id)
    fake.reset_quota("ada")
    out.final = _resume_to_the_end(ada, [out.run_id])
    out.finished = runs.read_run(out.run_id)
    out.train_calls = [c for c in fake.calls if c.learner == "ada"]

    eval_out = ada.predict(1, None, False, api_name="/evaluate_handler")
    out.evaluated, out.eval_call = eval_out[0], fake.calls[-1]
    history, box = ada.predict([], "Note: the patient takes ibuprofen 200 mg twice a day.", True,
                               api_name="/chat_handler")
    out.chat, out.chat_call = history, fake.calls[-1]
    fake.set_left("ada", 1, auth="regular", reset_in_s=600)
    out.eval_refused = ada.predict(1, None, False, api_name="/evaluate_handler")[0]
    return out


def test_the_plan_says_what_the_run_asks_of_the_daily_quota(flow):
    from training.gpu import zerogpu

    plan = flow.plan
    listed = re.search(r"asking for the least that fits it: ([\d s,]+) \(", plan)
    requests = [int(x) for x in re.findall(r"(\d+) s", listed.group(1))]
    assert len(requests) == STEPS // SLICE, plan
    total = sum(requests)
    assert f"this run asks for **{zerogpu.fmt_s(total)} of GPU** in 2 calls" in plan, plan
    assert zerogpu.fits_sentence(total) in plan and "**Resume** goes on once the quota is back" in plan
    # The GPU is named as an assumption: nothing has read one yet.
    assert "assumed to be half an NVIDIA RTX PRO 6000 Blackwell (48 GB" in plan


def test_a_refused_first_slice_leaves_a_run_that_resumes(flow):
    status = flow.refused_first[0]
    assert "ZeroGPU refused slice 1 of this run: not enough GPU quota left today." in status
    assert "you have 5 s left" in status and re.search(r"it resets in 3 h|it resets in 2 h 59 min", status), status
    for choice in ("Subscribe to PRO", "Continue on the CPU", "Run it on Hugging Face Jobs", "Resume"):
        assert choice in status, choice
    assert flow.after_first["status"] == "paused" and flow.after_first["step"] == 0


def test_a_refusal_between_slices_keeps_the_checkpoint(flow):
    status, step = flow.refused_second[0], flow.after_second["step"]
    refused = re.search(r"ZeroGPU refused slice (\d) of this run", status)
    assert refused and int(refused.group(1)) >= 2 and "you have 3 s left" in status, status
    # Where the run waits: after slice 1's checkpoint (on a machine so busy that ZeroGPU ended
    # slice 1 first, the next call was the one refused, from the checkpoint it had).
    kept = (f"paused at step {step} of {STEPS} with its checkpoint" if step
            else "Nothing is lost: the run is kept, ready to start.")
    assert kept in status and flow.after_second["status"] == "paused", status


def test_resumed_run_finishes_with_the_losses_and_adapter_of_the_in_process_path(flow, space):
    """Same config, same seed, trained here with the decorator off: the same numbers."""
    import torch
    from safetensors.torch import load_file

    from training.gpu import calls
    from training.run import engine, runs
    from training.run.config import RunConfig

    assert flow.finished["status"] == "finished" and f"Step {STEPS} / {STEPS}" in flow.final[1], \
        _story(space.fake, flow.run_id)
    approved = [c for c in flow.train_calls if c.result == "approved"]
    assert len(approved) >= 2 and all(c.duration <= 180 for c in approved)
    info = runs.read_run(flow.run_id)
    ref = engine.start_run(RunConfig.from_dict(info["config"]), runs.read_datasets(flow.run_id))
    for _ in calls.train_until_done(ref, SLICE):
        pass
    assert _losses(flow.run_id) == _losses(ref) and len(_losses(ref)) == STEPS
    mine = load_file(str(runs.run_dir(flow.run_id) / "adapter" / "adapter_model.safetensors"))
    theirs = load_file(str(runs.run_dir(ref) / "adapter" / "adapter_model.safetensors"))
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_evaluation_and_chat_each_run_in_their_own_gpu_call(flow):
    assert flow.evaluated.startswith("Evaluated 1 held-out test example"), flow.evaluated
    assert flow.eval_call.duration == EVAL_REQUEST and flow.eval_call.result == "approved"
    reply = flow.chat[-1]
    content = reply["content"]
    text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
    assert reply["role"] == "assistant" and text and not text.startswith("("), reply
    assert flow.chat_call.result == "approved" and flow.chat_call.duration == CHAT_REQUEST
    # Three GPU functions, three kinds of call: the slices', the evaluation's and the chat's.
    train_tasks = {c.task_id for c in flow.train_calls}
    assert len(train_tasks) == 1 and len(train_tasks | {flow.eval_call.task_id, flow.chat_call.task_id}) == 3


def test_a_refused_evaluation_says_what_it_needs_and_what_is_left(flow):
    from training.gpu import zerogpu

    msg = flow.eval_refused
    assert "ZeroGPU refused this evaluation: not enough GPU quota left today." in msg, msg
    assert f"It needs {zerogpu.fmt_s(EVAL_REQUEST)} of GPU; you have 1 s left" in msg
    assert re.search(r"it resets in (10 min|9 min \d+ s) \(about \d\d:\d\d UTC\)", msg), msg
    assert "Evaluate on the CPU" in msg and "The run and its adapter are unchanged." in msg


def test_a_slice_killed_at_its_duration_resumes_from_its_checkpoint(space, flow):
    """A second learner's run; its worker freezes in slice 2 (one step past the checkpoint):
    ZeroGPU kills it at its requested duration and the next slice resumes from the checkpoint."""
    from training.run import runs

    fake = space.fake
    bob = _client(space, "bob", "pro")
    bob.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler")
    ids, msg = bob.predict(MODEL, "sft", [], *_hp(seed=9), api_name="/prepare_run_handler")[:2]
    rid = ids[-1]
    job = bob.submit(api_name="/train_handler")
    deadline = time.monotonic() + TRAIN_S

    def training_step_3():  # step 3 logged by a worker that still holds its GPU
        lease = next((l for l in reversed(fake.leases) if l.learner == "bob"), None)
        logged = any(e.get("step") == SLICE + 1 and "loss" in e for e in runs.read_log(rid))
        return lease if logged and lease and not lease.released and lease.pid else None

    while (lease := training_step_3()) is None:
        assert time.monotonic() < deadline and not job.done(), "step 3 never came\n" + _story(fake, rid)
        time.sleep(0.1)
    frozen_at = time.monotonic()
    fake.freeze(lease.pid)
    # Killed at its requested duration (counted from the grant), not later.
    assert fake.wait_for(lambda f: lease.killed, lease.duration + 10), _story(fake, rid)
    assert lease.killed_at - lease.granted_at == pytest.approx(lease.duration, abs=1) and lease.pid in fake.kills
    assert frozen_at < lease.killed_at
    final = job.result(timeout=TRAIN_S)
    if runs.read_run(rid)["status"] == "paused":  # killed again before a new checkpoint (a busy machine)
        final = _resume_to_the_end(bob, ids)
    info = runs.read_run(rid)
    assert info["status"] == "finished" and f"Step {STEPS} / {STEPS}" in final[1], _story(fake, rid)
    assert info["gpu_kills"] >= 1  # (more only if this machine is too busy for the requests)
    losses = _losses(rid)
    assert [s for s, _ in losses] == list(range(1, STEPS + 1))  # step 3 trained again, once in the log
    # The learner is told in one sentence, kept with the run after the next slice finished it.
    said = [line for line in final[0].split("\n") if "ZeroGPU ended slice" in line]
    assert len(said) == 1 and said[0].count(". ") == 0 and "goes on from its checkpoint at step" in said[0], final[0]


def test_continue_on_the_cpu_after_a_refusal(space, flow):
    """The learner's CPU choice: the run trains in the app's own process, which on ZeroGPU has an
    emulated CUDA only; same config and seed as the GPU-path run, so the same losses."""
    from training.run import runs

    cyd = _client(space, "cyd", None)
    space.fake.set_left("cyd", 0)
    cyd.predict("builtin", "pharmacy_meds", None, "", "sft", api_name="/load_dataset_handler")
    ids, msg = cyd.predict(MODEL, "sft", [], *_hp(), api_name="/prepare_run_handler")[:2]
    refused = cyd.predict(api_name="/train_handler")
    assert "ZeroGPU refused slice 1 of this run" in refused[0] and "**Sign in**" in refused[0]
    assert "Resuming on the CPU" in cyd.predict(ids, api_name="/resume_cpu_check_handler")
    final = cyd.predict(api_name="/train_on_cpu")
    info = runs.read_run(ids[-1])
    assert info["status"] == "finished" and f"Step {STEPS} / {STEPS}" in final[1], _story(space.fake, ids[-1])
    assert info["hardware"]["kind"] == "cpu" and info.get("gpu_refusal") is None
    assert not [c for c in space.fake.calls if c.learner == "cyd" and c.result == "approved"]
    assert _losses(ids[-1]) == _losses(flow.run_id)


def test_nothing_cuda_is_touched_in_the_main_process(space, flow):
    report = space.folder / "cuda.json"
    first = json.loads(report.read_text())
    assert first["cuda_tensors"] == 0 and first["cuda_inits"] == 0 and first["cuda_available_here"] is True
    os.kill(space.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while json.loads(report.read_text())["report"] == first["report"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = json.loads(report.read_text())
    assert after["report"] == 2, "the app did not report again"
    assert after["cuda_tensors"] == 0 and after["packed"] == 0 and after["cuda_inits"] == 0, after
    assert space.fake.startup_reports == 1  # the package reported the app's GPU functions at launch
