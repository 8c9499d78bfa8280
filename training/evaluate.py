"""Base vs tuned on the held-out test split → `metrics.json`.

For a handful of test examples both models answer greedily (the base is the
same PEFT model with its adapter switched off, so only the adapter differs),
then the answers are scored: JSON validity, exact match and field-level F1
from the Lab 4 tool `labs.tools.evaluation.score_predictions`, with our own
computation as a fallback when that tool refuses the input.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from training import checks, runs


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _flatten(value: Any, prefix: str = "") -> set[tuple[str, str]]:
    if isinstance(value, dict):
        out: set[tuple[str, str]] = set()
        for k, v in value.items():
            out |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list):
        out = set()
        for i, v in enumerate(value):
            out |= _flatten(v, f"{prefix}[{i}]")
        return out
    return {(prefix, json.dumps(value, sort_keys=True))}


def basic_scores(predictions: list[str], references: list[str]) -> dict:
    """JSON validity, exact match (JSON-equal when both parse) and field-level F1."""
    n = len(predictions)
    if n == 0:
        return {"n": 0, "json_valid": 0.0, "exact_match": 0.0, "field_f1": 0.0}
    valid = exact = 0
    f1s = []
    for pred, ref in zip(predictions, references):
        p, r = _parse_json(pred.strip()), _parse_json(ref.strip())
        valid += p is not None
        if p is not None and r is not None:
            exact += p == r
            pf, rf = _flatten(p), _flatten(r)
            tp = len(pf & rf)
            prec = tp / len(pf) if pf else 0.0
            rec = tp / len(rf) if rf else 0.0
            f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        else:
            exact += pred.strip() == ref.strip()
            f1s.append(0.0)
    return {"n": n, "json_valid": round(valid / n, 3), "exact_match": round(exact / n, 3),
            "field_f1": round(sum(f1s) / n, 3)}


def _lab4_scores(predictions: list[str], references: list[str]) -> dict | None:
    try:
        from labs.tools.evaluation import score_predictions
        return score_predictions(predictions, references)
    except Exception:  # the Lab 4 tool refuses some inputs; our own numbers then stand alone
        return None


def scores(predictions: list[str], references: list[str]) -> dict:
    """The Lab 4 metrics (labs.tools.evaluation.score_predictions) where it can score the
    answers, with our own JSON validity / exact match / field F1 as the fallback."""
    out = basic_scores(predictions, references)
    out["source"] = "basic"
    lab4 = _lab4_scores(predictions, references)
    if lab4:
        out["source"] = "lab4"
        out["exact_match"] = lab4.get("exact_match", out["exact_match"])
        if "json_validity" in lab4:
            out["json_valid"] = lab4["json_validity"]
        for key in ("field_accuracy", "token_f1", "rouge_l"):
            if key in lab4:
                out[key] = lab4[key]
        if "per_field" in lab4:
            out["per_field"] = lab4["per_field"]
    return out


def evaluate_run(run_id: str, *, n_samples: int = 5, max_new_tokens: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate base and tuned answers for up to n_samples test rows; write and return metrics.json."""
    from training.inference import generate, load_for_run

    data = runs.read_datasets(run_id)
    rows = (data["test"] or data["validation"])[: max(1, int(n_samples))]
    if not rows:
        raise ValueError("This run has no test examples to evaluate on.")
    if max_new_tokens is None:
        # Room for the longest expected answer (~3 characters a token for JSON), no more:
        # generation is most of the evaluation time on a CPU.
        longest = max(len(checks.completion_pairs(r)[1]) for r in rows)
        max_new_tokens = max(32, min(384, longest // 3 + 16))
    model, tok = load_for_run(run_id, adapter=True)
    samples = []
    t0 = time.monotonic()
    for i, row in enumerate(rows):
        prompt, reference = checks.completion_pairs(row)
        tuned = generate(model, tok, prompt, max_new_tokens)
        with model.disable_adapter():
            base = generate(model, tok, prompt, max_new_tokens)
        user = next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
        samples.append({"prompt": user, "reference": reference, "base": base, "tuned": tuned})
        if on_progress:
            on_progress(i + 1, len(rows))
    refs = [s["reference"] for s in samples]
    result = {
        "n": len(samples), "seconds": round(time.monotonic() - t0, 1),
        "base": scores([s["base"] for s in samples], refs),
        "tuned": scores([s["tuned"] for s in samples], refs),
        "samples": samples,
    }
    path = runs.run_dir(run_id) / "metrics.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return result


def read_metrics(run_id: str) -> dict | None:
    try:
        return json.loads((runs.run_dir(run_id) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, runs.RunNotFound):
        return None


METRIC_LABELS = {"json_valid": "Valid JSON", "exact_match": "Exact match",
                 "field_accuracy": "Field-level accuracy", "field_f1": "Field-level F1",
                 "token_f1": "Token F1", "rouge_l": "ROUGE-L"}


def metrics_rows(metrics: dict | None) -> list[list]:
    """Rows [metric, base, tuned, change] for a gr.Dataframe."""
    if not metrics:
        return []
    rows = []
    for key, label in METRIC_LABELS.items():
        if key not in metrics["base"] or key not in metrics["tuned"]:
            continue
        if key == "field_f1" and "field_accuracy" in metrics["base"]:
            continue  # the Lab 4 field accuracy is shown instead
        b, t = float(metrics["base"][key]), float(metrics["tuned"][key])
        rows.append([label, f"{b:.0%}", f"{t:.0%}", f"{(t - b) * 100:+.0f} pts"])
    return rows


def samples_rows(metrics: dict | None, limit: int = 160) -> list[list]:
    def cut(s: str) -> str:
        return s if len(s) <= limit else s[:limit] + "…"
    return [[cut(s["prompt"]), cut(s["reference"]), cut(s["base"]), cut(s["tuned"])]
            for s in (metrics or {}).get("samples", [])]
