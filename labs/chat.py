"""Streaming advisor chat: Claude through the ``anthropic`` client, looping tool use.

``stream_reply(advisor_id, history, user_text, ...)`` is a generator that yields
the whole Gradio messages history (a list of ``{"role", "content", "metadata"?}``
dicts) each time something changes: the learner's message, streamed text, a
collapsible "🔧 ran <tool>" note per tool call, and any error notice. It never
raises: every failure becomes a visible message and the history (including the
learner's last message) is kept, so **Retry** can send it again.

Flow for one learner message, one function per step::

    admit_text (size, UTF-8, message cap) -> no key? offline_reply -> _Turn.admit (budget)
    -> _open_stream (retries) -> _read_stream -> stop_reason tool_use? _tool_round -> again
       (at most N rounds)

A message ``admit_text`` refuses never enters the history, so it cannot reach
the model on a later turn either.

Settings are read from the environment *at call time* (``ChatSettings.from_env``):
``ANTHROPIC_API_KEY``, ``ANTHROPIC_MODEL`` (default ``claude-sonnet-5-5``),
``ANTHROPIC_BASE_URL``, ``FTLAB_CHAT_RETRIES``, ``FTLAB_CHAT_BACKOFF_S``,
``FTLAB_CHAT_TIMEOUT_S``, ``FTLAB_CHAT_MAX_MESSAGE_CHARS`` plus the budget
variables in ``labs/budget.py``.

The key only ever goes to the configured base URL (through the client); it is
never logged, never put in a message, and scrubbed from anything shown.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from core.config import env_float, env_int, env_str
from labs import budget as budget_mod
from labs.advisors import get_advisor
from labs.caching import cached_request
from labs.tools import registry

log = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-5-5"
# Pasted text the offline calculator and the tools accept (same as the critic's cap).
MAX_INPUT_BYTES = registry.MAX_PASTE_BYTES
# History sent to the model is trimmed (oldest first) to this many characters:
# every turn re-sends it, so it is what the owner pays for.
MAX_CONTEXT_CHARS = 120_000

# Assistant messages the app writes itself start with one of these markers.
# They are shown to the learner but never sent to the model as if it said them.
NOTICE = "⚠️"
WAITING = "⏳"
OFFLINE = "🧮"
CUT_OFF = "\n\n⚠️ *The reply was cut off"
TOOL_NOTE_PREFIX = "🔧"

SECRET_HELP = (
    "To turn the advisor on, the Space owner adds the key as a secret: **Settings → Variables and "
    "secrets → New secret**, name `ANTHROPIC_API_KEY`, value your key from console.anthropic.com; "
    "the Space restarts with it. Running locally, export `ANTHROPIC_API_KEY` before starting the app."
)


@dataclass(frozen=True)
class ChatSettings:
    # repr=False: a settings object printed in a log or traceback must not show the key.
    api_key: str = field(default="", repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    max_retries: int = 3          # extra attempts after 429 / 529 / 5xx / network errors
    backoff_s: float = 1.0        # first wait; doubles each attempt
    backoff_max_s: float = 10.0   # cap, also applied to the server's retry-after
    timeout_s: float = 90.0
    max_message_chars: int = 40_000  # one message to the AI (the tools take up to MAX_INPUT_BYTES)
    limits: budget_mod.BudgetLimits = field(default_factory=budget_mod.BudgetLimits)

    @classmethod
    def from_env(cls) -> "ChatSettings":
        base = env_str("ANTHROPIC_BASE_URL", "")
        return cls(
            api_key=env_str("ANTHROPIC_API_KEY", ""),
            model=env_str("ANTHROPIC_MODEL", DEFAULT_MODEL),
            base_url=base or None,
            max_retries=max(0, env_int("FTLAB_CHAT_RETRIES", 3)),
            backoff_s=max(0.0, env_float("FTLAB_CHAT_BACKOFF_S", 1.0)),
            backoff_max_s=max(0.0, env_float("FTLAB_CHAT_BACKOFF_MAX_S", 10.0)),
            timeout_s=max(1.0, env_float("FTLAB_CHAT_TIMEOUT_S", 90.0)),
            max_message_chars=max(1000, env_int("FTLAB_CHAT_MAX_MESSAGE_CHARS", 40_000)),
            limits=budget_mod.BudgetLimits.from_env(),
        )


def default_client_factory(settings: ChatSettings):
    """The real client. Retries are ours (``max_retries=0``) so the back-off is
    configurable and the learner sees that we are retrying.

    One client per (key, endpoint) is reused: a fresh client per reply paid a new
    TLS connection each time, measured as most of our added time to first token
    (bench/advisor.py). The key is the Space owner's, from the environment, so
    sharing the client shares nothing between learners; an httpx client is
    thread-safe.
    """
    return _cached_client(settings.api_key, settings.base_url or None, settings.timeout_s)


@functools.lru_cache(maxsize=4)
def _cached_client(api_key: str, base_url: str | None, timeout_s: float):
    import anthropic  # light, but only needed once someone chats

    kwargs: dict[str, Any] = {"api_key": api_key, "max_retries": 0, "timeout": timeout_s}
    if base_url:
        kwargs["base_url"] = base_url
    return anthropic.Anthropic(**kwargs)


# ------------------------------------------------------------------ messages

def content_text(content: Any) -> str:
    """Plain text of a Gradio 6 message content (a string, a block, or a list of blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "\n".join(t for t in (content_text(c) for c in content) if t)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return content["text"]
        file = content.get("file")
        if isinstance(file, dict):
            return f"[file: {file.get('orig_name') or file.get('path') or 'attachment'}]"
        return ""
    return str(content)


def normalize_history(history: Any) -> list[dict]:
    """A fresh list of ``{"role", "content": str, "metadata"?}`` dicts from whatever
    Gradio (or a caller) passed; anything unreadable is dropped, never raised on."""
    out: list[dict] = []
    for msg in history or []:
        if not isinstance(msg, dict):
            role = getattr(msg, "role", None)
            msg = {"role": role, "content": getattr(msg, "content", None), "metadata": getattr(msg, "metadata", None)}
        role = msg.get("role")
        if role not in ("user", "assistant"):
            continue
        item = {"role": role, "content": content_text(msg.get("content"))}
        meta = msg.get("metadata")
        if isinstance(meta, dict) and meta.get("title"):
            item["metadata"] = {k: v for k, v in meta.items() if v is not None}
        out.append(item)
    return out


def _is_app_message(msg: dict) -> bool:
    if msg.get("metadata"):
        return True  # tool notes: the model already had the real tool_result
    text = msg["content"].lstrip()
    return text.startswith((NOTICE, WAITING, OFFLINE))


def to_model_messages(history: list[dict], max_chars: int = MAX_CONTEXT_CHARS,
                      max_message_chars: int | None = None) -> list[dict]:
    """The conversation as the Messages API wants it: user first, roles
    alternating, no empty turns, no app notices, trimmed from the oldest end.

    A user turn over ``max_message_chars`` is left out: the app never sends
    one (``admit_text``), so one in the history came from the offline
    calculator or a hand-made history, and must not reach the model."""
    turns: list[dict] = []
    for msg in history:
        if _is_app_message(msg):
            continue
        if max_message_chars and msg["role"] == "user" and len(msg["content"]) > max_message_chars:
            continue
        text = msg["content"]
        if msg["role"] == "assistant" and CUT_OFF in text:
            text = text.split(CUT_OFF, 1)[0]
        text = text.strip()
        if not text:
            continue
        if turns and turns[-1]["role"] == msg["role"]:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": msg["role"], "content": text})
    while turns and turns[0]["role"] != "user":
        turns.pop(0)  # the welcome message, or what is left after trimming
    while len(turns) > 1 and sum(len(t["content"]) for t in turns) > max_chars:
        turns.pop(0)
        while turns and turns[0]["role"] != "user":
            turns.pop(0)
    return turns


def check_user_text(text: Any, max_bytes: int = MAX_INPUT_BYTES) -> tuple[str, str | None]:
    """``(text, None)`` when usable, else ``("", message for the learner)``."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return "", "That text isn't valid UTF-8, so I can't read it. Save or paste it as UTF-8 text and try again."
    if text is None:
        text = ""
    if not isinstance(text, str):
        return "", "I can only read plain text here."
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "", "That text contains characters that aren't valid UTF-8 (broken surrogate pairs). Paste it as UTF-8 text and try again."
    if "\x00" in text:
        return "", "That looks like binary data (it contains NUL bytes). Paste text such as JSONL, CSV or a log."
    if size > max_bytes:
        return "", (f"That's {size / 1e6:.1f} MB of text; the limit is {max_bytes / 1e6:.0f} MB. "
                    "Paste a sample (a few hundred lines is plenty) and try again.")
    if not text.strip():
        return "", "Type a message first."
    return text, None


def _scrub(text: str, key: str) -> str:
    if key and len(key) >= 8 and key in text:
        text = text.replace(key, "[hidden]")
    return text


def welcome_history(advisor_id: str) -> list[dict]:
    return [{"role": "assistant", "content": get_advisor(advisor_id).welcome}]


def split_for_retry(history: Any) -> tuple[list[dict], str | None]:
    """History before the learner's last message, and that message (None if none)."""
    msgs = normalize_history(history)
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i]["role"] == "user":
            return msgs[:i], msgs[i]["content"]
    return msgs, None


