"""End to end on the embedded SmolLM2-135M on CPU: real LoRA SFT and DPO runs (~1-2 min here).

One module-scoped SFT run is trained in two slices through the same generator
the UI uses (training.gpu.calls.train_until_done); a second, unsliced run of the same
config is the reference for "slices change nothing". Both are small (8 steps,
max length 64) so the module stays fast on two shared cores.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from training.run import config
from training.run import engine
from training.gpu import calls as gpu
from training.run import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ANSWER = '{"animal": "zebra"}'
# An overfit set: whatever the note says, the answer is the same JSON. After a
# few steps the tuned model should produce it; the base model never does.
SFT_ROWS = [{"messages": [{"role": "user", "content": f"Note {i}: the patient saw a {w}."},
                          {"role": "assistant", "content": ANSWER}]}
            for i, w in enumerate(["dog", "cat", "bird", "horse", "fish", "cow", "goat", "frog"])]
PROBE = [{"role": "user", "content": "Note 99: the patient saw a lion."}]

HP = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "lora_target_modules": "attention", "learning_rate": 2e-3,
      "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
      "max_steps": 6, "max_length": 64, "eval_steps": 3, "early_stopping_patience": 0, "seed": 7}


def _config(method="sft", **over):
    cfg, errors = config.validate(dict(HP, **over), method, dataset=config.DataRef(name="inline test rows"))
    assert not errors, errors
    return cfg


def _splits(rows):
    return {"train": rows, "validation": rows[:2], "test": rows[:2]}


def _losses(run_id):
    return [(e["step"], e["loss"]) for e in runs.read_log(run_id) if "loss" in e]


@pytest.fixture(scope="module")
def sliced_run(module_data_dir):
    """6 steps in slices of 3, with a simulated app crash after the first slice."""
    rid = engine.start_run(_config(), _splits(SFT_ROWS))
    first = list(gpu.train_slice_gpu(rid, 3))
    assert first[-1] == {"kind": "slice_end", "status": "paused", "step": 3, "message": first[-1]["message"]}
    # The app process dies while the next slice is running: status says running,
    # the owner pid is gone, and a step after the checkpoint made it into the log.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.update_run(rid, status="running", owner_pid=dead.pid, owner_host=socket.gethostname())
    runs.append_log(rid, [{"step": 4, "loss": 9.9, "elapsed": 1.0}])
    after_crash = runs.read_run(rid)
    events = list(gpu.train_until_done(rid, 3))
    return rid, first, after_crash, events


@pytest.fixture(scope="module")
def whole_run(module_data_dir):
    rid = engine.start_run(_config(), _splits(SFT_ROWS))
    info = engine.run_slice(rid, max_slice_steps=100)
    return rid, info


def test_crashed_run_shows_interrupted_with_its_checkpoint(sliced_run):
    _, _, after_crash, _ = sliced_run
    assert after_crash["status"] == "interrupted"
    assert after_crash["has_checkpoint"] and "step 3" in after_crash["message"]


def test_sliced_run_resumes_and_finishes_with_a_continuous_falling_curve(sliced_run, whole_run):
    rid, first, _, events = sliced_run
    info = runs.read_run(rid)
    assert info["status"] == "finished" and info["step"] == 6 and info["slices"] == 2
    assert events[-1]["kind"] == "slice_end" and events[-1]["status"] == "finished"
    losses = _losses(rid)
    assert [s for s, _ in losses] == list(range(1, 7))  # one point per step, no gap, no repeat
    assert 9.9 not in [v for _, v in losses]             # the lost step was trained again
    assert sum(v for _, v in losses[-2:]) < 0.5 * sum(v for _, v in losses[:2])
    assert [e["step"] for e in runs.read_log(rid) if "eval_loss" in e] == [3, 6]
    # Same step count and the same curve as one uninterrupted run of the same config.
    wid, winfo = whole_run
    assert winfo["status"] == "finished" and winfo["step"] == info["step"]
    for (s1, a), (s2, b) in zip(losses, _losses(wid)):
        assert s1 == s2 and a == pytest.approx(b, rel=0.05, abs=0.05)


def test_adapter_reloads_with_peft_and_changes_the_output(sliced_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training.run.base_model import load_tokenizer
    from training.evaluation.inference import generate

    rid = sliced_run[0]
    path = runs.read_run(rid)["model"]["path"]
    tok = load_tokenizer(path)
    base = AutoModelForCausalLM.from_pretrained(path)
    before = generate(base, tok, PROBE, 12)
    tuned = PeftModel.from_pretrained(base, str(runs.run_dir(rid) / "adapter"))
    after = generate(tuned, tok, PROBE, 12)
    assert after != before
    assert after.startswith('{"animal"'), after


def test_evaluation_chat_zip_and_merge(sliced_run):
    from training.evaluation import evaluate
    from training.evaluation import inference

    rid = sliced_run[0]
    metrics = evaluate.evaluate_run(rid, n_samples=2, max_new_tokens=12)
    assert metrics["n"] == 2 and json.loads((runs.run_dir(rid) / "metrics.json").read_text())["n"] == 2
    assert metrics["tuned"]["json_valid"] == 1.0 and metrics["tuned"]["exact_match"] == 1.0
    assert metrics["base"]["exact_match"] == 0.0
    rows = evaluate.metrics_rows(metrics)
    assert rows[1][0] == "Exact match" and rows[1][2].startswith("100% [")  # with its 95% interval
    history = inference.chat_reply(rid, [], "Note 5: the patient saw an owl.", max_new_tokens=10)
    assert history[-1]["role"] == "assistant" and history[-1]["content"].startswith('{"animal"')
    assert runs.zip_dir(rid, "adapter").stat().st_size > 10_000
    merged = inference.merge_run(rid)
    assert (merged / "config.json").is_file() and (runs.run_dir(rid) / "adapter" / "adapter_config.json").is_file()


def test_stop_keeps_a_loadable_adapter(module_data_dir):
    from peft import PeftConfig

    rid = engine.start_run(_config(max_steps=50, eval_steps=100), _splits(SFT_ROWS))

    def on_event(event):
        if event.get("kind") == "step" and event["step"] >= 2:
            runs.request_stop(rid)  # what the Stop button does

    t = threading.Thread(target=engine.run_slice, args=(rid,), kwargs={"on_event": on_event})
    t.start()
    t.join(timeout=300)
    info = runs.read_run(rid)
    assert info["status"] == "stopped" and 2 <= info["step"] < 50
    assert "adapter" in info["message"]
    assert PeftConfig.from_pretrained(str(runs.run_dir(rid) / "adapter")).r == 8
    assert not runs.stop_requested(rid)


def test_short_dpo_run_completes(module_data_dir):
    pairs = [{"prompt": [{"role": "user", "content": f"Give the animal in note {i} as JSON."}],
              "chosen": [{"role": "assistant", "content": ANSWER}],
              "rejected": [{"role": "assistant", "content": "Sure! The animal is a zebra."}]} for i in range(4)]
    rid = engine.start_run(_config("dpo", max_steps=2, learning_rate=5e-4, eval_steps=2),
                           _splits(pairs))
    info = engine.run_slice(rid)
    assert info["status"] == "finished" and info["step"] == 2, info.get("error")
    assert len(_losses(rid)) == 2
    assert (runs.run_dir(rid) / "adapter" / "adapter_config.json").is_file()


def test_kill_drill_process_killed_mid_run_is_interrupted_and_resumes(module_data_dir, monkeypatch):
    """The training process is killed with SIGKILL mid-run; the run is then shown
    interrupted with its last checkpoint and a resume finishes it."""
    rid = engine.start_run(_config(max_steps=5, eval_steps=100), _splits(SFT_ROWS))
    code = ("import sys; from training.run import engine; "
            "engine.run_slice(sys.argv[1], on_event=lambda e: print('STEP', e['step'], flush=True) "
            "if e.get('kind') == 'step' else None)")
    env = dict(os.environ, FTLAB_CHECKPOINT_EVERY="2", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code, rid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env, cwd=str(ROOT))
    try:
        for line in proc.stdout:  # blocks until the trainer reports; step 3 comes after checkpoint 2
            if line.strip() == "STEP 3":
                break
        assert runs.read_run(rid)["status"] == "running"
    finally:
        proc.kill()
        proc.wait()
    info = runs.read_run(rid)
    assert info["status"] == "interrupted" and runs.last_checkpoint_step(rid) == 2
    final = engine.run_slice(rid)
    assert final["status"] == "finished" and final["step"] == 5
    assert [s for s, _ in _losses(rid)] == [1, 2, 3, 4, 5]


def test_nan_and_divergence_stop_with_a_plain_explanation(module_data_dir):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    rid = runs.create_run({}, total_steps=50)
    args = TrainingArguments(output_dir=str(runs.run_dir(rid) / "work"), report_to="none", use_cpu=True)

    def feed(losses):
        cb = engine._make_callback(rid, slice_end=50, total=50, on_event=None, elapsed_before=0.0,
                                   patience=0, ckpt_every=0)
        state, control = TrainerState(), TrainerControl()
        for i, loss in enumerate(losses, 1):
            state.global_step = i
            cb.on_log(args, state, control, logs={"loss": loss, "learning_rate": 1e-3})
            if control.should_training_stop:
                break
        return cb, control

    cb, control = feed([2.0, 1.8, float("nan"), 1.0])
    assert cb.outcome == "nan" and control.should_training_stop and not control.should_save
    assert "learning rate" in cb.message and "step 3" in cb.message
    cb, control = feed([2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 5.0, 6.0, 7.5])
    assert cb.outcome == "diverged" and control.should_training_stop
    assert "Lower the learning rate" in cb.message
    cb, control = feed([2.0, 1.5, 1.2, 1.0, 3.5, 0.9, 0.8, 0.7])  # one bad batch is not divergence
    assert cb.outcome is None and not control.should_training_stop


def test_a_slice_past_its_gpu_deadline_checkpoints_and_pauses(module_data_dir):
    import time as _time

    rid = engine.start_run(_config(max_steps=4, eval_steps=100), _splits(SFT_ROWS))
    info = engine.run_slice(rid, deadline=_time.monotonic())  # ZeroGPU time already used up
    assert info["status"] == "paused" and info["step"] == 1 and runs.last_checkpoint_step(rid) == 1


def test_early_stopping_keeps_the_best_eval_step(module_data_dir):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    rid = runs.create_run({}, total_steps=50)
    args = TrainingArguments(output_dir=str(runs.run_dir(rid) / "work"), report_to="none", use_cpu=True)
    cb = engine._make_callback(rid, slice_end=50, total=50, on_event=None, elapsed_before=0.0,
                               patience=2, ckpt_every=0)
    state, control = TrainerState(), TrainerControl()
    for step, eval_loss in [(5, 1.0), (10, 1.1)]:
        state.global_step = step
        cb.on_evaluate(args, state, control, metrics={"eval_loss": eval_loss})
    assert cb.outcome is None and not control.should_training_stop  # one worse eval is patience, not a stop
    state.global_step = 15
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.2})
    assert cb.outcome == "early" and control.should_training_stop
    assert "step 5" in cb.message and runs.read_run(rid)["best_step"] == 5
