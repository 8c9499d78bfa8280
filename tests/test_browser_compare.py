"""Issue 24 in a real browser: two tiny runs with different learning rates compared (curves,
settings diff, metrics with an interval), one opened from the comparison, its gradient norm
on the chart; the longest row's tokens with max length lowered; then the same views at 390 px.

Runs on the embedded SmolLM2-135M on CPU: 1 step per run, 1 test example evaluated.
"""
import re

import pytest

from core.text import plural
from test_browser import browser  # noqa: F401  (module-scoped fixture)
from test_browser_training import _set_number, _set_numbers

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=30_000)
TRAIN_TIMEOUT_MS = 600_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def app_url(module_data_dir):
    import app

    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_EVAL_MAX_ROWS", "1")  # eval loss on 1 validation row: quick
    demo = app.build_app()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, server_port=None)
    yield url
    demo.close()
    mp.undo()


def _step(what: str) -> None:
    import time
    print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)


def _train_and_evaluate(page, lr: str, steps: int) -> None:
    """Each run its own step count: "Finished N steps." then names this run's end, not the last one's."""
    _step(f"train lr {lr}, {steps} steps")
    _set_number(page, r"^Learning rate", lr)
    _set_number(page, r"^Max steps", steps)
    page.locator("#train-start").click()
    expect(page.locator("#train-status")).to_contain_text(f"Finished {plural(steps, 'step')}.",
                                                          timeout=TRAIN_TIMEOUT_MS)
    cases = page.locator("#train-eval-cases input")
    if cases.is_checked():
        cases.uncheck()  # Lab 4's cases are not what this test is about
    n_eval = page.locator("#train-eval-n input[type=number]")
    n_eval.fill("1")
    n_eval.press("Tab")
    _step("evaluate")
    page.locator("#train-eval").click()
    status = page.locator("#train-eval-status")
    expect(status).not_to_contain_text("Evaluated")  # the last run's result gives way to this one's progress
    expect(status).to_contain_text("Evaluated", timeout=TRAIN_TIMEOUT_MS)


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width == PHONE["width"], f"the page scrolls sideways ({width} px wide)"


def _inside_phone(locator, what: str) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, f"{what}: {box}"


def test_compare_two_runs_tokens_and_phone(app_url, browser):  # noqa: F811
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    # Pharmacy notes: the shortest answers of the built-in sets, so the evaluation is quick.
    page.locator("#train-builtin input").click()
    page.get_by_role("option", name="Pharmacy note", exact=False).click()
    page.locator("#train-load").click()
    expect(page.locator("#train-data-status")).to_contain_text("Loaded pharmacy_meds")
    page.get_by_text("Hyperparameters").click()
    _set_numbers(page, ((r"^Evaluate every", 1),))
    page.locator("#train-check").click()
    expect(page.locator("#train-plan")).to_contain_text("Plan:", timeout=120_000)

    _train_and_evaluate(page, "0.001", 1)
    _train_and_evaluate(page, "0.0002", 2)

    _step("compare")
    # Compare: pick both runs, two curves, the learning rate highlighted, metrics with an interval.
    page.locator("#train-compare").get_by_text("Compare runs").click()
    pick = page.locator("#train-compare-pick")
    expect(pick.locator("input[type=checkbox]")).to_have_count(2)
    for box in pick.locator("input[type=checkbox]").all():
        box.check()
    page.locator("#train-compare-run").click()
    chart = page.locator("#train-compare-chart")
    expect(chart.locator("g#compare-train-0 use")).to_have_count(1)
    expect(chart.locator("g#compare-train-1 use")).to_have_count(2)
    expect(chart.locator("g#compare-eval-1 use")).to_have_count(2)
    expect(chart).to_contain_text("lr 1e-03")
    expect(chart).to_contain_text("lr 2e-04")
    settings = page.locator("#train-compare-settings")
    expect(settings.locator('tr.differs[data-key="learning_rate"]')).to_be_visible()
    expect(settings.locator('tr.same[data-key="lora_r"]')).to_be_visible()
    metrics = page.locator("#train-compare-metrics")
    expect(metrics).to_contain_text(re.compile(r"[+-]\d+ pts \[[+-]\d+, [+-]\d+\]"))
    expect(metrics).to_contain_text("95%")

    # One click opens the first run (lr 1e-3) from the comparison; its chart has the gradient norm.
    first = page.locator("#train-compare-open-0")
    expect(first).to_contain_text("lr 1e-03")
    short = re.search(r"Open (\S{6})", first.inner_text()).group(1)
    first.click()
    expect(page.locator("#train-status")).to_contain_text(f"run {short}")
    loss_chart = page.locator("#train-loss-chart")
    expect(loss_chart.locator("g#curve-grad-norm use")).to_have_count(1)
    expect(loss_chart.get_by_text("grad norm", exact=True).first).to_be_visible()

    _step("tokens")
    # The longest row with max length lowered: the cut, struck out after the marker, and the counts.
    _set_number(page, r"^Max length", 128)
    page.locator("#train-check").click()
    expect(page.locator("#train-check-result")).to_contain_text("max length 128 cuts")
    expect(page.locator("#train-token-hist g#hist-max-length")).to_have_count(1)
    row = page.locator("#train-tokens-row input")
    expect(row).to_have_value("1")  # the check showed row 1 (also cut at 128: wait for the longest below)
    page.locator("#train-tokens-longest").click()
    expect(row).not_to_have_value("1")
    view = page.locator("#train-tokens")
    expect(view).to_contain_text("✂ max length 128")
    expect(view.locator(".tok-text .tok-cut").first).to_be_visible()
    expect(view.locator(".tok-text .tok-special").first).to_contain_text("⟨|im_start|⟩")
    expect(view.locator(".tok-counts")).to_contain_text(re.compile(r"\d+ tokens · \d+ trained · \d+ cut off"))
    assert "line-through" in view.locator(".tok-text .tok-cut").first.evaluate("e => getComputedStyle(e).textDecorationLine")
    longest = int(row.input_value())
    expect(view).to_contain_text(f"row {longest} (of 288)")
    page.locator("#train-tokens-next").click()
    expect(row).to_have_value(str(longest % 288 + 1))  # pharmacy_meds has 288 training rows

    _step("phone")
    # The same views on a phone: nothing scrolls the page sideways; wide tables scroll in their own box.
    page.set_viewport_size(PHONE)
    for sel in ("#train-compare-chart svg", "#train-compare-settings .cmp-scroll", "#train-compare-metrics .cmp-scroll",
                "#train-tokens .tok-text", "#train-token-hist svg", "#train-loss-chart svg"):
        loc = page.locator(sel).first
        loc.scroll_into_view_if_needed()
        _inside_phone(loc, sel)
    _no_sideways_scroll(page)
    page.context.close()