# -------------------------------------------------------- offline calculator

def plan_offline_tools(advisor_id: str, text: str) -> list[tuple[str, dict, list[str]]]:
    """Which tools to run on a learner's message without the AI (the advisor's
    own planner, ``Advisor.offline_plan``); empty when nothing fits."""
    return get_advisor(advisor_id).offline_plan(text)


def offline_reply(advisor_id: str, text: str,
                  on_tool: Callable[[str, dict, dict], None] | None = None) -> str:
    """What the chat answers without a key: a plain statement that the AI is
    off, then the matching calculator's Markdown. Never pretends to be an AI."""
    advisor = get_advisor(advisor_id)
    head = (f"{OFFLINE} **Offline calculator, not an AI reply.** The AI advisor needs an Anthropic API key "
            f"and this app doesn't have one. {SECRET_HELP}\n\n")
    plan = advisor.offline_plan(text)
    if not plan:
        return head + ("I couldn't match your message to one of this lab's calculators. "
                       + advisor.offline_hint + " The **workbench** below runs them with a form.")
    parts = [head + "Meanwhile, here is what this lab's calculator computes from your message:"]
    for name, tool_input, notes in plan:
        result, error = registry.execute(name, tool_input)
        if on_tool is not None and result is not None:
            on_tool(name, tool_input, result)
        section = f"### `{name}`\n"
        shown = {k: v for k, v in tool_input.items() if not isinstance(v, str) or len(v) < 80}
        if shown:
            section += "Read from your message: " + ", ".join(f"{k} = {v}" for k, v in shown.items()) + "\n"
        if notes:
            section += "Assumed: " + "; ".join(notes) + ". Adjust these in the workbench below.\n"
        section += "\n" + (f"{NOTICE} {error}" if error else registry.render_markdown(name, result))
        parts.append(section)
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the chat

