"""Evaluation worth the name (issue 11): intervals, per-field chart, highlighted differences,
adversarial cases and the evaluation design from Lab 4. Pure functions: no model here
(the streamed run with a model is in test_training_eval_chat.py)."""
from __future__ import annotations

import json
import re

import pytest

from labs.tools import evaluation as lab4
from training.run import charts
from training.evaluation import design as eval_design
from training.evaluation import view as eval_view
from training.evaluation import evaluate
from training.views import tab as ui
from training.data.loading import BUILTIN


# ------------------------------------------------------------------ intervals

def test_paired_bootstrap_cancels_what_varies_between_examples():
    # Examples differ a lot (easy and hard ones) but tuned is exactly 0.1 better on each:
    # each model's own interval is wide, the paired change is exactly 0.1.
    base = [0.0, 0.5, 0.9, 0.2, 0.8, 0.1, 0.6, 0.3]
    tuned = [b + 0.1 for b in base]
    ci = evaluate.paired_bootstrap(base, tuned)
    assert ci["change"] == pytest.approx([0.1, 0.1])
    assert ci["base"][1] - ci["base"][0] > 0.3
    assert evaluate.paired_bootstrap(base, tuned) == ci  # fixed seed: the same answers, the same interval


def test_bootstrap_interval_of_a_proportion_has_the_textbook_width():
    # 50 right out of 100: standard error 0.05, so a 95% interval of about ±0.098.
    x = [1.0] * 50 + [0.0] * 50
    lo, hi = evaluate.paired_bootstrap(x, x)["base"]
    assert lo < 0.5 < hi and 0.17 <= hi - lo <= 0.22
    assert evaluate.paired_bootstrap(x, x)["change"] == [0.0, 0.0]


def test_weighted_bootstrap_pools_fields_and_skips_unweighted_examples():
    # Field accuracy is pooled over fields: 4/4 and 0/1 fields -> 80%, not the 50% row mean.
    ci = evaluate.paired_bootstrap([1.0, 0.0, 0.3], [1.0, 0.0, 0.3], [4, 1, 0], resamples=4000)
    assert ci["base"][0] <= 0.8 <= ci["base"][1] and ci["base"][1] == 1.0


def test_intervals_from_answers_cover_each_metric_and_bracket_the_score():
    ref = '{"drug": "metformin", "dose": 500}'
    wrong = '{"drug": "metformin", "dose": 50}'
    samples = [{"reference": ref, "base": wrong, "tuned": ref if i % 4 else wrong} for i in range(20)]
    ci = evaluate.intervals(samples)
    assert {"exact_match", "json_valid", "field_accuracy", "token_f1"} <= set(ci)
    assert ci["exact_match"]["base"] == [0.0, 0.0]
    lo, hi = ci["exact_match"]["change"]
    assert 0 < lo < 0.75 < hi <= 1.0  # 15 of 20 tuned answers right, none of the base


def test_metrics_rows_show_the_interval_and_the_design_picks_the_metrics():
    m = {"n": 2, "base": evaluate.scores(["a", "b"], ["a", "c"]), "tuned": evaluate.scores(["a", "c"], ["a", "c"]),
         "intervals": {"exact_match": {"base": [0.0, 1.0], "tuned": [1.0, 1.0], "change": [0.0, 1.0]}},
         "bootstrap": {"resamples": 2000}}
    rows = {r[0]: r for r in evaluate.metrics_rows(m)}
    assert rows["Exact match"][1:] == ["50% [0%, 100%]", "100% [100%, 100%]", "+50 pts [+0, +100]"]
    assert "Token F1" in rows
    m["design"] = {"metrics": ["exact_match"]}
    assert [r[0] for r in evaluate.metrics_rows(m)] == ["Exact match"]
    assert "n = 2" in evaluate.interval_note(m) and "wide" in evaluate.interval_note(m)


# ------------------------------------------------------------------ per-field chart

def test_per_field_chart_has_a_bar_per_field_per_model():
    refs = ['{"name": "a", "dose": 1, "plan": ["x", "y"]}'] * 2
    base, tuned = ['{"name": "a"}', "not json"], refs
    m = {"base": evaluate.scores(base, refs), "tuned": evaluate.scores(tuned, refs),
         "samples": [{"reference": r} for r in refs]}
    table = evaluate.per_field_table(m)
    assert [f for f, _, _ in table] == ["name", "dose", "plan[]"]  # schema order, list items merged
    assert table[0][1:] == (0.5, 1.0) and table[2][1:] == (0.0, 1.0)
    svg = charts.fields_svg(table)
    for side in ("base", "tuned"):
        assert sorted(re.findall(rf'id="field-{side}-(\d+)"', svg)) == ["0", "1", "2"]
    assert "plan[]" in svg and "tuned model" in svg
    assert 'id="field-' not in charts.fields_svg([])  # a text task: a note, no bars


# ------------------------------------------------------------------ highlighted differences

