"""Pre-training checks with the embedded model's real tokenizer and chat template (fast, no training)."""
from __future__ import annotations

import json

import pytest

from training import checks, engine, runs


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
    ("r", 0, "LoRA rank r"),
    ("batch_size", 0, "Batch size"),
    ("grad_accum", 0, "Gradient accumulation"),
    ("max_steps", 100_000, "Max steps"),
    ("max_length", 100_000, "Max length"),
    ("max_length", 4, "Max length"),
    ("epochs", 0, "Epochs"),
    ("dropout", 1.5, "LoRA dropout"),
    ("r", "sixteen", "LoRA rank r"),
])
def test_bad_hyperparameters_are_named(field, value, needle):
    _, errors = checks.validate_hparams({field: value}, "sft")
    assert errors and needle in errors[0]


def test_caps_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FTLAB_MAX_STEPS", "10")
    monkeypatch.setenv("FTLAB_MAX_LENGTH", "128")
    assert checks.validate_hparams({"max_steps": 11}, "sft")[1]
    assert not checks.validate_hparams({"max_steps": 10, "max_length": 128}, "sft")[1]
    assert checks.validate_hparams({"max_length": 129}, "sft")[1]
    h, _ = checks.validate_hparams({"epochs": 3}, "sft")
    assert checks.total_steps(h, 10_000) == 10  # epochs worth of steps, capped


def test_defaults_are_valid_and_plan_is_consistent():
    h, errors = checks.validate_hparams({}, "sft")
    assert not errors
    p = engine.plan({"method": "sft", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "hparams": h},
                    288, device="cuda")
    assert p["total_steps"] == 36  # 288 rows / effective batch 8, one epoch
    assert p["n_slices"] * p["slice_steps"] >= p["total_steps"]
    assert 15 <= p["gpu_duration_s"] <= engine.MAX_GPU_DURATION_S
    dpo = engine.plan({"method": "dpo", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "hparams": h},
                      288, device="cuda")
    assert dpo["est_seconds"] > p["est_seconds"]
    assert "ZeroGPU" in engine.plan_markdown(p)


def test_start_run_refuses_bad_input_before_creating_anything(ftlab_data_dir):
    bad = {"method": "sft", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
           "hparams": {"learning_rate": 0, "batch_size": 0}}
    with pytest.raises(ValueError) as err:
        engine.start_run(bad, {"train": ROWS, "validation": [], "test": []})
    assert "Learning rate" in str(err.value) and "Batch size" in str(err.value)
    good = {"method": "sft", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "hparams": {}}
    with pytest.raises(ValueError, match="empty"):
        engine.start_run(good, {"train": [], "validation": [], "test": []})
    assert list(runs.runs_root().iterdir()) == []


def test_offline_start_uses_the_embedded_model_with_a_notice(ftlab_data_dir):
    cfg = {"method": "sft", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "hparams": {"max_length": 128}}
    rid = engine.start_run(cfg, {"train": ROWS, "validation": ROWS[:1], "test": ROWS[:1]})
    info = runs.read_run(rid)
    assert info["status"] == "planned" and info["total_steps"] == 1
    assert info["config"]["model_id"].startswith("embedded/")
    assert "can't be reached" in info["config"]["model_notice"]
    assert runs.read_datasets(rid)["train"] == ROWS
