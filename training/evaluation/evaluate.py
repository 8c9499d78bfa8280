"""Base vs tuned on the held-out test split → `metrics.json`.

For the test examples (the whole split on a GPU, a CPU-sized subset otherwise:
`default_n`) both models answer greedily (the base model, and the same weights with
the adapter merged in, so only the adapter differs; one load of the pair, from the
cache that chat shares: `inference.load_models`). The answers are generated
in left-padded batches with a token cap from the reference lengths, and for
JSON tasks each answer ends when its object closes; they stream out one by one
(`evaluate_stream`) so the learner sees progress. Then the answers are scored
by the one scorer the Lab 4 tool uses (`core.scoring.score_predictions`):
JSON validity, exact match and field-level F1, plus field accuracy, token F1 and ROUGE-L.
Each metric gets a paired bootstrap 95% interval (`paired_bootstrap`): the same
resampled examples for base and tuned, so the change has its own interval.

The evaluation design (training/evaluation/design.py: Lab 4's metrics and adversarial
cases, or the dataset's defaults) picks the metrics shown and adds the
adversarial cases, answered by both models in the same pass and checked.
"""
from __future__ import annotations

import json
import queue
import re
import threading
import time
from typing import Callable, Iterator

from core.config import env_int
from training.data import checks
from training.evaluation import base_answers, design as eval_design
from training.run import runs


def scores(predictions: list[str], references: list[str]) -> dict:
    """JSON validity, exact match and field F1 (with field accuracy, token F1 and
    ROUGE-L) from the one scorer, the Lab 4 tool's ``score_predictions``."""
    from core.scoring import score_predictions

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


# Rows per generate call: as many as fit EVAL_BATCH_TOKENS (padded prompt + answer cap per row),
# at most EVAL_BATCH. A decoding step reads every weight once whatever the batch, so one call
# for a 36-row split costs about as many steps as one for 8 rows (docs/benchmarks.md).
EVAL_BATCH = env_int("FTLAB_EVAL_BATCH", 64)
EVAL_BATCH_TOKENS = env_int("FTLAB_EVAL_BATCH_TOKENS", 24_000)
CPU_EVAL_N = env_int("FTLAB_EVAL_CPU_N", 5)    # ~1 min for base + tuned on 2 CPU cores (docs/benchmarks.md)
GPU_EVAL_MAX = env_int("FTLAB_EVAL_GPU_MAX", 200)  # the whole split, up to what one GPU call holds
PENDING = "…"  # shown in a side-by-side cell whose answer is still being generated
TICK_S = 1.0   # how often a progress update goes out between finished answers
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 11  # fixed: the same answers always get the same interval


def default_n(test_size: int, device: str) -> int:
    """Test examples evaluated unless the learner asks for more: all of them on a GPU,
    a subset that takes about a minute on a CPU."""
    if test_size <= 0:
        return 0
    return min(test_size, GPU_EVAL_MAX if device.startswith("cuda") else CPU_EVAL_N)


def new_token_cap(tokenizer, references: list[str]) -> int:
    """Room for the longest expected answer and a quarter more, no more: on a CPU
    generation is nearly all of the evaluation time, and a model that does not stop
    (an untuned base often echoes the note) runs to this cap."""
    longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=0)
    return max(16, min(512, int(longest * 1.25) + 16))


def rows_per_call(tokenizer, prompts: list[list[dict]], cap: int) -> int:
    """How many rows one generate call takes: the token budget over the longest prompt plus the cap."""
    from training.evaluation.inference import prompt_ids
    longest = max((len(prompt_ids(tokenizer, p)) for p in prompts), default=0)
    return max(1, min(EVAL_BATCH, EVAL_BATCH_TOKENS // max(1, longest + cap)))


def is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text.strip()), dict)
    except ValueError:
        return False


# ------------------------------------------------------------------ intervals

