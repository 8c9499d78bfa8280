"""ZeroGPU's rules as the app applies them, without a process of their own: which path GPU work
takes, what a run asks of the daily quota, and how `spaces`' errors read to the learner."""
from __future__ import annotations

import pickle

import pytest

from training.gpu import zerogpu
from training.run import config, device, engine


def _cfg(**over):
    cfg, errors = config.validate(dict({"max_steps": 40, "per_device_train_batch_size": 2,
                                        "gradient_accumulation_steps": 1, "max_length": 256}, **over),
                                  "sft")
    assert not errors, errors
    return cfg


def test_path_choice_zerogpu_dedicated_gpu_or_cpu(monkeypatch):
    import torch

    from training.gpu import calls

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.placement() == "cpu" and engine.default_device() == "cpu"
    # A Space duplicated onto a dedicated GPU: CUDA in this process, no ZeroGPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.placement() == "gpu" and device.compute_device() == "cuda"
    p = engine.plan(_cfg(), 200)
    assert p["where"] == "gpu" and "slice_requests" not in p and zerogpu.plan_note(p) == ""
    assert "this machine's GPU" in engine.plan_markdown(p) and "ZeroGPU" not in engine.plan_markdown(p)
    # Off ZeroGPU `spaces.GPU` returned the functions themselves: the plain path, in this process.
    assert not hasattr(calls.train_slice_gpu, "zerogpu") and not hasattr(calls.train_slice_gpu, "__wrapped__")
    # ZeroGPU: the work goes to the GPU call; this (main) process computes on its CPU only.
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert device.placement() == "zerogpu" and engine.default_device() == "cuda"
    assert device.compute_device() == "cpu"
    assert engine.plan(_cfg(), 200)["where"] == "zerogpu"


def test_each_slice_asks_for_the_least_that_fits_it():
    p = engine.plan(_cfg(max_steps=50, per_device_train_batch_size=8, gradient_accumulation_steps=4), 4000,
                    where="zerogpu")
    requests = p["slice_requests"]
    assert len(requests) == p["n_slices"] >= 2 and p["gpu_total_s"] == sum(requests)
    steps_last = p["total_steps"] - (p["n_slices"] - 1) * p["slice_steps"]
    if steps_last < p["slice_steps"]:
        assert requests[-1] < requests[0]  # the last, shorter slice asks for less
    assert all(engine.MIN_GPU_DURATION_S <= r <= engine.MAX_GPU_DURATION_S for r in requests)
    assert requests[0] == engine.gpu_request_s(p["slice_steps"], p["s_per_step"], p["eval_s_per_step"])


def test_the_plan_compares_the_run_with_each_daily_quota():
    assert zerogpu.fits_sentence(95) == "fits the 2 min a day a signed-out learner has"
    assert "fits the 5 min a day of a free Hugging Face account" in zerogpu.fits_sentence(200)
    assert "fits PRO's 40 min" in zerogpu.fits_sentence(1000)
    assert "Hugging Face Jobs" in zerogpu.fits_sentence(5000)
    note = zerogpu.plan_note({"where": "zerogpu", "slice_requests": [52, 43]}, eval_request_s=30)
    assert "this run asks for **95 s of GPU** in 2 calls" in note and "a signed-out learner has" in note
    assert "Evaluating it afterwards asks for about 30 s more" in note
    assert zerogpu.charged_s(60, factor=1.5) == 90 and zerogpu.charged_s(60, size="xlarge") == 120


class _Err(Exception):
    """What `spaces` raises: a gr.Error with a title and a message."""

    def __init__(self, title, message):
        super().__init__(message)
        self.title, self.message = title, message


@pytest.mark.parametrize(("title", "message", "kind", "requested", "left", "wait", "account"), [
    ("ZeroGPU quota exceeded", "You have exceeded your free ZeroGPU quota (60s requested vs. 10s left). "
     "Try again in 2:59:58. ", "quota", 60, 10, 2 * 3600 + 59 * 60 + 58, "free account"),
    ("ZeroGPU quota exceeded", "You have exceeded your ZeroGPU quota (45s requested vs. 0s left). Try again in "
     "1 day, 0:00:00. ", "quota", 45, 0, 86400, "signed out"),
    ("ZeroGPU quota exceeded", "You have exceeded your Pro ZeroGPU quota (45s requested vs. 3s left). Try again "
     "in 0:05:00. ", "quota", 45, 3, 300, "PRO"),
    ("ZeroGPU quota exceeded", "Space app has reached its GPU limit. Try re-running outside of examples",
     "quota", None, None, None, None),
    ("ZeroGPU illegal duration", "The requested GPU duration (400s) is larger than the maximum allowed",
     "illegal", 400, None, None, None),
    ("ZeroGPU queue timeout", "No GPU was available after 60s. Retry later", "queue", None, None, None, None),
    ("ZeroGPU quota exceeded", "No GPU was available after 60s. Try re-running", "queue", None, None, None, None),
    ("ZeroGPU client error", "No GPU was available", "unavailable", None, None, None, None),
    ("ZeroGPU worker error", "GPU task aborted", "aborted", None, None, None, None),
    ("ZeroGPU worker error", "OutOfMemoryError", "worker_error", None, None, None, None),
])
def test_spaces_errors_are_read_into_outcomes(title, message, kind, requested, left, wait, account):
    o = zerogpu.classify(_Err(title, message))
    assert (o.kind, o.requested_s, o.left_s, o.wait_s, o.account) == (kind, requested, left, wait, account)
    assert o.refused is (kind not in ("aborted", "worker_error"))