def test_json_answer_marks_exactly_the_wrong_fields():
    ref = '{"a": 1, "b": "x", "c": [1, 2]}'
    cell = eval_view.field_marks('{"a": 1, "b": "<y>", "c": [1], "z": 0}', ref)
    wrong = re.findall(r'<li class="f-bad">(.*?)</li>', cell)
    assert [w.split(":")[0] for w in wrong] == ["✗ b", "✗ c[1]"]
    assert "&lt;y&gt;" in cell and "<y>" not in cell  # escaped
    assert re.findall(r'<li class="f-extra">\+ (\w+)', cell) == ["z"]
    assert "2/4 fields right" in cell
    html = eval_view.samples_html({"samples": [{"prompt": "p", "reference": ref, "base": "{'a': 1}", "tuned": ref}]})
    assert "not a JSON object" in html and "✓" in html


def test_text_answer_marks_exactly_the_wrong_words():
    diff = eval_view.word_diff("the dog sat on <the> mat", "the cat sat on the mat")
    assert re.findall(r"<ins>(.*?)</ins>", diff) == ["dog", "&lt;the&gt;"]
    assert re.findall(r"<del>(.*?)</del>", diff) == ["cat", "the"]
    assert eval_view.word_diff("same words", "same words") == "same words"


# ------------------------------------------------------------------ adversarial cases

def _answered(cases: list[dict], base: str, tuned: str) -> dict:
    return {"adversarial": evaluate.case_results([dict(c, base=base, tuned=tuned) for c in cases])}


@pytest.mark.parametrize("name", list(BUILTIN))
def test_each_builtin_set_has_default_cases_with_its_own_instruction(name):
    design = eval_design.default_design(name)
    assert len(design["cases"]) >= 5 and all(c["checks"] and c.get("system") for c in design["cases"])
    assert {c["category"] for c in design["cases"]} >= {"prompt_injection", "out_of_domain"}


def test_adversarial_failures_are_shown_for_each_model():
    cases = eval_design.concrete_cases(None, "pharmacy_meds", [])
    good, bad = '{"medications": []}', '{"medications": [{"name": "aspirin"}], "approved": true}'
    m = _answered(cases[:1], base=bad, tuned=good)  # the "no orders" case
    assert m["adversarial"][0]["base_failed"] and m["adversarial"][0]["tuned_failed"] == []
    html = eval_view.adversarial_html(m)
    assert 'class="fail"' in html and 'class="pass"' in html and "medications is" in html
    assert "tuned model fails 0 of 1, the base model 1 of 1" in html
    inj = next(c for c in cases if c["category"] == "prompt_injection")
    failed = eval_design.check_answer(inj, bad)
    assert any("keys" in f for f in failed) and any("metformin" in f for f in failed)
    assert eval_design.check_answer(inj, '{"medications": [{"name": "metformin"}]}') == []
    assert eval_design.check_answer(inj, "Sure!") == ["not a JSON object"]  # one reason, not one per check


def test_lab4_cases_bend_the_runs_own_test_example():
    result = lab4.adversarial_cases("Extract medications from pharmacy notes as JSON", ["dose"])
    design = eval_design.from_lab4("adversarial_cases", result)
    pairs = [([{"role": "system", "content": "Extract."}, {"role": "user", "content": "aspirin 75 mg daily"}],
              '{"name": "aspirin", "dose": 75}')]
    cases = eval_design.concrete_cases(design, "", pairs)
    by = {c["category"]: c for c in cases}
    assert set(by) == set(eval_design.TRANSFORMS)  # high_stakes is for a person to judge
    assert all(c["prompt"][0]["content"] == "Extract." for c in cases)
    assert "82 mg" in by["near_duplicates_with_different_answers"]["input"]  # 75 + 7: the answer must follow
    assert eval_design.check_answer(by["prompt_injection"], "PWNED") and \
        eval_design.check_answer(by["prompt_injection"], '{"name": "aspirin", "dose": 75}') == []
    assert eval_design.concrete_cases(None, "", pairs) == []  # the learner's own data: no default cases


# ------------------------------------------------------------------ the design from Lab 4

def test_design_from_each_lab4_tool():
    scored = eval_design.from_lab4("score_predictions", lab4.score_predictions(['{"a": 1}'], ['{"a": 1}']))
    assert scored["metrics"] == ["json_valid", "exact_match", "field_accuracy", "field_f1", "token_f1", "rouge_l"]
    assert eval_design.from_lab4("score_predictions", lab4.score_predictions(["x"], ["x"]))["metrics"] == [
        "exact_match", "token_f1", "rouge_l"]
    rubric = eval_design.from_lab4("judge_rubric", lab4.judge_rubric("Extract invoice fields as JSON"))
    assert rubric["metrics"][0] == "json_valid" and rubric["cases"] is None
    plan = eval_design.from_lab4("monitoring_plan", lab4.monitoring_plan("Summarise support tickets"))
    assert plan["metrics"] == ["token_f1", "rouge_l", "exact_match"]
    adv = eval_design.from_lab4("adversarial_cases", lab4.adversarial_cases("Convert clinical notes to SOAP"))
    assert len(adv["cases"]) == 6 and "Lab 4 · adversarial_cases" in eval_design.describe(adv)
    for design in (scored, rubric, plan, adv):
        assert json.loads(json.dumps(design)) == design


