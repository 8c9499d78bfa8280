"""Does the default CPU run teach the model anything? Base vs tuned, measured.

For each built-in SFT set this trains the run a learner gets by pressing Start on a CPU
(`training.run.config.defaults("cpu")`, through the app's own engine, slice by slice), then
evaluates base vs tuned with the app's own evaluation (`training.evaluation.evaluate.evaluate_stream`:
greedy, token cap from the references, JSON stop) on every row of a split, scored by the
one scorer Lab 4 uses. It prints one table: steps, the plan's estimate, wall time of
training and of evaluation, load average, and base → tuned for each metric.

    python -m bench.gain                              # both SFT sets, full test split
    python -m bench.gain --split validation           # choose settings here, not on test
    python -m bench.gain --set '{"max_steps": 24}'    # try a change to the defaults
    python -m bench.gain --datasets pharmacy_meds --n 8 --out /tmp/gain.json
    python -m bench.gain --smoke                      # seconds: 1 step, 1 row, 8 new tokens

`--split validation` measures on the validation rows the run does *not* use for its eval
loss (the engine evaluates on the first `engine.eval_rows_limit("cpu")` of them), so
defaults can be chosen without looking at the test split.

The machine is shared: run it pinned, e.g. `OMP_NUM_THREADS=1 taskset -c 1 python -m
bench.gain`, and read the times with the load average printed next to them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

METRICS = (("json_valid", "valid JSON"), ("field_accuracy", "field accuracy"), ("exact_match", "exact match"))
SFT_BUILTINS = ("clinical_soap", "pharmacy_meds")


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return "?"


def default_config(dataset: str, overrides: dict | None = None):
    """The run config a learner starts from on a CPU for this built-in set (plus overrides)."""
    from training.run import config
    values = {**config.defaults("cpu", "sft"), **(overrides or {})}
    cfg, errors = config.validate(values, "sft", base_model=config.DEFAULT_BASE_MODEL,
                                  dataset=config.DataRef.from_source(dataset, f"builtin:{dataset}"))
    if errors:
        raise SystemExit("; ".join(errors))
    return cfg


def _splits(dataset: str, split: str, n: int | None, val_rows: int | None = None) -> dict:
    """The run's data; the rows evaluated become its "test" rows (validation: those past the eval-loss rows).
    `val_rows` cuts the validation rows the run's eval loss uses (the smoke test: 1)."""
    from training.data.loading import load_builtin
    from training.run.engine import eval_rows_limit
    s = load_builtin(dataset)
    rows = s.test if split == "test" else s.validation[eval_rows_limit("cpu"):]
    return {"train": s.train, "validation": s.validation[:val_rows], "test": rows[:n] if n else rows}


def train(cfg, data: dict) -> tuple[str, dict]:
    """Start and finish a run the way the Training tab does (one slice after another)."""
    from training.run import engine
    from training.run import runs
    from training.run.runs import RunStatus
    rid = engine.start_run(cfg, data)
    info = runs.read_run(rid)
    while True:
        info = engine.run_slice(rid)
        if info["status"] != RunStatus.PAUSED:
            break
    if info["status"] != RunStatus.FINISHED:
        raise RuntimeError(f"run {rid} ended {info['status']}: {info.get('message')}")
    return rid, info


def evaluate(rid: str, n: int, max_new_tokens: int | None = None) -> dict:
    """Base vs tuned on the run's test rows, with a cold model load (as after training)."""
    from training.evaluation import evaluate as ev
    from training.evaluation.inference import load_for_run
    from training.evaluation.model_cache import ModelCache
    cache = ModelCache(lambda key: load_for_run(key[0]), max_models=1, janitor=False)
    for event in ev.evaluate_stream(rid, n_samples=n, max_new_tokens=max_new_tokens, cache=cache,
                                    reuse_base=False):
        if event["kind"] == "done":
            return event["metrics"]
    raise RuntimeError("the evaluation ended without a result")


