"""The Training tab in a real browser: train 1 step, then 3, see every point; evaluate and read
the outputs side by side at 1280 px.

Issue 16: the loss chart showed nothing for a one-point series and clipped its
legend; "Your runs" stayed empty after a run; the side-by-side table pushed
the outputs ~3,600 px to the right. Runs on the embedded SmolLM2-135M on CPU,
with tiny settings typed into the page as a learner would.
"""
import re

import pytest

from core.text import plural
from test_browser import browser  # noqa: F401  (module-scoped fixture)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
# Each click is a round trip through gradio's queue; on a busy 2-core machine that can take seconds.
expect.set_options(timeout=30_000)
TRAIN_TIMEOUT_MS = 600_000  # model load + a few CPU steps; generous for a busy 2-core machine


@pytest.fixture(scope="module")
def app_url(module_data_dir):
    import app

    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_EVAL_MAX_ROWS", "2")  # eval loss on 2 validation rows: quick
    demo = app.build_app()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, server_port=None)
    yield url
    demo.close()
    mp.undo()


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(re.compile(label)).first
    box.fill(str(value))
    box.press("Tab")  # commit the value as a learner leaving the field does


def _set_numbers(page, pairs) -> None:
    """Set several fields, then make sure each still shows its value before the test goes on.

    On a busy machine a field typed into the moment its accordion opens can be reset as the
    accordion's content finishes mounting (CI once lost "Max steps 2" that way); a learner
    never types that fast, so the field is typed again, as a learner would seeing it changed."""
    for _ in range(3):
        wrong = [(label, value) for label, value in pairs
                 if page.get_by_label(re.compile(label)).first.input_value() != str(value)]
        for label, value in wrong:
            _set_number(page, label, value)
        if not wrong:
            break
    for label, value in pairs:
        expect(page.get_by_label(re.compile(label)).first).to_have_value(str(value))


def _train(page, steps: int) -> None:
    _set_number(page, r"^Max steps", steps)
    page.locator("#train-start").click()
    # "Finished 3 steps." names this run's end, not the previous run's status still on screen.
    expect(page.locator("#train-status")).to_contain_text(f"Finished {plural(steps, 'step')}.",
                                                          timeout=TRAIN_TIMEOUT_MS)


def _pass_module_test(page) -> None:
    from quizzes.grading import MODULE_TEST_ID, load_quiz

    page.get_by_role("tab", name="Module Test").click()
    for n, q in enumerate(load_quiz(MODULE_TEST_ID)["questions"], start=1):
        right = next(o["text"] for o in q["options"] if o["correct"])
        page.locator(f"#{MODULE_TEST_ID}-q{n}").get_by_label(right, exact=True).check()
    page.locator(f"#{MODULE_TEST_ID}-submit").click()
    expect(page.locator(f"#{MODULE_TEST_ID}-feedback")).to_contain_text("15/15")


def _visible(locator):
    return locator.filter(visible=True)


def _open_lab(page, lesson_number: int) -> None:
    from app import tab_label
    from lessons import get_lesson

    page.get_by_role("tab", name=tab_label(get_lesson(f"lesson{lesson_number}"))).click()
    _visible(page.get_by_role("tab", name="Lab")).click()


def _lab2_paste() -> str:
    """20 rows with JSON answers, an exact duplicate and a row whose answer is empty (cannot train)."""
    import json

    rows = [{"messages": [{"role": "user", "content": f"Patient {n} takes {n * 5} mg of drug{n} twice a day."},
                          {"role": "assistant", "content": json.dumps({"drug": f"drug{n}", "dose_mg": n * 5})}]}
            for n in range(1, 21)]
    empty = {"messages": [{"role": "user", "content": "Patient 99 takes nothing."}, {"role": "assistant", "content": ""}]}
    return "\n".join(json.dumps(r) for r in [*rows, rows[3], empty])


def _lab2_fix_and_send(page) -> None:
    _open_lab(page, 2)
    page.locator("#lab-dataset-input textarea").fill(_lab2_paste())
    page.locator("#lab-dataset-send").click()
    status = page.locator("#lab-dataset-handoff-status")
    page.locator("#lab-dataset-apply").click()  # the empty answer blocks a send
    expect(status).to_contain_text("Not sent")
    page.locator("#lab-dataset-fix").click()
    expect(status).to_contain_text("22 rows → 20 rows")
    page.locator("#lab-dataset-apply").click()
    expect(page.locator("#train-data-status")).to_contain_text("From Lab 2")
    expect(page.locator("#train-provenance")).to_contain_text("Data from Lab 2 (chat)")


def _lab3_apply(page) -> None:
    _open_lab(page, 3)
    page.locator("#lab-lora-input textarea").fill("SmolLM2-135M, 20 examples of a JSON format task, one 16 GB GPU")
    page.locator("#lab-lora-send").click()
    page.locator("#lab-lora-apply").click()
    expect(page.locator("#train-provenance")).to_contain_text("Hyperparameters from Lab 3 (chat)")
    expect(page.locator("#train-provenance")).to_contain_text("Data from Lab 2 (chat)")


