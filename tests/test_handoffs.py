"""The learner's own run, diagnosed by the Lab 3 curve tool with one click."""
from training import handoffs, runs


def test_diagnose_reads_the_runs_own_log(ftlab_data_dir):
    assert handoffs.diagnose_run(None).startswith("Start a run")
    rid = runs.create_run({"method": "sft"})
    runs.append_log(rid, [{"step": 1, "loss": 2.0, "elapsed": 1.0}])
    assert "Only 1 training loss value so far" in handoffs.diagnose_run(rid)
    # Train loss keeps falling while eval loss turns up after step 3: overfitting, best step 3.
    log = [{"step": s, "loss": 2.0 - 0.3 * s} for s in range(2, 7)]
    log += [{"step": s, "eval_loss": v} for s, v in ((2, 1.9), (3, 1.6), (4, 1.7), (5, 1.9), (6, 2.2))]
    runs.append_log(rid, log)
    md = handoffs.diagnose_run(rid)
    assert "Overfitting" in md and "step 3" in md


def test_lab3_recommendation_maps_to_run_settings_and_a_runnable_model():
    from labs.tools.lora_config import recommend_lora_config

    small = recommend_lora_config("SmolLM2-135M", 500, "format", 24)
    values, model, notes = handoffs.lab3_settings(small)
    assert model == "HuggingFaceTB/SmolLM2-135M-Instruct" and notes == []
    assert values["r"] == small["r"] and values["alpha"] == small["lora_alpha"]
    assert values["target_modules"] == small["target_key"] and values["grad_accum"] == small["gradient_accumulation_steps"]
    big = recommend_lora_config("Mistral-7B", 3000, "format", 24)
    values, model, notes = handoffs.lab3_settings(big)
    assert model == "Qwen/Qwen2.5-0.5B-Instruct"  # the largest model the tab offers
    assert "too big to train in this app" in notes[0] and values["learning_rate"] == big["learning_rate"]


def test_lab1_assessment_preselects_method_and_a_matching_builtin_set():
    from labs.tools import strategy

    common = dict(requests_per_day=20_000, knowledge_change="static", privacy="none", latency="relaxed",
                  examples_on_hand=1_500)
    method, key, note = handoffs.lab1_settings(strategy.assess_use_case(format_strictness="strict", **common))
    assert (method, key) == ("sft", "clinical_soap") and "SFT" in note
    prompting = strategy.assess_use_case(format_strictness="loose", **dict(common, requests_per_day=100))
    assert handoffs.lab1_settings(prompting)[:2] == (None, None)
    dpo = handoffs.lab1_settings({"fine_tune": True, "use_dpo": True, "recommendation": "LoRA SFT + DPO"})
    assert dpo[:2] == ("dpo", "preference")
