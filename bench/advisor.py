"""Advisor overhead: time to first token and total time of one reply, through the app
(`labs.chat.stream_reply`, and the launched app's /lab_strategy_send) vs the direct
`anthropic` client streaming, all against the same local fake Messages API with a
fixed delay. Calls alternate; medians reported.
"""
from __future__ import annotations

import os
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


def run(quick_mode: bool | None = None) -> list[Row]:
    from devtools.fake_anthropic import FakeAnthropic

    q = quick() if quick_mode is None else quick_mode
    repeats = int(os.environ.get("BENCH_ADVISOR_REPEATS") or (2 if q else 15))
    res = {"direct": [], "app": [], "served": []}
    with FakeAnthropic(delay_s=DELAY_S, default_text=REPLY) as fake:
        # The launched app reads the key and endpoint at call time; budgets off for the bench.
        env = {"ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_BASE_URL": fake.url, "FTLAB_CHAT_PER_MINUTE": "0",
               "FTLAB_CHAT_PER_DAY": "0", "FTLAB_CHAT_GLOBAL_PER_DAY": "0", "FTLAB_CHAT_RETRIES": "0"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        demo = None
        try:
            from gradio_client import Client

            from app import build_app
            demo = build_app()
            _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
            client = Client(url, verbose=False)
            _direct(fake), _app(fake), _served(client)  # warm-up: imports, connections
            for i in range(repeats):
                order = [("direct", _direct), ("app", _app), ("served", _served)]
                if i % 2:
                    order.reverse()
                for name, fn in order:
                    res[name].append(fn(client if name == "served" else fake))
        finally:
            if demo is not None:
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
    return rows


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
