"""Advisor overhead and bill.

Time: time to first token and total time of one reply, through the app
(`labs.chat.stream_reply`, and the launched app's /lab_strategy_send) vs the direct
`anthropic` client streaming, and the launched app vs a bare `gr.ChatInterface` that
streams the same fake (the Gradio floor), all against the same local fake Messages API
with a fixed delay. Calls alternate; medians reported.

Bill: a 5-turn conversation with two tool rounds (7 requests) through stream_reply, once
with the request as it was before prompt caching and once as it is, against the fake
API, which reports cache writes and reads as the real one does. Billed input is weighted
as Anthropic prices it: cache writes 1.25x, cache reads 0.1x the input price.
"""
from __future__ import annotations

import os
import tempfile
import time

from bench.common import Row, median, quick

QUESTION = "We answer support tickets about our billing API. Is fine-tuning worth it for us?"
REPLY = "Start with prompting and retrieval; fine-tune once you have a few hundred clean examples. " * 4
DELAY_S = 0.2


def _direct(fake) -> tuple[float, float]:
    import anthropic

    client = anthropic.Anthropic(api_key="sk-bench", base_url=fake.url, max_retries=0)
    t0 = time.perf_counter()
    first = None
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=512,
                                messages=[{"role": "user", "content": QUESTION}]) as stream:
        for event in stream:
            if event.type == "text" and event.text and first is None:
                first = time.perf_counter() - t0
        stream.get_final_message()
    return first, time.perf_counter() - t0


def _app(fake) -> tuple[float, float]:
    from labs.chat import ChatSettings, stream_reply

    settings = ChatSettings(api_key="sk-bench", base_url=fake.url, max_retries=0)
    t0 = time.perf_counter()
    first = None
    for history in stream_reply("strategy", [], QUESTION, settings=settings):
        last = history[-1]
        if first is None and last["role"] == "assistant" and last.get("content") and "metadata" not in last:
            first = time.perf_counter() - t0
    return first, time.perf_counter() - t0


def _served(client) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    job = client.submit([], QUESTION, None, api_name="/lab_strategy_send")
    for out in job:
        history = out[0] if isinstance(out, (list, tuple)) else out
        if first is None and history and history[-1].get("role") == "assistant" and history[-1].get("content"):
            first = time.perf_counter() - t0
    job.result()
    return first, time.perf_counter() - t0


