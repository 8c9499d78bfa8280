"""Reading a model's answers as JSON and scoring them against references: the one scorer.

    >>> score_predictions(["Paris", "the dog sat"], ["Paris", "a cat sat"])["exact_match"]
    0.5

All metrics are computed here (no model calls): exact match after light
normalisation, token F1 (SQuAD-style bag of words), ROUGE-L F-measure from the
longest common subsequence, JSON validity, and per-field accuracy and field F1
over JSON values with nested keys flattened to dotted paths.

Why `core/`: two features score answers. Lab 4's `score_predictions` tool
(`labs/tools/evaluation.py`, which adds its Markdown and tool spec) and the
Training tab's run evaluation (`training/evaluation/`: the metrics, the bootstrap's
per-row values, the evaluation design's checks and the side-by-side view) both import
this module, so a lab and a run never read or score the same answer differently.
It is plain Python with no feature-package import, as everything in `core/`.
"""
from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Any

MAX_ROWS = 20_000
# ROUGE-L is O(n·m) per pair; cap tokens so one pasted novel cannot stall the app.
MAX_LCS_TOKENS = 2_000

_PUNCT = str.maketrans("", "", string.punctuation)


# ------------------------------------------------------------------ scoring

def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze spaces (SQuAD convention)."""
    text = text.lower().translate(_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(pred: str, ref: str) -> float:
    p, r = normalize(pred).split(), normalize(ref).split()
    if not p and not r:
        return 1.0
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[-1]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1: LCS-based precision and recall over lowercase word tokens."""
    p = pred.lower().split()[:MAX_LCS_TOKENS]
    r = ref.lower().split()[:MAX_LCS_TOKENS]
    if not p and not r:
        return 1.0
    if not p or not r:
        return 0.0
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def parse_json(text: str) -> tuple[bool, Any]:
    """(True, value) when a model's answer parses as JSON, else (False, None). The one reading
    of an answer as JSON: the scorer, the evaluation design's checks and the side-by-side view."""
    stripped = text.strip()
    # Models often wrap JSON in a Markdown fence; judge the content, but the
    # fence itself is reported (a strict parser downstream would choke on it).
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, re.S)
    if fence:
        stripped = fence.group(1)
    try:
        return True, json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        return False, None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts (and lists) to dotted paths: {"a": {"b": 1}, "c": [2]} → {"a.b": 1, "c[0]": 2}."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        if not obj and prefix:
            out[prefix] = []
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = obj
    return out


def field_f1(pred_obj: Any, ref_obj: Any) -> float:
    """F1 over (dotted path, value) pairs of two JSON values: credit for each
    field the prediction gets right, a penalty for fields it invents."""
    pf = {(k, json.dumps(v, sort_keys=True)) for k, v in flatten(pred_obj).items()}
    rf = {(k, json.dumps(v, sort_keys=True)) for k, v in flatten(ref_obj).items()}
    tp = len(pf & rf)
    precision = tp / len(pf) if pf else 0.0
    recall = tp / len(rf) if rf else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _split_block(value: str | list) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    if not isinstance(value, str):
        raise ValueError("predictions and references must be text or a list of strings")
    lines = value.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _pairs_from_jsonl(lines: list[str]) -> list[tuple[str, str]] | None:
    """Lines like {"prediction": ..., "reference": ...} (also output/expected, pred/label)."""
    pairs = []
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        pred = next((obj[k] for k in ("prediction", "pred", "output", "generated") if k in obj), None)
        ref = next((obj[k] for k in ("reference", "ref", "expected", "label", "target", "answer")
                    if k in obj), None)
        if pred is None or ref is None:
            return None
        pairs.append(tuple(v if isinstance(v, str) else json.dumps(v) for v in (pred, ref)))
    return pairs or None