def paired_bootstrap(base: list[float], tuned: list[float], weights: list[float] | None = None, *,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """95% percentile intervals of the (weighted) mean for base, tuned and tuned − base.

    Paired: each resample draws the same examples for both models, so what varies
    between examples (an easy note, a hard one) cancels out of the change. With
    `weights` the statistic is sum(w·x)/sum(w): a field accuracy pooled over fields."""
    import numpy as np

    b, t = np.asarray(base, dtype=float), np.asarray(tuned, dtype=float)
    w = np.ones_like(b) if weights is None else np.asarray(weights, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(b), size=(resamples, len(b)))
    ws = w[idx].sum(axis=1)
    ok = ws > 0  # a resample with no weighted example says nothing about the metric
    bm, tm = (b[idx] * w[idx]).sum(axis=1)[ok] / ws[ok], (t[idx] * w[idx]).sum(axis=1)[ok] / ws[ok]

    def ci(x) -> list[float]:
        return [round(float(v), 4) for v in np.percentile(x, [2.5, 97.5])] if len(x) else [0.0, 0.0]
    return {"base": ci(bm), "tuned": ci(tm), "change": ci(tm - bm)}


def row_values(predictions: list[str], references: list[str]) -> dict[str, tuple[list, list]]:
    """Per example, per metric: (values, weights) from the one scorer's per-row scores.
    JSON metrics weigh only the JSON examples; field accuracy weighs each by its field count."""
    from core.scoring import flatten, parse_json, score_predictions

    rows = []
    for start in range(0, len(predictions), 200):  # the scorer keeps 200 rows of per-row detail
        rows += score_predictions(predictions[start:start + 200], references[start:start + 200])["per_row"]
    out: dict[str, tuple[list, list]] = {}
    for key in ("exact_match", "token_f1", "rouge_l"):
        out[key] = ([r[key] for r in rows], [1.0] * len(rows))
    if any("json_valid" in r for r in rows):
        for key in ("json_valid", "field_f1"):
            out[key] = ([float(r.get(key) or 0.0) for r in rows], [float(key in r) for r in rows])
    if any("field_accuracy" in r for r in rows):
        fields = []
        for ref in references:
            ok, obj = parse_json(ref)
            fields.append(float(len(flatten(obj))) if ok and isinstance(obj, dict) else 0.0)
        out["field_accuracy"] = ([float(r.get("field_accuracy") or 0.0) for r in rows], fields)
    return out


def intervals(samples: list[dict]) -> dict:
    """{metric: {"base": [lo, hi], "tuned": [lo, hi], "change": [lo, hi]}} over the samples."""
    if not samples:
        return {}
    refs = [s["reference"] for s in samples]
    base, tuned = row_values([s["base"] for s in samples], refs), row_values([s["tuned"] for s in samples], refs)
    return {key: paired_bootstrap(base[key][0], tuned[key][0], base[key][1]) for key in base if key in tuned}


# ------------------------------------------------------------------ adversarial cases

def case_results(cases: list[dict]) -> list[dict]:
    """Each case with both answers and, per model, the checks it failed (None: still pending,
    or no automatic check: a person judges)."""
    out = []
    for c in cases:
        row = {k: c[k] for k in ("title", "category", "expect", "input", "base", "tuned")}
        for side in ("base", "tuned"):
            done = c[side] != PENDING and c["checks"]
            row[f"{side}_failed"] = eval_design.check_answer(c, c[side]) if done else None
        out.append(row)
    return out


def _partial(items: list[dict], n_test: int, seconds: float) -> dict:
    """metrics.json's shape for the examples whose two answers are both in."""
    samples, cases = items[:n_test], items[n_test:]
    done = [s for s in samples if PENDING not in (s["base"], s["tuned"])]
    refs = [s["reference"] for s in done]
    return {"n": len(done), "seconds": round(seconds, 1),
            "base": scores([s["base"] for s in done], refs),
            "tuned": scores([s["tuned"] for s in done], refs),
            "samples": [dict(s) for s in samples], "adversarial": case_results(cases)}


def run_dataset_name(run_id: str) -> str:
    """The built-in set a run trained on ("" for the learner's own data: no default cases)."""
    ds = (runs.read_run(run_id).get("config") or {}).get("dataset") or {}
    return str(ds.get("name") or "") if ds.get("source") == "builtin" else ""


def evaluate_stream(run_id: str, *, n_samples: int | None = None, design: dict | None = None,
                    max_new_tokens: int | None = None, batch_size: int | None = None,
                    cache=None, reuse_base: bool = True) -> Iterator[dict]:
    """Base vs tuned on up to n_samples test rows (None: `default_n` for this device) and the
    design's adversarial cases, streamed. Yields plain dicts:
    {"kind": "progress", "done", "n", "cases", "answers", "total_answers", "elapsed", "eta", "metrics"}
    as answers come in (metrics: the examples finished so far), then
    {"kind": "done", "metrics": ...} once metrics.json is written. The base model's answers
    come from an earlier evaluation of the same questions when there is one (`base_answers`;
    `reuse_base=False` answers them again)."""
    from training.evaluation import inference
    from training.run.device import compute_device

    data = runs.read_datasets(run_id)
    test = data["test"] or data["validation"]
    # The default count is for the device the answers are generated on (the GPU call's worker).
    n = int(n_samples) if n_samples else default_n(len(test), compute_device())
    rows = test[: max(1, n)]
    if not rows:
        raise ValueError("This run has no test examples to evaluate on.")
    pairs = [checks.completion_pairs(r) for r in rows]
    samples = [{"prompt": next((m["content"] for m in reversed(p) if m.get("role") == "user"), ""),
                "reference": ref, "base": PENDING, "tuned": PENDING} for p, ref in pairs]
    cases = [dict(c, base=PENDING, tuned=PENDING)
             for c in eval_design.concrete_cases(design, run_dataset_name(run_id), pairs)]
    items = samples + cases
    t0 = time.monotonic()
    with inference.loaded(run_id, cache) as entry:
        cap = int(max_new_tokens or new_token_cap(entry.tokenizer, [ref for _, ref in pairs]))
        json_task = all(is_json_object(ref) for _, ref in pairs)
        events: queue.Queue = queue.Queue()
        cancel = threading.Event()
        prompts = [p for p, _ in pairs] + [c["prompt"] for c in cases]
        batch = int(batch_size or rows_per_call(entry.tokenizer, prompts, cap))
        kept_as = base_answers.key(runs.read_run(run_id)["model"]["path"], prompts, cap, json_task, batch,
                                   str(entry.model.device), str(entry.model.dtype),
                                   base_threads(entry.model)) if reuse_base else None
        base_answers.sweep()  # a cheap moment to drop answers past the runs' TTL
        kept = base_answers.load(kept_as, len(prompts)) if kept_as else None
        work = threading.Thread(target=_generate_all, daemon=True, name="evaluate", args=(
            entry, prompts, cap, json_task, batch, events, cancel, kept_as, kept))
        work.start()
        try:
            yield from _progress(events, items, len(samples), cap, t0)
        finally:
            cancel.set()  # the learner left: stop generating at the next token
            work.join()
    result = dict(_partial(items, len(samples), time.monotonic() - t0), max_new_tokens=cap, json_stop=json_task,
                  rows_per_call=batch, base_reused=kept is not None,
                  intervals=intervals(samples), design=_stored_design(design, run_id),
                  bootstrap={"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "level": 0.95})
    path = runs.run_dir(run_id) / "metrics.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    yield {"kind": "done", "metrics": result}


def side_threads(model, sides: int) -> int:
    """Intra-op threads for each side when `sides` sides decode at once; 0: one after another."""
    from training.evaluation import decoding
    return decoding.threads_each(model.device, sides) if together(model) else 0


def base_threads(model) -> int:
    """The intra-op threads the base side is answered with when both sides are generated."""
    import torch
    return side_threads(model, 2) or torch.get_num_threads()


def _stored_design(design: dict | None, run_id: str) -> dict:
    """What metrics.json keeps of the design: where it came from and the metrics it chose."""
    d = design or eval_design.default_design(run_dataset_name(run_id))
    return {"source": d.get("source", ""), "metrics": d.get("metrics"), "note": d.get("note", "")}


def _generate_all(entry, prompts, cap, json_task, batch, events, cancel, kept_as=None, kept=None) -> None:
    """In a thread: the tuned and base answers, a batch of prompts at a time; reports to `events`.
    On a CPU the two sides of a batch decode at once, the cores shared out (`decoding.at_once`).
    `kept_as`: the key of the base answers for these questions; `kept`: those answers, when an
    earlier evaluation left them (shown at once; otherwise they are kept once all are in)."""
    from training.evaluation import decoding
    sides = ["tuned"] if kept is not None else ["tuned", "base"]
    threads = side_threads(entry.model, len(sides))
    groups = [sides] if threads else [[s] for s in sides]
    passes = [(start, prompts[start:start + batch], group)
              for start in range(0, len(prompts), batch) for group in groups]
    base: dict[int, str] = {}
    try:
        for i, text in enumerate(kept or []):
            events.put(("answer", "base", i, text))
        for k, (start, chunk, group) in enumerate(passes):
            if cancel.is_set():
                return
            events.put(("pass", k, len(passes)))
            jobs = [lambda side=side: _answer(entry, side, start, chunk, cap, json_task, events, cancel)
                    for side in group]
            with entry.lock:
                answers = dict(zip(group, decoding.at_once(jobs, threads) if threads else [j() for j in jobs]))
            base.update({start + i: a for i, a in enumerate(answers.get("base", []))})
        _keep_base(kept_as, kept, base, len(prompts), cancel)
    except BaseException as exc:  # noqa: BLE001 - re-raised by the reader
        events.put(("error", exc))
    finally:
        events.put(("end",))


def together(model) -> bool:
    """Whether the two sides can decode at once: two models (a `RunModels` pair), not one PEFT
    model whose adapter is switched off for the base side."""
    from training.evaluation.inference import RunModels
    return isinstance(model, RunModels)


def _answer(entry, side: str, start: int, chunk: list, cap: int, json_task: bool, events, cancel) -> list[str]:
    """One side's answers for a batch of prompts, each reported as it ends."""
    from training.evaluation.inference import generate_batch, side as model_side
    with model_side(entry.model, side == "tuned") as model:
        return generate_batch(model, entry.tokenizer, chunk, cap, json_stop=json_task, cancel=cancel,
                              on_step=lambda step: events.put(("step", step)),
                              on_done=lambda i, text: events.put(("answer", side, start + i, text)))


def _keep_base(kept_as, kept, base: dict[int, str], n: int, cancel: threading.Event) -> None:
    """Keep a complete, uncancelled set of base answers for the next run; mark kept ones used."""
    if not kept_as:
        return
    if kept is not None:
        base_answers.touch(kept_as)
    elif len(base) == n and not cancel.is_set():
        base_answers.save(kept_as, [base[i] for i in range(n)])


def _progress(events: queue.Queue, items: list[dict], n_test: int, cap: int, t0: float) -> Iterator[dict]:
    """Turns the worker's events into progress dicts: one per finished answer, and a tick
    at most every TICK_S between them. The estimate is an upper bound: every pass left
    is assumed to run to the token cap, at the seconds per step measured so far."""
    answered = 0
    partial = _partial(items, n_test, 0.0)
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
            items[i][side] = text
            answered += 1
            partial = _partial(items, n_test, now - t0)
        last_push = now
        s_step = (now - t0) / max(1, steps_before + step)
        eta = (max(0, cap - step) + (passes - pass_k - 1) * cap) * s_step
        yield {"kind": "progress", "done": partial["n"], "n": n_test, "cases": len(items) - n_test,
               "answers": answered, "total_answers": 2 * len(items),
               "elapsed": round(now - t0, 1), "eta": round(eta, 1), "metrics": partial}


def evaluate_run(run_id: str, *, n_samples: int | None = None, design: dict | None = None,
                 max_new_tokens: int | None = None, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate base and tuned answers for up to n_samples test rows; write and return metrics.json."""
    for event in evaluate_stream(run_id, n_samples=n_samples, design=design, max_new_tokens=max_new_tokens):
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


def shown_metrics(metrics: dict) -> list[str]:
    """The metric keys to show, in table order: the design's choice, else all that apply
    (field accuracy then stands in for field F1, as Lab 4 shows it)."""
    chosen = ((metrics.get("design") or {}).get("metrics")) or None
    keys = [k for k in METRIC_LABELS if k in metrics["base"] and k in metrics["tuned"]]
    if chosen:
        return [k for k in keys if k in chosen]
    return [k for k in keys if not (k == "field_f1" and "field_accuracy" in metrics["base"])]


def _pct_ci(value: float, ci: list | None) -> str:
    return f"{value:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")


def metrics_rows(metrics: dict | None) -> list[list]:
    """Rows [metric, base, tuned, change] for a gr.Dataframe; once the evaluation is done each
    value carries its 95% interval in brackets (paired bootstrap over the examples)."""
    if not metrics:
        return []
    rows = []
    for key in shown_metrics(metrics):
        b, t = float(metrics["base"][key]), float(metrics["tuned"][key])
        ci = (metrics.get("intervals") or {}).get(key) or {}
        change = f"{(t - b) * 100:+.0f} pts"
        if ci.get("change"):
            lo, hi = ci["change"]
            change += f" [{lo * 100:+.0f}, {hi * 100:+.0f}]"
        rows.append([METRIC_LABELS[key], _pct_ci(b, ci.get("base")), _pct_ci(t, ci.get("tuned")), change])
    return rows


def interval_note(metrics: dict | None) -> str:
    """How to read the brackets, with n: a learner should see when an interval is wide because n is small."""
    if not metrics or not metrics.get("intervals"):
        return ""
    boot = metrics.get("bootstrap") or {}
    n = metrics.get("n", 0)
    wide = " With this few examples the intervals are wide: raise the count to narrow them." if n < 20 else ""
    return (f"In brackets: 95% bootstrap intervals over the n = {n} test examples ({boot.get('resamples', 0):,} "
            "paired resamples: both models are scored on the same resampled examples, so the change has its "
            f"own interval; a change whose interval excludes 0 is unlikely to be luck).{wide}")


def field_groups(per_field: dict | None) -> dict[str, float]:
    """Per-field accuracy with list positions merged ("plan[0]", "plan[1]" -> "plan[]"),
    weighted by how often each field occurs: one bar per field of the schema."""
    hits: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, v in (per_field or {}).items():
        group = re.sub(r"\[\d+\]", "[]", key)
        hits[group] = hits.get(group, 0.0) + v["accuracy"] * v["count"]
        counts[group] = counts.get(group, 0) + v["count"]
    return {g: round(hits[g] / counts[g], 4) for g in counts}


def per_field_table(metrics: dict | None) -> list[tuple[str, float, float]]:
    """(field, base accuracy, tuned accuracy) for a JSON task, in the reference's field order."""
    if not metrics:
        return []
    base = field_groups((metrics.get("base") or {}).get("per_field"))
    tuned = field_groups((metrics.get("tuned") or {}).get("per_field"))
    names = list(dict.fromkeys([*_schema_order(metrics), *sorted({*base, *tuned})]))
    return [(f, base.get(f, 0.0), tuned.get(f, 0.0)) for f in names if f in base or f in tuned]


def _schema_order(metrics: dict) -> list[str]:
    """The fields in the order the expected answers list them."""
    from core.scoring import flatten, parse_json
    order: list[str] = []
    for s in metrics.get("samples") or []:
        ok, obj = parse_json(s.get("reference", ""))
        if ok and isinstance(obj, dict):
            order += [re.sub(r"\[\d+\]", "[]", k) for k in flatten(obj)]
    return list(dict.fromkeys(order))


def samples_rows(metrics: dict | None, limit: int = 160) -> list[list]:
    def cut(s: str) -> str:
        return s if len(s) <= limit else s[:limit] + "…"
    return [[cut(s["prompt"]), cut(s["reference"]), cut(s["base"]), cut(s["tuned"])]
            for s in (metrics or {}).get("samples", [])]
