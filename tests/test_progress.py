"""Progress kept in the browser: repair of bad values and state transitions."""
import json

import pytest

from core import progress as prog


def test_empty_values_give_fresh_progress_silently():
    for v in (None, "", {}):
        p, notice = prog.repair(v)
        assert p == prog.empty() and notice == ""


@pytest.mark.parametrize("bad", ["{not json", 42, ["lesson1"], {"schema": 99}, {"foo": "bar"}])
def test_corrupt_or_unknown_values_reset_with_a_notice(bad):
    p, notice = prog.repair(bad)
    assert p == prog.empty()
    assert "reset" in notice


def test_json_string_is_accepted():
    stored = json.dumps({"schema": 2, "lessons_read": ["lesson2"], "best": {"lesson2": 4}, "test": {"best": 12}})
    p, notice = prog.repair(stored)
    assert p["lessons_read"] == ["lesson2"] and p["best"] == {"lesson2": 4} and notice == ""
    assert p["test"] == {"best": 12, "passed": True}


def test_older_schema_is_migrated():
    p, notice = prog.repair({"version": 1, "read": ["lesson1", "lesson3"], "quiz_scores": {"lesson1": 2}, "test_score": 13})
    assert p["lessons_read"] == ["lesson1", "lesson3"]
    assert p["best"] == {"lesson1": 2}
    assert p["test"] == {"best": 13, "passed": True}
    assert "older format" in notice


def test_tampered_values_are_repaired_and_named():
    tampered = {
        "schema": 2,
        "lessons_read": ["lesson1", "lesson9", "lesson1", {"x": 1}],
        "best": {"lesson1": 99, "lesson2": 3, "lesson4": True, "hacked": 4, "lesson3": -1},
        "test": {"best": 16, "passed": True},
    }
    p, notice = prog.repair(tampered)
    assert p["lessons_read"] == ["lesson1"]
    assert p["best"] == {"lesson2": 3}
    assert p["test"] == {"best": None, "passed": False}
    assert "repaired" in notice and "lesson9" in notice and "module test" in notice


def test_stored_passed_flag_is_never_trusted():
    p, _ = prog.repair({"schema": 2, "test": {"best": 5, "passed": True}})
    assert p["test"]["passed"] is False


def test_transitions():
    p = prog.mark_read(None, "lesson2")
    p = prog.mark_read(p, "lesson2")
    p = prog.mark_read(p, "nope")
    assert p["lessons_read"] == ["lesson2"]
    p = prog.record_quiz(p, "lesson1", 2)
    p = prog.record_quiz(p, "lesson1", 4)
    p = prog.record_quiz(p, "lesson1", 1)
    assert p["best"]["lesson1"] == 4
    p = prog.record_quiz(p, "module_test", 11)
    assert p["test"] == {"best": 11, "passed": False}
    p = prog.record_quiz(p, "module_test", 12)
    p = prog.record_quiz(p, "module_test", 3)
    assert p["test"] == {"best": 12, "passed": True}
    s = prog.summary_markdown(p)
    assert "L2** ✓ read" in s and "quiz 4/4" in s and "12/15" in s and "passed" in s
