"""The learner's own run, diagnosed by the Lab 3 curve tool with one click."""
from training.workflow import handoffs
from training.run import runs


def test_diagnose_reads_the_runs_own_log(ftlab_data_dir):
    assert handoffs.diagnose_run(None).startswith("Start a run")
    rid = runs.create_run({"method": "sft"})
    runs.append_log(rid, [{"step": 1, "loss": 2.0, "elapsed": 1.0}])
    assert "Only 1 training loss value so far" in handoffs.diagnose_run(rid)
    # Train loss keeps falling while eval loss turns up after step 3: overfitting, best step 3.
    log = [{"step": s, "loss": 2.0 - 0.3 * s} for s in range(2, 7)]
    log += [{"step": s, "eval_loss": v} for s, v in ((2, 1.9), (3, 1.6), (4, 1.7), (5, 1.9), (6, 2.2))]
    runs.append_log(rid, log)
    md = handoffs.diagnose_run(rid)
    assert "Overfitting" in md and "step 3" in md


def test_lab3_recommendation_maps_to_run_settings_and_a_runnable_model():
    from labs.tools.lora_config import recommend_lora_config

    small = recommend_lora_config("SmolLM2-135M", 500, "format", 24)
    values, model, notes = handoffs.lab3_settings(small)
    assert model == "HuggingFaceTB/SmolLM2-135M-Instruct" and notes == []
    assert values["lora_r"] == small["lora_r"] and values["lora_alpha"] == small["lora_alpha"]
    assert values["lora_target_modules"] == small["lora_target_modules"] and values["gradient_accumulation_steps"] == small["gradient_accumulation_steps"]
    big = recommend_lora_config("Mistral-7B", 3000, "format", 24)
    values, model, notes = handoffs.lab3_settings(big)
    assert model == "Qwen/Qwen2.5-0.5B-Instruct"  # the largest model the tab offers
    assert "too big to train in this app" in notes[0] and values["learning_rate"] == big["learning_rate"]


def test_lab1_assessment_preselects_method_and_a_matching_builtin_set():
    from labs.tools import strategy

    common = dict(requests_per_day=20_000, knowledge_change="static", privacy="none", latency="relaxed",
                  examples_on_hand=1_500)
    method, key, note = handoffs.lab1_settings(strategy.assess_use_case(format_strictness="strict", **common))
    assert (method, key) == ("sft", "clinical_soap") and "SFT" in note
    prompting = strategy.assess_use_case(format_strictness="loose", **dict(common, requests_per_day=100))
    assert handoffs.lab1_settings(prompting)[:2] == (None, None)
    dpo = handoffs.lab1_settings({"fine_tune": True, "use_dpo": True, "recommendation": "LoRA SFT + DPO"})
    assert dpo[:2] == ("dpo", "preference")


# ------------------------------------------------------------------ one click from a lab to the tab

import gradio as gr  # noqa: E402
import pytest  # noqa: E402

from labs import handoff as lab_handoff  # noqa: E402
from training.run import config  # noqa: E402


@pytest.fixture
def wired():
    """The four labs and the Training tab built and wired as app.py does; the apply handler of each lab."""
    from labs.ui import build_lab
    from training.views.handoff_ui import _applier, wire_handoffs
    from training.views.tab import build_training_tab

    with gr.Blocks():
        with gr.Tabs() as nav:
            labs, inner = {}, {}
            for n, aid in enumerate(("strategy", "dataset", "lora", "eval"), 1):
                with gr.Tab(f"L{n}", id=f"lesson{n}"):
                    with gr.Tabs() as inner[f"lesson{n}"]:
                        with gr.Tab("Lab", id=f"lesson{n}-lab"):
                            labs[aid] = build_lab(aid)
            with gr.Tab("Training", id="training"):
                parts = build_training_tab(None)
                parts["jobs_model"] = gr.Textbox()  # the Jobs panel's model field (training/views/jobs_ui.py)
        wire_handoffs(labs, parts, nav, inner)
    return labs, parts, nav, _applier


