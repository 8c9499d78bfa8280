"""The advisor chat through the real ``anthropic`` client against the fake server.

Each test scripts the fake Messages API, runs ``stream_reply`` to the end and
checks what the learner would see (and what went over the wire).
"""
from __future__ import annotations

import pytest

from fakes.anthropic_server import FakeAnthropic, free_port
from labs import budget
from labs.advisors import ADVISORS
from labs.chat import ChatSettings, split_for_retry, stream_reply, to_model_messages, welcome_history
from labs.tools import registry

KEY = "sk-ant-test-SECRET-0123456789"


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def settings_for(url: str, **kw) -> ChatSettings:
    kw.setdefault("limits", budget.BudgetLimits(per_minute=0, per_day=0, global_per_day=0))
    return ChatSettings(api_key=KEY, base_url=url, backoff_s=0.01, backoff_max_s=0.02, **kw)


def run(advisor: str, history, text: str, settings: ChatSettings, **kw) -> list[list[dict]]:
    frames = [list(map(dict, h)) for h in stream_reply(advisor, history, text, settings=settings, **kw)]
    for frame in frames:  # the key never reaches anything shown to the learner
        assert KEY not in repr(frame)
    return frames


def texts(history: list[dict]) -> list[str]:
    return [m["content"] for m in history]


def test_text_streams_in_several_updates_and_system_prompt_is_sent(fake):
    fake.add_text("Fine-tuning pays off at that volume because prompts are long.", chunks=4)
    frames = run("strategy", welcome_history("strategy"), "Is fine-tuning worth it?", settings_for(fake.url))
    final = frames[-1]
    assert final[-1] == {"role": "assistant", "content": "Fine-tuning pays off at that volume because prompts are long."}
    # Streamed: the assistant text grows over several yields.
    partials = [f[-1]["content"] for f in frames if f[-1]["role"] == "assistant"]
    assert len(set(partials)) >= 3
    (req,) = fake.message_requests
    assert req.body["stream"] is True
    assert req.system_text == ADVISORS["strategy"].system_prompt
    assert req.body["model"] == "claude-sonnet-5-5"
    # The welcome message is not sent as if the model said it; the learner's text is.
    assert req.body["messages"] == [{"role": "user", "content": "Is fine-tuning worth it?"}]
    assert {t["name"] for t in req.body["tools"]} == {s.name for s in registry.tools_for("strategy")}
    assert req.api_key == KEY


