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
from labs.advisors import get_advisor
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
# Phones (issue 17): below 640 px the same components only reflow, there is
# no second layout. The target is a 390 x 844 phone (tests/test_browser_mobile.py).
CSS = """
#progress-summary { font-size: 0.95em; }
#progress-summary details > summary { cursor: pointer; list-style-position: inside; }
#progress-summary progress { appearance: none; width: 5em; height: 0.6em; vertical-align: middle; border: none;
  border-radius: 0.3em; overflow: hidden; background: var(--border-color-primary); }
#progress-summary progress::-webkit-progress-bar { background: var(--border-color-primary); }
#progress-summary progress::-webkit-progress-value { background: var(--color-accent); }
#progress-summary progress::-moz-progress-bar { background: var(--color-accent); }
#progress-row { align-items: flex-start; flex-wrap: nowrap; gap: var(--spacing-md); }
#progress-row > #progress-summary { flex: 1 1 auto; min-width: 0; }
#reset-progress { flex: 0 0 auto; min-width: 0; width: auto; font-weight: normal; }
#reset-confirm-row { align-items: center; flex-wrap: wrap; gap: var(--spacing-md); }
#reset-question { flex: 1 1 20em; }
#reset-confirm { color: var(--error-text-color); border-color: var(--error-border-color);
  background: var(--error-background-fill); }
.narrow-only { display: none !important; }
/* A phone needs its width for text: gradio's 32 px side padding took 16 % of 390 px.
   12 px below 640 px, gradio's own above (a step via clamp: gradio scopes custom
   rules inside @media to its .contain box, and this padding is outside it). */
.main.fillable.app { padding-inline: clamp(12px, (100vw - 640px) * 1000, var(--size-8)); }

@media (max-width: 640px) {
  .narrow-only { display: block !important; }
  /* Tap targets of at least 44 px (gradio's buttons are 40 px, small ones 26). */
  button.lg, button.md, button.sm { min-height: 44px; }
  #reset-confirm, #reset-cancel { flex: 1 1 auto; }
  /* A wide table scrolls inside its own box; its cells keep whole words
     (squeezed to 390 px they broke mid-word: "Wh/at chan/ges"). */
  .prose table { display: block; max-width: 100%; overflow-x: auto; }
  .prose th, .prose td { min-width: 7.5em; overflow-wrap: normal; word-break: normal; }
  /* Training's rows stack: side by side, two controls of 160 px were too cramped to use. */
  #training-tab .row > *, #training-tab .row > .form > * { min-width: 100% !important; }
  .progress-breakdown { display: none; }
  #app-intro p { font-size: 0.9em; margin: 0; }
  #app-intro h1 { font-size: 1.5em; margin: 0 0 0.25em; }
  #progress-summary details > summary { padding: 12px 0; white-space: nowrap; }
  /* Every top-level destination stays on screen: the tab bar becomes a grid of
     two columns of labelled buttons instead of gradio's overflow "…" menu. */
  #course-nav > .tab-wrapper > .tab-container { display: grid; grid-template-columns: 1fr 1fr; gap: 6px;
    background: none; }
  #course-nav > .tab-wrapper > .tab-container::after { display: none; }
  #course-nav > .tab-wrapper > .tab-container > button { height: auto; min-height: 44px; white-space: normal;
    text-align: left; line-height: 1.2; padding: 6px 10px; border: 1px solid var(--border-color-primary);
    border-radius: var(--radius-md); }
  #course-nav > .tab-wrapper > .tab-container > button::after { display: none; }
  #course-nav > .tab-wrapper > .tab-container > button.selected { border-color: var(--color-accent);
    background: var(--background-fill-secondary); }
  /* Nested tab sets (Lesson/Quiz/Lab, workbench tools): taller rows for a thumb. */
  #course-nav .tab-container.wrap { background: none; }
  #course-nav .tab-container.wrap > button { height: auto; min-height: 44px; }
}
""" + QUIZ_CSS


def on_load(progress):
    """Repair whatever the browser sent and show the summary (and any notice). The stored
    progress is written back only when it needed repair: on a busy server this can finish
    after the learner's first click ("I've read this lesson"), whose newer progress it would
    otherwise overwrite with what the page loaded with."""
    fixed, notice = prog.repair(progress)
    return (fixed if fixed != progress else gr.skip()), prog.summary_markdown(fixed), \
        (f"ℹ️ {notice}" if notice else "")


