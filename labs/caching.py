"""Anthropic prompt caching for the advisors' stable prefix.

Every request of an advisor conversation starts with the same tools and system prompt
(~1,800-2,000 tokens, more than the user's messages for most of a conversation). Marking
the last tool and the system block with an ephemeral cache breakpoint lets the API store
that prefix on the first request and read it back, at a tenth of the input price, on
every tool round and later turn within five minutes. The prefix order is tools, then
system, then messages, so the system breakpoint covers both; the tool breakpoint keeps
the tools cached on their own if a system prompt ever changes.

Writes are billed at 1.25x and reads at 0.1x the input price (bench/advisor.py measures
a 5-turn conversation against the fake API, which accounts for caching the same way).
"""
from __future__ import annotations

from typing import Any

EPHEMERAL = {"type": "ephemeral"}


def cached_request(system: str, tools: list[dict], messages: list[dict]) -> dict[str, Any]:
    """The system / tools / messages kwargs of a Messages request, with cache breakpoints."""
    request: dict[str, Any] = {"system": [{"type": "text", "text": system, "cache_control": EPHEMERAL}],
                               "messages": messages}
    if tools:
        request["tools"] = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
    return request
