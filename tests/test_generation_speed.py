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


@pytest.fixture(scope="module")
def pair(seeded_run):
    """The run's cached pair and its tuned and base answers to the rows, one side after the other."""
    from training.evaluation.inference import generate_batch

    models, tok = inference.load_models(seeded_run)
    prompts = [r["messages"][:1] for r in ROWS]
    answers = {tuned: generate_batch(models.tuned if tuned else models.base, tok, prompts, 24)
               for tuned in (True, False)}
    return models, tok, prompts, answers


def test_merged_pair_answers_exactly_as_the_unmerged_peft_model(seeded_run, pair):
    from training.evaluation.inference import generate_batch, side

    pair, tok, prompts, new = pair
    old, _ = inference.load_for_run(seeded_run)
    answers = {("new", tuned): a for tuned, a in new.items()}
    for tuned in (True, False):
        with side(old, tuned) as m:
            answers["old", tuned] = generate_batch(m, tok, prompts, 24)
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


def test_greedy_decoding_gives_generates_tokens_while_finished_rows_leave_the_batch(embedded_model_dir,
                                                                                   embedded_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from training.evaluation import decoding

    tok = embedded_tokenizer
    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32).eval()
    texts = ["Hi", "List three animals that live in the sea, with one fact about each of them.", "Name a colour."]
    prompts = [inference.prompt_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    ids, mask = inference.left_padded(tok, prompts, model.device)
    with torch.inference_mode():
        expected = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=20, do_sample=False,
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[:, ids.shape[1]:]
    expected = [[t for t in row if t != tok.eos_token_id] for row in expected.tolist()]
    batch_sizes, done, seen = [], [], {}

    def stops(i: int, token: int) -> bool:  # row 1 is stopped after 5 tokens: the others must not change
        seen[i] = seen.get(i, 0) + 1
        return token == tok.eos_token_id or (i == 1 and seen[i] >= 5)

    model.get_decoder().register_forward_pre_hook(
        lambda m, args, kwargs: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    with torch.inference_mode():
        got = decoding.greedy(model, prompts, 20, pad_id=tok.pad_token_id, prefill_rows=2, stops=stops,
                              on_done=lambda i, tokens: done.append(i))
    assert [[t for t in row if t != tok.eos_token_id] for row in got] == [expected[0], expected[1][:5], expected[2]]
    assert sorted(done) == [0, 1, 2]
    assert batch_sizes[:2] == [2, 1]  # prefilled in groups of close length
    assert batch_sizes[2] == 3 and batch_sizes[-1] < 3  # rows that ended left the batch



def test_the_two_sides_at_once_answer_as_one_after_another(pair):
    import threading

    import torch

    from training.evaluation import decoding
    from training.evaluation.inference import generate_batch

    pair, tok, prompts, answers = pair
    alone = [answers[True], answers[False]]
    before, others = torch.get_num_threads(), []
    together = decoding.at_once([lambda m=m: generate_batch(m, tok, prompts, 24) for m in (pair.tuned, pair.base)], 1)
    assert together == alone
    # Each decoder computes with the threads it was given (torch would reset a thread's count to
    # the default at its first parallel operation), and no other thread's count changes.
    give = 2 if before == 1 else 1

    def threads_used() -> int:
        (torch.ones(1 << 20) * 2).sum()  # a parallel operation first
        return torch.get_num_threads()
    assert decoding.at_once([threads_used, threads_used], give) == [give, give]
    t = threading.Thread(target=lambda: others.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert torch.get_num_threads() == before and others == [before]  # no thread but the decoders' changed

    def fails():
        raise ValueError("no room")
    with pytest.raises(ValueError, match="no room"):
        decoding.at_once([lambda: 1, fails], 1)
