"""Quiz banks and grading: pure functions, no Gradio.

    >>> quiz = load_quiz("module_test")
    >>> result = grade(quiz, {q["id"]: correct_text(q) for q in quiz["questions"]})
    >>> result.passed, result.score, result.total
    (True, 15, 15)

Answers are keyed by question id and hold the *option text* the learner
picked, so grading never depends on the order the options were shown in.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.course import MODULE_TEST_ID, PASS_MARK, lesson_quiz_ids, passes  # noqa: F401  (re-exported)

DATA_DIR = Path(__file__).resolve().parent / "data"

# The pass mark, the quiz ids and passes() live in core/course.py (read from
# the banks in DATA_DIR), so progress and grading share them.
LESSON_QUIZ_IDS = lesson_quiz_ids()
QUIZ_IDS = LESSON_QUIZ_IDS + (MODULE_TEST_ID,)


@lru_cache(maxsize=None)
def _load(quiz_id: str) -> str:
    if quiz_id not in QUIZ_IDS:
        raise KeyError(f"unknown quiz {quiz_id!r}; known: {', '.join(QUIZ_IDS)}")
    return (DATA_DIR / f"{quiz_id}.json").read_text(encoding="utf-8")


def load_quiz(quiz_id: str) -> dict:
    """The quiz as a fresh dict (callers may not mutate the shared cache)."""
    return json.loads(_load(quiz_id))


def quiz_size(quiz_id: str) -> int:
    return len(load_quiz(quiz_id)["questions"])


def correct_text(question: dict) -> str:
    return next(o["text"] for o in question["options"] if o.get("correct"))


def shuffled_options(question: dict, seed: int) -> list[str]:
    """Option texts in a display order fixed by (attempt seed, question id)."""
    texts = [o["text"] for o in question["options"]]
    random.Random(f"{seed}:{question['id']}").shuffle(texts)
    return texts


def pass_threshold(total: int) -> int:
    """The smallest passing score out of `total` (12 for 15 questions)."""
    return next(s for s in range(total + 1) if passes(s, total))


@dataclass
class QuestionFeedback:
    number: int
    qid: str
    prompt: str
    chosen: str | None
    correct: str
    is_correct: bool
    explanation: str          # why the chosen option is right or wrong
    correct_explanation: str  # why the right answer is right
    lesson: str | None


@dataclass
class GradeResult:
    quiz_id: str
    score: int
    total: int
    items: list[QuestionFeedback] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)  # 1-based question numbers

    @property
    def complete(self) -> bool:
        return not self.unanswered

    @property
    def passed(self) -> bool:
        return self.complete and passes(self.score, self.total)

    @property
    def lessons_to_revisit(self) -> dict[str, list[int]]:
        """lesson id -> numbers of the missed questions that belong to it."""
        out: dict[str, list[int]] = {}
        for item in self.items:
            if not item.is_correct and item.lesson:
                out.setdefault(item.lesson, []).append(item.number)
        return out


def grade(quiz: dict, answers: dict[str, str | None]) -> GradeResult:
    """Grade a whole quiz. Unanswered questions are listed, not scored.

    An answer that is not one of the question's options (a tampered request)
    counts as unanswered rather than wrong, so the learner is asked again.
    """
    result = GradeResult(quiz_id=quiz["id"], score=0, total=len(quiz["questions"]))
    for number, q in enumerate(quiz["questions"], start=1):
        chosen = answers.get(q["id"])
        by_text = {o["text"]: o for o in q["options"]}
        if chosen not in by_text:
            result.unanswered.append(number)
            continue
        right = next(o for o in q["options"] if o.get("correct"))
        ok = bool(by_text[chosen].get("correct"))
        result.score += ok
        result.items.append(
            QuestionFeedback(
                number=number,
                qid=q["id"],
                prompt=q["prompt"],
                chosen=chosen,
                correct=right["text"],
                is_correct=ok,
                explanation=by_text[chosen]["explain"],
                correct_explanation=right["explain"],
                lesson=q.get("lesson", quiz["id"] if quiz["id"] in LESSON_QUIZ_IDS else None),
            )
        )
    return result
