"""Base vs tuned on the held-out test split → `metrics.json`.

For a handful of test examples both models answer greedily (the base is the
same PEFT model with its adapter switched off, so only the adapter differs;
one model load, from the cache that chat shares). The answers are generated
in left-padded batches with a token cap from the reference lengths, and for
JSON tasks each answer ends when its object closes; they stream out one by one
(`evaluate_stream`) so the learner sees progress. Then the answers are scored
by the one scorer the Lab 4 tool uses (`labs.tools.evaluation.score_predictions`):
JSON validity, exact match and field-level F1, plus field accuracy, token F1 and ROUGE-L.
"""
from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from typing import Callable, Iterator

from core.config import env_int
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


EVAL_BATCH = env_int("FTLAB_EVAL_BATCH", 8)
PENDING = "…"  # shown in a side-by-side cell whose answer is still being generated
TICK_S = 1.0   # how often a progress update goes out between finished answers


def new_token_cap(tokenizer, references: list[str]) -> int:
    """Room for the longest expected answer and a quarter more, no more: on a CPU
    generation is nearly all of the evaluation time, and a model that does not stop
    (an untuned base often echoes the note) runs to this cap."""
    longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=0)
    return max(16, min(512, int(longest * 1.25) + 16))


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text.strip()), dict)
    except ValueError:
        return False


def _partial(samples: list[dict], seconds: float) -> dict:
    """metrics.json's shape for the examples whose two answers are both in."""
    done = [s for s in samples if PENDING not in (s["base"], s["tuned"])]
    refs = [s["reference"] for s in done]
    return {"n": len(done), "seconds": round(seconds, 1),
            "base": scores([s["base"] for s in done], refs),
            "tuned": scores([s["tuned"] for s in done], refs),
            "samples": [dict(s) for s in samples]}


def evaluate_stream(run_id: str, *, n_samples: int = 5, max_new_tokens: int | None = None,
                    batch_size: int | None = None, cache=None) -> Iterator[dict]:
    """Base vs tuned on up to n_samples test rows, streamed. Yields plain dicts:
    {"kind": "progress", "done", "n", "answers", "total_answers", "elapsed", "eta", "metrics"}
    as answers come in (metrics: the examples finished so far), then
    {"kind": "done", "metrics": ...} once metrics.json is written."""
    from training import inference

    data = runs.read_datasets(run_id)
    rows = (data["test"] or data["validation"])[: max(1, int(n_samples))]
    if not rows:
        raise ValueError("This run has no test examples to evaluate on.")
    pairs = [checks.completion_pairs(r) for r in rows]
    samples = [{"prompt": next((m["content"] for m in reversed(p) if m.get("role") == "user"), ""),
                "reference": ref, "base": PENDING, "tuned": PENDING} for p, ref in pairs]
    t0 = time.monotonic()
    with inference.loaded(run_id, cache) as entry:
        cap = int(max_new_tokens or new_token_cap(entry.tokenizer, [ref for _, ref in pairs]))
        json_task = all(_is_json_object(ref) for _, ref in pairs)
        events: queue.Queue = queue.Queue()
        cancel = threading.Event()
        work = threading.Thread(target=_generate_all, daemon=True, name="evaluate", args=(
            entry, [p for p, _ in pairs], cap, json_task, int(batch_size or EVAL_BATCH), events, cancel))
        work.start()
        try:
            yield from _progress(events, samples, cap, t0)
        finally:
            cancel.set()  # the learner left: stop generating at the next token
            work.join()
    result = dict(_partial(samples, time.monotonic() - t0), max_new_tokens=cap, json_stop=json_task)
    path = runs.run_dir(run_id) / "metrics.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    yield {"kind": "done", "metrics": result}


def _generate_all(entry, prompts, cap, json_task, batch, events, cancel) -> None:
    """In a thread: tuned then base answers, a batch of prompts at a time; reports to `events`."""
    from training.inference import generate_batch
    chunks = [(start, prompts[start:start + batch]) for start in range(0, len(prompts), batch)]
    try:
        for k, (start, chunk) in enumerate(chunks):
            for j, side in enumerate(("tuned", "base")):
                if cancel.is_set():
                    return
                events.put(("pass", 2 * k + j, 2 * len(chunks)))
                with entry.lock, (entry.model.disable_adapter() if side == "base" else contextlib.nullcontext()):
                    generate_batch(entry.model, entry.tokenizer, chunk, cap, json_stop=json_task, cancel=cancel,
                                   on_step=lambda step: events.put(("step", step)),
                                   on_done=lambda i, text, side=side, start=start:
                                   events.put(("answer", side, start + i, text)))
    except BaseException as exc:  # noqa: BLE001 - re-raised by the reader
        events.put(("error", exc))
    finally:
        events.put(("end",))


def _progress(events: queue.Queue, samples: list[dict], cap: int, t0: float) -> Iterator[dict]:
    """Turns the worker's events into progress dicts: one per finished answer, and a tick
    at most every TICK_S between them. The estimate is an upper bound: every pass left
    is assumed to run to the token cap, at the seconds per step measured so far."""
    n, answered = len(samples), 0
    partial = _partial(samples, 0.0)
    last_push, step, steps_before, pass_k, passes = 0.0, 0, 0, 0, 2
    while True:
        event = events.get()
        now = time.monotonic()
        if event[0] == "end":
            return
        if event[0] == "error":
            raise event[1]
        if event[0] == "pass":
            steps_before, step, pass_k, passes = steps_before + step, 0, event[1], event[2]
            continue
        if event[0] == "step":
            step = event[1]
            if now - last_push < TICK_S:
                continue
        else:
            _, side, i, text = event
            samples[i][side] = text
            answered += 1
            partial = _partial(samples, now - t0)
        last_push = now
        s_step = (now - t0) / max(1, steps_before + step)
        eta = (max(0, cap - step) + (passes - pass_k - 1) * cap) * s_step
        yield {"kind": "progress", "done": partial["n"], "n": n, "answers": answered, "total_answers": 2 * n,
               "elapsed": round(now - t0, 1), "eta": round(eta, 1), "metrics": partial}


def evaluate_run(run_id: str, *, n_samples: int = 5, max_new_tokens: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate base and tuned answers for up to n_samples test rows; write and return metrics.json."""
    for event in evaluate_stream(run_id, n_samples=n_samples, max_new_tokens=max_new_tokens):
        if event["kind"] == "done":
            return event["metrics"]
        if on_progress:
            on_progress(event["done"], event["n"])
    raise RuntimeError("The evaluation ended without a result.")


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
