"""Evaluation and chat after training: streamed, batched, stopped at the closing brace,
one model load kept in a bounded cache; and the plan's estimate against a real tiny run.

The run here is not trained: its adapter is a freshly initialised LoRA (B = 0), saved
as PEFT saves a trained one, so the flow is exercised on the embedded SmolLM2-135M in
seconds; the answers are the base model's. Answers are kept short (max_new_tokens).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

from training.run import config
from training.run import engine
from training.evaluation import evaluate
from training.gpu import calls as gpu
from training.evaluation import inference
from training.run import runs
from training.views import tab as ui
from training.evaluation.model_cache import ModelCache

ROWS = [{"messages": [{"role": "user", "content": f'Reply with exactly this JSON: {{"animal": "{w}"}}'},
                      {"role": "assistant", "content": json.dumps({"animal": w})}]}
        for w in ("dog", "cat", "owl")]
HP = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "lora_target_modules": "attention", "learning_rate": 1e-3,
      "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
      "max_steps": 1, "max_length": 64, "eval_steps": 50, "early_stopping_patience": 0, "seed": 3}


def _config():
    cfg, errors = config.validate(dict(HP), "sft", dataset=config.DataRef(name="inline test rows"))
    assert not errors, errors
    return cfg


@pytest.fixture(scope="module")
def run_with_adapter(module_data_dir):
    import peft
    from transformers import AutoModelForCausalLM

    rid = engine.start_run(_config(), {"train": ROWS, "validation": ROWS[:1], "test": ROWS})
    path = runs.read_run(rid)["model"]["path"]
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(path),
                                peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(str(runs.run_dir(rid) / "adapter"))
    runs.update_run(rid, status="finished", step=1)
    return rid


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ stopping at the closing brace

def test_json_scanner_ends_at_the_brace_that_closes_the_first_object():
    text = 'Sure: {"a": "x}{y", "b": {"c": [1, {"d": "\\"}"}]}} and more {"e": 1}'
    assert inference.cut_at_json_end(text) == 'Sure: {"a": "x}{y", "b": {"c": [1, {"d": "\\"}"}]}}'
    # Chat mode: only a reply that opens with an object ends at its brace; prose runs on.
    assert inference.cut_at_json_end(' {"a": 1}\nok', leading_only=True) == ' {"a": 1}'
    assert inference.cut_at_json_end('I think {"a": 1} is it', leading_only=True) == 'I think {"a": 1} is it'
    assert inference.cut_at_json_end('{"a": "never closed') == '{"a": "never closed'


def test_stopping_criterion_stops_each_row_on_its_own_token(embedded_tokenizer):
    import torch

    tok = embedded_tokenizer
    answers = ['{"plan": ["rest", "fluids {x}"], "n": {"k": 2}}\nDone.', 'Hello there.']
    rows = [tok(a, add_special_tokens=False)["input_ids"] for a in answers]
    finished: list[tuple[int, str]] = []
    stop = inference.stopping_criteria(tok, 2, json_stop=True,
                                       on_done=lambda i, ids: finished.append((i, tok.decode(ids))))
    prompt = [7, 7]
    verdicts = []
    for n in range(1, max(map(len, rows)) + 1):
        ids = torch.tensor([prompt + (r[:n] + [tok.eos_token_id] * (n - len(r)))[:n] for r in rows])
        verdicts.append(stop(ids, None).tolist())
    first_stop = next(n for n, v in enumerate(verdicts, 1) if v[0])
    # Row 0 stops exactly on the token that closes the object, not before, not after.
    assert tok.decode(rows[0][:first_stop]).endswith('"k": 2}}')
    assert not tok.decode(rows[0][:first_stop - 1]).endswith("}}")
    assert all(v[0] for v in verdicts[first_stop - 1:])
    # Row 1 is prose: never stopped by the JSON rule, only by its end-of-sequence token.
    assert not any(v[1] for v in verdicts[:len(rows[1])]) and verdicts[len(rows[1])][1]
    assert sorted(i for i, _ in finished) == [0, 1]
    assert dict(finished)[0].endswith("}}")


def test_new_token_cap_follows_the_longest_reference(embedded_tokenizer):
    short, long = '{"a": 1}', json.dumps({"plan": ["word"] * 60})
    n_long = len(embedded_tokenizer(long, add_special_tokens=False)["input_ids"])
    cap = evaluate.new_token_cap(embedded_tokenizer, [short, long])
    assert n_long * 1.2 < cap <= n_long * 1.25 + 16
    assert evaluate.new_token_cap(embedded_tokenizer, [short]) < cap


def test_rows_per_generate_call_follow_the_token_budget(embedded_tokenizer, monkeypatch):
    """A whole small split in one call; long prompts (or a long cap) in fewer rows per call."""
    from training.evaluation.inference import prompt_ids
    short = [[{"role": "user", "content": f"Note {i}: mild cough."}] for i in range(36)]
    long = short[:35] + [[{"role": "user", "content": "word " * 900}]]
    assert evaluate.rows_per_call(embedded_tokenizer, short, 183) >= 36  # the whole split in one call
    width = len(prompt_ids(embedded_tokenizer, long[-1])) + 183
    assert evaluate.rows_per_call(embedded_tokenizer, long, 183) == evaluate.EVAL_BATCH_TOKENS // width < 36
    monkeypatch.setattr(evaluate, "EVAL_BATCH_TOKENS", 100)  # a budget under one row still makes progress
    assert evaluate.rows_per_call(embedded_tokenizer, long, 183) == 1


# ------------------------------------------------------------------ the model cache

def test_cache_reuses_a_model_bounds_the_count_and_releases_after_idle():
    loads = []
    clock = Clock()
    cache = ModelCache(lambda key: (loads.append(key) or object(), "tok"), max_models=1, idle_s=60,
                       clock=clock, janitor=False)
    with cache.use("a", stamp=1) as first:
        pass
    clock.now += 30
    with cache.use("a", stamp=1) as again:
        assert again.model is first.model and loads == ["a"]
    with cache.use("a", stamp=2) as newer:  # the adapter was rewritten: load it again
        assert newer.model is not first.model
    with cache.use("b", stamp=1):
        assert len(cache) == 1  # bounded: "a" made room for "b"
    with cache.use("b", stamp=1):
        clock.now += 3600
        assert cache.sweep() == 0  # in use: never released under its user
    clock.now += 59
    assert cache.sweep() == 0 and len(cache) == 1
    clock.now += 1
    assert cache.sweep() == 1 and len(cache) == 0
    assert loads == ["a", "a", "b"]


def test_chat_streams_and_keeps_the_model_between_turns(run_with_adapter, monkeypatch):
    monkeypatch.setattr(inference, "STREAM_EVERY_S", 0.0)  # every token is an update: 8 tokens can be fast
    loads = []
    clock = Clock()

    def loader(key):
        loads.append(key)
        return inference.load_for_run(key[0])

    cache = ModelCache(loader, max_models=1, idle_s=120, clock=clock, janitor=False)
    seen = []
    history: list = []
    for text in ("Say hello.", "Now say goodbye."):
        updates = list(inference.chat_stream(run_with_adapter, history, text, max_new_tokens=8, cache=cache))
        replies = [u[-1]["content"] for u in updates]
        assert len(updates) > 3, replies  # placeholder, then the reply growing token by token
        assert len({r for r in replies}) > 2
        history = updates[-1]
        assert history[-2] == {"role": "user", "content": text} and "▌" not in history[-1]["content"]
        with cache.use(loads[0], inference._adapter_stamp(runs.run_dir(run_with_adapter) / "adapter")) as e:
            seen.append(e.model)
    assert len(loads) == 1 and seen[0] is seen[1]  # one load for both turns: the same object
    clock.now += 121
    assert cache.sweep() == 1 and len(cache) == 0


def test_chat_handler_streams_through_the_gpu_wrapper(run_with_adapter, monkeypatch):
    monkeypatch.setattr(inference, "CHAT_MAX_NEW_TOKENS", 8)  # a short reply is enough to see it stream
    updates = list(ui.chat_handler(run_with_adapter, [], "Say hello.", True))
    assert len(updates) > 2
    assert updates[-1][1] == "" and updates[-1][0][-1]["role"] == "assistant"


# ------------------------------------------------------------------ evaluation

def test_evaluation_streams_answers_as_they_finish_and_writes_metrics(run_with_adapter):
    events = list(evaluate.evaluate_stream(run_with_adapter, n_samples=2, max_new_tokens=16))
    progress = [e for e in events if e["kind"] == "progress"]
    assert events[-1]["kind"] == "done" and len(progress) >= 4  # one per answer (2 examples x 2 models)
    answers = [e["answers"] for e in progress]
    assert answers == sorted(answers) and answers[-1] == 4
    assert [e["done"] for e in progress][-1] == 2
    assert any(evaluate.PENDING in (s["base"], s["tuned"]) for e in progress for s in e["metrics"]["samples"])
    m = events[-1]["metrics"]
    assert m["n"] == 2 and m["json_stop"] and m["max_new_tokens"] == 16
    assert json.loads((runs.run_dir(run_with_adapter) / "metrics.json").read_text())["n"] == 2
    for s in m["samples"]:
        assert evaluate.PENDING not in (s["base"], s["tuned"])
        # JSON task: nothing is kept after the object closes.
        if s["tuned"].lstrip().startswith("{") and s["tuned"].rstrip().endswith("}"):
            assert inference.cut_at_json_end(s["tuned"]) == s["tuned"]
    assert evaluate.metrics_rows(m) and len(evaluate.samples_rows(m)) == 2


def test_a_second_evaluation_of_the_same_questions_reuses_the_base_answers(run_with_adapter):
    """The base side is answered once per base, questions, cap and batch: a second run (or a
    second evaluation) gets the same base answers without generating them; they match answers
    generated afresh; other questions are answered anew; the runs' retention removes them."""
    import time

    from training.evaluation import base_answers

    def metrics(**kw):
        return list(evaluate.evaluate_stream(run_with_adapter, n_samples=2, **kw))[-1]["metrics"]

    first, again = metrics(max_new_tokens=10), metrics(max_new_tokens=10)
    fresh, other = metrics(max_new_tokens=10, reuse_base=False), metrics(max_new_tokens=9)
    assert (first["base_reused"], again["base_reused"], fresh["base_reused"], other["base_reused"]) == \
        (False, True, False, False)
    base = [s["base"] for s in first["samples"]]
    assert [s["base"] for s in again["samples"]] == base == [s["base"] for s in fresh["samples"]]
    assert again["base"] == first["base"] and again["tuned"] == first["tuned"]
    assert base_answers.sweep(now=time.time() + base_answers.ttl_s() + 60) >= 2
    assert metrics(max_new_tokens=10)["base_reused"] is False