def _tool_summary(name: str, text: str, is_error: bool) -> str:
    """What the learner reads first: the tool's own Markdown (as in the workbench), or its error."""
    if is_error:
        return f"{NOTICE} {text[:600]}"
    try:
        result = json.loads(text)
    except ValueError:  # output cut to MAX_TOOL_OUTPUT: no dict to render, show the text
        return text[:600] + (" …" if len(text) > 600 else "")
    summary = registry.render_markdown(name, result) if isinstance(result, dict) else text[:600]
    return summary if len(summary) <= 3000 else summary[:3000] + "\n\n… (cut; the full result is below)"


def _tool_note(name: str, tool_input: Any, text: str, is_error: bool) -> dict:
    """A collapsible chat note for one tool call: a readable summary, the raw JSON behind a toggle."""
    shown = json.dumps(tool_input, ensure_ascii=False, default=str)
    if len(shown) > 400:
        shown = shown[:400] + " …"
    raw = text if len(text) <= 2000 else text[:2000] + " …"
    content = (f"{_tool_summary(name, text, is_error)}\n\n"
               f"<details><summary>Raw tool call (JSON)</summary>\n\nInput:\n```json\n{shown}\n```\n"
               f"{'Error' if is_error else 'Result'}:\n```json\n{raw}\n```\n</details>")
    return {"role": "assistant", "content": content,
            "metadata": {"title": f"{TOOL_NOTE_PREFIX} ran {name}" + (" (it reported a problem)" if is_error else ""),
                         "status": "done"}}


