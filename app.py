"""Fine-Tuning Lab: learn to fine-tune LLMs by doing it.

Run locally (sets up .venv on first use):   make run   -> http://127.0.0.1:7860
Build without launching (tests, benchmarks): from app import build_app

Importing this module must stay cheap: no torch, no transformers. The
Training tab imports them only when a learner starts something that needs them.
"""
from __future__ import annotations

import importlib
import os
import threading

import gradio as gr

from core import progress as prog
from core.config import env_int, env_str
from lessons import load_lessons
from lessons.ui import build_lesson
from quizzes.grading import MODULE_TEST_ID
from quizzes.ui import QUIZ_CSS, build_quiz

TITLE = "Fine-Tuning Lab"
INTRO = (
    f"# 🧪 {TITLE}\n"
    "Learn to fine-tune LLMs by doing it: four short lessons, a quiz and an AI advisor lab for each, "
    "a module test, and a **Training** tab that runs a real LoRA fine-tune on a small model."
)
CSS = """
#progress-summary { font-size: 0.95em; }
""" + QUIZ_CSS


def on_load(progress):
    """Repair whatever the browser sent and show the summary (and any notice)."""
    fixed, notice = prog.repair(progress)
    return fixed, prog.summary_markdown(fixed), (f"ℹ️ {notice}" if notice else "")


def reset_progress():
    fresh = prog.empty()
    return fresh, prog.summary_markdown(fresh), "Progress reset."


def _lab_builder():
    """The advisor lab builder, once the labs package provides it."""
    try:
        from labs.ui import build_lab
    except ImportError:  # labs not installed in this build: no Lab views, never a placeholder
        return None
    return build_lab


def _training_builders():
    try:
        from training.ui import build_training_tab
    except ImportError:
        return None, None
    try:
        from training.publish_ui import build_publish_panel
    except ImportError:
        build_publish_panel = None
    return build_training_tab, build_publish_panel


# Short tab labels: full lesson titles overflow the tab bar.
NAV_LABELS = {
    "lesson1": "What fine-tuning is",
    "lesson2": "Building the dataset",
    "lesson3": "Running a LoRA fine-tune",
    "lesson4": "Evaluating & deploying",
}


def tab_label(lesson) -> str:
    return f"L{lesson.number} · {NAV_LABELS.get(lesson.id, lesson.title)}"


ADVISOR_FOR_LESSON = {"lesson1": "strategy", "lesson2": "dataset", "lesson3": "lora", "lesson4": "eval"}


def build_app() -> gr.Blocks:
    lessons = load_lessons()
    build_lab = _lab_builder()
    build_training_tab, build_publish_panel = _training_builders()
    secret = env_str("FTLAB_STATE_SECRET", prog.DEFAULT_SECRET)

    # Gradio's upload/served-file cache is swept hourly of files older than
    # FTLAB_UPLOAD_TTL_S: otherwise every learner's upload stays until a restart.
    with gr.Blocks(title=TITLE, delete_cache=(3600, env_int("FTLAB_UPLOAD_TTL_S", 86400))) as demo:
        # Progress lives in the learner's browser; fixed key + secret so it
        # survives reloads and Space restarts. No personal data in it.
        progress_state = gr.BrowserState(prog.empty(), storage_key=prog.STORAGE_KEY, secret=secret)
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            summary = gr.Markdown(prog.summary_markdown(None), elem_id="progress-summary")
            reset = gr.Button("Reset progress", size="sm", scale=0, elem_id="reset-progress")
        notice = gr.Markdown(elem_id="progress-notice")

        with gr.Tabs():
            for lesson in lessons:
                with gr.Tab(tab_label(lesson), id=lesson.id):
                    with gr.Tabs():
                        with gr.Tab("Lesson", id=f"{lesson.id}-lesson"):
                            build_lesson(lesson.id, progress_state, summary)
                        with gr.Tab("Quiz", id=f"{lesson.id}-quiz"):
                            build_quiz(lesson.id, progress_state, summary)
                        if build_lab is not None:
                            with gr.Tab("Lab", id=f"{lesson.id}-lab"):
                                build_lab(ADVISOR_FOR_LESSON[lesson.id])
            with gr.Tab("Module Test", id=MODULE_TEST_ID):
                build_quiz(MODULE_TEST_ID, progress_state, summary)
            if build_training_tab is not None:
                with gr.Tab("Training", id="training"):
                    parts = build_training_tab()
                    if build_publish_panel is not None:
                        build_publish_panel(parts["run_id"])

        reset.click(reset_progress, outputs=[progress_state, summary, notice], api_name="reset_progress")
        demo.load(on_load, inputs=[progress_state], outputs=[progress_state, summary, notice], api_visibility="private")

    # Quizzes and chat are cheap; GPU work has its own queue (concurrency_id
    # "gpu") set where it is wired. An explicit max_size: on ZeroGPU gradio's
    # default would be 1.
    demo.queue(
        default_concurrency_limit=env_int("FTLAB_CONCURRENCY", 8),
        max_size=env_int("FTLAB_QUEUE_MAX", 256),
    )
    return demo


# Imported on first use, they cost the first advisor message 3-4.5 s (issue 16);
# imported in the background once the server is up, they cost the start nothing.
WARM_MODULES = ("anthropic",)


def warm_in_background() -> threading.Thread:
    """Import the advisor client in a daemon thread; returns the thread (tests join it)."""
    def work():
        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # the lab says so when it is used
    thread = threading.Thread(target=work, name="warm-imports", daemon=True)
    thread.start()
    return thread


def launch(demo: gr.Blocks | None = None, **kwargs):
    from training import runs  # no torch: the run registry only

    runs.cleanup_old_runs()  # runs past FTLAB_RUN_TTL_HOURS, also when nobody presses Start
    demo = demo or build_app()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    kwargs.setdefault("server_port", env_int("GRADIO_SERVER_PORT", 7860))
    kwargs.setdefault("css", CSS)
    kwargs.setdefault("theme", gr.themes.Soft())
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(prevent_thread_lock=True, **kwargs)
    warm_in_background()  # after the server answers, so the page is not kept waiting
    if block:
        demo.block_thread()
    return result


if __name__ == "__main__":
    launch()