def evaluate_tuned_only(rid: str, n: int, max_new_tokens: int | None = None) -> dict:
    """For exploring settings: the tuned side only (the base never changes), with the same
    cap, JSON stop, batch and scorer as `evaluate_stream`. Base metrics come back empty."""
    from training.data import checks
    from training.run import runs
    from training.evaluation import evaluate as ev
    from training.evaluation.inference import generate_batch, load_for_run
    rows = runs.read_datasets(rid)["test"][:n]
    pairs = [checks.completion_pairs(r) for r in rows]
    model, tok = load_for_run(rid)
    refs = [ref for _, ref in pairs]
    cap = int(max_new_tokens or ev.new_token_cap(tok, refs))
    json_task = all(ev.is_json_object(r) for r in refs)
    answers: list[str] = []
    batch = ev.rows_per_call(tok, [p for p, _ in pairs], cap)
    for start in range(0, len(pairs), batch):
        chunk = [p for p, _ in pairs[start:start + batch]]
        answers += generate_batch(model, tok, chunk, cap, json_stop=json_task)
    samples = [{"prompt": p[-1]["content"], "reference": r, "base": "", "tuned": a}
               for (p, r), a in zip(pairs, answers)]
    return {"n": len(answers), "max_new_tokens": cap, "base": {}, "tuned": ev.scores(answers, refs),
            "samples": samples}


def measure(dataset: str, *, split: str = "test", n: int | None = None, overrides: dict | None = None,
            max_new_tokens: int | None = None, tuned_only: bool = False, val_rows: int | None = None) -> dict:
    """One default run on one built-in set: times, load and base/tuned metrics."""
    from training.run import runs
    cfg = default_config(dataset, overrides)
    data = _splits(dataset, split, n, val_rows)
    load0, t0 = _load(), time.monotonic()
    rid, info = train(cfg, data)
    t1 = time.monotonic()
    metrics = (evaluate_tuned_only if tuned_only else evaluate)(rid, len(data["test"]), max_new_tokens)
    t2 = time.monotonic()
    losses = [e["loss"] for e in runs.read_log(rid) if isinstance(e.get("loss"), (int, float))]
    return {"dataset": dataset, "split": split, "n": metrics["n"], "run_id": rid, "steps": info["step"],
            "config": {k: v for k, v in cfg.hyperparameters().items()}, "est_s": info["plan"]["est_seconds"],
            "train_s": round(t1 - t0, 1), "eval_s": round(t2 - t1, 1), "load": f"{load0} → {_load()}",
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "best_eval_loss": info.get("best_eval_loss"), "best_step": info.get("best_step"),
            "max_new_tokens": metrics["max_new_tokens"],
            "base": {k: metrics["base"].get(k) for k, _ in METRICS},
            "tuned": {k: metrics["tuned"].get(k) for k, _ in METRICS}, "samples": metrics["samples"]}


def _pct(x) -> str:
    return "—" if x is None else f"{x:.0%}"


def table(results: list[dict]) -> str:
    head = ["set", "split, n", "steps", "train (plan est.)", "evaluate", "load avg (1/5/15 min)"]
    head += [f"{label} base → tuned" for _, label in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [f"`{r['dataset']}`", f"{r['split']}, {r['n']}", str(r["steps"]),
                 f"{r['train_s']:.0f} s ({r['est_s']} s)", f"{r['eval_s']:.0f} s", r["load"]]
        cells += [f"{_pct(r['base'][k])} → {_pct(r['tuned'][k])}" for k, _ in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(SFT_BUILTINS))
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--n", type=int, default=None, help="rows to evaluate (default: the whole split)")
    p.add_argument("--set", default="{}", help="JSON overrides of the CPU defaults, to try a change")
    p.add_argument("--out", default=None, help="write every result (with the answers) to this JSON file")
    p.add_argument("--tuned-only", action="store_true", help="exploring: skip the base side (it never changes)")
    p.add_argument("--smoke", action="store_true", help="1 step, 1 row, 8 new tokens: checks the script runs")
    a = p.parse_args(argv)
    overrides = json.loads(a.set)
    n, cap, val_rows = a.n, None, None
    if a.smoke:
        overrides = {**overrides, "max_steps": 1, "gradient_accumulation_steps": 1, "max_length": 128}
        n, cap, val_rows = 1, 8, 1
    results = []
    for name in [d.strip() for d in a.datasets.split(",") if d.strip()]:
        r = measure(name, split=a.split, n=n, overrides=overrides, max_new_tokens=cap,
                    tuned_only=a.tuned_only, val_rows=val_rows)
        results.append(r)
        print(f"{name}: loss {r['first_loss']} → {r['last_loss']}, best eval {r['best_eval_loss']} "
              f"@ {r['best_step']}, cap {r['max_new_tokens']}", file=sys.stderr, flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, ensure_ascii=False)
    print(f"overrides: {json.dumps(overrides)}; threads: {os.environ.get('OMP_NUM_THREADS', 'all')}, "
          f"cpus: {sorted(os.sched_getaffinity(0))}")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
