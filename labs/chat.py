"""Streaming advisor chat: Claude through the ``anthropic`` client, looping tool use.

``stream_reply(advisor_id, history, user_text, ...)`` is a generator that yields
the whole Gradio messages history (a list of ``{"role", "content", "metadata"?}``
dicts) each time something changes: the learner's message, streamed text, a
collapsible "🔧 ran <tool>" note per tool call, and any error notice. It never
raises: every failure becomes a visible message and the history (including the
learner's last message) is kept, so **Retry** can send it again.

Flow for one learner message::

    input checks (size, UTF-8) -> no key? offline calculator -> budget -> model
    model --tool_use--> run_tool -> tool_result -> model ... (at most N rounds)

Settings are read from the environment *at call time* (``ChatSettings.from_env``):
``ANTHROPIC_API_KEY``, ``ANTHROPIC_MODEL`` (default ``claude-sonnet-5-5``),
``ANTHROPIC_BASE_URL``, ``FTLAB_CHAT_RETRIES``, ``FTLAB_CHAT_BACKOFF_S``,
``FTLAB_CHAT_TIMEOUT_S``, ``FTLAB_CHAT_MAX_MESSAGE_CHARS`` plus the budget
variables in ``labs/budget.py``.

The key only ever goes to the configured base URL (through the client); it is
never logged, never put in a message, and scrubbed from anything shown.
"""
from __future__ import annotations

import functools

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from core.config import env_float, env_int, env_str
from labs import budget as budget_mod
from labs.advisors import get_advisor
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


def to_model_messages(history: list[dict], max_chars: int = MAX_CONTEXT_CHARS) -> list[dict]:
    """The conversation as the Messages API wants it: user first, roles
    alternating, no empty turns, no app notices, trimmed from the oldest end."""
    turns: list[dict] = []
    for msg in history:
        if _is_app_message(msg):
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

_JSON_LINE = re.compile(r"^\s*\{.*\}\s*$")
_LOG_LINE = re.compile(r"^\s*(?:step\s*[:=]?\s*)?\d+[\s,;|\t:]+[-+]?(?:\d+\.?\d*|\.\d+|nan|inf)", re.I)
_NUM = r"(\d[\d,]*(?:\.\d+)?\s*[kKmM]?)"

_PRESETS = (  # (pattern, preset) — most specific first
    (r"smollm2?[-\s]?135m|\b135m\b", "SmolLM2-135M"),
    (r"smollm2?[-\s]?360m|\b360m\b", "SmolLM2-360M"),
    (r"smollm2?[-\s]?1\.7b|\b1\.7b\b", "SmolLM2-1.7B"),
    (r"qwen[\w.\s-]*0\.5b|\b0\.5b\b", "Qwen2.5-0.5B"),
    (r"qwen[\w.\s-]*7b", "Qwen2.5-7B"),
    (r"llama[\w.\s-]*8b|llama[-\s]?3", "Llama-3.1-8B"),
    (r"mistral", "Mistral-7B"),
)
_GPUS = (("h200", 141), ("h100", 80), ("a100", 80), ("a6000", 48), ("l40", 48), ("4090", 24), ("3090", 24),
         ("a10g", 24), ("l4", 24), ("t4", 16), ("v100", 16))


def _number(raw: str) -> int:
    raw = raw.strip().replace(",", "").lower()
    mult = 1000 if raw.endswith("k") else 1_000_000 if raw.endswith("m") else 1
    return int(float(raw.rstrip("km").strip()) * mult)


def _json_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if _JSON_LINE.match(ln)]


def _looks_like_loss_log(text: str) -> bool:
    if re.search(r"""["']?(eval_)?loss["']?\s*[:=]""", text) and len(re.findall(r"\d", text)) >= 6:
        return True
    return sum(1 for ln in text.splitlines() if _LOG_LINE.match(ln)) >= 3