def test_evaluate_handler_shows_progress_then_the_result(run_with_adapter):
    updates = list(ui.evaluate_handler(run_with_adapter, 1))
    assert len(updates) >= 3  # starting, at least one answer in, the result
    assert "Loading the model" in updates[0][0]
    assert any("examples compared" in u[0] and "elapsed" in u[0] for u in updates[1:-1])
    assert any(evaluate.PENDING in u[2] for u in updates[1:-1])  # the table fills in as answers come
    msg, metrics, samples, *_ = updates[-1]
    assert msg.startswith("Evaluated 1 held-out") and metrics
    assert samples.count("<tr>") == 2 and evaluate.PENDING not in samples  # header + the one example


def test_evaluation_runs_the_lab4_cases_with_intervals_and_a_field_chart(run_with_adapter, monkeypatch):
    """A Lab 4 design reaches the run: its metrics are the ones shown, its cases are answered by
    both models and checked; the result has intervals, a per-field chart and survives a re-open."""
    from labs.tools.evaluation import adversarial_cases, score_predictions
    from training.evaluation import design as eval_design

    # Off-task cases do not stop at a closing brace: keep their answers short. One prompt at
    # a time: on this shared 2-core machine a batch of 2 took 6x as long as one prompt.
    monkeypatch.setattr(evaluate, "new_token_cap", lambda tokenizer, references: 8)
    monkeypatch.setattr(evaluate, "EVAL_BATCH", 1)

    design, _ = eval_design.apply_lab4("adversarial_cases", adversarial_cases("Name the animal as JSON"), None)
    design, _ = eval_design.apply_lab4("score_predictions", score_predictions(['{"a": 1}'], ['{"a": 1}']), design)
    design["metrics"] = ["json_valid", "field_accuracy"]
    design["cases"] = [c for c in design["cases"] if c["category"] == "prompt_injection"]
    *_, last = ui.evaluate_handler(run_with_adapter, 1, design)
    msg, rows, samples, ci_note, fields, adversarial = last
    assert msg.startswith("Evaluated 1 held-out test examples and 1 adversarial case ")
    assert "Adversarial cases: the tuned model fails" in msg
    assert [r[0] for r in rows] == ["Valid JSON", "Field-level accuracy"] and "[" in rows[0][1]
    assert "n = 1" in ci_note
    assert 'id="field-base-0"' in fields and 'id="field-tuned-0"' in fields and "animal" in fields
    assert adversarial.count("<tr>") == 2 and ("✗" in adversarial or "✓ passed" in adversarial)
    m = evaluate.read_metrics(run_with_adapter)
    assert set(m["intervals"]) >= {"json_valid", "field_accuracy", "exact_match"}
    assert m["design"]["metrics"] == ["json_valid", "field_accuracy"] and len(m["adversarial"]) == 1
    slider, note, chart, cases = ui.eval_extras(run_with_adapter)  # re-opened later: the same view
    assert slider["maximum"] == 3 and note == ci_note and chart == fields and cases == adversarial