def reset_progress():
    fresh = prog.empty()
    return fresh, prog.summary_markdown(fresh), "Progress reset."


def _show(visible: bool):
    return gr.update(visible=visible)


RESET_QUESTION = (
    "**Reset your progress?** This deletes, in this browser, which lessons you read and your quiz and "
    "module test scores. It can't be undone."
)


def _build_header(progress_state):
    """Title, the compact progress line, and Reset behind a confirmation (it deletes progress).

    Reset is small and secondary; the real reset (api_name reset_progress) is
    the confirm button, so a slip of the thumb on a phone deletes nothing.
    """
    gr.Markdown(INTRO, elem_id="app-intro")
    with gr.Row(elem_id="progress-row"):
        summary = gr.Markdown(prog.summary_markdown(None), elem_id="progress-summary")
        reset = gr.Button("Reset progress", size="sm", variant="secondary", scale=0, elem_id="reset-progress")
    with gr.Row(visible=False, elem_id="reset-confirm-row") as confirm_row:
        gr.Markdown(RESET_QUESTION, elem_id="reset-question")
        confirm = gr.Button("Yes, delete my progress", size="sm", variant="stop", scale=0, elem_id="reset-confirm")
        cancel = gr.Button("Cancel", size="sm", scale=0, elem_id="reset-cancel")
    notice = gr.Markdown(elem_id="progress-notice")

    # Showing or hiding the question skips the queue (it must not wait behind
    # chats or training) and is not part of the API.
    toggle = {"queue": False, "api_visibility": "private"}
    reset.click(lambda: _show(True), None, confirm_row, **toggle)
    cancel.click(lambda: _show(False), None, confirm_row, **toggle)
    confirm.click(lambda: _show(False), None, confirm_row, **toggle)
    confirm.click(reset_progress, outputs=[progress_state, summary, notice], api_name="reset_progress")
    return summary, notice


def _tab_builders():
    """The builders of the Lab, Training, Publish and Jobs views.

    Imported here rather than at the top so importing app.py stays light, and
    never behind ``except ImportError``: a tab whose builder cannot be imported
    stops the app at start with the reason, instead of silently vanishing."""
    try:
        from labs.ui import build_lab
        from training.views.handoff_ui import wire_handoffs
        from training.views.jobs_ui import build_jobs_panel
        from training.views.publish_ui import build_publish_panel
        from training.views.tab import build_training_tab
    except ImportError as exc:
        raise RuntimeError(f"A tab's builder could not be imported, so the app cannot start: {exc}") from exc
    from training.hub import timeouts as hub_timeouts  # no torch; huggingface_hub only

    # Every Hub request the app makes (model and dataset downloads, sign-in,
    # pushes) waits at most FTLAB_HUB_TIMEOUT_S for each answer.
    hub_timeouts.install()
    return build_lab, build_training_tab, build_publish_panel, wire_handoffs, build_jobs_panel


# Short tab labels: full lesson titles overflow the tab bar.
NAV_LABELS = {
    "lesson1": "What fine-tuning is",
    "lesson2": "Building the dataset",
    "lesson3": "Running a LoRA fine-tune",
    "lesson4": "Evaluating & deploying",
}


def tab_label(lesson) -> str:
    return f"L{lesson.number} · {NAV_LABELS.get(lesson.id, lesson.title)}"


TRAINING_ON_PHONE = (
    "📱 Training is easiest on a larger screen (charts, logs and tables are wide). "
    "Everything works here too: scroll down through the steps."
)

def _tabs_never_hide(demo: gr.Blocks) -> None:
    """Every tab set wraps onto more rows instead of gradio's overflow "…" menu.

    On a 390 px phone the menu hid the module test, Training and most of a
    lab's workbench tools. Applies to tab sets other packages build too (the
    workbench), so it runs before the Blocks computes its config.
    """
    for block in demo.blocks.values():
        if isinstance(block, gr.Tabs):
            block.overflow_behavior = "wrap"


def _wire_chain(trigger, chain) -> None:
    """Wire [(fn, inputs, outputs), ...] to an event: the first on it, each next one after it."""
    (fn, inputs, outputs), *rest = chain
    event = trigger(fn, inputs, outputs, api_visibility="private")
    for fn, inputs, outputs in rest:
        event = event.then(fn, inputs, outputs, api_visibility="private")


