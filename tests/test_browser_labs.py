"""Every lab workbench form, pressed exactly as the page shows it, gives a result.

Issue 16: optional number fields showed 0 and sent 0, and gradio's own range
check refused it before the tool ran, so three labs' main calculators failed
on their default form. A handler test cannot see that; only the page can.
"""
import pytest

from test_browser import app_url, browser  # noqa: F401  (module-scoped fixtures)

from app import tab_label
from labs.advisors import LESSON_TO_ADVISOR as ADVISOR_FOR_LESSON
from labs.tools import registry
from lessons import get_lesson

sync_api = pytest.importorskip("playwright.sync_api")

# What each tool's result starts with when it worked (its Markdown renderer's heading).
RESULT_HEADINGS = {
    "assess_use_case": "Recommendation",
    "critique_jsonl": "Dataset check",
    "recommend_lora_config": "LoRA recipe",
    "count_lora_params": "LoRA parameters",
    "diagnose_training_curve": "Diagnosis",
    "score_predictions": "Scores over",
    "judge_rubric": "Judge rubric",
    "adversarial_cases": "Adversarial test set",
    "monitoring_plan": "Monitoring plan",
}


def _visible(locator):
    return locator.filter(visible=True)


@pytest.mark.parametrize("lesson_id", list(ADVISOR_FOR_LESSON))
def test_every_workbench_form_runs_as_shown(app_url, browser, lesson_id):  # noqa: F811
    expect = sync_api.expect
    advisor_id = ADVISOR_FOR_LESSON[lesson_id]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(app_url)
    page.get_by_role("tab", name=tab_label(get_lesson(lesson_id))).click()
    _visible(page.get_by_role("tab", name="Lab")).click()
    page.get_by_text("Workbench: run this lab's calculators yourself").click()

    specs = registry.tools_for(advisor_id)
    assert specs, advisor_id
    for spec in specs:
        _visible(page.get_by_role("tab", name=spec.name.replace("_", " "))).click()
        _visible(page.get_by_role("button", name=f"Run {spec.name}")).click()
        result = page.locator(f"#wb-{advisor_id}-{spec.name}")
        expect(result).to_contain_text(RESULT_HEADINGS[spec.name], timeout=20_000)
        assert "less than minimum" not in result.inner_text()
    # A result the Training tab can use offers its hand-off button (labs/handoff.py).
    from labs.handoff import APPLICABLE
    if any(spec.name in APPLICABLE for spec in specs):
        expect(page.locator(f"#lab-{advisor_id}-apply")).to_be_visible()
    # Nothing on the page complained either (gradio shows range errors as toasts).
    expect(page.locator(".toast-body")).to_have_count(0)
    page.context.close()


def test_module_test_options_are_one_per_line_for_every_question(app_url, browser):  # noqa: F811
    from quizzes.grading import MODULE_TEST_ID, load_quiz

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="Module Test").click()
    for number in range(1, len(load_quiz(MODULE_TEST_ID)["questions"]) + 1):
        labels = page.locator(f"#{MODULE_TEST_ID}-q{number} label")
        sync_api.expect(labels).to_have_count(4)
        lefts = {round(labels.nth(i).bounding_box()["x"]) for i in range(4)}
        assert len(lefts) == 1, f"question {number}: options laid out in columns at x={sorted(lefts)}"
    page.context.close()
