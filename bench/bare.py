"""The baseline app for the page and load benchmarks: plain Gradio holding the same lessons and quizzes.

Same lesson texts, the same quiz views and handlers (lessons.ui / quizzes.ui), the same
browser-stored progress and its page-load repair; no Labs, no Training tab, no theme, no
CSS, and Gradio's default serving (no compression middleware). What the app adds on top
of this is what the ratios measure.
"""
from __future__ import annotations


def build_bare():
    import gradio as gr

    import app
    from core import progress as prog
    from lessons import load_lessons
    from lessons.ui import build_lesson
    from quizzes.grading import MODULE_TEST_ID
    from quizzes.ui import build_quiz

    with gr.Blocks(title="bare") as demo:
        state = gr.BrowserState(prog.empty(), storage_key=prog.STORAGE_KEY, secret=prog.DEFAULT_SECRET)
        summary = gr.Markdown(prog.summary_markdown(None))
        notice = gr.Markdown()
        with gr.Tabs():
            for lesson in load_lessons():
                with gr.Tab(app.tab_label(lesson), id=lesson.id):
                    with gr.Tabs():
                        with gr.Tab("Lesson", id=f"{lesson.id}-lesson"):
                            build_lesson(lesson.id, state, summary)
                        with gr.Tab("Quiz", id=f"{lesson.id}-quiz"):
                            build_quiz(lesson.id, state, summary)
            with gr.Tab("Module Test", id=MODULE_TEST_ID):
                build_quiz(MODULE_TEST_ID, state, summary)
        demo.load(app.on_load, inputs=[state], outputs=[state, summary, notice], api_visibility="private")
    demo.queue()
    return demo


# A server process for either side: `python -c SERVER <app|bare> <port> <core>` pins itself to
# <core> (-1: no pinning) and serves until killed. "app" is the real launch path (app.launch).
SERVER = r"""
import os, sys
side, port, core = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if core >= 0:
    os.sched_setaffinity(0, {core})
if side == "app":
    import app
    app.launch(server_name="127.0.0.1", server_port=port, quiet=True)
else:
    from bench.bare import build_bare
    build_bare().launch(server_name="127.0.0.1", server_port=port, quiet=True)
"""
