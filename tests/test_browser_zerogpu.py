"""A signed-out learner on a ZeroGPU Space, in a real browser: the GPU quota is spent, Start is
refused with what the run needs, what is left, when it resets and the choices; once the quota is
back, Resume trains the run to the end.

The app runs as a ZeroGPU Space runs it (tests/fakes/zerogpu_app.py: the real `spaces` package
against the fake scheduler of devtools/zerogpu.py); the browser sends the X-IP-Token the Hub's
proxy adds to a visitor's requests.
"""
import re

import pytest

from devtools.zerogpu import FakeZeroGPU, learner_token
from test_browser import browser  # noqa: F401  (module-scoped fixture)
from test_browser_training import TRAIN_TIMEOUT_MS, _set_numbers

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=30_000)

# A slice of 2 steps asks for load + 2 x 20 s x 1.3: room for a CPU that other work slows down.
KNOBS = {"FTLAB_GPU_S_PER_SEQUENCE": "40", "FTLAB_GPU_SLICE_SECONDS": "45", "FTLAB_GPU_OVERHEAD_SECONDS": "120",
         "FTLAB_EVAL_MAX_ROWS": "2", "FTLAB_MAX_GPU_DURATION": "300", "FTLAB_CHECKPOINT_EVERY": "1"}


@pytest.fixture(scope="module")
def space(module_data_dir, tmp_path_factory):
    from fakes.zerogpu_app import launch, stop

    folder = tmp_path_factory.mktemp("zerogpu-browser")
    with FakeZeroGPU(quotas={None: 3600}) as fake:  # once the day is over, enough for a busy machine
        proc, url = launch(fake, folder, module_data_dir, **KNOBS)
        try:
            yield fake, url
        finally:
            stop(proc)


def test_quota_refusal_then_resume_in_the_browser(space, browser):  # noqa: F811
    fake, url = space
    fake.set_left("lin", 5, reset_in_s=2 * 3600)  # signed out, 5 s left today
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  extra_http_headers={"x-ip-token": learner_token("lin")})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("tab", name="Training").click()
    page.locator("#train-load").click()
    expect(page.locator("#train-data-status")).to_contain_text("Loaded")
    page.get_by_text("Hyperparameters").click()
    _set_numbers(page, ((r"^Max steps", 2), (r"^Batch size", 1), (r"^Gradient accumulation", 1),
                        (r"^Max length", 128), (r"^Evaluate every", 100)))
    page.locator("#train-check").click()
    plan = page.locator("#train-plan")
    expect(plan).to_contain_text("Plan: 2 optimizer steps", timeout=120_000)
    expect(plan).to_contain_text("GPU quota:")
    expect(plan).to_contain_text("a signed-out learner has")

    page.locator("#train-start").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text("ZeroGPU refused slice 1 of this run: not enough GPU quota left today.",
                                   timeout=120_000)
    expect(status).to_contain_text("you have 5 s left")
    expect(status).to_contain_text(re.compile(r"it resets in (2 h|1 h 59 min)"))
    for choice in ("Sign in", "Continue on the CPU", "Run it on Hugging Face Jobs"):
        expect(status).to_contain_text(choice)
    expect(page.locator("#train-resume-cpu")).to_be_visible()

    fake.reset_quota("lin")  # a new day
    page.locator("#train-resume").click()
    expect(status).to_contain_text("Finished 2 steps.", timeout=TRAIN_TIMEOUT_MS)
    expect(page.locator("#train-progress")).to_contain_text("Step 2 / 2")
    context.close()
