"""The Lab tools and the Training tab share one implementation where they
judge the same thing (issue 10): scoring answers, and reading chat rows."""
from __future__ import annotations

import pytest

from labs.tools.evaluation import score_predictions
from training.evaluation.evaluate import scores

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


def test_lab4_and_the_run_evaluation_import_one_scorer():
    """Reading answers as JSON and scoring them live in core.scoring; neither side keeps a copy."""
    import ast
    from pathlib import Path

    from core import scoring
    from labs.tools import evaluation, registry

    assert registry.TOOLS["score_predictions"].fn is scoring.score_predictions is evaluation.score_predictions
    root = Path(__file__).resolve().parent.parent
    for path in [root / "labs/tools/evaluation.py", *sorted((root / "training/evaluation").glob("*.py"))]:
        defined = {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(n, ast.FunctionDef)}
        copies = defined & {"parse_json", "_parse_json", "score_predictions", "flatten", "token_f1", "rouge_l"}
        assert not copies, f"{path.name} defines its own {sorted(copies)}: import them from core.scoring"


def test_text_answers_get_no_json_metrics():
    run = scores(["Paris", "the cat sat"], ["Paris", "a cat sat"])
    assert run["exact_match"] == 1.0 and "json_valid" not in run and "field_f1" not in run


# ------------------------------------------------------------------ chat rows

import json  # noqa: E402

from core import chat_rows  # noqa: E402
from labs.tools.dataset_critic import critique_jsonl  # noqa: E402
from training.data.loading import parse_jsonl  # noqa: E402


def _chat(user: str, answer, **extra) -> str:
    return json.dumps({"messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}], **extra})


def _good(n: int) -> list[str]:
    return [_chat(f"Question number {i} about invoice {i * 7}", f'{{"id": {i}}}') for i in range(n)]


CASES = {
    "good rows": (_good(12), "sft", True),
    "empty assistant turn": (_good(3) + [_chat("x", "")], "sft", False),
    "whitespace assistant turn": (_good(3) + [_chat("x", "   ")], "sft", False),
    "over the row cap": (_good(chat_rows.MAX_ROWS + 1), "sft", False),
    "tool role": (_good(3) + [json.dumps({"messages": [{"role": "user", "content": "a"},
                                                       {"role": "tool", "content": "b"},
                                                       {"role": "assistant", "content": "c"}]})], "sft", False),
    "text parts": ([json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                             {"role": "assistant", "content": "hello"}]})], "sft", True),
    "system turn in the middle": (_good(3) + [json.dumps({"messages": [
        {"role": "user", "content": "a"}, {"role": "system", "content": "b"},
        {"role": "assistant", "content": "c"}]})], "sft", False),
    "plain text rows": ([json.dumps({"text": "just text"})] * 2, "sft", False),
    "chosen equals rejected": ([json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"})], "dpo", False),
    "good pairs": ([json.dumps({"prompt": f"p{i}", "chosen": "good", "rejected": "bad"}) for i in range(3)],
                   "dpo", True),
    "cut-off line": (_good(3) + ['{"messages": [{"role": "user", "content": "hi"},'], "sft", False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_critic_and_training_agree_on_what_can_be_trained(name):
    lines, method, trainable = CASES[name]
    text = "\n".join(lines)
    critic, training = critique_jsonl(text), parse_jsonl(text, method)
    assert training.ok is trainable and critic["ok"] is trainable, (critic["fixes"], training.errors)
    assert critic["summary"]["usable_examples"] == len(training.rows)
    if not trainable:  # the critic names a reason, as an error
        assert any(f["severity"] == "error" for f in critic["fixes"])


def test_over_the_row_cap_names_the_limit_in_both():
    text = "\n".join(_good(chat_rows.MAX_ROWS + 1))
    critic, training = critique_jsonl(text), parse_jsonl(text, "sft")
    fix = next(f for f in critic["fixes"] if f["kind"] == "too_many_rows")
    assert f"{chat_rows.MAX_ROWS:,}" in fix["examples"][0] and fix["lines"] == [chat_rows.MAX_ROWS + 1]
    assert "the limit is" in training.markdown() and "0 valid row(s)" not in training.markdown()


@pytest.mark.parametrize("line, hint, not_hint", [
    ('{"messages": [{"role": "user", "content": "hi"},', "cut off", "single quotes"),
    ('{"prompt": "it\'s a', "cut off", "single quotes"),
    ('{"prompt": "a", "completion": "b",}', "trailing comma", "single quotes"),
    ("{'prompt': 'a', 'completion': 'b'}", "single quotes", "cut off"),
    ('{"prompt": "a"} {"prompt": "b"}', "more than one object", "single quotes"),
])
def test_a_json_error_gets_the_hint_that_fits_it_in_both(line, hint, not_hint):
    training = parse_jsonl(line, "sft").errors[0]
    critic = next(e for f in critique_jsonl(line)["fixes"] if f["kind"] == "bad_json" for e in f["examples"])
    for message in (training, critic):
        assert hint in message and not_hint not in message, message
