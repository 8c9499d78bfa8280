"""The learner's progress: a small JSON-able dict kept in the browser.

It holds no personal data: which lessons were read, the best score of each
quiz, and the module test's best score. Everything arriving from the browser
is untrusted (corrupt, from an older schema, or edited by hand), so every
handler first passes it through `repair`, which never raises.
"""
from __future__ import annotations

import json
from typing import Any

from core.course import MODULE_TEST_ID, lesson_quiz_ids, passes, question_counts

SCHEMA = 2
# From the quiz banks (core/course.py), never typed in twice.
LESSON_IDS = lesson_quiz_ids()  # one quiz per lesson, same ids
QUESTION_COUNTS = question_counts()

# BrowserState must keep the same key and secret across restarts, or a Space
# restart silently drops every learner's progress (see platform-notes).
STORAGE_KEY = "fine-tuning-lab-progress"
DEFAULT_SECRET = "fine-tuning-lab-progress-v2"


def empty() -> dict:
    return {"schema": SCHEMA, "lessons_read": [], "best": {}, "test": {"best": None, "passed": False}}


def _score(value: Any, maximum: int) -> int | None:
    """A stored score if it is a whole number in range, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= maximum else None


def _migrate_v1(old: dict) -> dict:
    """Schema 1 stored {"version": 1, "read": [...], "quiz_scores": {...}, "test_score": n}."""
    return {
        "schema": SCHEMA,
        "lessons_read": old.get("read", []),
        "best": old.get("quiz_scores", {}),
        "test": {"best": old.get("test_score")},
    }


def repair(value: Any) -> tuple[dict, str]:
    """Return (valid progress, notice). The notice is "" when nothing was wrong."""
    if value is None or value == "" or value == {}:
        return empty(), ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: a hostile, deeply nested string
            return empty(), "Saved progress could not be read and was reset."
    if not isinstance(value, dict):
        return empty(), "Saved progress could not be read and was reset."

    problems: list[str] = []
    if value.get("schema") != SCHEMA:
        if value.get("version") == 1:
            value = _migrate_v1(value)
            problems.append("updated from an older format")
        else:
            return empty(), "Saved progress was from an unknown version and was reset."

    fixed = empty()
    read = value.get("lessons_read")
    if isinstance(read, list):
        for lesson in read:
            if lesson in LESSON_IDS and lesson not in fixed["lessons_read"]:
                fixed["lessons_read"].append(lesson)
            else:
                problems.append(f"dropped unknown lesson {str(lesson)[:40]!r}")
    elif read is not None:
        problems.append("lessons read were unreadable")
    fixed["lessons_read"].sort()

    best = value.get("best")
    if isinstance(best, dict):
        for quiz_id, score in best.items():
            if quiz_id not in LESSON_IDS:
                problems.append(f"dropped unknown quiz {str(quiz_id)[:40]!r}")
            elif _score(score, QUESTION_COUNTS[quiz_id]) is None:
                problems.append(f"dropped an impossible score for {quiz_id}")
            else:
                fixed["best"][quiz_id] = score
    elif best is not None:
        problems.append("quiz scores were unreadable")

    test = value.get("test")
    if isinstance(test, dict) and test.get("best") is not None:
        score = _score(test.get("best"), QUESTION_COUNTS[MODULE_TEST_ID])
        if score is None:
            problems.append("dropped an impossible module test score")
        else:
            fixed["test"]["best"] = score
    # "passed" is always recomputed: a stored flag is never trusted.
    best_test = fixed["test"]["best"]
    fixed["test"]["passed"] = best_test is not None and passes(best_test, QUESTION_COUNTS[MODULE_TEST_ID])

    notice = ""
    if problems:
        notice = "Saved progress was repaired: " + "; ".join(dict.fromkeys(problems)) + "."
    return fixed, notice


def mark_read(progress: Any, lesson_id: str) -> dict:
    p, _ = repair(progress)
    if lesson_id in LESSON_IDS and lesson_id not in p["lessons_read"]:
        p["lessons_read"] = sorted(p["lessons_read"] + [lesson_id])
    return p


def record_quiz(progress: Any, quiz_id: str, score: int) -> dict:
    """Keep the best score of a lesson quiz or of the module test."""
    p, _ = repair(progress)
    if quiz_id == MODULE_TEST_ID:
        old = p["test"]["best"]
        p["test"]["best"] = score if old is None else max(old, score)
        p["test"]["passed"] = passes(p["test"]["best"], QUESTION_COUNTS[MODULE_TEST_ID])
    elif quiz_id in LESSON_IDS:
        p["best"][quiz_id] = max(p["best"].get(quiz_id, 0), score)
    return p


# The course's steps: read each lesson, take its quiz, pass the module test.
STEP_COUNT = 2 * len(LESSON_IDS) + 1


def steps_done(progress: dict) -> int:
    """How many of STEP_COUNT steps a (repaired) progress has done."""
    return len(progress["lessons_read"]) + len(progress["best"]) + int(progress["test"]["passed"])


def _detail_lines(p: dict) -> list[str]:
    """One line per lesson and one for the module test: the details on demand."""
    lines = []
    for n, lesson in enumerate(LESSON_IDS, start=1):
        read = "✓ read" if lesson in p["lessons_read"] else "not read"
        best = p["best"].get(lesson)
        quiz = f"quiz {best}/{QUESTION_COUNTS[lesson]}" if best is not None else "quiz not taken"
        lines.append(f"**L{n}** {read} · {quiz}")
    t = p["test"]
    if t["best"] is None:
        lines.append("**Module test** not taken")
    else:
        verdict = "passed ✅" if t["passed"] else "not passed yet"
        lines.append(f"**Module test** best {t['best']}/{QUESTION_COUNTS[MODULE_TEST_ID]} — {verdict}")
    return lines


def _test_word(p: dict) -> str:
    t = p["test"]
    if t["best"] is None:
        return "not taken"
    return "passed" if t["passed"] else f"best {t['best']}/{QUESTION_COUNTS[MODULE_TEST_ID]}"


def summary_markdown(progress: Any) -> str:
    """A one-line summary (a bar and n/9 steps) with the per-lesson details behind a toggle.

    It is Markdown with a <details> element, so a phone shows one short line and
    the learner taps for the rest; the `.progress-breakdown` counts are hidden
    on narrow screens by app.py's CSS (wide screens have room for them).
    """
    p, _ = repair(progress)
    done = steps_done(p)
    breakdown = (f"lessons read {len(p['lessons_read'])}/{len(LESSON_IDS)} · "
                 f"quizzes taken {len(p['best'])}/{len(LESSON_IDS)} · module test {_test_word(p)}")
    head = (f'<summary>Your progress <progress value="{done}" max="{STEP_COUNT}" aria-label="{done} of {STEP_COUNT} steps done"></progress> '
            f"<b>{done}/{STEP_COUNT}</b> steps"
            f'<span class="progress-breakdown"> · {breakdown}</span></summary>')
    items = "\n".join(f"- {line}" for line in _detail_lines(p))
    steps = ("The steps: read each lesson (“I've read this lesson”), take its quiz, "
             "and pass the module test.")
    return f"<details>{head}\n\n{items}\n\n{steps}\n\n</details>"
