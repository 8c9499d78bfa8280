"""Runs side by side: overlay, settings diff, metrics on the same test rows with a paired interval."""
import json
import re
import time

from training.evaluation import compare
from training.run import runs
from training.run.config import RunConfig, DataRef


def _cfg(lr: float, data: str = "clinical_soap", sha: str = "abc", method: str = "sft") -> dict:
    d = RunConfig(method=method, learning_rate=lr, dataset=DataRef(name=data, source="builtin")).to_dict()
    d["dataset"]["fingerprint"] = {"sha256": sha, "rows": 10, "bytes": 100}
    return d


def _run(cfg: dict, answers: list[str] | None = None, refs: list[str] | None = None) -> str:
    rid = runs.create_run(cfg, total_steps=3)
    runs.append_log(rid, [{"step": s, "loss": 2.0 - 0.3 * s, "grad_norm": 1.0} for s in (1, 2, 3)]
                    + [{"step": 3, "eval_loss": 1.5}])
    if answers is not None:
        refs = refs or [json.dumps({"a": i}) for i in range(len(answers))]
        samples = [{"prompt": f"p{i}", "reference": r, "base": "", "tuned": a}
                   for i, (a, r) in enumerate(zip(answers, refs))]
        (runs.run_dir(rid) / "metrics.json").write_text(json.dumps({
            "n": len(samples), "base": {"json_valid": 0.0, "exact_match": 0.0},
            "tuned": {"json_valid": 0.5, "exact_match": 0.5}, "samples": samples}))
    time.sleep(0.01)  # created_at orders the runs
    return rid


def test_two_runs_on_the_same_rows_compare_curves_settings_and_metrics(ftlab_data_dir):
    good = [json.dumps({"a": i}) for i in range(20)]
    a = _run(_cfg(1e-3), ["not json"] * 20)
    b = _run(_cfg(2e-4), good)
    v = compare.view([a, b], [b, a])
    assert v["ids"] == [a, b] and v["note"] == ""  # oldest first
    assert v["names"] == [f"{a[:6]} · lr 1e-03", f"{b[:6]} · lr 2e-04"]
    for i in (0, 1):
        assert re.search(rf'<g id="compare-train-{i}">', v["chart"]) and f'id="compare-eval-{i}"' in v["chart"]
    assert 'class="differs" data-key="learning_rate"' in v["settings"]
    assert 'class="same" data-key="lora_r"' in v["settings"]
    # Run b is valid JSON on every row, run a on none: +100 points, the interval excludes 0.
    assert "+100 pts [+100, +100]" in v["metrics"] and "sig-up" in v["metrics"]
    assert "same 20 test rows" in v["metrics"]


def test_what_cannot_be_compared_is_said_not_drawn(ftlab_data_dir):
    a = _run(_cfg(1e-3), ["x"] * 3)
    b = _run(_cfg(2e-4))  # not evaluated
    v = compare.view([a, b], [a, b])
    assert "has not been evaluated" in v["note"] and b[:6] in v["note"] and v["metrics"] == ""
    assert v["chart"]  # the curves still compare
    other = _run(_cfg(2e-4, data="pharmacy_meds", sha="def"), ["x"] * 3)
    v = compare.view([a, other], [a, other])
    assert "different data" in v["note"] and v["chart"] == "" and v["metrics"] == ""
    c = _run(_cfg(2e-4), ["x"] * 3, refs=["other"] * 3)
    assert "different test rows" in compare.view([a, c], [a, c])["note"]


def test_only_the_learners_own_runs_and_two_to_four(ftlab_data_dir):
    a, b = _run(_cfg(1e-3)), _run(_cfg(2e-4))
    stranger = _run(_cfg(5e-4))
    v = compare.view([a, b], [a, stranger])  # the stranger's id is not among the learner's runs
    assert v["ids"] == [] and "Pick 2 to 4" in v["note"]
    many = [_run(_cfg(1e-4 * k)) for k in range(1, 6)]
    assert "at most 4" in compare.view(many, many)["note"]


def test_settings_and_metrics_are_escaped():
    rows = [{"key": "dataset", "label": "Data", "values": ["<b>x</b>", "y"], "differs": True}]
    html = compare.settings_html(["<i>a</i>", "b"], rows)
    assert "<b>" not in html and "&lt;b&gt;" in html and "<i>" not in html
