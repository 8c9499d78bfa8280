"""Lab 3's generated TRL script runs, and trains the tokens the Training tab trains.

The script from `recommend_lora_config` is executed as written except for what
only this machine needs (a tiny model built from a config with SmolLM2's
tokenizer instead of the Hub id, CPU, one step). Its SFT data are `messages`
rows with a system prompt; the tokens it puts in the loss must be the ones the
app's own encoding (`training.data.checks.encode_sft`) supervises: the
assistant's answer only (issue 23, item 2).
"""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from labs.tools.lora_config import recommend_lora_config, run_values  # noqa: E402
from training.run import config  # noqa: E402

ROWS = [{"messages": [{"role": "system", "content": "Answer with JSON only."},
                      {"role": "user", "content": f"Extract the drug: take {n} tablets of {drug} {mg} mg"},
                      {"role": "assistant", "content": json.dumps({"drug": drug, "dose_mg": mg, "count": n})}]}
        for n, drug, mg in ((2, "ibuprofen", 200), (1, "amoxicillin", 500), (3, "aspirin", 300))]
PAIRS = [{"prompt": [{"role": "user", "content": f"Extract the drug from: {drug} {mg} mg"}],
          "chosen": [{"role": "assistant", "content": json.dumps({"drug": drug, "dose_mg": mg})}],
          "rejected": [{"role": "assistant", "content": "I think it is a drug."}]}
         for drug, mg in (("ibuprofen", 200), ("amoxicillin", 500))]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, embedded_model_dir):
    """A 2-layer Llama from a config with SmolLM2-135M-Instruct's own tokenizer and chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    path = tmp_path_factory.mktemp("tiny-smollm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _run(code: str, rec: dict, model_dir, workdir, monkeypatch, rows) -> dict:
    """Execute the generated script in `workdir` on the tiny model: CPU, fp32, one step."""
    for split in ("train", "eval"):
        (workdir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    src = (code.replace(repr(rec["hub_id"]), repr(str(model_dir)))
           .replace('output_dir="lora-out",', 'output_dir="lora-out", use_cpu=True,')
           .replace("max_steps=-1,", "max_steps=1,")
           .replace("bf16=True,", "bf16=False,")
           .replace('"dtype": "bfloat16"', '"dtype": "float32"'))
    assert src.count("max_steps=1,") == 1 and str(model_dir) in src
    monkeypatch.chdir(workdir)
    namespace: dict = {}
    exec(compile(src, "<lab3 code>", "exec"), namespace)  # our own generated text, not user input
    return namespace


def test_lab3_sft_script_runs_and_masks_the_prompt_as_the_app_does(tiny_model_dir, tmp_path, monkeypatch):
    from training.data import checks
    from training.run.base_model import load_tokenizer

    rec = recommend_lora_config("SmolLM2-135M", 200, "format", 24)
    ns = _run(rec["code"], rec, tiny_model_dir, tmp_path, monkeypatch, ROWS)
    trainer = ns["trainer"]
    assert trainer.state.global_step == 1 and (tmp_path / "lora-out" / "adapter" / "adapter_config.json").is_file()
    assert trainer.args.activation_checkpointing is rec["activation_checkpointing"]
    tok = load_tokenizer(str(tiny_model_dir))
    for i, row in enumerate(ROWS):
        ours = checks.encode_sft(tok, row, rec["max_length"])
        theirs = trainer.train_dataset[i]
        assert theirs["input_ids"] == ours["input_ids"]
        # TRL's labels: -100 on the system and user tokens (and the template's), the answer trained.
        assert theirs["labels"] == ours["labels"]
        assert 0 < sum(lab != -100 for lab in ours["labels"]) < len(ours["labels"])
    assert trainer.completion_only_loss


def test_lab3_dpo_script_runs(tiny_model_dir, tmp_path, monkeypatch):
    rec = recommend_lora_config("SmolLM2-135M", 3000, "preference", 24)
    ns = _run(rec["code"], rec, tiny_model_dir, tmp_path, monkeypatch, PAIRS)
    assert ns["trainer"].state.global_step == 1
    assert ns["args"].beta == config.DPO_DEFAULTS["beta"]
    assert ns["args"].learning_rate == config.DPO_DEFAULTS["learning_rate"]


@pytest.mark.parametrize("model,size,task,gpu", [("SmolLM2-135M", 500, "format", 24),
                                                 ("SmolLM2-360M", 20_000, "domain", 16),
                                                 ("SmolLM2-135M", 3000, "preference", 8)])
def test_a_recommendation_for_a_model_the_tab_trains_validates_as_a_run_config_unchanged(model, size, task, gpu):
    rec = recommend_lora_config(model, size, task, gpu)
    values = run_values(rec)
    cfg, errors = config.validate(values, rec["method"])
    assert not errors
    assert {k: getattr(cfg, k) for k in values} == values
    # Every run setting Lab 3 states is there, under the config's name; no second vocabulary.
    assert set(values) >= {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate",
                           "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                           "max_length", "eval_steps"}
    assert not {"r", "target_key", "epochs", "per_device_batch_size", "max_seq_length"} & set(rec)
