"""Base vs tuned on the held-out test split → `metrics.json`.

For a handful of test examples both models answer greedily (the base is the
same PEFT model with its adapter switched off, so only the adapter differs),
then the answers are scored by the one scorer the Lab 4 tool uses
(`labs.tools.evaluation.score_predictions`): JSON validity, exact match and
field-level F1, plus field accuracy, token F1 and ROUGE-L.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from training import checks, runs


def scores(predictions: list[str], references: list[str]) -> dict:
    """JSON validity, exact match and field F1 (with field accuracy, token F1 and
    ROUGE-L) from the one scorer, the Lab 4 tool's ``score_predictions``."""
    from labs.tools.evaluation import score_predictions

    if not predictions:
        return {"n": 0, "exact_match": 0.0}
    lab4 = score_predictions(list(predictions), list(references))
    out = {"n": lab4["rows"], "exact_match": lab4["exact_match"],
           "token_f1": lab4["token_f1"], "rouge_l": lab4["rouge_l"]}
    # JSON metrics exist only when the references are JSON (the built-in sets; a text task has none).
    for ours, theirs in (("json_valid", "json_validity"), ("field_f1", "field_f1"),
                         ("field_accuracy", "field_accuracy"), ("per_field", "per_field")):
        if theirs in lab4:
            out[ours] = lab4[theirs]
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
