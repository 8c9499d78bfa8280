"""Every advisor is complete (issue 22): adding a fifth one fails here, naming what it lacks,
until it has its lesson, its quiz, example inputs for every tool's form and an offline planner.
docs/architecture.md ("Adding a fifth advisor") lists the files that takes."""
from __future__ import annotations

import dataclasses

import pytest

from labs.advisors import ADVISORS, Advisor


def _choices(schema: dict) -> bool:
    return "enum" in schema or any("enum" in sub for sub in schema.get("anyOf", []))


def advisor_gaps(advisor: Advisor) -> list[str]:
    """What this advisor lacks, each as a sentence naming the advisor and the missing piece."""
    from core.course import lesson_quiz_ids
    from labs.tools import examples, registry
    from lessons import get_lesson

    name, gaps = f"advisor {advisor.id!r}", []
    try:
        get_lesson(advisor.lesson)
    except KeyError:
        gaps.append(f"{name}: no lesson {advisor.lesson!r} (add lessons/{advisor.lesson}.md)")
    if advisor.lesson not in lesson_quiz_ids():
        gaps.append(f"{name}: no quiz for {advisor.lesson!r} (add quizzes/data/{advisor.lesson}.json)")
    for tool in advisor.tools:
        if tool not in registry.TOOLS:
            gaps.append(f"{name}: tool {tool!r} is not declared (a SPECS entry in a module listed in "
                        "labs/tools/registry.py TOOL_MODULES)")
            continue
        shown, props = examples.initial_values(tool), registry.TOOLS[tool].input_schema.get("properties", {})
        # A required field works as shown with an example, the tool's default, or a choice list
        # (its dropdown shows the first choice: labs/ui.py).
        missing = [f for f in registry.TOOLS[tool].input_schema.get("required", [])
                   if f not in shown and not _choices(props.get(f, {}))]
        if missing:
            gaps.append(f"{name}: tool {tool!r} has no example input for {', '.join(missing)} "
                        "(add it to labs/tools/examples.py EXAMPLES, or give the argument a default)")
    if not callable(advisor.offline_plan):
        gaps.append(f"{name}: no offline planner (Advisor.offline_plan, from labs/offline.py)")
    else:
        for text in advisor.examples:
            stray = [step[0] for step in advisor.offline_plan(text) if step[0] not in advisor.tools]
            if stray:
                gaps.append(f"{name}: its offline planner calls {stray} for {text[:40]!r}, not among its tools")
    if not advisor.offline_hint:
        gaps.append(f"{name}: no offline_hint (what to say without a key when the planner finds nothing)")
    return gaps


@pytest.mark.parametrize("advisor_id", list(ADVISORS))
def test_every_advisor_has_its_lesson_quiz_examples_and_offline_planner(advisor_id):
    gaps = advisor_gaps(ADVISORS[advisor_id])
    assert not gaps, "\n".join(gaps)


def test_a_fifth_advisor_without_its_pieces_is_named_with_what_it_lacks():
    fifth = dataclasses.replace(ADVISORS["eval"], id="deploy", lesson="lesson5",
                                tools=("score_predictions", "serve_model"), offline_plan=None)
    gaps = advisor_gaps(fifth)
    assert gaps == [
        "advisor 'deploy': no lesson 'lesson5' (add lessons/lesson5.md)",
        "advisor 'deploy': no quiz for 'lesson5' (add quizzes/data/lesson5.json)",
        "advisor 'deploy': tool 'serve_model' is not declared (a SPECS entry in a module listed in "
        "labs/tools/registry.py TOOL_MODULES)",
        "advisor 'deploy': no offline planner (Advisor.offline_plan, from labs/offline.py)"]


def test_a_tool_without_an_example_for_a_required_field_is_named(monkeypatch):
    from labs.tools import examples

    monkeypatch.delitem(examples.EXAMPLES, "judge_rubric")
    assert advisor_gaps(ADVISORS["eval"]) == [
        "advisor 'eval': tool 'judge_rubric' has no example input for task_description "
        "(add it to labs/tools/examples.py EXAMPLES, or give the argument a default)"]
