"""A learner in a real browser: read a lesson, take a quiz, reload, progress is still there.

Uses Debian's chromium (installed by `make test`) driven by Playwright;
no browser download.
"""
import os
import shutil

import pytest

from quizzes import grading

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing in CI: `make test` should have installed it")
    pytest.skip("chromium not installed (run `make test`, which installs it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app_url():
    import app

    demo = app.build_app()
    # Through app.launch, so the page has the app's CSS and theme, as learners see it.
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, server_port=None)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_lesson_quiz_feedback_and_progress_survive_reload(app_url, browser):
    expect = sync_api.expect
    from app import tab_label
    from lessons import get_lesson

    lesson = get_lesson("lesson1")
    quiz = grading.load_quiz("lesson1")
    context = browser.new_context()
    page = context.new_page()
    page.goto(app_url)

    summary = page.locator("#progress-summary")
    expect(summary).to_contain_text("L1 not read")

    # Read the lesson.
    page.get_by_role("tab", name=tab_label(lesson)).click()
    expect(page.locator("#lesson1-header")).to_contain_text(lesson.title)
    page.locator("#lesson1-read").click()
    expect(summary).to_contain_text("L1 ✓ read")

    # Quiz: Q1 right, Q2 wrong, Q3 and Q4 right.
    page.get_by_role("tab", name="Quiz").first.click()
    picks = []
    for n, q in enumerate(quiz["questions"], start=1):
        if n == 2:
            picks.append(next(o for o in q["options"] if not o["correct"]))
        else:
            picks.append(next(o for o in q["options"] if o["correct"]))
        page.locator(f"#lesson1-q{n}").get_by_label(picks[-1]["text"], exact=True).check()
    page.locator("#lesson1-submit").click()
    feedback = page.locator("#lesson1-feedback")
    expect(feedback).to_contain_text("Score: 3/4")
    expect(feedback).to_contain_text("Q1. Correct")
    expect(feedback).to_contain_text("Q2. Not quite")
    # The explanation of the wrong pick is shown, so the learner learns why.
    expect(feedback).to_contain_text(picks[1]["explain"][:60])
    expect(summary).to_contain_text("quiz 3/4")

    # Reload: progress comes back from the browser's storage.
    page.reload()
    expect(page.locator("#progress-summary")).to_contain_text("L1 ✓ read")
    expect(page.locator("#progress-summary")).to_contain_text("quiz 3/4")

    # A fresh browser profile starts clean (progress is per browser, not global).
    other = browser.new_context().new_page()
    other.goto(app_url)
    expect(other.locator("#progress-summary")).to_contain_text("L1 not read")
    context.close()
