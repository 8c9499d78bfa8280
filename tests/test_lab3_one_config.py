"""Lab 3 keeps no second config (issue 22): its ranges, defaults, target table and DPO
rate are the run config's, and the course states the one DPO rate (issue 23, item 3)."""
from __future__ import annotations

import inspect
import re

import pytest

from labs.tools import lora_config
from labs.tools.lora_config import count_lora_params, recommend_lora_config
from training.run import config


def test_the_target_table_is_the_run_configs():
    assert {k: list(v) for k, v in lora_config.TARGET_SETS.items()} == config.TARGET_MODULE_CHOICES
    source = inspect.getsource(lora_config)
    assert '"qv": (' not in source and "max_seq_length" not in source and "5e-6" not in source


@pytest.mark.parametrize("rank", [8, 64, 128])
def test_the_dpo_rate_and_beta_are_the_run_configs_whatever_the_rank(rank):
    rec = recommend_lora_config("SmolLM2-135M", 3000, "preference", 24, lora_r=rank)
    assert rec["learning_rate"] == config.DPO_DEFAULTS["learning_rate"]
    assert rec["beta"] == config.DPO_DEFAULTS["beta"]
    assert f"learning_rate={config.DPO_DEFAULTS['learning_rate']:g}," in rec["code"]


def test_defaults_are_the_run_configs():
    rec = recommend_lora_config("SmolLM2-135M", 2000, "format", 24)
    for name in ("max_length", "lora_dropout", "warmup_ratio", "lr_scheduler_type", "seed"):
        assert rec[name] == config.DEFAULTS[name], name
    assert rec["learning_rate"] == config.DEFAULTS["learning_rate"]


def test_a_rank_or_length_the_tab_refuses_is_refused_in_the_configs_words():
    rank_msg = re.escape(f"**LoRA rank r** must be {config.range_text('lora_r')}")
    with pytest.raises(ValueError, match=rank_msg):
        recommend_lora_config("SmolLM2-135M", 2000, "format", 24, lora_r=512)
    with pytest.raises(ValueError, match=rank_msg):
        count_lora_params("SmolLM2-135M", 300, "qv")
    with pytest.raises(ValueError, match=re.escape(f"**Max length** must be {config.range_text('max_length')}")):
        recommend_lora_config("SmolLM2-135M", 2000, "format", 24, max_length=8192)
    # The schemas the advisor and the workbench read carry the same ranges.
    specs = {s.name: s.input_schema["properties"] for s in lora_config.SPECS}
    assert specs["recommend_lora_config"]["lora_r"]["maximum"] == config.range_hi("lora_r") == 256
    assert specs["count_lora_params"]["lora_r"]["maximum"] == 256
    length = specs["recommend_lora_config"]["max_length"]
    assert (length["minimum"], length["maximum"]) == (config.MIN_MAX_LENGTH, config.range_hi("max_length"))


def test_the_course_states_the_one_dpo_rate():
    """Lesson 3 and the LoRA advisor's facts say the Training tab's DPO rate, not the old
    "5e-6 to 1e-5" (which disagreed with the tab's default). Course text is applied by the lead."""
    from labs.advisors import ADVISORS
    from lessons import get_lesson

    rate = f"{config.DPO_DEFAULTS['learning_rate']:g}".replace("e-0", "e-")  # 5e-05 is written 5e-5
    for name, text in (("lesson 3", get_lesson("lesson3").body), ("LoRA advisor", ADVISORS["lora"].system_prompt)):
        assert "5e-6 to 1e-5" not in text, name
        assert rate in text, f"{name} does not state the DPO rate {rate}"
