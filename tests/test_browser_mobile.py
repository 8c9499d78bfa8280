"""A learner on a phone: the course at 390 × 844 with touch, in a real browser (issue 17).

The learner's path (open, read a lesson, answer a quiz, send a message in a
lab, open the module test) is driven with taps. On every tab the page must not
scroll sideways; the first view shows the title, the progress line and the
lesson's heading; every top-level destination is on screen without a menu.
The app is launched with its real CSS and theme (`app.launch_style()`), as on
the Space. Chromium and its launch options come from tests/test_browser.py.
"""
import pytest

from quizzes import grading
from test_browser import browser, sync_api  # noqa: F401  (browser is a fixture)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
MIN_TAP = 44  # px: the usual minimum for a thumb (Apple HIG 44 pt, Material 48 dp)

# This module's own `expect` with a longer wait: a page load or a round trip to
# the server can take more than playwright's default 5 s on a busy 2-core machine.
expect = sync_api.Expect()
expect.set_options(timeout=20_000)

# Words split across two lines inside a table cell (breaks at spaces, hyphens
# and slashes are fine): squeezed tables did this ("Wh/at chan/ges").
SPLIT_WORDS_JS = r"""(root) => {
  const split = [];
  for (const cell of root.querySelectorAll('td, th')) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (const m of node.data.matchAll(/[^\s\-\u2010-\u2015\/]+/g)) {
        const r = document.createRange();
        r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
        if ([...r.getClientRects()].filter(x => x.width > 0).length > 1) split.push(m[0]);
      }
    }
  }
  return split;
}"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app as deployed (CSS + theme), with no advisor key, its data in a temp dir."""
    import app

    mp = pytest.MonkeyPatch()
    mp.delenv("ANTHROPIC_API_KEY", raising=False)
    mp.setenv("FTLAB_DATA_DIR", str(tmp_path_factory.mktemp("ftlab_phone")))
    demo = app.build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.launch_style())
    yield url
    demo.close()
    mp.undo()


def _open(browser, url, viewport=PHONE):
    phone = viewport == PHONE
    context = browser.new_context(viewport=viewport, has_touch=phone, is_mobile=phone)
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#progress-summary")).to_contain_text("Your progress")
    return context, page


def _destinations() -> list[str]:
    from app import tab_label
    from lessons import load_lessons

    return [tab_label(lesson) for lesson in load_lessons()] + ["Module Test", "Training"]


def _box(locator) -> dict:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not rendered"
    return box


def _assert_in_first_view(locator, viewport=PHONE):
    box = _box(locator)
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], f"{locator} outside the first view: {box}"


def _assert_tappable(locator, what: str):
    box = _box(locator)
    assert box["height"] >= MIN_TAP and box["width"] >= MIN_TAP, f"{what} is too small to tap: {box}"


def _assert_no_sideways_scroll(page, where: str, viewport=PHONE):
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width == viewport["width"], f"{where}: the page scrolls sideways ({width} px wide)"


def _tab(page, name: str):
    return page.get_by_role("tab", name=name, exact=True)


def test_phone_first_view_and_every_tab_fits(app_url, browser):
    context, page = _open(browser, app_url)

    _assert_in_first_view(page.locator("#app-intro h1"))
    summary_line = page.locator("#progress-summary summary")
    expect(summary_line).to_contain_text("0/9")
    _assert_in_first_view(summary_line)
    assert _box(summary_line)["height"] <= 60, "the progress summary is more than one line"
    _assert_in_first_view(page.locator("#lesson1-header h1"))
    # Details on demand: a tap opens the per-lesson lines.
    details = page.locator("#progress-summary li").first
    expect(details).to_be_hidden()
    summary_line.tap()
    expect(details).to_be_visible()
    expect(details).to_contain_text("L1 not read")

    # Every top-level destination is on screen, labelled, tappable, without a "…" menu.
    expect(page.get_by_role("button", name="More tabs")).to_have_count(0)
    for name in _destinations():
        tab = _tab(page, name)
        expect(tab).to_be_visible()
        box = _box(tab)
        assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], f"tab {name!r} is off screen: {box}"
        _assert_tappable(tab, f"tab {name!r}")

    # No sideways scroll anywhere: each lesson's Lesson, Quiz and Lab, the module test, Training.
    for name in _destinations()[:4]:
        _tab(page, name).tap()
        for part in ("Lesson", "Quiz", "Lab"):
            _tab(page, part).locator("visible=true").tap()
            _assert_no_sideways_scroll(page, f"{name} / {part}")
    # The last lab has the most workbench tools: all of them visible, none in a menu.
    page.get_by_text("Workbench:").locator("visible=true").tap()
    for tool in ("diagnose training curve", "score predictions", "judge rubric", "adversarial cases", "monitoring plan"):
        expect(_tab(page, tool)).to_be_visible()
    _assert_no_sideways_scroll(page, "L4 / Lab / workbench")

    _tab(page, "Module Test").tap()
    expect(page.locator("#module_test-q15")).to_be_visible()
    _assert_no_sideways_scroll(page, "Module Test")

    _tab(page, "Training").tap()
    expect(page.locator("#training-phone-note")).to_contain_text("larger screen")
    _assert_no_sideways_scroll(page, "Training")
    # Its controls stack: the method is under the base model, not squeezed beside it.
    model, method = _box(page.locator("#train-model")), _box(page.locator("#train-method"))
    assert method["y"] >= model["y"] + model["height"], "Training's controls sit side by side on a phone"
    page.get_by_text("3 · Train", exact=True).click()  # the step's accordion (it opens itself after a check)
    _assert_tappable(page.locator("#train-start"), "Start training")
    _assert_no_sideways_scroll(page, "Training, step 3 open")
    context.close()


