"""The Lab tools and the Training tab share one implementation where they
judge the same thing (issue 10): scoring answers, and reading chat rows."""
from __future__ import annotations

import pytest

from labs.tools.evaluation import score_predictions
from training.evaluate import scores

REF = '{"drug": "metformin", "dose": "500 mg"}'


def test_run_evaluation_and_lab4_score_the_same_answers_the_same():
    preds = [REF,                                               # exact
             '```json\n{"drug": "metformin"}\n```',             # fenced, one field missing
             "{'drug': 'metformin', 'dose': '500 mg'}",         # Python dict: not JSON
             '{"drug": "metformin", "dose": "5 mg", "x": 1}']   # one right, one wrong, one invented
    refs = [REF] * 4
    lab, run = score_predictions(preds, refs), scores(preds, refs)
    assert run["json_valid"] == lab["json_validity"] == 0.75
    assert run["exact_match"] == lab["exact_match"] == 0.25
    # field F1 per row: 1, 2/3 (p=1, r=1/2), 0, 0.4 (p=1/3, r=1/2)
    assert run["field_f1"] == lab["field_f1"] == pytest.approx((1 + 2 / 3 + 0 + 0.4) / 4, abs=1e-3)
    assert run["field_accuracy"] == lab["field_accuracy"]
    assert run["n"] == 4


def test_text_answers_get_no_json_metrics():
    run = scores(["Paris", "the cat sat"], ["Paris", "a cat sat"])
    assert run["exact_match"] == 1.0 and "json_valid" not in run and "field_f1" not in run