def test_other_errors_are_not_zerogpus():
    assert zerogpu.classify(ValueError("boom")) is None
    assert zerogpu.classify(pickle.PicklingError("cannot pickle")).kind == "worker_error"


def test_refusal_message_has_the_need_what_is_left_the_reset_and_the_choices():
    o = zerogpu.classify(_Err("ZeroGPU quota exceeded", "You have exceeded your ZeroGPU quota (72s requested vs. "
                                                        "5s left). Try again in 2:00:00. "))
    md = zerogpu.refusal_markdown(o, "slice 2 of this run", 72, kept="The run is paused at step 2 of 4.",
                                  cpu_choice="**Continue on the CPU**.")
    assert md.startswith("**ZeroGPU refused slice 2 of this run: not enough GPU quota left today.**")
    assert "It needs 72 s of GPU; you have 5 s left, and it resets in 2 h" in md
    for choice in ("**Sign in**", "**Continue on the CPU**", "**Run it on Hugging Face Jobs**", "**Resume**"):
        assert choice in md
    free = zerogpu.refusal_markdown(dict(o.to_dict(), account="free account", what="kept beside it in run.json"),
                                    "this evaluation", 30, kept="",
                                    cpu_choice="", jobs=False)
    assert "**Subscribe to PRO**" in free and "Jobs" not in free and "Resume" not in free


def test_an_illegal_duration_says_what_to_do_for_what_was_asked():
    o = zerogpu.classify(_Err("ZeroGPU illegal duration", "The requested GPU duration (330s) is larger than the "
                                                          "maximum allowed"))
    md = zerogpu.refusal_markdown(o, "this evaluation", 330, kept="", cpu_choice="")
    assert "It asked for 5 min 30 s, more than ZeroGPU allows for one call. Evaluate fewer examples." in md


def test_a_killed_slice_is_told_in_one_sentence():
    at_limit = zerogpu.killed_sentence(2, 46, 46.3, 3, 2)
    assert at_limit == ("ZeroGPU ended slice 2 at its 46 s limit during step 4; the run goes on from its checkpoint "
                        "at step 2, so 1 step after it will be trained again.")
    died = zerogpu.killed_sentence(1, 60, 12.0, 0, 0)
    assert died.startswith("The GPU worker of slice 1 died after 12 s (out of memory, or it crashed)")
    assert died.count(".") == 1 and "nothing is trained twice" in died
    saving = zerogpu.killed_sentence(3, 60, 60.0, 4, 3, total_steps=4)
    assert "limit while it saved the last step; the run goes on from its checkpoint at step 3" in saving


def test_the_gpu_is_stated_as_read_or_named_as_an_assumption(monkeypatch, ftlab_data_dir):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(device, "driver_model", lambda: None)
    assert "assumed to be half an NVIDIA RTX PRO 6000 Blackwell (48 GB" in device.describe_gpu()
    monkeypatch.setattr(device, "driver_model", lambda: "NVIDIA RTX PRO 6000 Blackwell Server Edition")
    assert "ZeroGPU's NVIDIA RTX PRO 6000 Blackwell Server Edition (as the driver names it" in device.describe_gpu()
    device.remember_zerogpu_device({"kind": "gpu", "name": "NVIDIA H200 MIG 3g.71gb", "memory_gb": 74.6,
                                    "read_at": 0})
    assert "ZeroGPU's NVIDIA H200 MIG 3g.71gb (74.6 GB, read by this Space's last GPU call" in device.describe_gpu()


