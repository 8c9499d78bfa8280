"""The curve doctor reads noise against the batch size (issue 24).

The app's own default run (64 steps of batch 1, docs/benchmarks.md) swings widely from
step to step and is healthy; runs that really diverge, overfit or barely learn keep their
diagnoses at batch 1 too. The default run's log is a real one:
tests/fixtures/default_run_log.json says where it came from.
"""
import json
import math
import random
from pathlib import Path

from labs.tools import curves
from training.run import runs
from training.workflow import handoffs

FIXTURE = Path(__file__).parent / "fixtures" / "default_run_log.json"


def _default_run() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _batch1(trend, steps=64, evals=None, seed=0, sd=0.45) -> list[dict]:
    """A batch-1 log: each step's loss is one example's, the trend times log-normal noise."""
    rnd = random.Random(seed)
    log = [{"step": s, "loss": trend(s) * math.exp(rnd.gauss(0, sd) - sd * sd / 2),
            "grad_norm": 1.0 + rnd.uniform(-0.3, 0.3)} for s in range(1, steps + 1)]
    for s, v in (evals or {}).items():
        log.append({"step": s, "eval_loss": v})
    return log


def test_the_apps_default_run_is_healthy():
    fx = _default_run()
    assert fx["config"]["per_device_train_batch_size"] == 1 and fx["config"]["max_steps"] == 64
    assert sum("loss" in e for e in fx["log"]) == 64 and any("grad_norm" in e for e in fx["log"])
    r = curves.diagnose_training_curve(fx["log"], effective_batch=1)
    assert r["diagnosis"] == "healthy", curves.curve_markdown(r)
    assert any("sampling noise" in n for n in r["notes"])
    # Pasted into Lab 3 without the batch size: the falling eval loss still arbitrates.
    assert curves.diagnose_training_curve(fx["log"])["diagnosis"] == "healthy"


def test_diagnose_run_passes_the_runs_batch(ftlab_data_dir):
    fx = _default_run()
    rid = runs.create_run(fx["config"])
    runs.append_log(rid, fx["log"])
    md = handoffs.diagnose_run(rid)
    assert "✅ Diagnosis: Healthy" in md and "Oscillation" not in md
    assert "effective batch | 1" in md and "gradient norm" in md


def test_batch1_runs_that_go_wrong_keep_their_diagnosis():
    for seed in range(5):
        diverging = _batch1(lambda s: 2.0 - s / 40 if s < 32 else 1.2 + (s - 32) * 0.15, seed=seed)
        assert curves.diagnose_training_curve(diverging, effective_batch=1)["diagnosis"] == "divergence", seed
        overfit = _batch1(lambda s: 2.0 * math.exp(-s / 15) + 0.1, seed=seed,
                          evals={16: 1.0, 32: 0.7, 48: 0.9, 64: 1.2})
        r = curves.diagnose_training_curve(overfit, effective_batch=1)
        assert (r["diagnosis"], r["best_eval_step"]) == ("overfitting", 32), seed
        too_low_lr = _batch1(lambda s: 2.3, seed=seed, evals={32: 2.3, 64: 2.29})
        assert curves.diagnose_training_curve(too_low_lr, effective_batch=1)["diagnosis"] == "plateau", seed


def test_swings_beyond_what_the_batch_implies_are_still_oscillation():
    # Batch 32 averages 32 examples: 1.0 <-> 1.6 every step is not sampling noise.
    swing = [{"step": s, "loss": 1.0 if s % 2 else 1.6} for s in range(1, 41)]
    assert curves.diagnose_training_curve(swing, effective_batch=32)["diagnosis"] == "oscillation"
    assert curves.diagnose_training_curve(swing)["diagnosis"] == "oscillation"


def test_gradient_norm_spikes_are_reported():
    log = _batch1(lambda s: 2.0 * math.exp(-s / 20) + 0.3, seed=1, evals={32: 0.9, 64: 0.6})
    log[40]["grad_norm"] = 9.0
    r = curves.diagnose_training_curve(log, effective_batch=1)
    assert r["grad_spike_steps"] == [41]
    md = curves.curve_markdown(r)
    assert "Gradient-norm spikes" in md and "41" in md
    assert curves.diagnose_training_curve(_batch1(lambda s: 1.0, seed=2))["grad_spike_steps"] == []
