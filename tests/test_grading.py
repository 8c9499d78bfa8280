"""Grading as pure functions: scores, feedback, the 80% boundary, shuffling."""
import pytest

from quizzes import grading
from quizzes.grading import PASS_MARK, grade, pass_threshold, passes, shuffled_options
from quizzes.ui import submit_quiz


def _quiz(qid="lesson1", n=4, lesson_of=None):
    qs = []
    for i in range(1, n + 1):
        qs.append({
            "id": f"q{i}",
            "lesson": (lesson_of or (lambda i: qid))(i),
            "prompt": f"Question {i}?",
            "options": [
                {"text": f"right {i}", "correct": True, "explain": f"why right {i}"},
                {"text": f"wrong a{i}", "correct": False, "explain": f"why a{i} is wrong"},
                {"text": f"wrong b{i}", "correct": False, "explain": f"why b{i} is wrong"},
                {"text": f"wrong c{i}", "correct": False, "explain": f"why c{i} is wrong"},
            ],
        })
    return {"id": qid, "title": "T", "questions": qs}


def test_pass_mark_boundary_is_twelve_of_fifteen():
    assert PASS_MARK == 0.8
    assert passes(12, 15) and not passes(11, 15)
    assert pass_threshold(15) == 12
    assert passes(4, 5) and not passes(3, 4)


def test_grade_scores_and_explains_each_answer():
    quiz = _quiz()
    answers = {"q1": "right 1", "q2": "wrong a2", "q3": "right 3", "q4": "wrong c4"}
    r = grade(quiz, answers)
    assert (r.score, r.total, r.unanswered) == (2, 4, [])
    wrong = [i for i in r.items if not i.is_correct]
    assert [w.number for w in wrong] == [2, 4]
    assert wrong[0].explanation == "why a2 is wrong"
    assert wrong[0].correct == "right 2" and wrong[0].correct_explanation == "why right 2"


def test_unanswered_and_tampered_answers_are_listed_not_scored():
    r = grade(_quiz(), {"q1": "right 1", "q3": "not an option"})
    assert r.unanswered == [2, 3, 4]
    assert not r.passed


def test_module_test_boundary_and_lessons_to_revisit():
    quiz = _quiz("module_test", 15, lesson_of=lambda i: f"lesson{(i - 1) % 4 + 1}")
    twelve = {f"q{i}": ("right %d" % i if i > 3 else "wrong a%d" % i) for i in range(1, 16)}
    r12 = grade(quiz, twelve)
    assert r12.score == 12 and r12.passed
    eleven = dict(twelve, q4="wrong b4")
    r11 = grade(quiz, eleven)
    assert r11.score == 11 and not r11.passed
    assert r11.lessons_to_revisit == {"lesson1": [1], "lesson2": [2], "lesson3": [3], "lesson4": [4]}


def test_shuffle_is_deterministic_per_seed_and_a_permutation():
    q = _quiz()["questions"][0]
    a = shuffled_options(q, 7)
    assert a == shuffled_options(q, 7)
    assert sorted(a) == sorted(o["text"] for o in q["options"])
    orders = {tuple(shuffled_options(q, s)) for s in range(20)}
    assert len(orders) > 1


def test_grading_does_not_depend_on_display_order():
    quiz = grading.load_quiz("lesson2")
    answers = {q["id"]: grading.correct_text(q) for q in quiz["questions"]}
    for seed in (0, 1, 99):
        for q in quiz["questions"]:
            assert answers[q["id"]] in shuffled_options(q, seed)
        assert grade(quiz, answers).score == len(quiz["questions"])


def _answers_for(quiz_id, wrong_numbers=()):
    quiz = grading.load_quiz(quiz_id)
    out = []
    for n, q in enumerate(quiz["questions"], start=1):
        if n in wrong_numbers:
            out.append(next(o["text"] for o in q["options"] if not o["correct"]))
        else:
            out.append(grading.correct_text(q))
    return out


def test_submit_names_unanswered_questions_and_records_nothing():
    answers = _answers_for("lesson1")
    answers[1] = None
    answers[3] = None
    msg, progress, summary = submit_quiz("lesson1", None, *answers)
    assert "Q2" in msg and "Q4" in msg and "kept" in msg
    assert progress["best"] == {}


def test_submit_keeps_the_best_score_across_retries():
    _, p, _ = submit_quiz("lesson3", None, *_answers_for("lesson3", wrong_numbers=(2,)))
    assert p["best"]["lesson3"] == 3
    msg, p, summary = submit_quiz("lesson3", p, *_answers_for("lesson3", wrong_numbers=(1, 2, 3)))
    assert "Score: 1/4" in msg
    assert p["best"]["lesson3"] == 3 and "quiz 3/4" in summary


def test_module_test_feedback_shows_verdict_and_lessons():
    quiz = grading.load_quiz("module_test")
    missed = (1, 2, 3, 4)  # 11/15
    msg, p, summary = submit_quiz("module_test", None, *_answers_for("module_test", missed))
    assert "11/15" in msg and "Not passed" in msg and "12/15 needed" in msg
    for n in missed:
        lesson = quiz["questions"][n - 1]["lesson"]
        assert lesson[-1] in msg  # its lesson is named
    assert "Lessons to revisit" in msg
    assert p["test"] == {"best": 11, "passed": False}
    msg, p, summary = submit_quiz("module_test", p, *_answers_for("module_test", (1, 2, 3)))
    assert "12/15" in msg and "Passed" in msg and p["test"]["passed"]
    assert "passed" in summary