def test_lab3_sizes_zerogpu_as_read_or_as_a_named_assumption(ftlab_data_dir):
    from core.gpu import remember_zerogpu_device
    from labs import offline

    inputs, notes = offline._lora_input("SmolLM2-360M, 800 examples of JSON extraction, trained on ZeroGPU")
    assert inputs["gpu_memory_gb"] == 48.0 and "48 GB assumed (half an NVIDIA RTX PRO 6000 Blackwell" in notes[-1]
    remember_zerogpu_device({"kind": "gpu", "name": "NVIDIA H200 MIG 3g.71gb", "memory_gb": 74.6, "read_at": 0})
    inputs, notes = offline._lora_input("SmolLM2-360M, 800 examples of JSON extraction, trained on ZeroGPU")
    assert inputs["gpu_memory_gb"] == 74.6 and "as this Space's last GPU call read it" in notes[-1]


# ------------------------------------------------------------------ train_until_done's outcomes

def _planned_run(total=4, slice_steps=2):
    from training.run import runs
    plan = {"total_steps": total, "slice_steps": slice_steps, "s_per_step": 2.0, "eval_s_per_step": 0.0,
            "n_slices": 2, "where": "zerogpu"}
    return runs.create_run({"method": "sft"}, {"train": [{}]}, plan=plan, total_steps=total)


def _scripted_slices(monkeypatch, script):
    """Replace the GPU call by a script of what each call does: ("raise", title, message, state)
    or ("slice", status, step). `state` is written to run.json first (what the worker did)."""
    from training.gpu import calls
    from training.run import runs
    seen = []

    def fake_call(run_id, max_slice_steps=None, request_s=None):
        seen.append(request_s)
        kind, *rest = script.pop(0)
        if kind == "raise":
            title, message, state = rest
            if state:
                runs.update_run(run_id, **state)
            raise _Err(title, message)
        status, step = rest
        runs.update_run(run_id, status=status, step=step, slices=len(seen))
        yield {"kind": "slice_end", "status": status, "step": step, "message": ""}

    monkeypatch.setattr(calls, "train_slice_gpu", fake_call)
    return seen


def test_a_refused_first_call_pauses_the_run_and_keeps_the_refusal(monkeypatch, ftlab_data_dir):
    from training.gpu import calls
    from training.run import runs

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    rid = _planned_run()
    seen = _scripted_slices(monkeypatch, [("raise", "ZeroGPU quota exceeded", "You have exceeded your ZeroGPU quota "
                                           "(33s requested vs. 4s left). Try again in 1:00:00. ", None)])
    events = list(calls.train_until_done(rid))
    info = runs.read_run(rid)
    assert seen == [calls.slice_request(rid)] and events[-1]["kind"] == "gpu_refused"
    assert info["status"] == "paused" and runs.can_resume(info)  # resumable though it never started
    assert info["gpu_refusal"]["left_s"] == 4 and info["gpu_refusal"]["what"] == "slice 1 of this run"


def test_a_killed_slice_goes_on_once_per_checkpoint(monkeypatch, ftlab_data_dir):
    from training.gpu import calls
    from training.run import runs

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    rid = _planned_run()
    dead = {"status": "running", "owner_pid": 2 ** 22 + 7, "slices": 1}   # the killed worker's claim
    _scripted_slices(monkeypatch, [("raise", "ZeroGPU worker error", "GPU task aborted", dead),
                                   ("slice", "paused", 2), ("slice", "finished", 4)])
    events = list(calls.train_until_done(rid))
    info = runs.read_run(rid)
    assert [e["kind"] for e in events] == ["gpu_lost", "slice_end", "slice_end"]
    assert info["status"] == "finished" and info["gpu_kills"] == 1
    assert "The GPU worker of slice 1 died after" in info["gpu_note"]  # long before its duration: it died
    # Two kills in a row with no new checkpoint: the run waits for the learner, paused.
    rid = _planned_run()
    _scripted_slices(monkeypatch, [("raise", "ZeroGPU worker error", "GPU task aborted", dead),
                                   ("raise", "ZeroGPU worker error", "GPU task aborted", dead)])
    events = list(calls.train_until_done(rid))
    assert [e["kind"] for e in events] == ["gpu_lost", "gpu_lost"] and runs.read_run(rid)["status"] == "paused"


def test_a_call_spaces_gave_up_on_while_its_trainer_lives_is_stopped(monkeypatch, ftlab_data_dir):
    import subprocess
    import sys

    from training.gpu import calls
    from training.run import runs

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    rid = _planned_run()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = {"status": "running", "owner_pid": worker.pid}
        _scripted_slices(monkeypatch, [("raise", "ZeroGPU worker error", "PicklingError", alive)])
        events = list(calls.train_until_done(rid))
        assert events[-1]["kind"] == "gpu_lost" and runs.stop_requested(rid)  # no second trainer, no orphan
        assert "asked to stop" in runs.read_run(rid)["gpu_note"]
    finally:
        worker.kill()
        worker.wait()
