"""The learner's own run, diagnosed by the Lab 3 curve tool with one click."""
from training import handoffs, runs


def test_diagnose_reads_the_runs_own_log(ftlab_data_dir):
    assert handoffs.diagnose_run(None).startswith("Start a run")
    rid = runs.create_run({"method": "sft"})
    runs.append_log(rid, [{"step": 1, "loss": 2.0, "elapsed": 1.0}])
    assert "Only 1 training loss value so far" in handoffs.diagnose_run(rid)
    # Train loss keeps falling while eval loss turns up after step 3: overfitting, best step 3.
    log = [{"step": s, "loss": 2.0 - 0.3 * s} for s in range(2, 7)]
    log += [{"step": s, "eval_loss": v} for s, v in ((2, 1.9), (3, 1.6), (4, 1.7), (5, 1.9), (6, 2.2))]
    runs.append_log(rid, log)
    md = handoffs.diagnose_run(rid)
    assert "Overfitting" in md and "step 3" in md