def _apply(wired, aid, h, method="sft", dataset=None, values=None):
    labs, parts, nav, applier = wired
    status = labs[aid]["handoff"].status
    values = values or config.defaults("cpu")
    out = applier(parts, nav, status)(h, {}, method, dataset, None, *[values[k] for k in config.HP_NAMES])
    return out, status, parts, nav


def test_lab3_config_applies_every_field_with_its_provenance(wired, ftlab_data_dir):
    from labs.tools.lora_config import recommend_lora_config

    rec = recommend_lora_config("SmolLM2-135M", 500, "format", 24, max_length=512)
    h = lab_handoff.capture("lora", "recommend_lora_config", {}, rec, "workbench")
    out, status, parts, nav = _apply(wired, "lora", h)
    hp = parts["hyperparameters"]
    assert out[hp["lora_r"]] == rec["lora_r"] and out[hp["lora_alpha"]] == rec["lora_alpha"]
    assert out[hp["lora_target_modules"]] == rec["lora_target_modules"] and out[hp["max_length"]] == 512
    assert out[hp["per_device_train_batch_size"]] == rec["per_device_train_batch_size"] and out[hp["learning_rate"]] == rec["learning_rate"]
    assert out[parts["model"]] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert f"Hyperparameters from Lab 3 (workbench), {h['at']}" in out[parts["provenance"]]
    assert out[nav].selected == "training" and out[status].startswith("✅")


def test_a_model_too_big_for_the_tab_trains_the_nearest_here_and_goes_to_jobs_in_full(wired, ftlab_data_dir):
    from labs.tools.lora_config import recommend_lora_config

    rec = recommend_lora_config("Mistral-7B", 3000, "format", 24, max_length=512)
    out, status, parts, _ = _apply(wired, "lora", lab_handoff.capture("lora", "recommend_lora_config", {}, rec, "chat"))
    assert out[parts["model"]] == "Qwen/Qwen2.5-0.5B-Instruct" and "too big to train in this app" in out[status]
    assert out[parts["jobs_model"]] == rec["hub_id"] and rec["hub_id"] in out[status]


def test_a_config_out_of_range_is_refused_naming_the_field_and_range(wired, ftlab_data_dir):
    from labs.tools.lora_config import recommend_lora_config

    # Lab 3 itself refuses 8192 now (the config's range); a result kept from before, or edited, is still
    # checked when it is applied.
    rec = {**recommend_lora_config("SmolLM2-135M", 500, "format", 24), "max_length": 8192}
    out, status, parts, _ = _apply(wired, "lora", lab_handoff.capture("lora", "recommend_lora_config", {}, rec, "chat"))
    assert list(out) == [status]  # nothing in the Training tab changes
    assert "**Max length**" in out[status] and config.range_text("max_length") in out[status]
    assert "max_length = 8192" in out[status]


def test_lab1_strategy_preselects_method_and_loads_the_matching_set(wired, ftlab_data_dir):
    from labs.tools import strategy

    common = dict(requests_per_day=20_000, knowledge_change="static", privacy="none", latency="relaxed",
                  examples_on_hand=1_500)
    result = strategy.assess_use_case(format_strictness="strict", **common)
    out, status, parts, nav = _apply(wired, "strategy", lab_handoff.capture("strategy", "assess_use_case", {}, result, "chat"))
    assert out[parts["method"]] == "sft" and out[parts["builtin"]] == "clinical_soap"
    assert len(out[parts["dataset"]]["train"]) > 100 and out[parts["step_check"]].open is True
    assert "Method and data from Lab 1 (chat)" in out[parts["provenance"]]
    prompting = strategy.assess_use_case(format_strictness="loose", **dict(common, requests_per_day=100))
    out, status, _, _ = _apply(wired, "strategy", lab_handoff.capture("strategy", "assess_use_case", {}, prompting, "chat"))
    assert list(out) == [status] and "nothing to train" in out[status]


def test_nothing_to_apply_says_so(wired):
    out, status, _, _ = _apply(wired, "lora", None)
    assert list(out) == [status] and "Nothing to apply yet" in out[status]


