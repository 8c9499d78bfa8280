"""The course's shape, read from the quiz banks: which quizzes exist, how many
questions each has, and the one pass mark.

``core`` imports no feature package: the quiz ids and question counts come
from the data files in ``quizzes/data/`` (one JSON file per quiz, its ``id``
and its ``questions``), so adding or removing a question needs no code change
here, and ``core.progress`` never disagrees with the quiz the learner took.
"""
from __future__ import annotations

import json
import re
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

QUIZ_DATA_DIR = Path(__file__).resolve().parent.parent / "quizzes" / "data"
MODULE_TEST_ID = "module_test"

# The one pass mark of the course (the module test and any quiz that reports
# pass/fail). 12/15 passes, 11/15 fails. Every page reads it from here.
PASS_MARK = 0.8


def _natural(quiz_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", quiz_id))


@lru_cache(maxsize=1)
def question_counts() -> dict[str, int]:
    """``{quiz id: number of questions}``: lesson quizzes in lesson order, then the module test."""
    counts = {}
    for path in QUIZ_DATA_DIR.glob("*.json"):
        bank = json.loads(path.read_text(encoding="utf-8"))
        counts[bank["id"]] = len(bank["questions"])
    return {k: counts[k] for k in sorted(counts, key=lambda k: (k == MODULE_TEST_ID, _natural(k)))}


def lesson_quiz_ids() -> tuple[str, ...]:
    """One quiz per lesson, same ids as the lessons (``lesson1`` …)."""
    return tuple(k for k in question_counts() if k != MODULE_TEST_ID)


def passes(score: int, total: int) -> bool:
    """score/total >= PASS_MARK, in exact arithmetic (no float edge cases)."""
    if total <= 0:
        return False
    return Fraction(score, total) >= Fraction(str(PASS_MARK))