def _retry_wait(settings: ChatSettings, attempt: int, exc: Exception) -> float:
    wait = settings.backoff_s * (2 ** attempt)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                wait = max(wait, float(headers.get(name)) * scale)
                break
            except (TypeError, ValueError):
                continue
    return min(wait, settings.backoff_max_s)


def _busy(exc: Exception) -> bool:
    """Rate-limited or overloaded (429, 529, 408/409): the service is up but full."""
    status = getattr(exc, "status_code", None)
    return status in (408, 409, 429, 529)


def _trouble(exc: Exception) -> str:
    """What is wrong with the service, as the retry note says it."""
    if _busy(exc):
        return "The AI service is busy"
    if getattr(exc, "status_code", None):
        return "The AI service had an error"
    return "Couldn't reach the AI service"


def _failure_message(exc: Exception, settings: ChatSettings, attempts: int) -> tuple[str, bool]:
    """A learner-facing message for an error, and whether the call cost nothing
    (so the budget is refunded). Never includes the exception text verbatim
    for auth errors, and is scrubbed of the key by the caller anyway."""
    import anthropic

    kept = "Your message is kept: press **Retry** to send it again."
    tries = f" (tried {attempts} time{'s' if attempts != 1 else ''})"
    if isinstance(exc, anthropic.AuthenticationError):
        return (f"{NOTICE} The Anthropic API key was rejected (HTTP 401), so the advisor can't answer. "
                f"If you run this Space, check the `ANTHROPIC_API_KEY` secret (Settings → Variables and "
                f"secrets). {kept}"), True
    if isinstance(exc, anthropic.PermissionDeniedError):
        return f"{NOTICE} The Anthropic key isn't allowed to use this model (HTTP 403). {kept}", True
    if isinstance(exc, anthropic.NotFoundError):
        return (f"{NOTICE} The model `{settings.model}` isn't available (HTTP 404). The Space owner can set "
                f"`ANTHROPIC_MODEL` to a current model id. {kept}"), True
    if isinstance(exc, anthropic.APIStatusError) and _busy(exc):
        return (f"{NOTICE} The AI service is busy right now{tries}. {kept} Waiting a minute usually helps.",
                True)
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 500:
        # Not "busy": a persistent 5xx is the service failing, which waiting may not fix.
        return (f"{NOTICE} The AI service had an error (HTTP {exc.status_code}){tries}. {kept} If it keeps "
                f"happening, the problem is on the service's side: try again later."), True
    if isinstance(exc, anthropic.APITimeoutError):
        return f"{NOTICE} The AI service took too long to answer. {kept}", True
    if isinstance(exc, anthropic.APIConnectionError):
        return (f"{NOTICE} Couldn't reach the AI service (network error). Check the connection, or, if you "
                f"run this app, `ANTHROPIC_BASE_URL`. {kept}"), True
    if isinstance(exc, anthropic.BadRequestError):
        detail = ""
        body = getattr(exc, "body", None)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            detail = str(body["error"].get("message", ""))[:300]
        return (f"{NOTICE} The AI service refused the request (HTTP 400){': ' + detail if detail else ''}. "
                f"Try a shorter message or **Clear** the chat."), True
    if isinstance(exc, anthropic.APIStatusError):
        return f"{NOTICE} The AI service answered with an error (HTTP {exc.status_code}). {kept}", True
    return f"{NOTICE} Something went wrong on our side ({type(exc).__name__}). {kept}", False