def _task_kind(low: str) -> str:
    if re.search(r"json|extract|structured|schema|format", low):
        return "format"
    if re.search(r"tone|style|voice|brand", low):
        return "style"
    if re.search(r"prefer|dpo|chosen|rejected|ranking", low):
        return "preference"
    if re.search(r"medical|clinical|legal|financ|domain|jargon", low):
        return "domain"
    return "general"


def _strategy_input(text: str) -> tuple[dict, list[str]]:
    low = text.lower()
    notes: list[str] = []
    m = re.search(_NUM + r"\s+(?:[a-z-]+\s+){0,4}?(?:per|a|each|every|/)\s*day|" + _NUM + r"\s+(?:[a-z-]+\s+){0,2}?daily", low)
    if m:
        per_day = _number(m.group(1) or m.group(2))
    else:
        per_day = 1000
        notes.append("volume: 1,000 requests a day (you didn't say)")
    m = re.search(_NUM + r"\s+(?:[a-z-]+\s+){0,2}?(?:examples|samples|labell?ed|pairs|records)", low)
    examples = _number(m.group(1)) if m else 0
    if not m:
        notes.append("examples on hand: none yet")
    strict = ("strict" if re.search(r"json|strict|schema|xml|must parse", low)
              else "moderate" if re.search(r"template|format|tone|style|brand", low) else "loose")
    m = re.search(r"(?:chang|updat)\w*\s+(?:\w+\s+){0,3}?(daily|weekly|monthly|yearly|every\s+(day|week|month|year))", low)
    if m:
        word = m.group(2) or m.group(1)
        change = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}.get(word, word)
    else:
        change = "yearly"
        notes.append("knowledge changes: about yearly")
    privacy = ("on_premises" if re.search(r"on[- ]?prem|own servers|may not leave|must not leave|air[- ]?gapped", low)
               else "sensitive" if re.search(r"patient|medical|clinical|health|hipaa|pii|personal|legal|contract", low)
               else "none")
    latency = ("realtime" if re.search(r"real[- ]?time|half a second|\d+\s*ms\b|millisecond", low)
               else "relaxed" if re.search(r"batch|overnight|offline|nightly", low) else "interactive")
    return ({"format_strictness": strict, "requests_per_day": per_day, "knowledge_change": change,
             "privacy": privacy, "latency": latency, "examples_on_hand": examples,
             "task_kind": _task_kind(low)}, notes)


def _lora_input(text: str) -> tuple[dict | None, list[str]]:
    low = text.lower()
    model = next((preset for pat, preset in _PRESETS if re.search(pat, low)), None)
    if model is None:
        return None, []
    notes: list[str] = []
    m = re.search(_NUM + r"\s+(?:[a-z-]+\s+){0,3}?(?:examples|samples|rows|pairs|records|conversations)", low)
    size = _number(m.group(1)) if m else 1000
    if not m:
        notes.append("dataset size: 1,000 examples (you didn't say)")
    m = re.search(r"(\d+(?:\.\d+)?)\s*gb", low)
    gpu = float(m.group(1)) if m else next((gb for name, gb in _GPUS if name in low), None)
    if gpu is None:
        gpu = 24
        notes.append("GPU memory: 24 GB (you didn't say)")
    return {"model": model, "dataset_size": max(1, size), "task_kind": _task_kind(low), "gpu_memory_gb": gpu}, notes