def test_the_chat_hands_over_the_tool_result_the_advisor_used(monkeypatch):
    """Offline (no key) the lab's calculator answers; its result becomes the lab's hand-off."""
    from labs.ui import _chat_handlers

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    send, _, _ = _chat_handlers("lora")
    msg = "SmolLM2-135M, 800 examples of a JSON format task, one 24 GB GPU"
    *_, last = send([], msg, None, None)
    history, _, _, h = last
    assert h is not None and h["kind"] == "lora_config" and h["via"] == "chat"
    assert h["result"]["lora_r"] >= 1 and "Apply this configuration" in lab_handoff.button_label(["recommend_lora_config"])
    assert "r=" in lab_handoff.describe(h) and h["at"] in lab_handoff.describe(h)


def test_the_lora_advisor_gets_the_run_bounded(ftlab_data_dir):
    assert handoffs.run_brief(None) is None
    rid = runs.create_run(config.validate({}, "sft")[0].to_dict(), total_steps=600)
    runs.append_log(rid, [{"step": s, "loss": 3 - s / 400} for s in range(1, 601)]
                    + [{"step": s, "eval_loss": 3 - s / 500} for s in range(50, 601, 50)])
    brief = handoffs.run_brief(rid)
    assert len(brief) <= handoffs.MAX_BRIEF_CHARS and "r=16" in brief
    train_points = brief.split("Train loss (step: loss): ")[1].split("\n")[0].split(", ")
    assert len(train_points) == handoffs.MAX_BRIEF_POINTS and train_points[-1].startswith("600:")


def _lab2_paste() -> str:
    """30 trainable rows, an exact duplicate, a near-duplicate and a row with an empty answer."""
    import json
    import random

    rng = random.Random(3)
    say = lambda n: " ".join(f"w{rng.randint(1000, 9999)}" for _ in range(n))  # noqa: E731
    rows = [{"messages": [{"role": "user", "content": say(8)}, {"role": "assistant", "content": say(6)}]}
            for _ in range(30)]
    near = json.loads(json.dumps(rows[5]))
    near["messages"][1]["content"] += " ok"
    empty = {"messages": [{"role": "user", "content": say(8)}, {"role": "assistant", "content": ""}]}
    return "\n".join(json.dumps(r) for r in [*rows, rows[2], near, empty])


def _critic_handoff(text: str) -> dict:
    from labs.tools import registry

    result, error = registry.execute("critique_jsonl", {"text": text})
    assert error is None
    return lab_handoff.capture("dataset", "critique_jsonl", {"text": text}, result, "chat")


def test_lab2_fixes_then_sends_the_dataset_with_counts(wired, ftlab_data_dir):
    from training.views.handoff_ui import fix_handler

    h = _critic_handoff(_lab2_paste())
    out, status, parts, nav = _apply(wired, "dataset", h)
    assert list(out) == [status] and "Not sent" in out[status]  # the empty answer cannot train
    fixed, note = fix_handler(h)
    assert "33 rows → 30 rows" in note and fixed["fixed_rows"] == 30
    assert "after fixes 33 → 30 rows" in lab_handoff.describe(fixed)
    out, status, parts, nav = _apply(wired, "dataset", fixed)
    d = out[parts["dataset"]]
    assert len(d["train"]) + len(d["validation"]) + len(d["test"]) == 30
    assert "From Lab 2" in out[parts["data_md"]] and "Data from Lab 2 (chat)" in out[parts["provenance"]]
    assert out[parts["step_check"]].open is True and out[nav].selected == "training"