def build_app() -> gr.Blocks:
    lessons = load_lessons()
    build_lab, build_training_tab, build_publish_panel, wire_handoffs, build_jobs_panel = _tab_builders()
    secret = env_str("FTLAB_STATE_SECRET", prog.DEFAULT_SECRET)

    # Gradio's upload/served-file cache is swept hourly of files older than
    # FTLAB_UPLOAD_TTL_S: otherwise every learner's upload stays until a restart.
    with gr.Blocks(title=TITLE, delete_cache=(3600, env_int("FTLAB_UPLOAD_TTL_S", 86400))) as demo:
        # Progress lives in the learner's browser; fixed key + secret so it
        # survives reloads and Space restarts. No personal data in it.
        progress_state = gr.BrowserState(prog.empty(), storage_key=prog.STORAGE_KEY, secret=secret)
        summary, notice = _build_header(progress_state)

        # On a phone the CSS turns this tab bar into a grid of labelled buttons.
        labs, lesson_tabs = {}, {}
        with gr.Tabs(elem_id="course-nav") as nav:
            for lesson in lessons:
                with gr.Tab(tab_label(lesson), id=lesson.id):
                    with gr.Tabs() as lesson_tabs[lesson.id]:
                        with gr.Tab("Lesson", id=f"{lesson.id}-lesson"):
                            build_lesson(lesson.id, progress_state, summary)
                        with gr.Tab("Quiz", id=f"{lesson.id}-quiz"):
                            build_quiz(lesson.id, progress_state, summary)
                        with gr.Tab("Lab", id=f"{lesson.id}-lab"):
                            lab = build_lab(lesson.id)  # the advisor of this lesson (labs/advisors.py)
                            labs[get_advisor(lesson.id).id] = lab
            with gr.Tab("Module Test", id=MODULE_TEST_ID):
                build_quiz(MODULE_TEST_ID, progress_state, summary)
            with gr.Tab("Training", id="training", elem_id="training-tab") as training_tab:
                gr.Markdown(TRAINING_ON_PHONE, elem_classes=["narrow-only"], elem_id="training-phone-note")
                parts = build_training_tab(progress_state)
                build_publish_panel(parts["run_id"])
                jobs = build_jobs_panel(parts["run_id"], parts["run_ids"])  # Hugging Face Jobs (training/views/jobs_ui.py)
            # The tab hands back its hooks; they are wired here, on the root Blocks and the tab.
            for chain in parts["page_load"]:
                _wire_chain(demo.load, chain)
            _wire_chain(training_tab.select, parts["tab_select"])
            _wire_chain(jobs["imported"].change, parts["tab_select"])  # a finished job's run, shown as the tab's
            # A lab's result applied in the Training tab, and a run taken back to Lab 3.
            wire_handoffs(labs, {**parts, "jobs_model": jobs["model"]}, nav, lesson_tabs)

        _tabs_never_hide(demo)
        demo.load(on_load, inputs=[progress_state], outputs=[progress_state, summary, notice], api_visibility="private")

    return configure_queue(demo)


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """The app's queue settings (tests that serve one panel reuse them)."""
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


def launch_style() -> dict:
    """The page's look, which gradio 6 takes at launch(): tests launch with it too."""
    return {"css": CSS, "theme": gr.themes.Soft()}


def launch(demo: gr.Blocks | None = None, **kwargs):
    from training.evaluation import base_answers  # no torch until answers are generated
    from training.run import runs  # no torch: the run registry only

    runs.cleanup_old_runs()  # runs past FTLAB_RUN_TTL_HOURS, also when nobody presses Start
    base_answers.sweep()     # and the base answers kept for reuse, on the same clock
    demo = demo or build_app()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    kwargs.setdefault("server_port", env_int("GRADIO_SERVER_PORT", 7860))
    for key, value in launch_style().items():
        kwargs.setdefault(key, value)
    # Gradio 6's run history keeps every event's inputs in the browser's localStorage, password
    # fields included: a Hub token pasted for a push or a job would stay there. Off (this also
    # deletes what an earlier launch saved).
    kwargs.setdefault("run_history", False)
    from core.compression import with_page_compression
    kwargs = with_page_compression(kwargs)
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(prevent_thread_lock=True, **kwargs)
    warm_in_background()  # after the server answers, so the page is not kept waiting
    if block:
        demo.block_thread()
    return result


if __name__ == "__main__":
    launch()