def test_tool_use_round_trip(fake):
    tool_input = {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": ["q_proj", "v_proj"]}
    fake.add_tool_use("count_lora_params", tool_input, text_before="Let me count them.", tool_id="toolu_abc")
    fake.add_text("With r=8 on q and v you train the number shown above.")
    frames = run("lora", [], "How many parameters does r=8 train on SmolLM2-135M?", settings_for(fake.url))
    final = frames[-1]
    notes = [m for m in final if m.get("metadata")]
    assert len(notes) == 1 and "ran count_lora_params" in notes[0]["metadata"]["title"]
    # The learner reads the tool's own summary first; the raw JSON waits behind a toggle.
    note = notes[0]["content"]
    assert note.startswith("### LoRA parameters: SmolLM2-135M, r = 8")
    assert note.index("<details>") > note.index("460,800") and '"trainable_params"' not in note[:note.index("<details>")]
    assert final[-1]["content"] == "With r=8 on q and v you train the number shown above."
    first, second = fake.message_requests
    expected, is_error = registry.run_tool("count_lora_params", tool_input)
    assert second.body["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me count them."},
        {"type": "tool_use", "id": "toolu_abc", "name": "count_lora_params", "input": tool_input}]}
    result = second.body["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_abc"
    assert result["content"] == expected and result.get("is_error", False) == is_error


def test_bad_tool_input_goes_back_as_error_and_chat_continues(fake):
    fake.add_tool_use("count_lora_params", {"model": "GPT-99", "lora_r": 8, "lora_target_modules": "qv"})
    fake.add_text("That model isn't one of my presets; which one is closest?")
    final = run("lora", [], "params for GPT-99?", settings_for(fake.url))[-1]
    assert "reported a problem" in [m for m in final if m.get("metadata")][0]["metadata"]["title"]
    result = fake.message_requests[1].body["messages"][2]["content"][0]
    assert result["is_error"] is True
    assert final[-1]["content"].startswith("That model isn't")


def test_tool_rounds_are_capped(fake):
    for _ in range(3):
        fake.add_tool_use("count_lora_params", {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": "qv"})
    limits = budget.BudgetLimits(per_minute=0, per_day=0, global_per_day=0, max_tool_rounds=2)
    final = run("lora", [], "count", settings_for(fake.url, limits=limits))[-1]
    assert "limit of 2 tool rounds" in final[-1]["content"]
    reqs = fake.message_requests
    assert len(reqs) == 3
    # The last allowed call told the model to stop using tools.
    assert reqs[2].body["tool_choice"] == {"type": "none"}
    assert "tool_choice" not in reqs[0].body


def test_401_is_not_retried_and_history_is_kept(fake):
    fake.add_http_error(401, message=f"invalid x-api-key {KEY}")
    history = welcome_history("dataset") + [{"role": "user", "content": "earlier"},
                                            {"role": "assistant", "content": "earlier answer"}]
    final = run("dataset", history, "check my data please", settings_for(fake.url))[-1]
    assert len(fake.message_requests) == 1
    assert "key was rejected" in final[-1]["content"] and "401" in final[-1]["content"]
    assert texts(final)[:4] == texts(history) + ["check my data please"]
    assert split_for_retry(final)[1] == "check my data please"


def test_429_then_success_is_retried(fake):
    fake.add_http_error(429, retry_after=0)
    fake.add_text("Here is my answer after the retry.")
    frames = run("eval", [], "design my eval", settings_for(fake.url))
    assert len(fake.message_requests) == 2
    assert frames[-1][-1]["content"] == "Here is my answer after the retry."
    assert any("trying again" in m["content"] for f in frames for m in f)  # the learner saw the retry
    assert not any("trying again" in m["content"] for m in frames[-1])  # and it is gone once answered


@pytest.mark.parametrize("status, says, not_says", [
    (529, "busy", "had an error"), (429, "busy", "had an error"),
    (500, "had an error (HTTP 500)", "busy"), (503, "had an error (HTTP 503)", "busy")])
def test_busy_service_and_failing_service_give_up_with_different_messages(fake, status, says, not_says):
    for _ in range(4):
        fake.add_http_error(status, retry_after=0)
    frames = run("strategy", [], "hello", settings_for(fake.url, max_retries=2))
    final = frames[-1]
    assert len(fake.message_requests) == 3
    assert says in final[-1]["content"] and "Retry" in final[-1]["content"]
    assert not_says not in final[-1]["content"]
    # The retry note while waiting says the same thing.
    notes = [m["content"] for f in frames for m in f if "trying again" in m["content"]]
    assert notes and all(not_says not in n for n in notes)
    assert texts(final)[0] == "hello"


def test_mid_stream_error_keeps_partial_reply_marked_cut_off(fake):
    fake.add_stream_error("The first half of a useful answer")
    final = run("lora", [], "what r?", settings_for(fake.url))[-1]
    last = final[-1]["content"]
    assert last.startswith("The first half of a useful answer")
    assert "cut off" in last
    assert len(fake.message_requests) == 1  # not retried
    # Retrying sends the question again, with the partial text not mistaken for a notice.
    before, text = split_for_retry(final)
    assert text == "what r?"
    assert to_model_messages(final)[-1]["content"] == "The first half of a useful answer"


def test_connection_refused_gives_clear_message(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    final = run("eval", history, "are you there?", settings_for(url, max_retries=1))[-1]
    assert "Couldn't reach the AI service" in final[-1]["content"]
    assert texts(final)[:3] == ["hi", "hello", "are you there?"]


def test_gradio_block_content_is_normalised(fake):
    fake.add_text("ok")
    history = [{"role": "user", "content": [{"type": "text", "text": "first question"}], "metadata": None},
               {"role": "assistant", "content": [{"type": "text", "text": "first answer"}], "metadata": None},
               {"role": "assistant", "content": "tool details",
                "metadata": {"title": "🔧 ran judge_rubric", "status": "done"}}]
    run("eval", history, "second question", settings_for(fake.url))
    assert fake.message_requests[0].body["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"}]


def test_no_key_runs_offline_calculator_and_says_so(fake):
    settings = ChatSettings(api_key="", base_url=fake.url)
    text = ("I'm fine-tuning SmolLM2-135M on 2,000 examples for JSON extraction on a T4 16GB. "
            "What config?")
    final = run("lora", welcome_history("lora"), text, settings)[-1]
    reply = final[-1]["content"]
    assert "Offline calculator, not an AI reply" in reply
    assert "ANTHROPIC_API_KEY" in reply and "Variables and secrets" in reply
    assert "recommend_lora_config" in reply and "SmolLM2-135M" in reply
    assert fake.requests == []  # nothing was sent anywhere


def test_no_key_dataset_critic_runs_on_pasted_jsonl():
    settings = ChatSettings(api_key="")
    jsonl = '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "b"}'
    reply = run("dataset", [], "check this\n" + jsonl, settings)[-1][-1]["content"]
    assert "critique_jsonl" in reply and "Offline calculator" in reply


def test_oversize_and_binary_input_get_clear_messages_and_nothing_is_sent(fake):
    s = settings_for(fake.url)
    big = "x" * 2_100_000
    final = run("dataset", [{"role": "user", "content": "keep me"}], big, s)[-1]
    assert "MB" in final[-1]["content"] and texts(final)[0] == "keep me" and len(final) == 2
    final = run("dataset", [], b"\xff\xfe\x00binary", s)[-1]
    assert "UTF-8" in final[-1]["content"]
    final = run("dataset", [{"role": "user", "content": "keep me"}], "y" * 50_000, s)[-1]
    # Refused, and not added to the history (a later turn would otherwise send it).
    assert "at most 40,000" in final[-1]["content"] and texts(final)[:-1] == ["keep me"]
    assert fake.requests == []


def test_pasted_loss_log_is_analysed_before_the_model_sees_it(fake):
    fake.add_text("Your eval loss turns up after step 300.")
    log = "step train eval\n100 2.0 2.1\n200 1.5 1.6\n300 1.0 1.3\n400 0.6 1.5\n500 0.3 1.8"
    final = run("lora", [], "What happened?\n" + log, settings_for(fake.url))[-1]
    assert any(m.get("metadata", {}).get("title", "").startswith("🔧 ran diagnose_training_curve") for m in final)
    sent = fake.message_requests[0].body["messages"][-1]["content"]
    expected, _ = registry.run_tool("diagnose_training_curve", {"log_text": "What happened?\n" + log})
    assert expected in sent


def test_budget_per_minute_refuses_with_reset_time_then_recovers(fake):
    limits = budget.BudgetLimits(per_minute=2, per_day=0, global_per_day=0)
    s = settings_for(fake.url, limits=limits)
    session = budget.new_session_state()
    now = [1_000_000.0]
    history: list = []
    for i in range(2):
        fake.add_text(f"answer {i}")
        history = run("eval", history, f"q{i}", s, session=session, clock=lambda: now[0])[-1]
    history = run("eval", history, "q2", s, session=session, clock=lambda: now[0])[-1]
    assert "last minute" in history[-1]["content"] and "60 s" in history[-1]["content"]
    assert len(fake.message_requests) == 2
    now[0] += 61
    fake.add_text("answer after the wait")
    history = run("eval", history, "q3", s, session=session, clock=lambda: now[0])[-1]
    assert history[-1]["content"] == "answer after the wait"
    assert [m["content"] for m in history if m["role"] == "user"] == ["q0", "q1", "q2", "q3"]


def test_budget_per_day_and_global_caps(fake, tmp_path):
    now = [1_000_000.0]  # 1970-01-12 13:46:40 UTC
    limits = budget.BudgetLimits(per_minute=0, per_day=1, global_per_day=0)
    session = budget.new_session_state()
    fake.add_text("one")
    h = run("strategy", [], "a", settings_for(fake.url, limits=limits), session=session, clock=lambda: now[0])[-1]
    h = run("strategy", h, "b", settings_for(fake.url, limits=limits), session=session, clock=lambda: now[0])[-1]
    assert "today's 1 advisor messages" in h[-1]["content"] and "00:00 UTC (in 10 h 14 min)" in h[-1]["content"]

    counter = budget.GlobalCounter(tmp_path / "budget.json")
    glimits = budget.BudgetLimits(per_minute=0, per_day=0, global_per_day=1)
    fake.add_text("two")
    h = run("strategy", [], "c", settings_for(fake.url, limits=glimits), session=budget.new_session_state(),
            counter=counter, clock=lambda: now[0])[-1]
    assert h[-1]["content"] == "two"
    other_learner = budget.new_session_state()
    h2 = run("strategy", [], "d", settings_for(fake.url, limits=glimits), session=other_learner,
             counter=counter, clock=lambda: now[0])[-1]
    assert "daily limit of 1 messages for all learners" in h2[-1]["content"]
    # Persisted: a new counter (a restarted app) still sees today's use.
    assert budget.GlobalCounter(tmp_path / "budget.json").snapshot(now[0])["messages"] == 1
    assert budget.GlobalCounter(tmp_path / "budget.json").snapshot(now[0] + 86_400)["messages"] == 0


def test_failed_call_does_not_use_up_the_budget(fake):
    limits = budget.BudgetLimits(per_minute=1, per_day=0, global_per_day=0)
    session = budget.new_session_state()
    fake.add_http_error(401)
    run("lora", [], "x", settings_for(fake.url, limits=limits), session=session)
    fake.add_text("fine now")
    final = run("lora", [], "x", settings_for(fake.url, limits=limits), session=session)[-1]
    assert final[-1]["content"] == "fine now"


def test_max_tokens_is_sent_and_a_truncated_reply_is_labelled(fake):
    fake.add_text("A long answer", stop_reason="max_tokens")
    limits = budget.BudgetLimits(per_minute=0, per_day=0, global_per_day=0, max_tokens=321)
    final = run("eval", [], "long please", settings_for(fake.url, limits=limits))[-1]
    assert fake.message_requests[0].body["max_tokens"] == 321
    assert "321-token limit" in final[-1]["content"]


def test_settings_from_env_and_key_not_in_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-haiku-5-5")
    monkeypatch.setenv("FTLAB_CHAT_MAX_TOOL_ROUNDS", "7")
    s = ChatSettings.from_env()
    assert s.api_key == KEY and s.model == "claude-haiku-5-5" and s.limits.max_tool_rounds == 7
    assert KEY not in repr(s)


def test_an_over_long_turn_already_in_the_history_is_never_sent(fake):
    # E.g. a 1 MB paste the offline calculator read before a key was set, or a hand-made history.
    fake.add_text("ok")
    history = [{"role": "user", "content": "z" * 1_000_000}, {"role": "assistant", "content": "🧮 offline result"}]
    run("dataset", history, "now with the AI", settings_for(fake.url))
    sent = fake.message_requests[0].body["messages"]
    assert sent == [{"role": "user", "content": "now with the AI"}]