def _retryable(exc: Exception) -> bool:
    import anthropic

    if isinstance(exc, anthropic.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


# ------------------------------------------------------- one reply, in steps

def too_long_notice(chars: int, settings: ChatSettings) -> str:
    return (f"{NOTICE} That message is {chars:,} characters; the AI advisor reads at most "
            f"{settings.max_message_chars:,} per message to keep this Space affordable, so it was not sent. "
            f"Your text is still in the box: shorten it to a representative sample, or run the calculator "
            f"on the whole text in the **workbench** below (up to {MAX_INPUT_BYTES / 1e6:.0f} MB).")


def admit_text(user_text: Any, settings: ChatSettings | None = None) -> tuple[str, str | None]:
    """``(text, None)`` when the message may go to the advisor, else ``("", notice)``.

    With a key, a message over ``max_message_chars`` is refused here, before it
    enters the history, so it can never reach the model on a later turn either.
    Without a key the offline calculator reads up to ``MAX_INPUT_BYTES``."""
    text, problem = check_user_text(user_text)
    if problem:
        return "", f"{NOTICE} {problem}"
    settings = settings or ChatSettings.from_env()
    if settings.api_key and len(text) > settings.max_message_chars:
        return "", too_long_notice(len(text), settings)
    return text, None


@dataclass
class _Turn:
    """The state one learner message's reply shares across its steps."""
    advisor: Any
    settings: ChatSettings
    msgs: list[dict]
    session: dict | None
    counter: budget_mod.GlobalCounter | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    rounds: int = 0
    produced: bool = False           # anything shown yet (then a failure is not refunded)
    before: dict | None = None       # the session budget before this message was counted
    on_tool: Callable[[str, dict, dict], None] | None = None  # told of each tool result (lab hand-offs)

    def tool_ran(self, name: str, tool_input: Any, out: str, is_error: bool) -> None:
        """Pass a successful tool result on (the lab offers to apply it); never breaks the reply."""
        if self.on_tool is None or is_error:
            return
        try:
            result = json.loads(out)
        except ValueError:  # cut to MAX_TOOL_OUTPUT: run it again for the whole dict
            result, _ = registry.execute(name, tool_input)
        if isinstance(result, dict):
            self.on_tool(name, tool_input, result)

    def say(self, text: str, **extra) -> None:
        self.msgs.append({"role": "assistant", "content": _scrub(text, self.settings.api_key), **extra})

    def admit(self) -> str | None:
        """Count this message against the budgets; a refusal message when over."""
        if self.session is None and self.counter is None:
            return None
        new_state, refusal = budget_mod.admit(self.session, self.settings.limits, self.counter, self.clock())
        if refusal:
            return f"{NOTICE} {refusal}"
        if self.session is not None:
            self.before = dict(self.session)
            self.session.clear()
            self.session.update(new_state)
        return None

    def refund(self) -> None:
        """A call that cost nothing does not use up the learner's budget."""
        if self.session is not None and self.before is not None:
            self.session.clear()
            self.session.update(self.before)
        if self.counter is not None:
            self.counter.give_back(self.clock())


def _open_stream(turn: _Turn, client, request: dict, stack: contextlib.ExitStack):
    """Enter ``client.messages.stream(...)`` on ``stack``, retrying a busy or
    unreachable service with back-off (shown to the learner). Returns the
    stream, or None after saying why it could not be opened."""
    settings, waiting = turn.settings, None
    for attempt in range(settings.max_retries + 1):
        try:
            stream = stack.enter_context(client.messages.stream(**request))
        except Exception as exc:
            if _retryable(exc) and attempt < settings.max_retries:
                wait = _retry_wait(settings, attempt, exc)
                note = {"role": "assistant", "content": (
                    f"{WAITING} {_trouble(exc)}; trying again in {wait:.0f} s "
                    f"(attempt {attempt + 2} of {settings.max_retries + 1})…")}
                if waiting is None:
                    turn.msgs.append(note)
                    waiting = len(turn.msgs) - 1
                else:
                    turn.msgs[waiting] = note
                yield turn.msgs
                turn.sleep(wait)
                continue
            if waiting is not None:
                turn.msgs.pop(waiting)
            message, free = _failure_message(exc, settings, attempt + 1)
            log.warning("advisor call failed: %s (status %s)", type(exc).__name__, getattr(exc, "status_code", "-"))
            if free and not turn.produced:
                turn.refund()
            turn.say(message)
            yield turn.msgs
            return None
        if waiting is not None:
            turn.msgs.pop(waiting)
        return stream
    return None


def _read_stream(turn: _Turn, stream):
    """Show the reply as it streams. Returns ``(final message, index of the
    text bubble or None)``, or None when the stream broke (what arrived is kept,
    marked cut off; not retried, since the learner already saw part of it)."""
    text_index = None
    try:
        for event in stream:
            if event.type == "text" and event.text:
                if text_index is None:
                    turn.say("")
                    text_index = len(turn.msgs) - 1
                turn.msgs[text_index]["content"] = _scrub(event.snapshot, turn.settings.api_key)
                turn.produced = True
                yield turn.msgs
        return stream.get_final_message(), text_index
    except Exception as exc:  # an `event: error` (e.g. overloaded) or a dropped connection
        log.warning("advisor stream interrupted: %s", type(exc).__name__)
        reason = "the AI service was overloaded" if "overloaded" in str(getattr(exc, "type", "") or exc) \
            else "the connection dropped" if "Connection" in type(exc).__name__ else "the AI service reported an error"
        if text_index is None:
            turn.say(f"{NOTICE} The reply was cut off before any text arrived ({reason}). "
                     f"Your message is kept: press **Retry**.")
        else:
            turn.msgs[text_index]["content"] += f"{CUT_OFF} because {reason}. Press **Retry** for a complete answer.*"
        yield turn.msgs
        return None


def _tool_round(turn: _Turn, final, model_messages: list[dict]):
    """Run the tools the model asked for and return the messages for its next
    call, or None when the reply is out of tool rounds."""
    limits = turn.settings.limits
    if turn.rounds >= limits.tool_rounds:
        turn.say(f"{NOTICE} The advisor reached the limit of {limits.tool_rounds} tool rounds for one "
                 f"reply. Ask it to continue, or narrow the question.")
        yield turn.msgs
        return None
    turn.rounds += 1
    assistant_blocks: list[dict] = []
    results: list[dict] = []
    for block in final.content:
        if block.type == "text" and block.text.strip():
            assistant_blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            assistant_blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
            out, is_error = registry.run_tool(block.name, block.input)
            turn.tool_ran(block.name, block.input, out, is_error)
            results.append({"type": "tool_result", "tool_use_id": block.id, "content": out,
                            **({"is_error": True} if is_error else {})})
            note = _tool_note(block.name, block.input, out, is_error)
            turn.say(note["content"], metadata=note["metadata"])
            turn.produced = True
            yield turn.msgs
    return model_messages + [{"role": "assistant", "content": assistant_blocks},
                             {"role": "user", "content": results}]


def _analyse_paste(turn: _Turn, text: str, model_messages: list[dict]):
    """Run the tools that read pasted data (JSONL, loss logs, predictions) before
    the model sees it: asking the model to copy a long paste into a tool call
    would cost output tokens and could be cut off by max_tokens."""
    for name, tool_input, _ in turn.advisor.offline_plan(text):
        if not registry.TOOLS[name].reads_paste:
            continue
        out, is_error = registry.run_tool(name, tool_input)
        turn.tool_ran(name, tool_input, out, is_error)
        note = _tool_note(name, {"input": "(your pasted data)"}, out, is_error)
        turn.msgs.append(note)
        model_messages[-1]["content"] += (
            f"\n\n[The app already ran the {name} tool on the data pasted above. Its result is below; "
            f"use it instead of calling {name} again on the same data.]\n{out}")
        yield turn.msgs


def _request(turn: _Turn, model_messages: list[dict], tools: list[dict]) -> dict:
    limits = turn.settings.limits
    request: dict[str, Any] = {"model": turn.settings.model, "max_tokens": limits.output_tokens,
                               **cached_request(turn.advisor.system_prompt, tools, model_messages)}
    if tools:
        if turn.rounds >= limits.tool_rounds:
            request["tool_choice"] = {"type": "none"}  # out of tool rounds: answer with what it has
    return request


def _finish(turn: _Turn, final, text_index: int | None) -> None:
    """Label an empty, truncated or declined reply."""
    if text_index is None:
        turn.say(f"{NOTICE} The advisor returned an empty reply. Press **Retry**.")
    elif final.stop_reason == "max_tokens":
        turn.msgs[text_index]["content"] += (f"\n\n*(This reply hit the {turn.settings.limits.output_tokens}-token "
                                             f"limit per answer; ask me to continue.)*")
    elif final.stop_reason == "refusal":
        turn.msgs[text_index]["content"] += "\n\n*(The model declined to continue this answer.)*"


def _converse(turn: _Turn, client, text: str):
    """Model calls until it answers without asking for a tool."""
    tools = [spec.to_anthropic() for spec in registry.tools_for(turn.advisor.id)]
    model_messages = to_model_messages(turn.msgs, max_message_chars=turn.settings.max_message_chars)
    yield from _analyse_paste(turn, text, model_messages)
    while True:
        request = _request(turn, model_messages, tools)
        with contextlib.ExitStack() as stack:
            stream = yield from _open_stream(turn, client, request, stack)
            if stream is None:
                return
            read = yield from _read_stream(turn, stream)
        if read is None:
            return
        final, text_index = read
        usage = getattr(final, "usage", None)
        if turn.counter is not None and usage is not None:
            turn.counter.add_tokens((usage.input_tokens or 0) + (usage.output_tokens or 0), turn.clock())
        if final.stop_reason == "tool_use" and any(getattr(b, "type", "") == "tool_use" for b in final.content):
            model_messages = yield from _tool_round(turn, final, model_messages)
            if model_messages is None:
                return
            continue
        _finish(turn, final, text_index)
        yield turn.msgs
        return


def stream_reply(
    advisor_id: str,
    history: Any,
    user_text: Any,
    *,
    client_factory: Callable[[ChatSettings], Any] | None = None,
    settings: ChatSettings | None = None,
    session: dict | None = None,
    counter: budget_mod.GlobalCounter | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_tool: Callable[[str, dict, dict], None] | None = None,
) -> Iterator[list[dict]]:
    """Yield the updated messages history while the advisor answers ``user_text``.

    ``session`` is the per-session budget dict from ``gr.State``; it is updated
    in place when a message is counted (``None`` = no per-session limits).
    ``counter`` is the global daily counter (``None`` = no global cap).
    ``on_tool(name, input, result)`` hears of each successful tool run (offline ones too),
    so the lab can offer to apply a result in the Training tab.
    """
    advisor = get_advisor(advisor_id)
    settings = settings or ChatSettings.from_env()
    msgs = normalize_history(history)
    text, problem = admit_text(user_text, settings)
    if problem:
        # A refused message never enters the history (so no later turn can send
        # it); the textbox keeps it for the learner to shorten.
        yield msgs + [{"role": "assistant", "content": problem}]
        return
    msgs.append({"role": "user", "content": text})
    yield msgs
    turn = _Turn(advisor, settings, msgs, session, counter, clock, sleep, on_tool=on_tool)
    if not settings.api_key:
        try:
            reply = offline_reply(advisor.id, text, on_tool)
        except Exception as exc:  # a calculator bug must not lose the conversation
            log.exception("offline calculator failed")
            reply = f"{OFFLINE} The offline calculator failed ({type(exc).__name__}). {SECRET_HELP}"
        turn.say(reply)
        yield msgs
        return
    refusal = turn.admit()
    if refusal:
        turn.say(refusal)
        yield msgs
        return
    try:
        client = (client_factory or default_client_factory)(settings)
    except Exception as exc:
        log.error("could not create the Anthropic client: %s", type(exc).__name__)
        turn.refund()
        turn.say(f"{NOTICE} The AI client could not start ({type(exc).__name__}). Your message is kept.")
        yield msgs
        return
    yield from _converse(turn, client, text)