def score_predictions(predictions: str | list, references: str | list | None = None) -> dict:
    """Score aligned predictions against references; see the module docstring."""
    pred_lines = _split_block(predictions)
    if references is None or (isinstance(references, str) and not references.strip()):
        pairs = _pairs_from_jsonl(pred_lines)
        if pairs is None:
            raise ValueError("Give references too, or paste JSONL with 'prediction' and "
                             "'reference' on each line.")
    else:
        ref_lines = _split_block(references)
        if len(pred_lines) != len(ref_lines):
            raise ValueError(f"{len(pred_lines)} predictions but {len(ref_lines)} references: "
                             "they must line up one per line.")
        pairs = list(zip(pred_lines, ref_lines))
    if not pairs:
        raise ValueError("Nothing to score: paste at least one prediction and reference.")
    if len(pairs) > MAX_ROWS:
        raise ValueError(f"At most {MAX_ROWS:,} rows at a time.")

    rows = []
    field_hits: Counter = Counter()
    field_total: Counter = Counter()
    json_expected = 0
    json_valid = 0
    for i, (pred, ref) in enumerate(pairs, 1):
        row = {"row": i, "exact_match": float(normalize(pred) == normalize(ref)),
               "token_f1": round(token_f1(pred, ref), 4), "rouge_l": round(rouge_l(pred, ref), 4)}
        ref_ok, ref_obj = parse_json(ref)
        pred_ok, pred_obj = parse_json(pred)
        if ref_ok and isinstance(ref_obj, (dict, list)):
            json_expected += 1
            row["json_valid"] = pred_ok
            # For JSON answers, "exact" means the same JSON value: key order and
            # spacing do not matter, but a Python-style dict that fails to parse does.
            row["exact_match"] = float(pred_ok and pred_obj == ref_obj)
            json_valid += pred_ok
            row["field_f1"] = round(field_f1(pred_obj, ref_obj), 4) if pred_ok else 0.0
            if isinstance(ref_obj, dict):
                ref_flat = flatten(ref_obj)
                pred_flat = flatten(pred_obj) if pred_ok and isinstance(pred_obj, dict) else {}
                correct = 0
                for key, value in ref_flat.items():
                    field_total[key] += 1
                    hit = key in pred_flat and pred_flat[key] == value
                    field_hits[key] += hit
                    correct += hit
                row["field_accuracy"] = round(correct / len(ref_flat), 4) if ref_flat else 1.0
        rows.append(row)

    n = len(rows)
    result: dict[str, Any] = {
        "rows": n,
        "exact_match": round(sum(r["exact_match"] for r in rows) / n, 4),
        "token_f1": round(sum(r["token_f1"] for r in rows) / n, 4),
        "rouge_l": round(sum(r["rouge_l"] for r in rows) / n, 4),
    }
    if json_expected:
        result["json_rows"] = json_expected
        result["json_validity"] = round(json_valid / json_expected, 4)
        result["field_f1"] = round(sum(r["field_f1"] for r in rows if "field_f1" in r) / json_expected, 4)
    if field_total:
        result["field_accuracy"] = round(sum(field_hits.values()) / sum(field_total.values()), 4)
        result["per_field"] = {k: {"accuracy": round(field_hits[k] / field_total[k], 4),
                                   "count": field_total[k]}
                               for k in sorted(field_total, key=lambda k: (field_hits[k] / field_total[k], k))}
    worst = sorted(rows, key=lambda r: (r["token_f1"], r["row"]))[:10]
    result["worst_rows"] = [{"row": r["row"], "token_f1": r["token_f1"],
                             "prediction": pairs[r["row"] - 1][0][:200],
                             "reference": pairs[r["row"] - 1][1][:200]} for r in worst
                            if r["exact_match"] < 1.0]
    result["per_row"] = rows[:200]
    result["notes"] = [
        "Exact match compares after lowercasing and dropping punctuation and articles.",
        "Token F1 and ROUGE-L reward partial overlap; neither knows whether a fact is right.",
    ]
    return result