def test_adversarial_cases_can_be_left_out_and_the_learner_is_told(run_with_adapter, monkeypatch):
    from labs.tools.evaluation import adversarial_cases
    from training.evaluation import design as eval_design

    monkeypatch.setattr(evaluate, "new_token_cap", lambda tokenizer, references: 8)
    design = eval_design.from_lab4("adversarial_cases", adversarial_cases("Name the animal as JSON"))
    msg, *_, adversarial = list(ui.evaluate_handler(run_with_adapter, 1, design, False))[-1]
    assert "adversarial" not in msg and ui.CASES_LABEL in adversarial
    assert evaluate.read_metrics(run_with_adapter)["adversarial"] == []


# ------------------------------------------------------------------ the plan's estimate

def test_plan_names_a_first_time_rebuild_of_the_embedded_model(tmp_path, monkeypatch):
    from training.run import base_model

    monkeypatch.setenv("FTLAB_DATA_DIR", str(tmp_path))  # nothing rebuilt here yet
    cfg = dataclasses.replace(_config(), base_model=base_model.EMBEDDED_ID)
    first = engine.plan(cfg, 2, device="cpu")
    assert first["first_time_s"] >= base_model.EMBEDDED_REBUILD_S
    assert "rebuilding the embedded model" in engine.plan_markdown(first)
    assert "only this first time" in engine.plan_markdown(first)
    monkeypatch.setattr(base_model, "embedded_is_built", lambda: True)
    later = engine.plan(cfg, 2, device="cpu")
    assert later["est_seconds"] < first["est_seconds"] and "rebuilding" not in engine.plan_markdown(later)