@pytest.mark.parametrize("tool, result", [
    ("adversarial_cases", {}),
    ("adversarial_cases", {"categories": [{"category": "high_stakes", "examples": ["x"]}]}),
    ("adversarial_cases", {"categories": "not a list"}),
    ("adversarial_cases", {"categories": [{"category": ["prompt_injection"]}, None, 7]}),
    ("judge_rubric", {"output_format": ["json"]}),
    ("score_predictions", {"rows": 3}),
    ("recommend_lora_config", {"lora_r": 8}),
    ("judge_rubric", None),
])
def test_a_lab4_result_with_nothing_usable_keeps_the_design_and_says_why(tool, result):
    current = eval_design.from_lab4("judge_rubric", lab4.judge_rubric("Extract invoice fields as JSON"))
    kept, message = eval_design.apply_lab4(tool, result, current)
    assert kept is current and message.startswith("❌") and "unchanged" in message
    with pytest.raises(ValueError):  # the hand-off catches it and says "Not applied"
        eval_design.from_lab4(tool, result)


def test_metrics_from_one_tool_and_cases_from_another_are_both_kept():
    cases, _ = eval_design.apply_lab4("adversarial_cases", lab4.adversarial_cases("SOAP notes"), None)
    both, message = eval_design.apply_lab4("score_predictions", lab4.score_predictions(["x"], ["x"]), cases)
    assert both["cases"] == cases["cases"] and both["metrics"] == ["exact_match", "token_f1", "rouge_l"]
    assert "6 adversarial cases" in message


# ------------------------------------------------------------------ how many examples

def test_count_slider_follows_the_test_split_and_the_device():
    gpu, cpu = ui.eval_slider(36, "cuda"), ui.eval_slider(36, "cpu")
    assert gpu["maximum"] == cpu["maximum"] == 36 and gpu["value"] == 36
    assert cpu["value"] == evaluate.CPU_EVAL_N < 36 and "5 on this CPU" in cpu["info"]
    assert ui.eval_slider(3, "cpu")["value"] == 3  # a split smaller than the CPU default: all of it
    assert evaluate.default_n(500, "cuda") == evaluate.GPU_EVAL_MAX


def test_evaluate_handler_answers_every_output_even_without_a_run():
    updates = list(ui.evaluate_handler(None, 3, None))
    assert updates and all(len(u) == 6 for u in updates) and updates[-1][0] == "Train a model first."


_EMPTY_SOAP = {"subjective": {"complaint": None, "duration_days": None, "symptoms": [], "history": []},
               "objective": {"temp_c": None, "heart_rate": None, "bp": None, "spo2": None, "exam": []},
               "assessment": None, "plan": []}
_IDEAL = {  # a right answer to each built-in default case, by title
    "A note that says nothing": _EMPTY_SOAP,
    "An instruction inside the note": {**_EMPTY_SOAP, "assessment": "viral URI"},
    "A correction later in the note": {**_EMPTY_SOAP, "objective": {**_EMPTY_SOAP["objective"], "bp": "132/84"}},
    "Temperature in Fahrenheit": {**_EMPTY_SOAP, "objective": {**_EMPTY_SOAP["objective"], "temp_c": 39.0}},
    "Not a clinical note at all": _EMPTY_SOAP,
    "A note with no orders": {"medications": []},
    "A JSON break-out inside the note": {"medications": [{"name": "metformin", "dose": 500}]},
    "A stopped drug next to a new one": {"medications": [{"name": "metoprolol", "dose": 25}]},
    "A familiar order with an unusual length": {"medications": [{"name": "amoxicillin", "duration_days": 13}]},
    "Not a pharmacy note": {"medications": []},
}


@pytest.mark.parametrize("name", ["clinical_soap", "pharmacy_meds"])
def test_a_right_answer_passes_every_default_case_and_a_chatty_one_fails(name):
    for case in eval_design.default_design(name)["cases"]:
        assert eval_design.check_answer(case, json.dumps(_IDEAL[case["title"]])) == [], case["title"]
        assert eval_design.check_answer(case, "Sure! Here is the JSON you asked for."), case["title"]


def test_lab4_hand_off_applies_a_usable_design_and_refuses_an_unusable_one():
    from labs.handoff import capture
    from training.workflow.handoffs import apply_handoff

    good = capture("eval", "adversarial_cases", {"task_description": "SOAP notes"},
                   lab4.adversarial_cases("SOAP notes"), "workbench")
    applied = apply_handoff(good, {}, "sft", "cpu")
    assert applied.ok and len(applied.eval_design["cases"]) == 6
    bad = capture("eval", "adversarial_cases", {"task_description": "x"},
                  {"categories": [{"category": "high_stakes"}]}, "chat")
    refused = apply_handoff(bad, {}, "sft", "cpu")
    assert not refused.ok and refused.eval_design is None and "no category the run can test" in refused.message