# The conversation for the bill: (learner text, tool call the model makes first or None, reply).
CONVERSATION = [
    ("I want to fine-tune SmolLM2-135M on 800 support answers. Which LoRA rank should I start with?", None,
     "Start at r=8 on the attention projections: small data, small model, little to gain from more. " * 3),
    ("How many parameters does r=8 on q and v train?",
     ("count_lora_params", {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": "qv"}),
     "About 0.46 M trainable parameters, well under one percent of the model. " * 3),
    ("And alpha? I read it should be twice the rank.", None,
     "alpha=16 with r=8 is the usual start; what matters is alpha/r, the scale of the update. " * 3),
    ("What if I target all linear layers at r=16?",
     ("count_lora_params", {"model": "SmolLM2-135M", "lora_r": 16, "lora_target_modules": "all-linear"}),
     "Roughly 3.5 M parameters: more capacity, slower steps, more risk of overfitting 800 rows. " * 3),
    ("OK, so which do you recommend for my first run?", None,
     "First run: r=8 on q,v, alpha 16, 2-3 epochs, watch eval loss; widen only if it plateaus high. " * 3),
]
PRICE = {"input_tokens": 1.0, "cache_creation_input_tokens": 1.25, "cache_read_input_tokens": 0.1}


def _uncached(system, tools, messages):
    """The request as labs.chat built it before prompt caching."""
    return {"system": system, "messages": messages, **({"tools": tools} if tools else {})}


def _bill(fake, cached: bool) -> dict:
    import labs.chat as chat
    from labs import budget

    settings = chat.ChatSettings(api_key=f"sk-bench-{cached}", base_url=fake.url, max_retries=0,
                                 limits=budget.BudgetLimits(per_minute=0, per_day=0, global_per_day=0))
    before = len(fake.usages)
    real = chat.cached_request
    if not cached:
        chat.cached_request = _uncached
    try:
        history: list = []
        for text, tool, reply in CONVERSATION:
            if tool:
                fake.add_tool_use(*tool)
            fake.add_text(reply)
            for history in chat.stream_reply("lora", history, text, settings=settings):
                pass
    finally:
        chat.cached_request = real
    usages = fake.usages[before:]
    out = {k: sum(u[k] for u in usages) for k in PRICE}
    out["requests"] = len(usages)
    out["billed"] = sum(out[k] * w for k, w in PRICE.items())
    out["final"] = history[-1]["content"]
    return out


def bill_rows() -> list[Row]:
    from devtools.fake_anthropic import FakeAnthropic

    with FakeAnthropic() as fake:
        before, after = _bill(fake, cached=False), _bill(fake, cached=True)
    assert before["final"] == after["final"], "caching changed the answer"
    cut = 1 - after["billed"] / before["billed"]
    return [
        Row(f"advisor bill: 5 turns, 2 tool rounds ({after['requests']} requests), billed input tokens "
            "(writes 1.25x, reads 0.1x)", f"{after['billed']:,.0f}", f"{before['billed']:,.0f}",
            f"-{cut * 100:.0f}%", ">= 60% fewer", met=cut >= 0.60),
        Row("advisor bill: uncached / cache-write / cache-read input tokens",
            f"{after['input_tokens']:,} / {after['cache_creation_input_tokens']:,} / "
            f"{after['cache_read_input_tokens']:,}",
            f"{before['input_tokens']:,} / {before['cache_creation_input_tokens']:,} / "
            f"{before['cache_read_input_tokens']:,}"),
    ]


def _bare_chat(fake):
    """gr.ChatInterface streaming the fake straight from the anthropic client: the Gradio floor."""
    import anthropic
    import gradio as gr

    client = anthropic.Anthropic(api_key="sk-bench", base_url=fake.url, max_retries=0)

    def reply(message, history):
        with client.messages.stream(model="claude-sonnet-5-5", max_tokens=512,
                                    messages=[{"role": "user", "content": message}]) as stream:
            for _ in stream.text_stream:
                yield stream.current_message_snapshot.content[0].text

    return gr.ChatInterface(reply, api_name="chat")


def _served_bare(client) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    job = client.submit(QUESTION, api_name="/chat")
    for out in job:
        if first is None and out:
            first = time.perf_counter() - t0
    job.result()
    return first, time.perf_counter() - t0


def run(quick_mode: bool | None = None) -> list[Row]:
    from devtools.fake_anthropic import FakeAnthropic

    q = quick() if quick_mode is None else quick_mode
    repeats = int(os.environ.get("BENCH_ADVISOR_REPEATS") or (2 if q else 15))
    res = {"direct": [], "app": [], "served": [], "bare": []}
    with FakeAnthropic(delay_s=DELAY_S, default_text=REPLY) as fake:
        # The launched app reads the key and endpoint at call time; budgets off for the bench.
        env = {"ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_BASE_URL": fake.url, "FTLAB_CHAT_PER_MINUTE": "0",
               "FTLAB_CHAT_PER_DAY": "0", "FTLAB_CHAT_GLOBAL_PER_DAY": "0", "FTLAB_CHAT_RETRIES": "0",
               "FTLAB_DATA_DIR": os.environ.get("FTLAB_DATA_DIR") or tempfile.mkdtemp(prefix="bench-advisor-")}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        demos = []
        try:
            from gradio_client import Client

            import app
            from bench.load import free_port
            demos.append(app.build_app())
            # The real launch path (app.launch: theme, CSS, compression middleware).
            _, url, _ = app.launch(demos[-1], prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                                   server_port=free_port())
            demos.append(_bare_chat(fake))
            _, bare_url, _ = demos[-1].launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
            clients = {"served": Client(url, verbose=False), "bare": Client(bare_url, verbose=False)}
            fns = {"direct": lambda: _direct(fake), "app": lambda: _app(fake),
                   "served": lambda: _served(clients["served"]), "bare": lambda: _served_bare(clients["bare"])}
            for fn in fns.values():
                fn()  # warm-up: imports, connections
            for i in range(repeats):
                order = list(fns) if i % 2 == 0 else list(fns)[::-1]
                for name in order:
                    res[name].append(fns[name]())
        finally:
            for demo in demos:
                demo.close()
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    med = {k: (median([a for a, _ in v]), median([b for _, b in v])) for k, v in res.items()}
    d_ttft, d_total = med["direct"]
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    rows = []
    for key, label in (("app", "stream_reply"), ("served", "launched app /lab_strategy_send")):
        ttft, total = med[key]
        added = ttft - d_ttft
        rows.append(Row(f"advisor via {label}: time to first token (fake API, {DELAY_S * 1000:.0f} ms delay, "
                        f"median of {repeats})", ms(ttft), ms(d_ttft), f"+{added * 1000:.0f} ms",
                        "<= +50 ms", met=added <= 0.050))
        rows.append(Row(f"advisor via {label}: total reply time", ms(total), ms(d_total),
                        f"+{(total - d_total) * 1000:.0f} ms"))
    (s_ttft, s_total), (b_ttft, b_total) = med["served"], med["bare"]
    rows.append(Row(f"advisor via launched app vs bare gr.ChatInterface on the same fake: time to first token "
                    f"(median of {repeats})", ms(s_ttft), ms(b_ttft), f"+{(s_ttft - b_ttft) * 1000:.0f} ms",
                    "<= +20 ms", met=s_ttft - b_ttft <= 0.020))
    rows.append(Row("advisor via launched app vs bare gr.ChatInterface: total reply time", ms(s_total), ms(b_total),
                    f"+{(s_total - b_total) * 1000:.0f} ms"))
    return rows + bill_rows()


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
