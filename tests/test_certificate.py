"""The certificate: earned only by a passed test and an evaluated run; the name is printed, never kept."""
import json

from PIL import Image

from core import progress as prog
from training.workflow import certificate
from training.run import runs

PASSED = {"schema": prog.SCHEMA, "lessons_read": [], "best": {}, "test": {"best": 13, "passed": True}}
METRICS = {"n": 5, "base": {"json_valid": 0.0, "field_accuracy": 0.1}, "tuned": {"json_valid": 0.8, "field_accuracy": 0.55},
           "samples": [{"prompt": "p", "reference": "r", "base": "b", "tuned": "t"}] * 5}


def _evaluated_run() -> str:
    rid = runs.create_run({"method": "sft"}, model={"id": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    runs.update_run(rid, status="finished", step=16)
    (runs.run_dir(rid) / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    return rid


def test_not_earned_says_what_is_left(ftlab_data_dir):
    failed = dict(PASSED, test={"best": 9, "passed": False})
    path, msg = certificate.issue(failed, _evaluated_run(), "Ada")
    assert path is None and "Pass the module test first" in msg and "9/15" in msg
    path, msg = certificate.issue(PASSED, runs.create_run({"method": "sft"}), "Ada")
    assert path is None and "Evaluate a finished run" in msg
    path, msg = certificate.issue(PASSED, None, "")
    assert path is None and "Evaluate" in msg


def test_earned_certificate_is_an_image_and_keeps_no_name_on_the_server(ftlab_data_dir):
    rid = _evaluated_run()
    path, msg = certificate.issue(PASSED, rid, "  Ada\x00 Lovelace\n")
    assert path and "ready" in msg
    with Image.open(path) as img:
        assert img.size == (1200, 850)
    assert not (runs.run_dir(rid) / "certificate.png").exists()
    assert certificate.clean_name("  Ada\x00 Lovelace\n") == "Ada Lovelace"
    assert certificate.headline(METRICS) == "valid JSON 0% → 80%, field accuracy 10% → 55% on 5 held-out test examples"


def test_tampered_progress_cannot_claim_a_pass(ftlab_data_dir):
    forged = dict(PASSED, test={"best": 3, "passed": True})  # the flag is recomputed from the score
    assert certificate.issue(forged, _evaluated_run(), "")[0] is None
