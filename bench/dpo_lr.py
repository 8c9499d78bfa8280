"""Which learning rate should the default LoRA DPO run use? Measured on the built-in preference set.

For each candidate rate this trains the DPO run a learner gets by pressing Start on a CPU
(`training.run.config.defaults("cpu", "dpo")`, the built-in `preference` set, through the
app's own engine) with only the learning rate changed, then reads TRL's logged DPO metrics
from the run's log.jsonl: `rewards/accuracies` and `rewards/margins` (train, mean of the
last steps, and on the held-out validation pairs at the last evaluation) and `logps/chosen`
(first step vs the last steps: the chosen answer's own log-probability should not collapse
while the margin grows).

    python -m bench.dpo_lr                                 # 5e-6, 5e-5, 2e-4, the CPU default run
    python -m bench.dpo_lr --rates 5e-5,2e-4 --steps 32    # fewer steps (say so next to the table)
    python -m bench.dpo_lr --smoke                         # seconds: 1 step, checks the script runs

The machine is shared: run it pinned (`OMP_NUM_THREADS=1 taskset -c 1 ...`) and read the
times with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

RATES = (5e-6, 5e-5, 2e-4)
WINDOW = 8  # last logged steps averaged for the train-side metrics


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def _config(rate: float, overrides: dict):
    from training.run import config
    values = {**config.defaults("cpu", "dpo"), **overrides, "learning_rate": rate}
    cfg, errors = config.validate(values, "dpo", base_model=config.DEFAULT_BASE_MODEL,
                                  dataset=config.DataRef.from_source("preference", "builtin:preference"))
    if errors:
        raise SystemExit("; ".join(errors))
    return cfg


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def measure(rate: float, overrides: dict, val_rows: int | None = None) -> dict:
    from bench.gain import train
    from training.data.loading import load_builtin
    from training.run import runs
    s = load_builtin("preference")
    data = {"train": s.train, "validation": s.validation[:val_rows], "test": []}
    cfg = _config(rate, overrides)
    t0, load0 = time.monotonic(), _load()
    rid, info = train(cfg, data)
    log = runs.read_log(rid)
    steps = [e for e in log if "loss" in e]
    evals = [e for e in log if "eval_loss" in e]
    tail = steps[-WINDOW:]
    last_eval = evals[-1] if evals else {}

    def tail_mean(key):
        return _mean([e[key] for e in tail if key in e])
    return {"rate": rate, "steps": info["step"], "train_s": round(time.monotonic() - t0, 1),
            "load": f"{load0} → {_load()}", "config": cfg.hyperparameters(),
            "loss": tail_mean("loss"), "acc": tail_mean("rewards_accuracies"),
            "margin": tail_mean("rewards_margins"),
            "logps_chosen_first": steps[0].get("logps_chosen") if steps else None,
            "logps_chosen_last": tail_mean("logps_chosen"),
            "logps_rejected_first": steps[0].get("logps_rejected") if steps else None,
            "logps_rejected_last": tail_mean("logps_rejected"),
            "eval_loss": last_eval.get("eval_loss"), "eval_acc": last_eval.get("eval_rewards_accuracies"),
            "eval_margin": last_eval.get("eval_rewards_margins"),
            "eval_reward_chosen": last_eval.get("eval_rewards_chosen"),
            "eval_logps_chosen": last_eval.get("eval_logps_chosen"), "eval_step": last_eval.get("step")}


def _f(x, fmt=".3f") -> str:
    return "—" if x is None else format(x, fmt)


def table(results: list[dict]) -> str:
    head = ["learning rate", "steps", "train s (load)", f"train loss (last {WINDOW})",
            f"reward acc. (last {WINDOW})", f"margin (last {WINDOW})", "logps/chosen first → last",
            "logps/rejected first → last", "held-out: eval loss, acc., margin, rewards/chosen, logps/chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        lines.append("| " + " | ".join([
            f"{r['rate']:g}", str(r["steps"]), f"{r['train_s']:.0f} ({r['load']})", _f(r["loss"]),
            _f(r["acc"], ".2f"), _f(r["margin"]),
            f"{_f(r['logps_chosen_first'], '.1f')} → {_f(r['logps_chosen_last'], '.1f')}",
            f"{_f(r['logps_rejected_first'], '.1f')} → {_f(r['logps_rejected_last'], '.1f')}",
            f"{_f(r['eval_loss'])}, {_f(r['eval_acc'], '.2f')}, {_f(r['eval_margin'])}, "
            f"{_f(r.get('eval_reward_chosen'))}, {_f(r['eval_logps_chosen'], '.1f')} (step {r['eval_step']})"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    p.add_argument("--steps", type=int, default=None, help="max_steps instead of the CPU default's")
    p.add_argument("--set", default="{}", help="JSON overrides of the CPU DPO defaults")
    p.add_argument("--out", default=None, help="write the results to this JSON file")
    p.add_argument("--smoke", action="store_true", help="1 step, 1 validation pair: checks the script runs")
    a = p.parse_args(argv)
    overrides = json.loads(a.set)
    val_rows = None
    if a.steps:
        overrides["max_steps"] = a.steps
        overrides.setdefault("eval_steps", a.steps)
    if a.smoke:
        overrides = {**overrides, "max_steps": 1, "eval_steps": 1, "max_length": 128}
        val_rows = 1
    results = []
    for rate in [float(x) for x in a.rates.split(",") if x.strip()]:
        r = measure(rate, overrides, val_rows)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "config"}), file=sys.stderr, flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    print(f"overrides: {json.dumps(overrides)}; threads: {os.environ.get('OMP_NUM_THREADS', 'all')}")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
