"""The Lesson view: the lesson text and a 'mark as read' control."""
from __future__ import annotations

import gradio as gr

from core import progress as prog
from lessons import get_lesson


def mark_read(lesson_id: str, progress):
    p = prog.mark_read(progress, lesson_id)
    return p, prog.summary_markdown(p), "✓ Marked as read."


def build_lesson(lesson_id: str, progress_state, summary) -> dict:
    lesson = get_lesson(lesson_id)
    gr.Markdown(
        f"# Lesson {lesson.number} · {lesson.title}\n*{lesson.subtitle}*\n\n"
        f"> **Guiding question:** {lesson.question}",
        elem_id=f"{lesson_id}-header",
    )
    gr.Markdown(lesson.body, elem_id=f"{lesson_id}-body")
    with gr.Row():
        done = gr.Button("I've read this lesson", elem_id=f"{lesson_id}-read")
        status = gr.Markdown()
    done.click(
        lambda p: mark_read(lesson_id, p),
        inputs=[progress_state],
        outputs=[progress_state, summary, status],
        api_name=f"mark_read_{lesson_id}",
    )
    return {"read": done}
