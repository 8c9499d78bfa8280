"""The owner's budget for the AI advisors: per-session and global limits.

The Space owner pays for the Anthropic key, so advisor use is capped:

=============================  =======  ==================================================
environment variable           default  meaning (0 = unlimited)
=============================  =======  ==================================================
FTLAB_CHAT_PER_MINUTE          6        messages one session may send per minute
FTLAB_CHAT_PER_DAY             60       messages one session may send per UTC day
FTLAB_CHAT_MAX_TOKENS          2048     max output tokens per model call
FTLAB_CHAT_MAX_TOOL_ROUNDS     4        tool-call rounds per reply before it must answer
FTLAB_CHAT_GLOBAL_PER_DAY      1500     messages per UTC day, all sessions together
FTLAB_CHAT_GLOBAL_TOKENS_PER_DAY  0     input+output tokens per UTC day, all sessions
=============================  =======  ==================================================

A learner who duplicates the Space with their own key sets these to 0 to lift
the limits. Only messages that reach the model count: the offline calculator
(no key) and refused input cost nothing.

Per-session state is a small JSON-able dict kept in the session's ``gr.State``
(``new_session_state()``), never in this module. The global counter is the one
process-wide value, guarded by a lock and persisted to
``<data_dir>/advisor_budget.json`` so a restart does not reset the day. All
functions take ``now`` (epoch seconds) so tests drive a fake clock.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.config import data_dir, env_int


@dataclass(frozen=True)
class BudgetLimits:
    per_minute: int = 6
    per_day: int = 60
    max_tokens: int = 2048
    max_tool_rounds: int = 4
    global_per_day: int = 1500
    global_tokens_per_day: int = 0

    @classmethod
    def from_env(cls) -> "BudgetLimits":
        """Read at call time, so a test (or an owner's restart) can change them."""
        d = cls()

        def get(name: str, default: int) -> int:
            return max(0, env_int(name, default))

        return cls(
            per_minute=get("FTLAB_CHAT_PER_MINUTE", d.per_minute),
            per_day=get("FTLAB_CHAT_PER_DAY", d.per_day),
            # 0 means "no cap of ours"; the API still needs a number, so the chat
            # uses a generous ceiling (see ``output_tokens``).
            max_tokens=get("FTLAB_CHAT_MAX_TOKENS", d.max_tokens),
            max_tool_rounds=get("FTLAB_CHAT_MAX_TOOL_ROUNDS", d.max_tool_rounds),
            global_per_day=get("FTLAB_CHAT_GLOBAL_PER_DAY", d.global_per_day),
            global_tokens_per_day=get("FTLAB_CHAT_GLOBAL_TOKENS_PER_DAY", d.global_tokens_per_day),
        )

    @property
    def output_tokens(self) -> int:
        return self.max_tokens or 8192

    @property
    def tool_rounds(self) -> int:
        # "Unlimited" tool rounds would let one message loop forever on the
        # owner's key; 0 therefore means a high but finite ceiling.
        return self.max_tool_rounds or 25


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")


def _until_midnight(now: float) -> str:
    current = datetime.fromtimestamp(now, timezone.utc)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = int((midnight - current).total_seconds())
    hours, minutes = divmod((left + 59) // 60, 60)
    span = f"{hours} h {minutes} min" if hours else f"{max(minutes, 1)} min"
    return f"at 00:00 UTC (in {span})"


def new_session_state() -> dict:
    """Empty per-session counters (store in ``gr.State``)."""
    return {"recent": [], "day": "", "day_count": 0}


def _clean(state: dict | None, now: float) -> dict:
    """A repaired copy: anything malformed (old or tampered state) starts fresh."""
    if not isinstance(state, dict):
        state = {}
    recent = state.get("recent")
    recent = [float(t) for t in recent if isinstance(t, (int, float))] if isinstance(recent, list) else []
    day = state.get("day") if isinstance(state.get("day"), str) else ""
    count = state.get("day_count") if isinstance(state.get("day_count"), int) else 0
    today = _day(now)
    if day != today:
        day, count = today, 0
    return {"recent": [t for t in recent if now - 60 < t <= now], "day": day, "day_count": max(0, count)}


def session_refusal(state: dict | None, limits: BudgetLimits, now: float) -> str | None:
    """Why this session may not send a message now (with when it resets), or None."""
    s = _clean(state, now)
    if limits.per_minute and len(s["recent"]) >= limits.per_minute:
        wait = max(1, int(min(s["recent"]) + 60 - now + 0.999))
        return (f"You've sent {limits.per_minute} messages to the advisor in the last minute, the most "
                f"this Space allows. You can send again in {wait} s. Your message is kept: press "
                f"**Retry** then.")
    if limits.per_day and s["day_count"] >= limits.per_day:
        return (f"You've used today's {limits.per_day} advisor messages for this session. The allowance "
                f"resets {_until_midnight(now)}. Meanwhile the workbench below runs every calculator "
                f"without the AI.")
    return None


def record_message(state: dict | None, now: float) -> dict:
    """The session state after one message was sent to the model."""
    s = _clean(state, now)
    s["recent"].append(now)
    s["day_count"] += 1
    return s


class GlobalCounter:
    """Messages and tokens used today by every session together.

    Thread-safe (Gradio runs handlers in worker threads) and persisted to a small
    JSON file after each change, so a restart keeps the day's count. A corrupt or
    unreadable file starts the day from zero rather than blocking every learner.
    """

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else data_dir() / "advisor_budget.json"
        self._lock = threading.Lock()
        self._state = self._load()

    def _load(self) -> dict:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(raw, dict) and isinstance(raw.get("day"), str):
                return {"day": raw["day"], "messages": int(raw.get("messages", 0)), "tokens": int(raw.get("tokens", 0))}
        except (OSError, ValueError, TypeError):
            pass
        return {"day": "", "messages": 0, "tokens": 0}

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._state), encoding="utf-8")
            os.replace(tmp, self.path)  # atomic: a crash never leaves half a file
        except OSError:
            pass  # a read-only disk must not stop the chat; the in-memory count still applies

    def _roll(self, now: float) -> None:
        today = _day(now)
        if self._state["day"] != today:
            self._state = {"day": today, "messages": 0, "tokens": 0}

    def try_take(self, limits: BudgetLimits, now: float) -> str | None:
        """Count one message if the global caps allow it; else return why not."""
        with self._lock:
            self._roll(now)
            if limits.global_per_day and self._state["messages"] >= limits.global_per_day:
                return (f"The advisors have reached this Space's daily limit of {limits.global_per_day} "
                        f"messages for all learners together. It resets {_until_midnight(now)}. The "
                        f"workbench below still runs every calculator without the AI, and you can "
                        f"duplicate the Space with your own key to chat without this limit.")
            if limits.global_tokens_per_day and self._state["tokens"] >= limits.global_tokens_per_day:
                return (f"The advisors have used this Space's daily token allowance. It resets "
                        f"{_until_midnight(now)}. The workbench below still works without the AI.")
            self._state["messages"] += 1
            self._save()
            return None

    def give_back(self, now: float) -> None:
        """Undo one ``try_take`` for a message that never reached the model
        (a per-session refusal after the global check, a connection failure)."""
        with self._lock:
            self._roll(now)
            self._state["messages"] = max(0, self._state["messages"] - 1)
            self._save()

    def add_tokens(self, tokens: int, now: float) -> None:
        with self._lock:
            self._roll(now)
            self._state["tokens"] += max(0, int(tokens))
            self._save()

    def snapshot(self, now: float) -> dict:
        with self._lock:
            self._roll(now)
            return dict(self._state)