def test_phone_learner_path_by_touch(app_url, browser):
    """Read a lesson, take its quiz, ask the lab (no key: the offline reply), open the module test."""
    context, page = _open(browser, app_url)
    summary = page.locator("#progress-summary")

    # Wide tables scroll inside their own box and keep their words whole.
    table = page.locator("#lesson1-body table").first
    table.scroll_into_view_if_needed()
    assert page.evaluate(SPLIT_WORDS_JS, table.element_handle()) == []
    assert _box(table)["x"] + _box(table)["width"] <= PHONE["width"]

    read = page.locator("#lesson1-read")
    _assert_tappable(read, "I've read this lesson")
    read.tap()
    expect(summary).to_contain_text("1/9")
    expect(summary).to_contain_text("L1 ✓ read")

    _tab(page, "Quiz").locator("visible=true").tap()
    quiz = grading.load_quiz("lesson1")
    for n, q in enumerate(quiz["questions"], start=1):
        right = next(o["text"] for o in q["options"] if o["correct"])
        option = page.locator(f"#lesson1-q{n}").get_by_text(right, exact=True)
        _assert_tappable(option.locator("xpath=ancestor::label"), f"Q{n}'s option")
        option.tap()
        expect(page.locator(f"#lesson1-q{n}").get_by_label(right, exact=True)).to_be_checked()
    page.locator("#lesson1-submit").tap()
    expect(page.locator("#lesson1-feedback")).to_contain_text("Score: 4/4")
    expect(summary).to_contain_text("2/9")
    _assert_no_sideways_scroll(page, "quiz feedback")

    _tab(page, "Lab").locator("visible=true").tap()
    example = page.locator("#lab-strategy-example-0")
    _assert_tappable(example, "an example prompt")
    example.tap()
    expect(page.locator("#lab-strategy-input textarea")).not_to_have_value("")
    send = page.locator("#lab-strategy-send")
    _assert_tappable(send, "Send")
    send.tap()
    chat = page.locator("#lab-strategy-chat")
    expect(chat).to_contain_text("Offline calculator, not an AI reply")
    _assert_no_sideways_scroll(page, "lab after the reply")
    for reply_table in chat.locator("table").all():
        box = _box(reply_table)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], "a table in the reply leaves the page"
        assert page.evaluate(SPLIT_WORDS_JS, reply_table.element_handle()) == []

    _tab(page, "Module Test").tap()
    q1 = grading.load_quiz(grading.MODULE_TEST_ID)["questions"][0]
    pick = q1["options"][0]["text"]
    option = page.locator("#module_test-q1").get_by_text(pick, exact=True)
    _assert_tappable(option.locator("xpath=ancestor::label"), "a module test option")
    option.tap()
    expect(page.locator("#module_test-q1").get_by_label(pick, exact=True)).to_be_checked()
    _assert_tappable(page.locator("#module_test-submit"), "Submit answers")
    _assert_no_sideways_scroll(page, "Module Test")
    context.close()


def test_phone_reset_asks_first(app_url, browser):
    """Reset is small and secondary, and deletes nothing until the learner confirms."""
    context, page = _open(browser, app_url)
    summary = page.locator("#progress-summary")
    page.locator("#lesson1-read").tap()
    expect(summary).to_contain_text("L1 ✓ read")

    reset = page.locator("#reset-progress")
    assert _box(reset)["width"] < PHONE["width"] / 2, "Reset should be a small control"
    question = page.locator("#reset-confirm-row")
    expect(question).to_be_hidden()
    reset.tap()
    expect(question).to_contain_text("can't be undone")
    page.locator("#reset-cancel").tap()
    expect(question).to_be_hidden()
    page.reload()
    expect(summary).to_contain_text("L1 ✓ read")  # cancel kept it, also in the browser's storage

    page.locator("#reset-progress").tap()
    page.locator("#reset-confirm").tap()
    expect(summary).to_contain_text("L1 not read")
    expect(summary).to_contain_text("0/9")
    expect(question).to_be_hidden()
    page.reload()
    expect(summary).to_contain_text("L1 not read")
    context.close()


def test_desktop_keeps_one_row_of_tabs_and_a_short_header(app_url, browser):
    """At 1280 px nothing of the phone layout shows: one tab row, one progress line, no phone notes."""
    context, page = _open(browser, app_url, DESKTOP)
    tops = {round(_box(_tab(page, name))["y"]) for name in _destinations()}
    assert len(tops) == 1, f"the top-level tabs wrap onto {len(tops)} rows at 1280 px"
    assert _box(page.locator("#progress-summary summary"))["height"] <= 40
    _assert_in_first_view(page.locator("#lesson1-header h1"), DESKTOP)
    _tab(page, "Training").click()
    expect(page.locator("#training-phone-note")).to_be_hidden()
    _assert_no_sideways_scroll(page, "desktop Training", DESKTOP)
    context.close()
