"""Quiz views: radio buttons, whole-quiz grading, per-option feedback.

The handlers below are plain functions (state in, state out) so they are
tested directly; `build_quiz` only lays out components and wires them.
"""
from __future__ import annotations

import secrets

import gradio as gr

from core import progress as prog
from quizzes.grading import (
    MODULE_TEST_ID,
    PASS_MARK,
    GradeResult,
    grade,
    load_quiz,
    pass_threshold,
    shuffled_options,
)

# One option per line for every question: gradio lays radio options side by side
# while they fit, so short options showed in two columns and long ones in one (issue 16).
QUIZ_CSS = """
.quiz-question .wrap { display: flex; flex-direction: column; align-items: stretch; gap: 6px; }
.quiz-question .wrap label { width: 100%; }
"""


def _lesson_titles() -> dict[str, str]:
    from lessons import load_lessons

    return {lesson.id: f"Lesson {lesson.number}: {lesson.title}" for lesson in load_lessons()}


def feedback_markdown(result: GradeResult) -> str:
    """Per-question feedback, the score, and for the module test the verdict."""
    lines: list[str] = []
    if result.quiz_id == MODULE_TEST_ID:
        need = pass_threshold(result.total)
        verdict = "**Passed** ✅" if result.passed else f"**Not passed yet** — {need}/{result.total} needed"
        lines.append(f"### Score: {result.score}/{result.total} · {verdict}")
        revisit = result.lessons_to_revisit
        if revisit:
            titles = _lesson_titles()
            lines.append("**Lessons to revisit:**")
            for lesson, numbers in sorted(revisit.items()):
                qs = ", ".join(f"Q{n}" for n in numbers)
                lines.append(f"- {titles.get(lesson, lesson)} — missed {qs}")
    else:
        lines.append(f"### Score: {result.score}/{result.total}")
    lines.append("")
    for item in result.items:
        if item.is_correct:
            lines.append(f"✅ **Q{item.number}. Correct** — {item.chosen}  \n{item.explanation}")
        else:
            lines.append(
                f"❌ **Q{item.number}. Not quite** — you chose: {item.chosen}  \n{item.explanation}  \n"
                f"**Correct answer:** {item.correct} — {item.correct_explanation}"
            )
        lines.append("")
    return "\n".join(lines)


def submit_quiz(quiz_id: str, progress, *answers):
    """Grade a whole attempt. Returns (feedback, progress, progress summary).

    Unanswered questions are named and nothing is recorded; the radio values
    are not outputs of this handler, so the answers given stay on screen.
    """
    quiz = load_quiz(quiz_id)
    p, notice = prog.repair(progress)
    by_id = {q["id"]: a for q, a in zip(quiz["questions"], answers)}
    result = grade(quiz, by_id)
    if result.unanswered:
        nums = ", ".join(f"Q{n}" for n in result.unanswered)
        word = "question" if len(result.unanswered) == 1 else "questions"
        msg = f"⚠️ Please answer {word} {nums} before submitting. Your other answers are kept."
        return msg, p, prog.summary_markdown(p)
    p = prog.record_quiz(p, quiz_id, result.score)
    text = feedback_markdown(result)
    if notice:
        text = f"_{notice}_\n\n" + text
    return text, p, prog.summary_markdown(p)


def new_attempt(quiz_id: str, seed: int | None = None):
    """A fresh attempt: new option order, answers and feedback cleared."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    quiz = load_quiz(quiz_id)
    radios = [gr.update(choices=shuffled_options(q, seed), value=None) for q in quiz["questions"]]
    return [seed, ""] + radios


def build_quiz(quiz_id: str, progress_state, summary) -> dict:
    """Lay out one quiz inside the current Blocks context and wire it."""
    quiz = load_quiz(quiz_id)
    n = len(quiz["questions"])
    if quiz_id == MODULE_TEST_ID:
        gr.Markdown(
            f"## {quiz['title']}\n{n} questions across all four lessons · "
            f"pass mark {int(PASS_MARK * 100)}% ({pass_threshold(n)}/{n}). Retry as often as you like; "
            "your best score is kept."
        )
    else:
        gr.Markdown(f"## {quiz['title']}\n{n} questions · submit to see feedback on every answer.")
    seed = gr.State(0)
    radios = []
    for number, q in enumerate(quiz["questions"], start=1):
        radios.append(
            gr.Radio(
                choices=shuffled_options(q, 0),
                label=f"{number}. {q['prompt']}",
                elem_id=f"{quiz_id}-q{number}",
                elem_classes="quiz-question",
            )
        )
    with gr.Row():
        submit = gr.Button("Submit answers", variant="primary", elem_id=f"{quiz_id}-submit")
        retry = gr.Button("New attempt (reshuffle)", elem_id=f"{quiz_id}-retry")
    feedback = gr.Markdown(elem_id=f"{quiz_id}-feedback")

    submit.click(
        lambda p, *a: submit_quiz(quiz_id, p, *a),
        inputs=[progress_state, *radios],
        outputs=[feedback, progress_state, summary],
        api_name=f"submit_{quiz_id}",
    )
    retry.click(
        lambda: new_attempt(quiz_id),
        inputs=None,
        outputs=[seed, feedback, *radios],
        api_name=f"new_attempt_{quiz_id}",
    )
    return {"radios": radios, "submit": submit, "feedback": feedback}