def plan_offline_tools(advisor_id: str, text: str) -> list[tuple[str, dict, list[str]]]:
    """Which tools to run on a learner's message without the AI: a list of
    ``(tool name, input, assumptions made)``; empty when nothing fits."""
    low = text.lower()
    lines = _json_lines(text)
    if advisor_id == "dataset":
        return [("critique_jsonl", {"text": "\n".join(lines)}, [])] if lines else []
    if advisor_id == "eval":
        if lines and any('"prediction"' in ln for ln in lines):
            return [("score_predictions", {"predictions": "\n".join(lines)}, [])]
        if _looks_like_loss_log(text):
            return [("diagnose_training_curve", {"log_text": text}, [])]
        task = text.strip()[:4000]
        if len(task) < 3:
            return []
        plan = []
        if re.search(r"rubric|judge", low):
            plan.append(("judge_rubric", {"task_description": task}, []))
        if re.search(r"adversarial|red[- ]?team|attack|break", low):
            plan.append(("adversarial_cases", {"task_description": task}, []))
        if re.search(r"monitor|drift|alert|production", low):
            plan.append(("monitoring_plan", {"task_description": task}, []))
        return plan or [("judge_rubric", {"task_description": task}, []),
                        ("adversarial_cases", {"task_description": task}, [])]
    if advisor_id == "lora":
        if _looks_like_loss_log(text):
            return [("diagnose_training_curve", {"log_text": text}, [])]
        tool_input, notes = _lora_input(text)
        return [("recommend_lora_config", tool_input, notes)] if tool_input else []
    if advisor_id == "strategy":
        tool_input, notes = _strategy_input(text)
        return [("assess_use_case", tool_input, notes)]
    return []


# Tools whose input is the learner's pasted data (see stream_reply).
_DATA_TOOLS = ("critique_jsonl", "diagnose_training_curve", "score_predictions")

_OFFLINE_HINTS = {
    "strategy": "Describe the use case: output format, requests per day, how often the facts change, privacy needs.",
    "dataset": "Paste your examples as JSONL (one JSON object per line) and the critic will check them.",
    "lora": "Name a model (e.g. Mistral 7B, SmolLM2-360M), your dataset size and GPU memory, or paste a loss log.",
    "eval": "Paste JSONL lines with `prediction` and `reference`, or describe your model's task.",
}


def offline_reply(advisor_id: str, text: str) -> str:
    """What the chat answers without a key: a plain statement that the AI is
    off, then the matching calculator's Markdown. Never pretends to be an AI."""
    head = (f"{OFFLINE} **Offline calculator, not an AI reply.** The AI advisor needs an Anthropic API key "
            f"and this app doesn't have one. {SECRET_HELP}\n\n")
    plan = plan_offline_tools(advisor_id, text)
    if not plan:
        return head + ("I couldn't match your message to one of this lab's calculators. "
                       + _OFFLINE_HINTS.get(advisor_id, "") + " The **workbench** below runs them with a form.")
    parts = [head + "Meanwhile, here is what this lab's calculator computes from your message:"]
    for name, tool_input, notes in plan:
        result, error = registry.execute(name, tool_input)
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