def test_plan_estimate_is_within_2x_of_a_real_tiny_run(module_data_dir):
    """Start to finish of a 1-step run (load, prepare, train, save) against the plan's estimate.

    The plan speaks of an idle machine. This one is shared, so its wall time says more about
    the neighbours than about the plan; the CPU time the run used does not depend on them.
    On an idle machine the run's wall time lies between cpu/threads (all of it parallel) and
    cpu (none of it): the estimate must be within 2x of that range. A plan that leaves out
    loading (~0.5 s for this run) misses it by far more."""
    import resource

    import torch

    rid = engine.start_run(_config(), {"train": ROWS[:1], "validation": [], "test": ROWS[:1]})
    plan = runs.read_run(rid)["plan"]
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    events = list(gpu.train_until_done(rid))
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    low, high = cpu / max(1, torch.get_num_threads()), cpu
    print(f"estimate {plan['est_seconds']} s, cpu {cpu:.1f} s, wall {wall:.1f} s, load {os.getloadavg()[0]:.1f}")
    assert events[-1]["status"] == "finished"
    assert plan["load_s"] > plan["total_steps"] * plan["s_per_step"]  # tiny run: loading dominates
    assert plan["est_seconds"] / 2 <= high and low <= plan["est_seconds"] * 2, (cpu, wall, plan)
    # Once loaded, the "Starting" line says the load time, not "a few seconds".
    assert f"about {plan['load_s'] - plan['first_time_s']} s)" in ui.starting_md(runs.read_run(rid))
