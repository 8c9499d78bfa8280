"""Every advisor budget and input cap, hit through the app's handlers: each gives its own
message (saying when a budget resets) and the session stays usable afterwards.

Limits come from environment variables set before the handler runs (they are read
per call); the advisor calls go to the fake Anthropic server; time is a fake clock.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fakes.anthropic_server import FakeAnthropic
from labs import budget
from labs.chat import stream_reply

KEY = "sk-ant-limits-SECRET-2468"
NOON = datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc).timestamp()
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def fake(monkeypatch, tmp_path):
    with FakeAnthropic(default_text="(advisor reply)") as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("FTLAB_CHAT_BACKOFF_S", "0.01")
        monkeypatch.setenv("FTLAB_DATA_DIR", str(tmp_path / "data"))
        yield server


def ask(text, history=None, session=None, counter=None, at=NOON):
    out = None
    for out in stream_reply("strategy", history or [], text, session=session, counter=counter, clock=lambda: at):
        pass
    return out


def last(history) -> str:
    return history[-1]["content"]


def test_per_minute_limit_says_when_and_the_next_minute_works(fake, monkeypatch):
    monkeypatch.setenv("FTLAB_CHAT_PER_MINUTE", "2")
    s = budget.new_session_state()
    h = ask("one", session=s)
    h = ask("two", h, session=s, at=NOON + 10)
    refused = ask("three", h, session=s, at=NOON + 20)
    assert "last minute" in last(refused) and "send again in 40 s" in last(refused)
    assert [m["content"] for m in refused if m["role"] == "user"] == ["one", "two", "three"]  # nothing lost
    assert len(fake.message_requests) == 2  # the refused message cost nothing
    ok = ask("three", h, session=s, at=NOON + 61)
    assert last(ok) == "(advisor reply)"


def test_per_day_limit_resets_at_midnight_utc(fake, monkeypatch):
    monkeypatch.setenv("FTLAB_CHAT_PER_DAY", "1")
    s = budget.new_session_state()
    ask("one", session=s)
    refused = ask("two", session=s, at=NOON + 120)
    assert "today's 1 advisor messages" in last(refused) and "00:00 UTC (in 11 h 58 min)" in last(refused)
    assert "workbench" in last(refused)
    assert last(ask("two", session=s, at=NOON + 12 * 3600 + 60)) == "(advisor reply)"  # next UTC day


def test_global_daily_cap_covers_all_sessions(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("FTLAB_CHAT_GLOBAL_PER_DAY", "2")
    counter = budget.GlobalCounter(tmp_path / "budget.json")
    ask("a", session=budget.new_session_state(), counter=counter)
    ask("b", session=budget.new_session_state(), counter=counter)
    refused = ask("c", session=budget.new_session_state(), counter=counter)
    assert "for all learners together" in last(refused) and "resets at 00:00 UTC" in last(refused)
    assert "duplicate the Space" in last(refused)
    # A restart keeps the day's count (it is on disk).
    again = ask("c", session=budget.new_session_state(), counter=budget.GlobalCounter(tmp_path / "budget.json"))
    assert "for all learners together" in last(again)
    # Setting the cap to 0 (an owner with their own key) lifts it.
    monkeypatch.setenv("FTLAB_CHAT_GLOBAL_PER_DAY", "0")
    assert last(ask("c", session=budget.new_session_state(), counter=counter)) == "(advisor reply)"


def test_max_output_tokens_and_tool_rounds_are_sent_and_enforced(fake, monkeypatch):
    monkeypatch.setenv("FTLAB_CHAT_MAX_TOKENS", "300")
    monkeypatch.setenv("FTLAB_CHAT_MAX_TOOL_ROUNDS", "1")
    tool_input = {"format_strictness": "strict", "requests_per_day": 500, "knowledge_change": "rarely"}
    fake.add_tool_use("assess_use_case", tool_input)
    fake.add_tool_use("assess_use_case", tool_input)  # would loop again if allowed
    h = ask("Should I fine-tune?", session=budget.new_session_state())
    reqs = fake.message_requests
    assert all(r.body["max_tokens"] == 300 for r in reqs)
    # After one tool round the next request forbids tools: the model must answer.
    assert reqs[1].body.get("tool_choice") == {"type": "none"}
    assert len(reqs) == 2  # never a third round on the owner's key
    assert "limit of 1 tool rounds" in last(h) and h[0]["content"] == "Should I fine-tune?"
    fake.add_text("Next question answered.")
    assert last(ask("and now?", h, session=budget.new_session_state())) == "Next question answered."


def test_pasted_text_caps_keep_the_chat(fake, monkeypatch):
    monkeypatch.setenv("FTLAB_CHAT_MAX_MESSAGE_CHARS", "1000")
    h = ask("hello", session=budget.new_session_state())
    long = ask("x" * 5000, h, session=budget.new_session_state())
    assert "5,000 characters" in last(long) and "1,000" in last(long) and "workbench" in last(long)
    assert [m["content"] for m in long if m["role"] == "user"][0] == "hello"
    huge = ask("y" * 11_000_000, h)
    assert "MB of text; the limit is" in last(huge)
    assert len(fake.message_requests) == 1
    assert last(ask("short again", h, session=budget.new_session_state())) == "(advisor reply)"


def test_upload_size_and_row_caps_keep_the_loaded_dataset(ftlab_data_dir, tmp_path, monkeypatch):
    from core import chat_rows
    from training.views import tab as ui
    # The data caps are read once at import (FTLAB_MAX_UPLOAD_MB / FTLAB_MAX_ROWS): set the values here.
    monkeypatch.setattr(chat_rows, "MAX_UPLOAD_MB", 1)
    monkeypatch.setattr(chat_rows, "MAX_ROWS", 5)
    ds, _ = ui.load_dataset_handler("builtin", "pharmacy_meds", None, "", "sft", None)
    row = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    big = tmp_path / "big.jsonl"
    big.write_text(row * 20_000)  # ~1.7 MB
    same, msg = ui.load_dataset_handler("upload", None, str(big), "", "sft", ds)
    assert same is ds and "the limit is 1 MB" in msg
    many = tmp_path / "many.jsonl"
    many.write_text(row * 8)
    same, msg = ui.load_dataset_handler("upload", None, str(many), "", "sft", ds)
    assert same is ds and "the limit is 5" in msg and "FTLAB_MAX_ROWS" in msg
    few = tmp_path / "few.jsonl"
    few.write_text(row * 5)
    loaded, msg = ui.load_dataset_handler("upload", None, str(few), "", "sft", ds)
    assert loaded is not ds and "Loaded" in msg  # the next allowed upload works


def test_steps_and_max_length_caps_refuse_before_training(ftlab_data_dir, monkeypatch):
    from training.run import config
    from training.run import runs
    from training.views import tab as ui
    monkeypatch.setenv("FTLAB_MAX_STEPS", "10")
    monkeypatch.setenv("FTLAB_MAX_LENGTH", "256")
    ds, _ = ui.load_dataset_handler("builtin", "pharmacy_meds", None, "", "sft", None)

    def hp(**over):
        return dict(config.defaults("cpu"), **over)

    _, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", [], hp(max_steps=50, max_length=256))
    assert not go and "Max steps" in msg and "10" in msg
    _, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", [], hp(max_steps=5, max_length=4096))
    assert not go and "Max length" in msg and "256" in msg
    assert list(runs.runs_root().iterdir()) == []
    rid, ids, msg, go = ui.prepare_run_handler(ds, MODEL, "sft", [], hp(max_steps=5, max_length=256))
    assert go == "start" and ids == [rid]  # within the caps, the same session starts a run