def _lab4_apply(page) -> None:
    """Lab 4's adversarial cases, from the workbench form as shown, become the run's evaluation."""
    _open_lab(page, 4)
    page.get_by_text("Workbench: run this lab's calculators yourself").filter(visible=True).click()
    _visible(page.get_by_role("tab", name="adversarial cases")).click()
    _visible(page.get_by_role("button", name="Run adversarial_cases")).click()
    page.locator("#lab-eval-apply").click()
    expect(page.locator("#train-provenance")).to_contain_text("Evaluation from Lab 4 (workbench)")


def _markers(page, gid: str) -> int:
    return page.locator(f"#train-loss-chart g#{gid} use").count()


def test_train_chart_runs_list_and_side_by_side(app_url, browser):  # noqa: F811
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(app_url)
    _pass_module_test(page)
    page.get_by_role("tab", name="Training").click()

    # Only the built-in picker shows for "Built-in"; the upload box appears for "Upload JSONL".
    expect(page.locator("#train-builtin")).to_be_visible()
    expect(page.locator("#train-upload")).to_be_hidden()
    page.locator("#train-source").get_by_label("Upload JSONL").check()
    expect(page.locator("#train-upload")).to_be_visible()
    expect(page.locator("#train-builtin")).to_be_hidden()
    page.locator("#train-source").get_by_label("Built-in").check()

    page.locator("#train-load").click()
    expect(page.locator("#train-data-status")).to_contain_text("Loaded")
    page.get_by_text("Hyperparameters").click()
    _set_numbers(page, ((r"^Gradient accumulation", 1), (r"^Evaluate every", 1)))

    # Step 2 opened by itself once the data loaded; a passing check opens step 3.
    page.locator("#train-check").click()
    expect(page.locator("#train-plan")).to_contain_text("Plan:", timeout=120_000)
    expect(page.locator("#train-start")).to_be_visible()

    _train(page, 1)
    chart = page.locator("#train-loss-chart")
    expect(chart.locator("g#curve-train-loss use")).to_have_count(1)
    expect(chart.locator("g#curve-eval-loss use")).to_have_count(1)
    expect(chart.get_by_text("train loss", exact=True)).to_be_visible()
    expect(chart.get_by_text("eval loss", exact=True)).to_be_visible()
    box = chart.locator("svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 150

    # The workflow (issue 11): Lab 2's paste, fixed and sent; Lab 3's config applied; then a run.
    _lab2_fix_and_send(page)
    _lab3_apply(page)
    _set_numbers(page, ((r"^Batch size", 1), (r"^Gradient accumulation", 1), (r"^Max length", 256),
                        (r"^Evaluate every", 1)))
    page.locator("#train-check").click()
    expect(page.locator("#train-plan")).to_contain_text("Plan:", timeout=120_000)
    _train(page, 3)
    expect(chart.locator("g#curve-train-loss use")).to_have_count(3)
    assert _markers(page, "curve-eval-loss") == 3
    # "Your runs" lists both runs without pressing "Show run".
    page.locator("#train-my-runs input").click()
    expect(page.locator("#train-my-runs").get_by_role("option")).to_have_count(2)
    page.keyboard.press("Escape")

    # The run's own curve, read by the Lab 3 doctor with one click, and taken to the advisor.
    page.locator("#train-diagnose").click()
    expect(page.locator("#train-diagnosis")).to_contain_text("Diagnosis")
    page.locator("#train-ask-advisor").click()
    expect(page.locator("#lab-lora-input textarea")).to_have_value(re.compile(r"^Here is a LoRA run"))
    page.get_by_role("tab", name="Training").click()

    # Step 4 opened when the run saved its adapter: evaluate one example.
    _lab4_apply(page)
    expect(page.locator("#train-eval-cases input")).to_be_checked()
    n_eval = page.locator("#train-eval-n input[type=number]")
    n_eval.fill("1")
    n_eval.press("Tab")
    page.locator("#train-eval").click()
    expect(page.locator("#train-eval-status")).to_contain_text("Evaluated", timeout=TRAIN_TIMEOUT_MS)
    # Lab 4's cases ran against base and tuned, and the failures are counted.
    expect(page.locator("#train-eval-adversarial")).to_contain_text(re.compile(r"the tuned model fails \d+ of \d+"))
    table = page.locator("#train-samples table")
    table.scroll_into_view_if_needed()  # scrolling down is fine; scrolling sideways is what must not be needed
    for header in ("Expected", "Base model", "Tuned model"):
        cell = table.get_by_role("columnheader", name=header)
        expect(cell).to_be_in_viewport()
        right = cell.bounding_box()["x"] + cell.bounding_box()["width"]
        assert right <= 1280, f"{header} column ends at {right:.0f} px"
    tuned = table.locator("tbody tr td").nth(3)
    assert tuned.bounding_box()["x"] + tuned.bounding_box()["width"] <= 1280

    # Test passed and run evaluated: the certificate is earned and downloadable.
    page.locator("#cert-name input, #cert-name textarea").first.fill("Ada Lovelace")
    page.locator("#cert-get").click()
    expect(page.locator("#cert-status")).to_contain_text("certificate is ready")
    expect(page.locator("#cert-file")).to_contain_text(".png")
    page.context.close()
