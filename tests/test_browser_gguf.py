"""Issue 25 in a real browser: train a tiny run, export it for llama.cpp / Ollama, download the zip
and find the GGUF file, the Modelfile and the README in it. Embedded SmolLM2-135M on CPU, 1 step."""
import re
import zipfile

import pytest

from test_browser import browser  # noqa: F401  (module-scoped fixture)
from test_browser_training import _pass_module_test, _set_numbers, _train

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=30_000)
EXPORT_TIMEOUT_MS = 600_000  # merge + q8_0 of 135M: ~50 s on a busy 2-core machine


@pytest.fixture(scope="module")
def app_url(module_data_dir):
    import app

    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_EVAL_MAX_ROWS", "2")
    demo = app.build_app()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, server_port=None)
    yield url
    demo.close()
    mp.undo()


def test_train_export_and_download_the_gguf_zip(app_url, browser, tmp_path):  # noqa: F811
    page = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True).new_page()
    page.goto(app_url)
    _pass_module_test(page)
    page.get_by_role("tab", name="Training").click()
    page.locator("#train-load").click()
    expect(page.locator("#train-data-status")).to_contain_text("Loaded")
    page.get_by_text("Hyperparameters").click()
    _set_numbers(page, ((r"^Gradient accumulation", 1), (r"^Evaluate every", 1)))
    page.locator("#train-check").click()
    expect(page.locator("#train-plan")).to_contain_text("Plan:", timeout=120_000)
    _train(page, 1)

    page.locator("#publish-panel").get_by_text("Publish and export").first.click()
    # The size of each file is shown before anything is written.
    expect(page.locator("#publish-gguf-format")).to_contain_text(re.compile(r"f16 \(~\d+ MB\)"))
    expect(page.locator("#publish-gguf-format")).to_contain_text(re.compile(r"q8_0 \(~\d+ MB\)"))
    expect(page.locator("#publish-gguf-sizes")).to_contain_text("Each file before it is written")
    page.locator("#publish-gguf-export").click()
    expect(page.locator("#publish-gguf-status")).to_contain_text("left")  # progress with a time estimate
    expect(page.locator("#publish-gguf-status")).to_contain_text("Export ready", timeout=EXPORT_TIMEOUT_MS)
    expect(page.locator("#publish-gguf-push")).to_be_visible()

    link = page.locator("#publish-gguf-file a").first
    with page.expect_download() as info:
        link.click()
    path = tmp_path / "export.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        modelfile = zf.read(next(n for n in names if n.endswith("/Modelfile"))).decode()
    assert any(n.endswith("-q8_0.gguf") for n in names), names
    assert any(n.endswith("/README.md") for n in names)
    assert "FROM ./" in modelfile and "SYSTEM" in modelfile and "TEMPLATE" in modelfile
