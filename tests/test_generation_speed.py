"""Generation at the model's speed keeps the answers: the cached pair (plain base + the adapter
merged into a copy sharing the untouched tensors) answers greedily exactly as the PEFT model
did with its adapter applied unmerged / switched off, in evaluation batches and in the chat.

The adapter has the default shape (r=16 on attention) with seeded random LoRA B, so the tuned
answers differ from the base's; the embedded SmolLM2-135M, short answers.
"""
from __future__ import annotations

import json

import pytest

from training.evaluation import inference
from training.evaluation.model_cache import ModelCache
from training.run import config, engine, runs

ROWS = [{"messages": [{"role": "user", "content": f"Describe a {w} in one JSON object with name and sound."},
                      {"role": "assistant", "content": json.dumps({"name": w, "sound": "?"})}]}
        for w in ("dog", "cat", "owl")]


@pytest.fixture(scope="module")
def seeded_run(module_data_dir):
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    cfg, errors = config.validate({**config.defaults("cpu"), "max_length": 64}, "sft",
                                  dataset=config.DataRef(name="inline test rows"))
    assert not errors, errors
    rid = engine.start_run(cfg, {"train": ROWS, "validation": ROWS[:1], "test": ROWS})
    engine.stop_idle_run(rid)
    torch.manual_seed(5)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(runs.read_run(rid)["model"]["path"]),
                                peft.LoraConfig(r=16, lora_alpha=32, task_type="CAUSAL_LM",
                                                target_modules=config.TARGET_MODULE_CHOICES["attention"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    model.save_pretrained(str(runs.run_dir(rid) / "adapter"))
    runs.update_run(rid, status="stopped")
    return rid


def test_merged_pair_answers_exactly_as_the_unmerged_peft_model(seeded_run):
    from training.evaluation.inference import generate_batch, side

    prompts = [r["messages"][:1] for r in ROWS]
    old, tok = inference.load_for_run(seeded_run)
    pair, _ = inference.load_models(seeded_run)
    answers = {}
    for name, model in (("old", old), ("new", pair)):
        for tuned in (True, False):
            with side(model, tuned) as m:
                answers[name, tuned] = generate_batch(m, tok, prompts, 24)
    assert answers["new", True] == answers["old", True]
    assert answers["new", False] == answers["old", False]
    assert answers["new", True] != answers["new", False]  # the adapter does change the answers
    # The tuned copy shares every tensor the adapter leaves alone; the adapted ones are its own.
    base_ptrs = {p.data_ptr() for p in pair.base.parameters()}
    tuned = dict(pair.tuned.named_parameters())
    assert tuned["model.embed_tokens.weight"].data_ptr() in base_ptrs
    assert tuned["model.layers.0.mlp.up_proj.weight"].data_ptr() in base_ptrs
    assert tuned["model.layers.0.self_attn.q_proj.weight"].data_ptr() not in base_ptrs


def test_chat_reply_is_the_same_and_streams_fewer_updates(seeded_run, monkeypatch):
    def chat(loader, every):
        monkeypatch.setattr(inference, "STREAM_EVERY_S", every)
        cache = ModelCache(lambda key: loader(key[0]), max_models=1, janitor=False)
        return list(inference.chat_stream(seeded_run, [], "Say hello to the owl.", max_new_tokens=16, cache=cache))

    before = chat(inference.load_for_run, 0.0)
    now = chat(inference.load_models, 0.1)
    assert now[-1] == before[-1] and "▌" not in now[-1][-1]["content"]
    assert len(now) <= len(before)
