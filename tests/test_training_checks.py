"""Pre-training checks with the embedded model's real tokenizer and chat template (fast, no training)."""
from __future__ import annotations

import json

import pytest

from training.data import checks
from training.run import config
from training.run import engine
from training.run import runs


def _row(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


ROWS = [_row(f"Note {i}: cough for {i} days.", json.dumps({"symptom": "cough", "days": i})) for i in range(6)]


def test_prompt_completion_split_matches_rendered_conversation(embedded_tokenizer):
    tok = embedded_tokenizer
    msgs = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Hi there"}]
    prompt, completion = checks.render_pair(tok, msgs, '{"ok": true}')
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": '{"ok": true}'}], tokenize=False)
    assert prompt + completion == full
    # The completion is the answer plus the end-of-turn token the template adds,
    # so the model also learns to stop.
    assert completion.startswith('{"ok": true}') and "<|im_end|>" in completion

    enc = checks.encode_sft(tok, {"messages": msgs + [{"role": "assistant", "content": '{"ok": true}'}]}, 512)
    trained = [t for t, lab in zip(enc["input_ids"], enc["labels"]) if lab != -100]
    masked = [t for t, lab in zip(enc["input_ids"], enc["labels"]) if lab == -100]
    assert tok.decode(trained).startswith('{"ok": true}<|im_end|>')
    assert "Hi there" in tok.decode(masked) and "Hi there" not in tok.decode(trained)
    assert tok.decode(enc["input_ids"]) == full  # nothing added or lost by tokenising


def test_check_reports_trained_tokens_and_histogram(embedded_tokenizer):
    rep = checks.check_dataset(embedded_tokenizer, ROWS, "sft", 256)
    assert rep.ok and rep.n_usable == 6 and rep.n_truncated == 0 and rep.n_no_supervised == 0
    labels = {label for _, label in rep.highlight}
    assert labels == {"trained", "prompt (not trained)"}
    assert any("cough" in text and label == "trained" for text, label in rep.highlight)
    hist = rep.histogram()
    assert sum(r["examples"] for r in hist) == 6
    assert "Ready to train" in rep.markdown()


def test_check_refuses_a_length_that_leaves_nothing_to_train(embedded_tokenizer):
    # The system prompt SmolLM2's template injects makes every prompt ~30 tokens:
    # a max_length of 20 cuts every answer off entirely.
    rep = checks.check_dataset(embedded_tokenizer, ROWS, "sft", 20)
    assert not rep.ok
    assert rep.n_no_supervised == 6 and rep.n_truncated == 6
    assert "Max length" in rep.errors[0] and "nothing" in rep.errors[0]


def test_check_counts_rows_without_an_answer(embedded_tokenizer):
    rows = ROWS[:2] + [{"messages": [{"role": "user", "content": "no answer here"}]},
                       _row("empty answer", "")]
    rep = checks.check_dataset(embedded_tokenizer, rows, "sft", 256)
    assert rep.ok and rep.n_usable == 2 and rep.n_no_supervised == 2
    assert "no trained tokens" in rep.markdown()


def test_dpo_check_counts_cut_off_pairs(embedded_tokenizer):
    pair = {"prompt": [{"role": "user", "content": "Give JSON"}],
            "chosen": [{"role": "assistant", "content": '{"a": 1}'}],
            "rejected": [{"role": "assistant", "content": "Sure! " + "word " * 80}]}
    rep = checks.check_dataset(embedded_tokenizer, [pair], "dpo", 64)
    assert rep.ok and rep.n_truncated == 1


@pytest.mark.parametrize("field,value,needle", [
    ("learning_rate", 0, "Learning rate"),
    ("learning_rate", -1e-4, "Learning rate"),
    ("lora_r", 0, "LoRA rank r"),
    ("per_device_train_batch_size", 0, "Batch size"),
    ("gradient_accumulation_steps", 0, "Gradient accumulation"),
    ("max_steps", 100_000, "Max steps"),
    ("max_length", 100_000, "Max length"),
    ("max_length", 4, "Max length"),
    ("num_train_epochs", 0, "Epochs"),
    ("lora_dropout", 1.5, "LoRA dropout"),
    ("lora_r", "sixteen", "LoRA rank r"),
])
def test_bad_hyperparameters_are_named(field, value, needle):
    _, errors = config.validate({field: value}, "sft")
    assert errors and needle in errors[0]


def test_caps_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FTLAB_MAX_STEPS", "10")
    monkeypatch.setenv("FTLAB_MAX_LENGTH", "128")
    assert config.validate({"max_steps": 11}, "sft")[1]
    assert not config.validate({"max_steps": 10, "max_length": 128}, "sft")[1]
    assert config.validate({"max_length": 129}, "sft")[1]
    cfg, _ = config.validate({"num_train_epochs": 3, "max_length": 128}, "sft")
    assert cfg.total_steps(10_000) == 10  # epochs worth of steps, capped


def test_defaults_are_valid_and_plan_is_consistent():
    cfg, errors = config.validate({}, "sft")
    assert not errors
    p = engine.plan(cfg, 288, device="cuda", where="zerogpu")
    assert p["total_steps"] == 36  # 288 rows / effective batch 8, one epoch
    assert p["n_slices"] * p["slice_steps"] >= p["total_steps"]
    assert 15 <= p["gpu_duration_s"] <= engine.MAX_GPU_DURATION_S
    dpo = engine.plan(config.validate({}, "dpo")[0], 288, device="cuda", where="zerogpu")
    assert dpo["est_seconds"] > p["est_seconds"]
    assert "ZeroGPU" in engine.plan_markdown(p)


def test_bad_input_is_refused_once_with_every_field_named(ftlab_data_dir):
    cfg, errors = config.validate({"learning_rate": 0, "per_device_train_batch_size": 0}, "sft")
    assert cfg is None and any("Learning rate" in e for e in errors) and any("Batch size" in e for e in errors)
    with pytest.raises(ValueError, match="empty"):
        engine.start_run(config.RunConfig(), {"train": [], "validation": [], "test": []})
    assert list(runs.runs_root().iterdir()) == []


def test_method_switch_and_presets_set_their_own_defaults():
    assert config.method_defaults("dpo") == {"learning_rate": 5e-5, "beta": 0.1}
    assert config.method_defaults("sft", "cpu")["learning_rate"] == config.defaults("cpu")["learning_rate"]
    assert config.preset_values("Light: r=8 on q,v", "dpo")["learning_rate"] == 5e-5
    # Every default is inside its own range, on a GPU and on a CPU, for both methods.
    for device in ("cuda", "cpu"):
        for method in config.METHODS:
            assert not config.validate(config.defaults(device, method), method)[1]


def test_run_config_round_trips_through_run_json(ftlab_data_dir):
    cfg, _ = config.validate({"lora_r": 8, "lora_target_modules": "qv"}, "sft",
                             dataset=config.DataRef.from_source("mine", "hub:owner/set"))
    assert cfg.dataset.hub_id == "owner/set"
    rid = engine.start_run(cfg, {"train": ROWS, "validation": [], "test": []})
    back = config.RunConfig.from_dict(runs.read_run(rid)["config"])
    assert back.lora_r == 8 and back.lora_target_modules == "qv" and back.dataset.hub_id == "owner/set"
    assert back.dataset.fingerprint and back == config.RunConfig(**{**vars(cfg), "dataset": back.dataset})


def test_a_run_stored_under_the_old_setting_names_reads_back():
    """run.json files written before the settings took TRL's names stay readable (and resumable)."""
    stored = {"method": "sft", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset": {"name": "x"},
              "r": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": "qv", "scheduler": "linear",
              "epochs": 2.0, "batch_size": 2, "grad_accum": 4, "learning_rate": 3e-4}
    cfg = config.RunConfig.from_dict(stored)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules) == (8, 16, 0.1, "qv")
    assert (cfg.lr_scheduler_type, cfg.num_train_epochs, cfg.effective_batch) == ("linear", 2.0, 8)
    older = {"method": "dpo", "hparams": {"r": 4, "batch_size": 1, "beta": 0.2}}  # the pre-config layout
    cfg = config.RunConfig.from_dict(older)
    assert (cfg.method, cfg.lora_r, cfg.per_device_train_batch_size, cfg.beta) == ("dpo", 4, 1, 0.2)
    assert "r" not in cfg.to_dict() and cfg.to_dict()["lora_r"] == 4  # written back in today's names


def test_every_setting_keeps_its_element_id():
    """The tab's inputs keep the element ids they had before the rename (train-hp-r, ...)."""
    ids = {f.name: f"train-hp-{f.metadata['elem'] or f.name}" for f in config.HYPERPARAMETERS}
    assert ids["lora_r"] == "train-hp-r" and ids["per_device_train_batch_size"] == "train-hp-batch_size"
    assert ids["learning_rate"] == "train-hp-learning_rate" and len(set(ids.values())) == len(ids)


def test_offline_start_uses_the_embedded_model_with_a_notice(ftlab_data_dir):
    cfg, _ = config.validate({"max_length": 128}, "sft")
    rid = engine.start_run(cfg, {"train": ROWS, "validation": ROWS[:1], "test": ROWS[:1]})
    info = runs.read_run(rid)
    assert info["status"] == "planned" and info["total_steps"] == 1
    assert info["model"]["id"].startswith("embedded/")
    assert info["model"]["public_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "can't be reached" in info["model"]["notice"]
    assert runs.read_datasets(rid)["train"] == ROWS