def _failure_message(exc: Exception, settings: ChatSettings, attempts: int) -> tuple[str, bool]:
    """A learner-facing message for an error, and whether the call cost nothing
    (so the budget is refunded). Never includes the exception text verbatim
    for auth errors, and is scrubbed of the key by the caller anyway."""
    import anthropic

    kept = "Your message is kept: press **Retry** to send it again."
    if isinstance(exc, anthropic.AuthenticationError):
        return (f"{NOTICE} The Anthropic API key was rejected (HTTP 401), so the advisor can't answer. "
                f"If you run this Space, check the `ANTHROPIC_API_KEY` secret (Settings → Variables and "
                f"secrets). {kept}"), True
    if isinstance(exc, anthropic.PermissionDeniedError):
        return f"{NOTICE} The Anthropic key isn't allowed to use this model (HTTP 403). {kept}", True
    if isinstance(exc, anthropic.NotFoundError):
        return (f"{NOTICE} The model `{settings.model}` isn't available (HTTP 404). The Space owner can set "
                f"`ANTHROPIC_MODEL` to a current model id. {kept}"), True
    if isinstance(exc, (anthropic.RateLimitError, anthropic.InternalServerError)) or (
            isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 500):
        tries = f" (tried {attempts} time{'s' if attempts != 1 else ''})"
        return (f"{NOTICE} The AI service is busy right now{tries}. {kept} Waiting a minute usually helps.",
                True)
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
) -> Iterator[list[dict]]:
    """Yield the updated messages history while the advisor answers ``user_text``.

    ``session`` is the per-session budget dict from ``gr.State``; it is updated
    in place when a message is counted (``None`` = no per-session limits).
    ``counter`` is the global daily counter (``None`` = no global cap).
    """
    advisor = get_advisor(advisor_id)
    settings = settings or ChatSettings.from_env()
    key = settings.api_key
    msgs = normalize_history(history)

    text, problem = check_user_text(user_text)
    if problem:
        # The oversize/binary text is not added to the chat; the textbox keeps it.
        yield msgs + [{"role": "assistant", "content": f"{NOTICE} {problem}"}]
        return
    msgs.append({"role": "user", "content": text})
    yield msgs

    if not key:
        try:
            reply = offline_reply(advisor.id, text)
        except Exception as exc:  # a calculator bug must not lose the conversation
            log.exception("offline calculator failed")
            reply = f"{OFFLINE} The offline calculator failed ({type(exc).__name__}). {SECRET_HELP}"
        msgs.append({"role": "assistant", "content": reply})
        yield msgs
        return

    if len(text) > settings.max_message_chars:
        msgs.append({"role": "assistant", "content": (
            f"{NOTICE} That message is {len(text):,} characters; the AI advisor reads at most "
            f"{settings.max_message_chars:,} per message to keep this Space affordable. Paste a "
            f"representative sample, or run the calculator on the whole text in the **workbench** below "
            f"(up to {MAX_INPUT_BYTES / 1e6:.0f} MB).")})
        yield msgs
        return

    now = clock()
    limits = settings.limits
    if session is not None or counter is not None:
        new_state, refusal = budget_mod.admit(session, limits, counter, now)
        if refusal:
            msgs.append({"role": "assistant", "content": f"{NOTICE} {refusal}"})
            yield msgs
            return
        if session is not None:
            before = dict(session)
            session.clear()
            session.update(new_state)

    def refund():
        if session is not None:
            session.clear()
            session.update(before)
        if counter is not None:
            counter.give_back(clock())

    try:
        client = (client_factory or default_client_factory)(settings)
    except Exception as exc:
        log.error("could not create the Anthropic client: %s", type(exc).__name__)
        refund()
        msgs.append({"role": "assistant", "content": f"{NOTICE} The AI client could not start ({type(exc).__name__}). Your message is kept."})
        yield msgs
        return

    tools = [spec.to_anthropic() for spec in registry.tools_for(advisor.id)]
    model_messages: list[dict] = to_model_messages(msgs)
    # Pasted data (JSONL, loss logs, predictions) is analysed here, before the
    # model sees it: asking the model to copy a long paste into a tool call would
    # cost output tokens and could be cut off by max_tokens.
    for name, tool_input, _ in plan_offline_tools(advisor.id, text):
        if name not in _DATA_TOOLS:
            continue
        out, is_error = registry.run_tool(name, tool_input)
        note = _tool_note(name, {"input": "(your pasted data)"}, out, is_error)
        msgs.append(note)
        model_messages[-1]["content"] += (
            f"\n\n[The app already ran the {name} tool on the data pasted above. Its result is below; "
            f"use it instead of calling {name} again on the same data.]\n{out}")
        yield msgs
    rounds = 0
    produced_anything = False

    while True:
        request: dict[str, Any] = {"model": settings.model, "max_tokens": limits.output_tokens,
                                   "system": advisor.system_prompt, "messages": model_messages}
        if tools:
            request["tools"] = tools
            if rounds >= limits.tool_rounds:
                # Out of tool rounds: the model must answer with what it has.
                request["tool_choice"] = {"type": "none"}

        # --- open the stream, retrying busy/unreachable service with back-off
        stream = manager = None
        attempt = 0
        waiting_index = None
        while stream is None:
            try:
                manager = client.messages.stream(**request)
                stream = manager.__enter__()
            except Exception as exc:
                if _retryable(exc) and attempt < settings.max_retries:
                    wait = _retry_wait(settings, attempt, exc)
                    attempt += 1
                    note = {"role": "assistant", "content": (
                        f"{WAITING} The AI service is busy; trying again in {wait:.0f} s "
                        f"(attempt {attempt + 1} of {settings.max_retries + 1})…")}
                    if waiting_index is None:
                        msgs.append(note)
                        waiting_index = len(msgs) - 1
                    else:
                        msgs[waiting_index] = note
                    yield msgs
                    sleep(wait)
                    continue
                if waiting_index is not None:
                    msgs.pop(waiting_index)
                message, free = _failure_message(exc, settings, attempt + 1)
                log.warning("advisor call failed: %s (status %s)", type(exc).__name__, getattr(exc, "status_code", "-"))
                if free and not produced_anything:
                    refund()
                msgs.append({"role": "assistant", "content": _scrub(message, key)})
                yield msgs
                return
        if waiting_index is not None:
            msgs.pop(waiting_index)

        # --- read the stream
        text_index = None
        final = None
        try:
            for event in stream:
                if event.type == "text" and event.text:
                    if text_index is None:
                        msgs.append({"role": "assistant", "content": ""})
                        text_index = len(msgs) - 1
                    msgs[text_index]["content"] = _scrub(event.snapshot, key)
                    produced_anything = True
                    yield msgs
            final = stream.get_final_message()
        except Exception as exc:
            # An `event: error` (e.g. overloaded) or a dropped connection mid-reply:
            # not retried (the learner already saw part of it); keep what arrived.
            log.warning("advisor stream interrupted: %s", type(exc).__name__)
            reason = "the AI service was overloaded" if "overloaded" in str(getattr(exc, "type", "") or exc) \
                else "the connection dropped" if "Connection" in type(exc).__name__ else "the AI service reported an error"
            mark = f"{CUT_OFF} because {reason}. Press **Retry** for a complete answer.*"
            if text_index is None:
                msgs.append({"role": "assistant", "content": f"{NOTICE} The reply was cut off before any text arrived ({reason}). Your message is kept: press **Retry**."})
            else:
                msgs[text_index]["content"] += mark
            yield msgs
            return
        finally:
            try:
                manager.__exit__(None, None, None)
            except Exception:
                pass

        usage = getattr(final, "usage", None)
        if counter is not None and usage is not None:
            counter.add_tokens((usage.input_tokens or 0) + (usage.output_tokens or 0), clock())

        tool_uses = [b for b in final.content if getattr(b, "type", "") == "tool_use"]
        if final.stop_reason == "tool_use" and tool_uses:
            if rounds >= limits.tool_rounds:
                msgs.append({"role": "assistant", "content": (
                    f"{NOTICE} The advisor reached the limit of {limits.tool_rounds} tool rounds for one "
                    f"reply. Ask it to continue, or narrow the question.")})
                yield msgs
                return
            rounds += 1
            assistant_blocks: list[dict] = []
            results: list[dict] = []
            for block in final.content:
                if block.type == "text" and block.text.strip():
                    assistant_blocks.append({"type": "text", "text": block.text})
                elif block.type == "tool_use":
                    assistant_blocks.append({"type": "tool_use", "id": block.id, "name": block.name,
                                             "input": block.input})
                    out, is_error = registry.run_tool(block.name, block.input)
                    result = {"type": "tool_result", "tool_use_id": block.id, "content": out}
                    if is_error:
                        result["is_error"] = True
                    results.append(result)
                    note = _tool_note(block.name, block.input, out, is_error)
                    note["content"] = _scrub(note["content"], key)
                    msgs.append(note)
                    produced_anything = True
                    yield msgs
            model_messages = model_messages + [{"role": "assistant", "content": assistant_blocks},
                                               {"role": "user", "content": results}]
            continue

        if text_index is None:
            msgs.append({"role": "assistant", "content": f"{NOTICE} The advisor returned an empty reply. Press **Retry**."})
        elif final.stop_reason == "max_tokens":
            msgs[text_index]["content"] += (f"\n\n*(This reply hit the {limits.output_tokens}-token limit per "
                                            f"answer; ask me to continue.)*")
        elif final.stop_reason == "refusal":
            msgs[text_index]["content"] += "\n\n*(The model declined to continue this answer.)*"
        yield msgs
        return
