"""The Jobs panel in a real browser (a page holding the panel, the fake Hub behind it): paste a
token, list the hardware with prices, launch, see the job's loss drawn, and after a reload see the
panel re-attach to the job from browser storage (asking for the token again: it is not kept)."""
import re

import pytest

from test_browser import browser  # noqa: F401  (module-scoped fixture)
from test_jobs import TOKEN, _log, hub, run_dir, run_root  # noqa: F401 - fixtures

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=30_000)  # each click is a round trip through gradio's queue on a busy machine


@pytest.fixture
def panel_url(hub, run_dir, monkeypatch):  # noqa: F811
    import gradio as gr

    from training.views import jobs_ui

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    import app

    with gr.Blocks() as demo:
        jobs_ui.build_jobs_panel(gr.State(run_dir.name))
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, server_port=None)  # the app's launch
    yield url
    demo.close()


def test_launch_follow_and_reattach_after_reload(panel_url, hub, browser):  # noqa: F811
    page = browser.new_page()
    page.goto(panel_url)
    page.get_by_text("Run on Hugging Face Jobs").click()
    page.locator("#jobs-token input").fill(TOKEN)
    page.locator("#jobs-refresh").click()
    expect(page.locator("#jobs-status")).to_contain_text("tokens")
    page.locator("#jobs-flavor input").click()
    page.get_by_role("option", name="a10g-small", exact=False).click()
    page.locator("#jobs-repo textarea").fill("browser-adapter")
    page.locator("#jobs-launch").click()
    # The launch message, then (the timer's first poll) the job waiting for its machine.
    expect(page.locator("#jobs-status")).to_contain_text(re.compile("Job started on a10g-small|waiting for a a10g"))
    (job_id,) = hub.jobs
    assert hub.jobs[job_id].spec["flavor"] == "a10g-small"
    hub.job_update(job_id, stage="RUNNING", logs=[_log(1, loss=2.0), _log(2, loss=1.6), _log(3, loss=1.3)])
    page.locator("#jobs-poll").click()
    expect(page.locator("#jobs-status")).to_contain_text("step 3, train loss 1.3000")
    expect(page.locator("#jobs-chart #curve-train-loss")).to_be_attached()
    page.reload()
    page.get_by_text("Run on Hugging Face Jobs").click()  # opening the panel re-attaches
    expect(page.locator("#jobs-status")).to_contain_text(job_id)
    expect(page.locator("#jobs-status")).to_contain_text("not kept")
    # Nothing in the browser keeps the pasted token (gradio's run history would: app.launch turns it off).
    assert TOKEN not in page.evaluate("JSON.stringify(window.localStorage)")
    page.close()