def test_a_critic_result_with_blocking_errors_cannot_be_sent(wired, ftlab_data_dir):
    from training.views.handoff_ui import fix_handler

    h = _critic_handoff('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                        "not json at all\n")
    out, status, _, _ = _apply(wired, "dataset", h)
    assert list(out) == [status] and out[status].startswith("⚠️ Not sent")
    fixed, note = fix_handler(h)
    assert note.startswith("⚠️") and "at least 10" in note
    assert fixed == {"__type__": "update"}  # gr.skip(): the hand-off stays as it was


def test_lab4_cases_become_the_runs_evaluation_and_are_switched_on(wired, ftlab_data_dir):
    from labs.tools import registry

    result, error = registry.execute("adversarial_cases", {"task_description": "Extract drug and dose as JSON"})
    assert error is None
    out, status, parts, nav = _apply(wired, "eval", lab_handoff.capture("eval", "adversarial_cases", {}, result, "workbench"))
    design = out[parts["eval_design"]]
    assert design["cases"] and out[parts["eval_cases"]] is True and out[status].startswith("✅")
    assert "Evaluation from Lab 4 (workbench)" in out[parts["provenance"]]
    out, status, _, _ = _apply(wired, "eval", lab_handoff.capture("eval", "adversarial_cases", {}, {"x": 1}, "chat"))
    assert list(out) == [status] and "Not applied" in out[status]


# ------------------------------------------------------------------ the hand-off registry (issue 22)

def test_every_kind_is_declared_once_with_tools_that_exist_and_an_applier_that_resolves():
    from labs.tools import registry

    for kind in lab_handoff.KINDS.values():
        assert set(kind.buttons) <= set(registry.TOOLS), f"{kind.name}: a tool it takes does not exist"
        assert callable(handoffs.registered(kind.apply)), f"{kind.name}: {kind.apply} does not resolve"
        if kind.fix:
            assert callable(handoffs.registered(kind.fix[1])), f"{kind.name}: {kind.fix[1]} does not resolve"
    tools = [t for k in lab_handoff.KINDS.values() for t in k.buttons]
    assert len(tools) == len(set(tools)), "a tool is taken by two kinds"


def fake_apply(h, tab):
    """The applier of the fake kind below (named by its declaration, as the real ones are)."""
    return handoffs.Applied(ok=True, message=f"fake applied r={tab.current.get('lora_r')}",
                            settings={"lora_r": h["result"]["rank"]}, origin=("hyperparameters", "Lab 9"))


def test_a_kind_added_to_the_registry_alone_is_captured_described_labelled_and_applied(monkeypatch, wired):
    """Adding a kind is one declaration: capture, describe, the button label, the apply path
    (through the Training tab's Gradio handler) follow without another file changing."""
    fake = lab_handoff.Kind("fake_rank", 9, {"count_lora_params": "Send the rank →"},
                            lambda h: f"rank {h['result']['rank']}", f"{__name__}:fake_apply")
    monkeypatch.setitem(lab_handoff.KINDS, "fake_rank", fake)
    assert "count_lora_params" in lab_handoff.APPLICABLE
    assert lab_handoff.button_label(["count_lora_params", "recommend_lora_config"]) == "Send the rank →"
    h = lab_handoff.capture("lora", "count_lora_params", {}, {"rank": 4}, "workbench")
    assert h["kind"] == "fake_rank" and h["lab"] == 9
    assert "rank 4" in lab_handoff.describe(h)
    applied = handoffs.apply_handoff(h, {"lora_r": 16}, "sft", "cpu")
    assert applied.ok and applied.message == "fake applied r=16"
    out, status, parts, nav = _apply(wired, "lora", h)
    assert out[parts["hyperparameters"]["lora_r"]] == 4 and out[status] == "✅ fake applied r=16"
    monkeypatch.delitem(lab_handoff.KINDS, "fake_rank")
    assert lab_handoff.capture("lora", "count_lora_params", {}, {"rank": 4}, "workbench") is None


def test_no_kind_string_is_matched_outside_the_registry():
    """The four places that handle hand-offs read KINDS; none compares a kind name itself."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    names = set(lab_handoff.KINDS)
    for rel in ("labs/handoff.py", "labs/ui.py", "training/workflow/handoffs.py", "training/views/handoff_ui.py"):
        for node in ast.walk(ast.parse((root / rel).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                consts = [c.value for side in sides for c in ast.walk(side) if isinstance(c, ast.Constant)
                          and not isinstance(side, ast.Call)]
                assert not names & set(consts), f"{rel}:{node.lineno} compares a hand-off kind: use labs.handoff.KINDS"
