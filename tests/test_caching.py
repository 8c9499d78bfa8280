"""Advisor requests put the tools + system prompt in Anthropic's prompt cache and read it back.

Through the real anthropic client against the fake API, which accounts for caching the
way the real one does (prefix order tools -> system -> messages, breakpoints, minimum
cacheable length). What the operator of the Space notices is the bill: the second turn
must read the stable prefix from cache instead of paying for it again, and the learner
must get the same answers.
"""
from __future__ import annotations

import pytest

from fakes.anthropic_server import FakeAnthropic, MIN_CACHEABLE_TOKENS
from labs import budget
from labs.chat import ChatSettings, stream_reply

KEY = "sk-ant-test-cache"


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def _settings(url: str) -> ChatSettings:
    return ChatSettings(api_key=KEY, base_url=url, max_retries=0,
                        limits=budget.BudgetLimits(per_minute=0, per_day=0, global_per_day=0))


def _turn(fake, history, text):
    *_, final = stream_reply("lora", history, text, settings=_settings(fake.url))
    return final


def test_second_turn_and_tool_round_read_the_stable_prefix_from_cache(fake):
    fake.add_text("Rank 8 is a good start.")
    fake.add_tool_use("count_lora_params", {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": "qv"})
    fake.add_text("That is under one percent of the weights.")
    history = _turn(fake, [], "Which rank should I use?")
    history = _turn(fake, history, "How many parameters does r=8 on q,v train?")
    assert history[-1] == {"role": "assistant", "content": "That is under one percent of the weights."}

    first, tool_call, after_tool = fake.usages
    assert first["cache_read_input_tokens"] == 0
    assert first["cache_creation_input_tokens"] >= MIN_CACHEABLE_TOKENS  # tools + system written once
    for later in (tool_call, after_tool):
        assert later["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
        assert later["cache_creation_input_tokens"] == 0
        assert later["input_tokens"] < later["cache_read_input_tokens"] / 3  # only the conversation is paid in full
    # Breakpoints sit on the last tool and the system block, nowhere in the messages.
    body = fake.message_requests[-1].body
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in t for t in body["tools"][:-1])


def test_the_fake_caches_only_marked_prefixes_long_enough_and_identical(fake):
    import anthropic

    client = anthropic.Anthropic(api_key=KEY, base_url=fake.url, max_retries=0)
    long = "Facts about LoRA. " * 400                      # well over the minimum
    ask = lambda system, text="hi": client.messages.create(  # noqa: E731
        model="claude-sonnet-5-5", max_tokens=16, system=system, messages=[{"role": "user", "content": text}]).usage
    marked = [{"type": "text", "text": long, "cache_control": {"type": "ephemeral"}}]
    assert ask(long).cache_creation_input_tokens == 0                 # no breakpoint: nothing cached
    assert ask(long).cache_read_input_tokens == 0
    assert ask(marked).cache_creation_input_tokens > MIN_CACHEABLE_TOKENS
    u = ask(marked, "a different question")
    assert u.cache_read_input_tokens > MIN_CACHEABLE_TOKENS and u.cache_creation_input_tokens == 0
    changed = [{**marked[0], "text": long + "!"}]
    assert ask(changed).cache_read_input_tokens == 0                  # prefix differs: a new write
    short = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert ask(short).cache_creation_input_tokens == 0 and ask(short).cache_read_input_tokens == 0
