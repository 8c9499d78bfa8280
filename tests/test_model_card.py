"""The published model card (training/hub/model_card.py), issue 23 item 10.

The usage example sent "Hello!" without the system prompt the adapter was trained
with (against lesson 2's same-format rule); the card had no intended use or
limitations, and no "not for clinical use" note for the clinical built-in sets.

    .venv/bin/python -m pytest -q tests/test_model_card.py   (about 10 s: builds a tiny adapter)
"""
from __future__ import annotations

import json
import re

import pytest

from test_publish_support import make_run_dir
from training.hub.model_card import CLINICAL_BUILTINS, YOUR_INPUT, render_model_card

SOAP_SYSTEM = "Convert the clinical note to SOAP JSON. Use null for anything not stated. JSON only."
SOAP_NOTE = "S: 38-year-old F, sore throat, x4 days\n- fever\nO: Temp 39.0°C\nA: pharyngitis\nP: rest"
REPO = "learner/soap-adapter"


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory):
    """A run on a learner's Hub dataset (the publish tests' fixture)."""
    return make_run_dir(tmp_path_factory.mktemp("card-hub"), hub_dataset="acme/support-tickets")


@pytest.fixture(scope="module")
def soap_run(tmp_path_factory, hub_run):
    """The same adapter, recorded as trained on the built-in clinical_soap set."""
    root = tmp_path_factory.mktemp("card-soap")
    run_dir = make_run_dir(root, base_dir=hub_run.parent.parent / "base")
    run = json.loads((run_dir / "run.json").read_text())
    run["config"]["dataset"] = {"name": "clinical_soap", "source": "builtin", "hub_id": None,
                                "fingerprint": {"sha256": "cd" * 32, "rows": 288, "bytes": 99}}
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "data").mkdir(exist_ok=True)
    row = {"messages": [{"role": "system", "content": SOAP_SYSTEM}, {"role": "user", "content": SOAP_NOTE},
                        {"role": "assistant", "content": '{"assessment": "pharyngitis"}'}]}
    (run_dir / "data" / "test.jsonl").write_text(json.dumps(row) + "\n")
    return run_dir


def _usage_code(card: str) -> str:
    section = card.split("## How to use it", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_usage_example_asks_in_the_trained_format_with_its_system_prompt(soap_run):
    card = render_model_card(soap_run, REPO, has_loss_png=False)
    code = _usage_code(card)
    assert "Hello!" not in card
    namespace: dict = {}
    exec(code.split("base = ")[0] + code[code.index("messages = "):code.index("inputs = ")], namespace)
    assert namespace["messages"] == [{"role": "system", "content": SOAP_SYSTEM},
                                     {"role": "user", "content": SOAP_NOTE}]
    assert "max_new_tokens=512" in code


def test_clinical_sets_carry_a_not_for_clinical_use_note(soap_run, hub_run):
    from training.data.loading import BUILTIN

    assert CLINICAL_BUILTINS == set(BUILTIN), "decide for every built-in set whether it is clinical"
    card = render_model_card(soap_run, REPO, has_loss_png=False)
    assert "**Not for clinical use.**" in card and "synthetic clinical notes" in card
    assert card.index("Not for clinical use") < card.index("## Training configuration")
    assert "Not for clinical use" not in render_model_card(hub_run, REPO, has_loss_png=False)


def test_every_card_states_intended_use_and_limitations(soap_run, hub_run):
    for run_dir, rows, n in ((soap_run, "288 rows", "4 held-out examples"), (hub_run, "12 rows", "4 held-out")):
        card = render_model_card(run_dir, REPO, has_loss_png=False)
        section = card.split("## Intended use and limitations", 1)[1].split("\n## ", 1)[0]
        for needle in (rows, n, "format it was trained on", "safety", "licence (`apache-2.0`)"):
            assert needle in section, (run_dir, needle)


def test_a_learners_own_rows_stay_out_of_the_usage_example(hub_run):
    code = _usage_code(render_model_card(hub_run, REPO, has_loss_png=False))
    assert YOUR_INPUT in code and "give me item" not in code


def test_the_usage_example_runs_against_the_adapter(soap_run):
    """The card's code, with the Hub ids pointed at the local base and adapter."""
    base_dir = json.loads((soap_run / "run.json").read_text())["model"]["path"]
    code = (_usage_code(render_model_card(soap_run, REPO, has_loss_png=False))
            .replace('"HuggingFaceTB/SmolLM2-135M-Instruct"', repr(str(base_dir)))
            .replace(f'"{REPO}"', repr(str(soap_run / "adapter")))
            .replace("max_new_tokens=512", "max_new_tokens=4"))
    namespace: dict = {}
    exec(compile(code, "model-card-usage", "exec"), namespace)
    assert namespace["output"].shape[1] > namespace["inputs"]["input_ids"].shape[1]
