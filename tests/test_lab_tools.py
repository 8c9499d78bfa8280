"""The advisor tools: known answers, bad input through run_tool, output bounds.

Pure Python, no network, no torch: the whole file runs in a few seconds.
(The PEFT cross-check of the LoRA counts is in test_lab_tools_peft.py.)
"""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time

import pytest

from core import scoring
from labs.tools import curves, dataset_critic, evaluation, lora_config, strategy
from labs.tools.registry import (ADVISOR_IDS, MAX_TOOL_OUTPUT, TOOLS, bound_output, execute,
                                 render_markdown, run_tool, tools_for)

# One valid input per tool, used for the happy path and as the base for fuzzing.
GOOD = {
    "assess_use_case": {"format_strictness": "strict", "requests_per_day": 50_000,
                        "knowledge_change": "static", "privacy": "none", "latency": "interactive",
                        "examples_on_hand": 2_000, "task_kind": "format"},
    "critique_jsonl": {"text": '{"messages": [{"role": "user", "content": "Hi"}, '
                               '{"role": "assistant", "content": "Hello!"}]}'},
    "recommend_lora_config": {"model": "SmolLM2-135M", "dataset_size": 2000,
                              "task_kind": "format", "gpu_memory_gb": 16},
    "count_lora_params": {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": ["q_proj", "v_proj"]},
    "diagnose_training_curve": {"log_text": "step,loss\n1,2.0\n2,1.5\n3,1.2"},
    "score_predictions": {"predictions": "Paris\nRome", "references": "Paris\nMadrid"},
    "judge_rubric": {"task_description": "Summarise support tickets in two sentences"},
    "adversarial_cases": {"task_description": "Extract invoice totals as JSON"},
    "monitoring_plan": {"task_description": "Route support tickets", "requests_per_day": 5000},
}


def chat(user: str, assistant: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": assistant}]})


# ---------------------------------------------------------------- registry

def test_every_tool_is_registered_with_a_usable_schema():
    assert set(GOOD) == set(TOOLS)
    for name, spec in TOOLS.items():
        schema = spec.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert all("description" in p for p in schema["properties"].values()), name
        assert len(spec.description) > 60
        assert spec.to_anthropic() == {"name": name, "description": spec.description,
                                       "input_schema": schema}
        json.dumps(schema)  # sendable as-is
    for advisor in ADVISOR_IDS:
        assert tools_for(advisor), advisor
    assert [t.name for t in tools_for("strategy")] == ["assess_use_case"]
    assert tools_for("nobody") == []
    # Every tool an advisor names exists, and every tool is offered by some advisor.
    from labs.advisors import ADVISORS
    offered = {name for a in ADVISORS.values() for name in a.tools}
    assert offered == set(TOOLS)


@pytest.mark.parametrize("name, blank", [("critique_jsonl", {}), ("critique_jsonl", {"text": "  \n"}),
                                         ("diagnose_training_curve", {"log_text": ""}),
                                         ("score_predictions", {})])
def test_empty_paste_says_what_to_paste(name, blank):
    result, error = execute(name, blank)
    assert result is None and error.startswith("Nothing to ")
    assert "Invalid input" not in error and "missing required field" not in error
    assert "paste" in error


def test_importing_the_registry_pulls_in_no_heavy_libraries():
    code = ("import sys, labs.tools.registry; "
            "print([m for m in ('torch', 'transformers', 'peft', 'trl', 'datasketch', 'numpy', 'gradio') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_input_runs_and_renders(name):
    text, is_error = run_tool(name, GOOD[name])
    assert not is_error, text
    assert len(text) <= MAX_TOOL_OUTPUT
    result = json.loads(text)
    assert isinstance(result, dict) and result
    result, err = execute(name, GOOD[name])
    md = render_markdown(name, result)
    assert md.startswith("### ") and "|" in md  # a heading and at least one table


BAD_INPUTS = [
    None, [], "text", 42,
    {},                                    # required fields missing
    {"unexpected": 1},
]


@pytest.mark.parametrize("name", sorted(GOOD))
@pytest.mark.parametrize("bad", BAD_INPUTS, ids=repr)
def test_malformed_input_is_an_error_not_an_exception(name, bad):
    text, is_error = run_tool(name, bad)
    assert is_error and text and len(text) <= MAX_TOOL_OUTPUT


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_field_rejects_wrong_types_and_ranges(name):
    junk = [None, True, -1, 1e12, float("nan"), "", "x" * 50, [], {}, [1, 2], -0.5]
    for key in TOOLS[name].input_schema["properties"]:
        for value in junk:
            text, is_error = run_tool(name, {**GOOD[name], key: value})
            assert isinstance(text, str) and len(text) <= MAX_TOOL_OUTPUT
            if not is_error:
                json.loads(text)  # accepted values must produce a real result


def test_validation_messages_name_the_problem():
    text, err = run_tool("count_lora_params", {"model": "SmolLM2-135M", "lora_r": 0,
                                               "lora_target_modules": "qv"})
    assert err and "lora_r" in text and "at least 1" in text
    text, err = run_tool("assess_use_case", {**GOOD["assess_use_case"], "privacy": "secret"})
    assert err and "privacy" in text and "on_premises" in text
    text, err = run_tool("assess_use_case", {k: v for k, v in GOOD["assess_use_case"].items()
                                             if k != "latency"})
    assert err and "latency" in text
    text, err = run_tool("no_such_tool", {})
    assert err and "Unknown tool" in text
    # Integral floats are fine for integer fields (models sometimes send 8.0).
    assert not run_tool("count_lora_params", {**GOOD["count_lora_params"], "lora_r": 8.0})[1]
    # Explicit nulls for optional fields are ignored rather than rejected.
    assert not run_tool("recommend_lora_config", {**GOOD["recommend_lora_config"], "lora_r": None})[1]


def test_output_is_bounded_and_stays_valid_json_when_shrunk():
    lines = [f'{{"messages": [{{"role": "bot", "content": "line {i}"}}]}}' for i in range(3000)]
    text, is_error = run_tool("critique_jsonl", {"text": "\n".join(lines)})
    assert not is_error and len(text) <= MAX_TOOL_OUTPUT
    data = json.loads(text)
    assert data["summary"]["lines"] == 3000  # the headline numbers survive shrinking
    huge = {"a": "x" * 50_000, "b": list(range(10_000))}
    out = bound_output(huge)
    assert len(out) <= MAX_TOOL_OUTPUT and "shortened" in json.loads(out)["note"]
    assert len(bound_output("y" * 100_000)) <= MAX_TOOL_OUTPUT


def test_oversized_paste_gets_a_clear_message():
    big = "x" * (dataset_critic.MAX_PASTE_BYTES + 1)
    text, is_error = run_tool("critique_jsonl", {"text": big})
    assert is_error and "too long" in text
    with pytest.raises(ValueError, match="larger than 2 MB"):
        dataset_critic.critique_jsonl(big.encode())
    # Multi-byte text under the character limit but over the byte limit is caught too.
    with pytest.raises(ValueError, match="larger than"):
        dataset_critic.critique_jsonl("é" * (dataset_critic.MAX_PASTE_BYTES // 2 + 10))


# ---------------------------------------------------------------- strategy

def test_strategy_strict_high_volume_recommends_lora_sft_with_costs():
    r = strategy.assess_use_case(**GOOD["assess_use_case"])
    assert r["recommendation"] == "LoRA SFT" and not r["use_rag"]
    c = r["cost"]
    # 1.5M requests x (800 x $3 + 200 x $15) / 1M tokens = $8,100
    assert c["monthly_requests"] == 1_500_000
    assert c["large_prompted_monthly_usd"] == pytest.approx(8100.0)
    # one GPU x 24 h x 30 days x $1.20 + one 4 h training run at $2.50
    assert c["tuned_small_monthly_usd"] == pytest.approx(864.0 + 10.0)
    assert c["cheaper"] == "tuned small model"
    assert r["data_estimate"]["low"] == 500 and r["data_estimate"]["high"] == 5_000
    assert "rule of thumb" in r["data_estimate"]["label"].lower()
    assert r["assumptions"]["input_price_per_mtok"] == 3.0  # defaults visible


def test_strategy_assumptions_are_editable_and_change_the_answer():
    r = strategy.assess_use_case(**{**GOOD["assess_use_case"], "requests_per_day": 300},
                                 input_price_per_mtok=0.1, output_price_per_mtok=0.4)
    assert r["assumptions"]["input_price_per_mtok"] == 0.1
    assert r["cost"]["cheaper"] == "prompted large model"
    md = strategy.strategy_markdown(r)
    assert "0.1" in md and "Assumptions" in md


@pytest.mark.parametrize("inputs,expected", [
    (dict(format_strictness="loose", requests_per_day=100, knowledge_change="static",
          privacy="none", latency="relaxed", examples_on_hand=10), "prompting"),
    (dict(format_strictness="loose", requests_per_day=100, knowledge_change="daily",
          privacy="none", latency="relaxed", examples_on_hand=10), "prompting + RAG"),
    (dict(format_strictness="strict", requests_per_day=20_000, knowledge_change="weekly",
          privacy="on_premises", latency="realtime", examples_on_hand=20_000,
          task_kind="domain"), "RAG + LoRA SFT"),
    (dict(format_strictness="moderate", requests_per_day=20_000, knowledge_change="static",
          privacy="sensitive", latency="interactive", examples_on_hand=5_000,
          task_kind="preference"), "LoRA SFT + DPO"),
])
def test_strategy_known_cases(inputs, expected):
    r = strategy.assess_use_case(**inputs)
    assert r["recommendation"] == expected
    assert r["reasons"]


def test_strategy_prices_a_small_hosted_model_and_batch_discounts():
    """Issue 23: the prompted baseline was always a frontier model at $3/$15 per M tokens,
    which made fine-tuning look cheap. Now a small hosted model is priced too, batch
    prices apply when answers may wait, and volume is a price argument only when the
    tuned model really is the cheapest option."""
    inputs = dict(format_strictness="moderate", requests_per_day=20_000, knowledge_change="static",
                  privacy="none", examples_on_hand=5_000, task_kind="format")
    waiting = strategy.assess_use_case(latency="relaxed", **inputs)
    c = waiting["cost"]
    # 600K requests x (800 x $0.15 + 200 x $0.60) / 1M = $144, at half price in batch: $72
    assert c["batch_applied"] and c["small_prompted_monthly_usd"] == pytest.approx(72.0)
    assert c["large_prompted_monthly_usd"] == pytest.approx(1620.0)       # $3,240 at batch prices
    assert c["cheapest"] == "prompted small hosted model"
    # Before issue 23 this case scored 3 points (moderate 1 + volume 2) and said "LoRA SFT".
    assert waiting["recommendation"] == "prompting"
    assert any("small hosted model costs less" in x for x in waiting["cautions"])
    md = strategy.strategy_markdown(waiting)
    assert "| prompted small hosted model | 72.00 |" in md and "batch API, -50%" in md
    assert "Cheapest: **prompted small hosted model**" in md
    now = strategy.assess_use_case(latency="interactive", **inputs)
    assert not now["cost"]["batch_applied"] and now["cost"]["small_prompted_monthly_usd"] == pytest.approx(144.0)
    # Where self-hosting does win, volume still counts in full.
    cheap_gpu = strategy.assess_use_case(latency="interactive", gpu_hourly_usd=0.05, **inputs)
    assert cheap_gpu["cost"]["cheapest"] == "tuned small model" and cheap_gpu["recommendation"] == "LoRA SFT"
    with pytest.raises(ValueError, match="batch_discount"):
        strategy.assess_use_case(latency="relaxed", batch_discount=1.0, **inputs)


def test_strategy_says_when_data_is_short():
    r = strategy.assess_use_case(format_strictness="strict", requests_per_day=50_000,
                                 knowledge_change="static", privacy="none", latency="realtime",
                                 examples_on_hand=3_000, task_kind="domain")
    assert r["data_estimate"]["status"] == "short by about 7,000"
    assert any("10,000" in c for c in r["cautions"])


# -------------------------------------------------------------------- LoRA

def test_lora_count_breakdown_uses_grouped_query_shapes():
    r = lora_config.count_lora_params("Mistral-7B", 16, "attention")
    shapes = {m["module"]: (m["in"], m["out"]) for m in r["per_module"]}
    assert shapes == {"q_proj": (4096, 4096), "k_proj": (4096, 1024),
                      "v_proj": (4096, 1024), "o_proj": (4096, 4096)}
    assert r["trainable_params"] == 32 * 16 * (8192 + 5120 + 5120 + 8192)
    assert lora_config.count_lora_params("Qwen/Qwen2.5-7B-Instruct", 8, "qv")["model"] == "Qwen2.5-7B"


def test_lora_recommendation_fits_or_quantizes():
    small = lora_config.recommend_lora_config("SmolLM2-135M", 2000, "format", 16)
    assert small["fits"] and small["quantization"] == "none"
    assert small["effective_batch_size"] == (small["per_device_train_batch_size"]
                                             * small["gradient_accumulation_steps"])
    assert small["lora_alpha"] == 2 * small["lora_r"]
    big = lora_config.recommend_lora_config("Llama-3.1-8B", 20_000, "domain", 16)
    assert big["quantization"] == "4bit" and big["fits"]  # bf16 8B weights alone are ~15 GiB
    assert big["adapted_modules"] == list(lora_config.MODULES) and big["lora_target_modules"] == "all-linear"
    assert big["memory_gib"]["weights"] < 8
    nofit = lora_config.recommend_lora_config("Llama-3.1-8B", 20_000, "domain", 4)
    assert not nofit["fits"] and "Does not fit" in nofit["warnings"][0]
    md = lora_config.lora_markdown(nofit)
    assert "does not fit" in md and "```python" in md


def test_lora_learning_rate_and_epochs_follow_method_and_size():
    sft = lora_config.recommend_lora_config("Qwen2.5-0.5B", 300, "style", 24)
    assert sft["learning_rate"] == 2e-4 and sft["num_train_epochs"] == 3 and sft["lora_r"] == 8
    assert sft["adapted_modules"] == [f"{x}_proj" for x in "qkvo"]  # attention only
    dpo = lora_config.recommend_lora_config("Qwen2.5-0.5B", 3000, "preference", 24)
    assert dpo["method"] == "dpo" and dpo["learning_rate"] < 1e-4
    assert "DPOConfig(" in dpo["code"] and "beta=0.1" in dpo["code"]


# ------------------------------------------------------------------ curves

def _overfit_log(best: int = 300) -> str:
    rows = ["step,train_loss,eval_loss"]
    rnd = random.Random(0)
    for s in range(10, 601, 10):
        train = 2.5 * math.exp(-s / 200) + 0.1 + rnd.uniform(-0.02, 0.02)
        ev = f"{0.9 + 0.000015 * (s - best) ** 2:.4f}" if s % 50 == 0 else ""
        rows.append(f"{s},{train:.4f},{ev}")
    return "\n".join(rows)


def test_curve_overfitting_found_at_the_known_step():
    r = curves.diagnose_training_curve(_overfit_log(300))
    assert r["diagnosis"] == "overfitting" and r["best_eval_step"] == 300
    assert "load_best_model_at_end" in r["action"]
    assert "step 300" in curves.curve_markdown(r)


def test_curve_healthy_noisy_run_is_not_flagged():
    for seed in range(20):
        rnd = random.Random(seed)
        log = "\n".join(f"{s},{(2.5 * math.exp(-s / 300) + 0.6) * (1 + rnd.gauss(0, 0.1)):.4f}"
                        for s in range(1, 401))
        assert curves.diagnose_training_curve(log)["diagnosis"] == "healthy", seed


def test_curve_divergence_spikes_plateau_oscillation_nan():
    diverge = "\n".join(f"{s} {(2.0 - s / 400 if s < 200 else 1.5 + (s - 200) * 0.02):.4f}"
                        for s in range(10, 401, 10))
    assert curves.diagnose_training_curve(diverge)["diagnosis"] == "divergence"
    rnd = random.Random(2)
    spiky = "\n".join(f"{s},{(2 * math.exp(-s / 200) + 0.4 + rnd.uniform(-.01, .01)) * (3 if s in (150, 320) else 1):.4f}"
                      for s in range(10, 501, 10))
    r = curves.diagnose_training_curve(spiky)
    assert r["diagnosis"] == "spikes" and r["spike_steps"] == [150, 320]
    flat = "\n".join(f"{s},{2.3 + random.Random(s).uniform(-.01, .01):.4f}" for s in range(10, 301, 10))
    assert curves.diagnose_training_curve(flat)["diagnosis"] == "plateau"
    swing = "\n".join(f"{s},{1.0 if (s // 10) % 2 else 1.6}" for s in range(10, 301, 10))
    assert curves.diagnose_training_curve(swing)["diagnosis"] == "oscillation"
    r = curves.diagnose_training_curve("step loss\n1 2.0\n2 1.9\n3 nan\n4 nan")
    assert r["diagnosis"] == "nan" and r["findings"][0]["steps"] == [3, 4]


def test_curve_parser_reads_common_log_shapes():
    hf_table = ("Step\tTraining Loss\tValidation Loss\n50\tNo log\t1.9\n100\t1.5\t1.4\n"
                "150\t1.2\t1.3\n200\t1.0\t1.35\n250\t0.8\t1.5\n")
    r = curves.diagnose_training_curve(hf_table)
    assert r["diagnosis"] == "overfitting" and r["best_eval_step"] == 150
    history = [{"loss": 2.0, "step": 10}, {"eval_loss": 2.1, "step": 10},
               {"loss": 1.5, "step": 20}, {"eval_loss": 1.6, "step": 20},
               {"loss": 1.0, "step": 30}, {"eval_loss": 1.7, "step": 30},
               {"loss": 0.6, "step": 40}, {"eval_loss": 1.9, "step": 40}]
    for pasted in (json.dumps(history), json.dumps({"log_history": history}),
                   "\n".join(json.dumps(h) for h in history)):
        r = curves.diagnose_training_curve(pasted)
        assert (r["diagnosis"], r["best_eval_step"]) == ("overfitting", 20)
    printed = "{'loss': 2.1, 'epoch': 0.1}\n{'loss': 1.8, 'epoch': 0.2}\n{'eval_loss': 1.9, 'epoch': 0.2}"
    r = curves.diagnose_training_curve(printed)
    assert r["summary"]["axis"] == "epoch" and r["points"][1] == {"step": 0.2, "train": 1.8, "eval": 1.9}
    kv = curves.diagnose_training_curve("step 10 | loss=2.0\nstep 20 | loss=1.5 eval_loss=1.6")
    assert kv["points"][1] == {"step": 20, "train": 1.5, "eval": 1.6}
    text, is_error = run_tool("diagnose_training_curve", {"log_text": "hello world"})
    assert is_error and "No loss values found" in text


# --------------------------------------------------------- dataset critic

def _distinct_dataset(n: int) -> list[str]:
    topics = ["invoice", "shipping", "refund", "password", "warranty", "billing", "delivery",
              "account", "upgrade", "cancellation", "discount", "return", "login", "payment"]
    rnd = random.Random(7)
    lines = []
    for i in range(n):
        words = rnd.sample(topics, 4)
        q = (f"Customer {i} asks about {words[0]} and {words[1]} after the {words[2]} issue "
             f"with order {1000 + i * 7}, mentioning {words[3]} twice")
        lines.append(chat(q, f'{{"ticket": {i}, "topic": "{words[0]}", "priority": {i % 3}}}'))
    return lines


def test_critic_finds_planted_near_duplicates_and_not_distinct_lines():
    lines = _distinct_dataset(60)
    base = json.loads(lines[9])["messages"]
    # Line 61: line 10 with one word changed; line 62: line 20 with spacing and a trailing word.
    lines.append(chat(base[0]["content"].replace("twice", "again"), base[1]["content"]))
    other = json.loads(lines[19])["messages"]
    lines.append(chat(other[0]["content"] + " please", other[1]["content"]))
    r = dataset_critic.critique_jsonl("\n".join(lines))
    pairs = {tuple(p["lines"]) for p in r["near_duplicates"]}
    assert pairs == {(10, 61), (20, 62)}
    assert all(0.7 <= p["jaccard"] < 1.0 for p in r["near_duplicates"])
    assert r["exact_duplicates"] == []
    assert r["ok"] and r["summary"]["usable_examples"] == 62


def _exact_pairs(lines: list[str], threshold: float = 0.8) -> dict[tuple[int, int], float]:
    """Every pair of lines (1-based) whose character-5-gram Jaccard reaches the threshold,
    from the definition itself (all pairs, no search)."""
    from bench.neardup import shingles
    sets = [shingles("\n".join(m["content"] for m in json.loads(ln)["messages"])) for ln in lines]
    truth = {}
    for a in range(len(sets)):
        for b in range(a + 1, len(sets)):
            inter = len(sets[a] & sets[b])
            if inter / (len(sets[a]) + len(sets[b]) - inter) >= threshold:
                truth[(a + 1, b + 1)] = inter / (len(sets[a]) + len(sets[b]) - inter)
    return truth


def test_critic_reports_every_pair_at_the_threshold_on_a_generated_set():
    """Issue 26: the critic promises every pair with Jaccard >= 0.8. A generated set (planted
    copies spanning 0.80-1.0, a third of the rows 20-60 characters) against exact all-pairs:
    MinHash LSH at the threshold found about 80% of these; every one must be found, and
    nothing under the threshold reported."""
    from bench.neardup import make_rows
    lines, planted = make_rows(300, seed=26)
    truth = _exact_pairs(lines)
    assert len(truth) >= 60 and min(truth.values()) < 0.82 and max(truth.values()) == 1.0
    assert sum(1 for ln in lines if len(ln) < 150) > 50  # short rows are in it
    found = dataset_critic.critic_findings("\n".join(lines))
    near = {tuple(p["lines"]): p["jaccard"] for p in found["near"]}
    assert found["exact_pairs"] == [] and set(near) == set(truth)
    assert all(abs(near[k] - truth[k]) < 1e-3 and truth[k] >= 0.8 for k in near)


def test_similar_pairs_equals_all_pairs_on_random_sets(monkeypatch):
    """The prefix-filter join against brute force: small random families of overlapping sets
    (empty and one-element sets, thresholds at and around fractions like 4/5 and 2/3), and
    with the match join cut into chunks as small as one."""
    rng = random.Random(5)
    for trial in range(150):
        monkeypatch.setattr(dataset_critic, "_CHUNK", rng.choice([1, 7, 1 << 20]))
        n, vocab = rng.randint(2, 40), rng.randint(3, 60)
        bases = [set(rng.sample(range(vocab), rng.randint(1, min(vocab, 30)))) for _ in range(max(1, n // 4))]
        sets = []
        for _ in range(n):
            s = set(rng.choice(bases)) if rng.random() < 0.9 else set()
            for _ in range(rng.randint(0, 4)):
                if s and rng.random() < 0.5:
                    s.discard(rng.choice(sorted(s)))
                else:
                    s.add(rng.randrange(vocab))
            sets.append(s)
        t = rng.choice([0.5, 2 / 3, 0.7, 0.75, 0.8, 0.8000000001, 0.7999999, 0.85, 0.9, 1.0])
        truth = [(i, j, len(sets[i] & sets[j]) / len(sets[i] | sets[j]))
                 for i in range(n) for j in range(i + 1, n)
                 if (sets[i] or sets[j]) and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= t]
        assert dataset_critic.similar_pairs(sets, t)[0] == truth, (trial, t)


def test_critic_names_lines_and_fixes():
    lines = [
        chat("What is on invoice 443 from Acme?", "2024-03-05"),                       # 1
        "{'messages': []}",                                                             # 2 bad JSON
        json.dumps({"messages": [{"role": "human", "content": "hi"},
                                 {"role": "gpt", "content": "yo"}]}),                  # 3 roles
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),                 # 4 no assistant
        chat("Give me JSON for order 12", "{'order': 12, 'status': 'shipped'}"),       # 5 py dict
        chat("Date of order 7?", "03/05/2024"),                                         # 6 US date
        chat("Date of order 8?", "March 5, 2024"),                                      # 7 long date
        json.dumps({"prompt": "Say hi", "chosen": "Hi!", "rejected": "Hi!"}),          # 8 DPO tie
        json.dumps({"messages": [{"role": "user", "content": "x"},
                                 {"role": "assistant", "content": ""}]}),              # 9 empty
        chat("Date of order 9?", "2024-04-01"),                                         # 10
        chat("What is on invoice 443 from Acme?", "2024-03-05"),                       # 11 exact dup
        json.dumps({"conversations": [{"from": "human", "value": "x"}]}),             # 12 ShareGPT
        json.dumps({"messages": [{"role": "user", "content": 5},
                                 {"role": "assistant", "content": "ok"}]}),            # 13 type
    ]
    r = dataset_critic.critique_jsonl("\n".join(lines))
    by_kind = {f["kind"]: f for f in r["fixes"]}
    expect = {"bad_json": [2], "unknown_role": [3], "no_assistant": [4],
              "broken_json_output": [5], "chosen_equals_rejected": [8], "empty_content": [9],
              "exact_duplicate": [11], "sharegpt": [12], "wrong_type": [13],
              "mixed_formats": [8], "mixed_dates": [6, 7]}
    for kind, lines_expected in expect.items():
        assert by_kind[kind]["lines"] == lines_expected, kind
        assert by_kind[kind]["fix"]
    assert "single quotes" in by_kind["broken_json_output"]["examples"][0]
    assert "did you mean 'user'" in by_kind["unknown_role"]["examples"][0]
    assert r["exact_duplicates"] == [[1, 11]]
    assert not r["ok"]
    # Errors come before warnings in the prioritised list.
    severities = [f["severity"] for f in r["fixes"]]
    assert severities == sorted(severities, key=dataset_critic.SEVERITY_ORDER.get)
    md = dataset_critic.critique_markdown(r)
    assert "Fix the errors" in md and "| 1 | error |" in md


def test_critic_accepts_bytes_and_reports_bad_utf8_lines():
    good = chat("hello there", "hi!").encode()
    data = good + b"\n" + b'{"text": "caf\xe9"}' + b"\n" + good.replace(b"hello", b"howdy")
    r = dataset_critic.critique_jsonl(data)
    not_utf8 = next(f for f in r["fixes"] if f["kind"] == "not_utf8")
    # Line 2 is named; like the Training tab, nothing is usable until the file is re-saved as UTF-8.
    assert not_utf8["lines"] == [2] and r["summary"]["usable_examples"] == 0 and not r["ok"]


def test_critic_token_stats_and_custom_counter():
    lines = [chat("one two three", "four"), chat("a b", "c d e f g h")]
    approx = dataset_critic.critique_jsonl("\n".join(lines))["token_stats"]
    # "three" is two 4-character pieces: 1 + 1 + 2 + 1 = 5; "a b c d e f g h" is 8.
    assert approx["count"] == 2 and approx["min"] == 5 and approx["max"] == 8
    custom = dataset_critic.critique_jsonl("\n".join(lines), tokenizer_count=len)["token_stats"]
    assert custom["counter"] == "custom tokenizer" and custom["max"] == len("one two three\nfour")
    assert dataset_critic.approx_token_count("internationalization!") == 6  # 5 pieces + "!"


def test_critic_handles_other_layouts_and_empty_input():
    pc = "\n".join(json.dumps({"prompt": f"Q{i} about topic {i}", "completion": f"A{i}"})
                   for i in range(5))
    r = dataset_critic.critique_jsonl(pc)
    assert r["ok"] and r["summary"]["formats"] == {"prompt_completion": 5}
    empty = dataset_critic.critique_jsonl("")
    assert not empty["ok"] and empty["summary"]["usable_examples"] == 0
    text, is_error = run_tool("critique_jsonl", {"text": "\n\n"})
    assert is_error and "paste your dataset as JSONL" in text  # the model is told what is missing too


def test_critic_is_fast_on_10k_lines():
    rnd = random.Random(1)
    words = "alpha beta gamma delta invoice total customer order ship date amount paid".split()
    lines = [chat(" ".join(rnd.choice(words) for _ in range(25)) + f" #{i}",
                  json.dumps({"id": i, "total": rnd.randint(1, 999)})) for i in range(10_000)]
    start = time.perf_counter()
    # ~2.7 MB: over the chat paste limit, so pass the larger limit the Training tab uses.
    r = dataset_critic.critique_jsonl("\n".join(lines), max_bytes=10_000_000, max_rows=10_000)
    elapsed = time.perf_counter() - start
    assert r["summary"]["usable_examples"] == 10_000
    assert elapsed < 15, f"{elapsed:.1f}s"  # ~1-2 s normally; generous for a shared CPU


# -------------------------------------------------------------- evaluation

def test_scores_known_values():
    r = evaluation.score_predictions(["Paris", "the cat sat on the mat", "blue"],
                                     ["paris.", "a cat sat", "red"])
    assert r["exact_match"] == pytest.approx(1 / 3, abs=1e-4)
    # row 2: pred tokens cat sat on mat (4), ref cat sat (2): P=.5 R=1 F1=2/3
    assert r["per_row"][1]["token_f1"] == pytest.approx(2 / 3, abs=1e-4)
    # ROUGE-L row 2: LCS "cat sat" = 2 of 6 pred / 3 ref words: P=1/3 R=2/3 F=4/9
    assert r["per_row"][1]["rouge_l"] == pytest.approx(4 / 9, abs=1e-4)
    assert scoring.rouge_l("a b c d", "a x c d") == pytest.approx(0.75)


def test_scores_json_validity_and_nested_fields():
    preds = ['{"name": "Ann", "address": {"city": "Oslo", "zip": "0150"}}',
             "{'name': 'Bob'}",
             '```json\n{"name": "Cy", "address": {"city": "Rome", "zip": "00100"}}\n```']
    refs = ['{"address": {"zip": "0150", "city": "Oslo"}, "name": "Ann"}',
            '{"name": "Bob", "address": {"city": "Bonn", "zip": "53111"}}',
            '{"name": "Cy", "address": {"city": "Roma", "zip": "00100"}}']
    # One per line: the fenced answer is pasted on a single line.
    r = evaluation.score_predictions(preds[:2] + [preds[2].replace("\n", " ")], "\n".join(refs))
    assert r["json_rows"] == 3 and r["json_validity"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["per_row"][0]["exact_match"] == 1.0  # same JSON, other key order
    assert r["per_field"]["address.city"] == {"accuracy": pytest.approx(1 / 3, abs=1e-4), "count": 3}
    assert r["per_field"]["address.zip"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["field_accuracy"] == pytest.approx(5 / 9, abs=1e-4)


def test_scores_input_shapes_and_errors():
    jl = '{"prediction": "yes", "reference": "yes"}\n{"prediction": "no", "reference": "yes"}'
    assert evaluation.score_predictions(jl)["exact_match"] == 0.5
    text, is_error = run_tool("score_predictions", {"predictions": ["a", "b"], "references": ["a"]})
    assert is_error and "2 predictions but 1 references" in text
    text, is_error = run_tool("score_predictions", {"predictions": "just text"})
    assert is_error and "references" in text


def test_judge_rubric_has_anchors_bias_controls_and_schema():
    r = evaluation.judge_rubric("Extract invoice fields as JSON", pairwise=True)
    assert r["output_format"] == "json"
    names = [d["name"] for d in r["dimensions"]]
    assert "format_compliance" in names and "correctness" in names
    assert all(set(d["anchors"]) == {"1", "2", "3", "4", "5"} for d in r["dimensions"])
    assert sum(d["weight"] for d in r["dimensions"]) == pytest.approx(1.0, abs=0.01)
    assert "swapped" in " ".join(r["bias_mitigations"]) and "Length is not quality" in r["judge_prompt"]
    assert r["output_schema"]["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    single = evaluation.judge_rubric("Write friendly replies to customers", criteria=["mentions order id"])
    assert single["output_format"] == "text" and "mentions_order_id" in single["output_schema"]["properties"]["scores"]["required"]


def test_adversarial_cases_are_tailored_to_the_task():
    r = evaluation.adversarial_cases("Extract invoice totals and due dates into JSON",
                                     examples_per_category=3)
    cats = {c["category"]: c for c in r["categories"]}
    assert {"empty_or_missing", "contradictory", "prompt_injection", "unusual_formats",
            "near_duplicates_with_different_answers", "out_of_domain"} <= set(cats)
    assert all(len(c["examples"]) == 3 for c in r["categories"])
    assert "finance" in r["topics"] and "1,200.00" in cats["contradictory"]["examples"][0]
    r2 = evaluation.adversarial_cases("Write poems", input_fields=["theme"])
    assert "theme" in r2["categories"][0]["examples"][0] and "high_stakes" not in {
        c["category"] for c in r2["categories"]}


def test_monitoring_plan_thresholds_and_cadence():
    r = evaluation.monitoring_plan("Classify support tickets by intent", requests_per_day=20_000,
                                   baseline_accuracy=0.92, risk="high")
    assert r["output_format"] == "label" and r["revalidation_days"] == 30
    acc = next(m for m in r["metrics"] if m["metric"].startswith("accuracy"))
    assert "91%" in acc["threshold"]
    assert 30 <= evaluation.monitoring_plan("Summarise notes")["revalidation_days"] <= 90
    assert "30-90 days" in r["revalidation"]
