"""Training tab handlers called directly (no server), as a learner would hit them (fast, no training)."""
from __future__ import annotations

import re

import gradio as gr

from training.run import runs
from training.views import tab as ui
from training.data import sources
from training.data.loading import load_builtin

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _hp(**over):
    from training.run import config
    return dict(config.defaults("cpu"), **over)


def test_tab_builds_and_returns_the_shared_components():
    from training.run import config
    with gr.Blocks():
        parts = ui.build_training_tab()
    assert isinstance(parts["run_id"], gr.State)
    assert isinstance(parts["run_ids"], gr.BrowserState)
    # One input per config field, labelled and limited from the config table.
    hp = parts["hyperparameters"]
    assert list(hp) and set(hp) == set(config.HP_NAMES)
    assert hp["learning_rate"].elem_id == "train-hp-learning_rate" and hp["learning_rate"].label == "Learning rate"
    assert "cap 300" in hp["max_steps"].label and hp["lora_target_modules"].choices
    # Page-load and tab-select hooks are handed to app.py, not wired into the root Blocks here.
    assert [chain[0][0] for chain in parts["page_load"]] == [ui.attach_handler, ui.model_notice]
    assert parts["tab_select"][0][0] is ui.attach_handler


def test_switching_method_sets_that_methods_learning_rate_and_beta():
    assert ui.apply_method_defaults("dpo") == [5e-5, 0.1]
    sft_lr, _ = ui.apply_method_defaults("sft")
    assert sft_lr > 5e-5
    r, alpha, dropout, target, lr = ui.apply_preset("Light: r=8 on q,v", "dpo")
    assert (r, target, lr) == (8, "qv", 5e-5)


def test_wrong_data_is_refused_and_the_loaded_dataset_is_kept(ftlab_data_dir, tmp_path):
    ds, msg = ui.load_dataset_handler("builtin", "clinical_soap", None, "", "sft", None)
    assert len(ds["train"]) > 100 and "Loaded" in msg
    same, msg = ui.load_dataset_handler("builtin", "preference", None, "", "sft", ds)
    assert same is ds and "DPO" in msg
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [oops\n')
    same, msg = ui.load_dataset_handler("upload", None, str(bad), "", "sft", ds)
    assert same is ds and "line 2" in msg and "previous dataset is kept" in msg
    same, msg = ui.load_dataset_handler("upload", None, None, "", "sft", ds)
    assert same is ds and "Choose" in msg


def test_check_shows_critic_histogram_highlight_and_plan(ftlab_data_dir):
    from training.run import config
    ds, _ = ui.load_dataset_handler("builtin", "pharmacy_meds", None, "", "sft", None)
    critic, check, hist, highlight, plan = ui.check_handler(ds, MODEL, "sft", _hp())
    assert "Dataset check" in critic
    assert "Ready to train" in check
    assert 'id="hist-max-length"' in hist and 'id="hist-kept-0"' in hist  # max length marked on the histogram
    assert "can't be reached" in ui.model_notice()  # offline: the embedded model, said up front
    assert {lab for _, lab in highlight} == {"trained", "prompt (not trained)"}
    assert f"{config.CPU_DEFAULTS['max_steps']} optimizer steps" in plan  # the CPU default run


def test_start_is_refused_before_training_with_the_field_named(ftlab_data_dir):
    ds, _ = ui.load_dataset_handler("builtin", "clinical_soap", None, "", "sft", None)
    rid, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", [], _hp(learning_rate=0))
    assert not go and "Learning rate" in msg
    rid, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", [], _hp(max_length=40))
    assert not go and "nothing" in msg and "Max length" in msg
    assert list(runs.runs_root().iterdir()) == []
    # The chained train step does nothing for a refused start (keeps the message on screen).
    assert all(isinstance(x, type(gr.skip())) for x in next(ui.train_handler(rid, go)))


def _markers(svg: str, gid: str) -> int:
    """Markers (one per point) in a chart series group of training/run/charts.py's SVG."""
    group = re.search(rf'<g id="{gid}">(.*?)</g>', svg, re.S)
    return group.group(1).count("<use ") if group else 0


def test_one_run_at_a_time_and_reattach_after_reload(ftlab_data_dir):
    ds, _ = ui.load_dataset_handler("builtin", "clinical_soap", None, "", "sft", None)
    rid, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", ["junk/../x"], _hp())
    assert go and ids == [rid] and runs.read_run(rid)["status"] == "planned"
    runs.claim(rid)  # training now
    other, ids2, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", ids, _hp())
    assert not go and other == rid and "one run at a time" in msg
    # A fresh page load with the same BrowserState finds the run and its curve.
    runs.append_log(rid, [{"step": 1, "loss": 2.0, "elapsed": 1.0, "learning_rate": 1e-4}])
    out = ui.attach_handler(ids)
    total = _hp()["max_steps"]  # the CPU default run's steps
    assert out[0] == rid and "Training" in out[2] and f"Step 1 / {total}" in out[3]
    # The first point is drawn as a visible marker, with the legend; no eval point yet.
    curve = out[4]
    assert _markers(curve, "curve-train-loss") == 1 and "train loss" in curve
    assert 'id="curve-eval-loss"' not in curve and "eval loss" not in curve
    # Stop while training only raises the flag; the trainer acts on it.
    assert "Stopping" in ui.stop_handler(rid) and runs.stop_requested(rid)


def test_resume_only_for_resumable_runs(ftlab_data_dir):
    split = load_builtin("clinical_soap")
    ds = sources.as_state(split)
    rid, ids, _, _ = ui.prepare_run_handler(ds, MODEL, "sft", [], _hp())
    msg, go = ui.resume_check_handler(rid, ids)
    assert not go and "not started" in msg
    runs.update_run(rid, status="interrupted")
    msg, go = ui.resume_check_handler(rid, ids)
    assert go
    msg, go = ui.resume_check_handler("../../etc/passwd", ids)
    assert not go


def test_after_run_actions_explain_what_is_missing(ftlab_data_dir):
    assert "Train a model first" in list(ui.evaluate_handler(None, 3))[-1][0]
    assert ui.download_adapter_handler(None)[1] == "Train a model first."
    rid = runs.create_run({}, model={"path": "x"})
    assert "no saved adapter" in list(ui.evaluate_handler(rid, 3))[-1][0]
    hist, _ = list(ui.chat_handler(rid, [], "hello", True))[-1]
    assert "Train a model first" in hist[-1]["content"]
    _, msg = ui.merge_handler(rid)
    assert "adapter" in msg


def test_a_run_stopped_while_queued_is_not_trained(ftlab_data_dir):
    ds, _ = ui.load_dataset_handler("builtin", "clinical_soap", None, "", "sft", None)
    rid, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", [], _hp())
    assert go == "start"
    # Queued: a second Start is refused until this one is stopped.
    assert not ui.prepare_run_handler(ds, MODEL, "sft", ids, _hp())[3]
    assert "no adapter" in ui.stop_handler(rid)
    status, *_ = next(ui.train_handler(rid, go))  # the queued train step finally runs
    assert "Stopped" in status and runs.read_run(rid)["step"] == 0
    assert ui.prepare_run_handler(ds, MODEL, "sft", ids, _hp())[3] == "start"
