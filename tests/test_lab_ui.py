"""The four Lab views in a launched Blocks, driven through gradio_client.

The chat goes through the real anthropic client to the fake server: settings
are read from the environment at call time, so the env vars set here apply to
the already-built app.
"""
from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client

from fakes.anthropic_server import FakeAnthropic
from labs.advisors import ADVISORS
from labs.ui import build_lab, run_workbench_tool

KEY = "sk-ant-ui-test-SECRET-987654321"


def wire(role: str, text: str) -> dict:
    """A Chatbot message as Gradio 6 sends it over the API (content is a list of blocks)."""
    return {"role": role, "content": [{"type": "text", "text": text}], "metadata": None, "options": None}


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


@pytest.fixture(scope="module")
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="module")
def app(fake, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("ANTHROPIC_API_KEY", KEY)
    mp.setenv("ANTHROPIC_BASE_URL", fake.url)
    mp.setenv("FTLAB_CHAT_BACKOFF_S", "0.01")
    mp.setenv("FTLAB_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    with gr.Blocks() as demo:
        labs = {}
        for advisor_id in ADVISORS:
            with gr.Tab(f"Lab {advisor_id}"):
                labs[advisor_id] = build_lab(advisor_id)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield demo, labs, Client(url, verbose=False)
    finally:
        demo.close()
        mp.undo()


def test_every_lab_has_chat_examples_and_workbench(app):
    demo, labs, _ = app
    for advisor_id, parts in labs.items():
        assert ADVISORS[advisor_id].welcome[:40] in str(parts["chatbot"].value)  # opens with the welcome
        assert len(parts["examples"]) == len(ADVISORS[advisor_id].examples) >= 3
        assert parts["workbench"], f"{advisor_id} has no workbench tools"
    # Chat events must not queue behind each other (Gradio's default limit is 1).
    chat_fns = [fn for fn in demo.fns.values() if (fn.api_name or "").endswith(("_send", "_retry"))]
    assert len(chat_fns) == 8 and all(fn.concurrency_limit == 32 for fn in chat_fns)


def test_chat_through_the_launched_app(app, fake):
    _, _, client = app
    fake.add_text("Start with prompting; fine-tune once volume is high.", chunks=3)
    # gr.State (the budget counters) is not part of the API: it stays on the server per session.
    history, box = client.predict([wire("assistant", ADVISORS["strategy"].welcome)],
                                  "Should I fine-tune for 500 requests a day?", api_name="/lab_strategy_send")
    texts = [text_of(m) for m in history]
    assert texts[-2] == "Should I fine-tune for 500 requests a day?"
    assert texts[-1] == "Start with prompting; fine-tune once volume is high."
    assert box == ""  # accepted text leaves the box
    assert KEY not in repr(history)
    req = fake.message_requests[-1]
    assert req.api_key == KEY and req.system_text == ADVISORS["strategy"].system_prompt


def test_error_keeps_message_for_retry_through_the_app(app, fake):
    _, _, client = app
    fake.add_http_error(401)
    history, _ = client.predict([], "what rank?", api_name="/lab_lora_send")
    assert "401" in text_of(history[-1])
    fake.add_text("Use r=16.")
    history = client.predict(history, api_name="/lab_lora_retry")
    contents = [text_of(m) for m in history]
    assert "what rank?" in contents[0] and "Use r=16." in contents[-1]
    assert sum("what rank?" in c for c in contents) == 1  # retried, not duplicated


def test_workbench_runs_a_tool_without_a_key(app):
    _, labs, _ = app
    inputs = labs["lora"]["workbench"]["count_lora_params"]["inputs"]
    names = [c.label for c in inputs]
    assert names[0].startswith("model")
    out = run_workbench_tool("count_lora_params", [("model", "enum"), ("lora_r", "integer"), ("lora_target_modules", "enum")],
                             "SmolLM2-135M", 8, "qv")
    assert "⚠️" not in out and out.strip()
    bad = run_workbench_tool("critique_jsonl", [("text", "text")], "x" * 2_100_000)
    assert "MB" in bad and bad.startswith("⚠️")


def test_optional_number_left_empty_lets_the_tool_decide_and_bad_text_is_named():
    kinds = [("model", "enum"), ("dataset_size", "integer"), ("task_kind", "enum"),
             ("gpu_memory_gb", "number"), ("lora_r", "opt_integer")]
    auto = run_workbench_tool("recommend_lora_config", kinds, "SmolLM2-135M", 2000, "format", 24, "")
    assert auto.startswith("### LoRA recipe")
    forced = run_workbench_tool("recommend_lora_config", kinds, "SmolLM2-135M", 2000, "format", 24, "4")
    assert "4 / " in forced  # the forced rank shows in the lora_r / lora_alpha row
    for text, words in (("lots", "must be a number"), ("2.5", "whole number"), ("300", "from 1 to 256")):  # the run config's rank range
        message = run_workbench_tool("recommend_lora_config", kinds, "SmolLM2-135M", 2000, "format", 24, text)
        assert message.startswith("⚠️ lora r ") and words in message, message


def test_over_long_message_never_reaches_the_model_now_or_later(app, fake):
    """Issue 14: a refused message stays in the box, not in the history, and the
    next short message is sent alone."""
    _, _, client = app
    before = len(fake.message_requests)
    long_text = "x" * 1_000_000  # 1 MB: under the paste cap, over the 40,000-character message cap
    history, box = client.predict([wire("assistant", ADVISORS["dataset"].welcome)], long_text,
                                  api_name="/lab_dataset_send")
    assert "at most 40,000" in text_of(history[-1]) and "still in the box" in text_of(history[-1])
    # A no-change update (gr.skip): the box keeps the learner's text to shorten (accepted text gets "").
    assert box == {"__type__": "update"}
    assert len(fake.message_requests) == before  # nothing sent
    assert all(long_text not in text_of(m) for m in history)
    fake.add_text("Short answer.")
    history, box = client.predict(history, "a short question", api_name="/lab_dataset_send")
    assert text_of(history[-1]) == "Short answer." and box == ""
    sent = fake.message_requests[-1].body["messages"]
    assert sum(len(m["content"]) for m in sent) < 200, sent
    assert sent == [{"role": "user", "content": "a short question"}]
    # Retry re-sends the short question, never the refused one.
    fake.add_text("Again.")
    client.predict(history, api_name="/lab_dataset_retry")
    assert fake.message_requests[-1].body["messages"] == [{"role": "user", "content": "a short question"}]


def test_persistent_500_says_service_error_not_busy_through_the_app(app, fake):
    _, _, client = app
    for _ in range(4):
        fake.add_http_error(500, retry_after=0)
    history, box = client.predict([], "what rank?", api_name="/lab_lora_send")
    last = text_of(history[-1])
    assert "had an error (HTTP 500)" in last and "busy" not in last and "Retry" in last
    assert fake.pending == 0  # retried with back-off until it gave up


def test_empty_workbench_paste_says_what_to_paste(app):
    _, _, client = app
    out = client.predict("", None, api_name="/wb_dataset_critique_jsonl")
    assert out.startswith("⚠️ Nothing to check yet: paste your dataset as JSONL")
    assert "Invalid input" not in out and "missing required field" not in out