_GLOBAL: GlobalCounter | None = None
_GLOBAL_LOCK = threading.Lock()


def global_counter() -> GlobalCounter:
    """The process-wide counter (the only legitimate module-level state here:
    it holds no per-user data, just today's totals)."""
    global _GLOBAL
    with _GLOBAL_LOCK:
        if _GLOBAL is None or _GLOBAL.path != data_dir() / "advisor_budget.json":
            # Re-created when FTLAB_DATA_DIR changes (tests point it at a temp dir).
            _GLOBAL = GlobalCounter()
        return _GLOBAL


def admit(state: dict | None, limits: BudgetLimits, counter: GlobalCounter | None,
          now: float | None = None) -> tuple[dict, str | None]:
    """Decide whether a message may go to the model.

    Returns ``(new_state, None)`` when admitted (the message is counted in the
    session and globally) or ``(state, message)`` when refused, where the message
    says which limit was hit and when it resets. Session limits are checked
    first so a refused session never consumes the global allowance.
    """
    now = time.time() if now is None else now
    refusal = session_refusal(state, limits, now)
    if refusal:
        return _clean(state, now), refusal
    if counter is not None:
        refusal = counter.try_take(limits, now)
        if refusal:
            return _clean(state, now), refusal
    return record_message(state, now), None
