"""Chat-row formats, one implementation: reading JSONL, roles, content → text,
and the check that decides whether a row can be trained on.

The Training tab (``training/data/loading.py``) and the Lab 2 dataset critic
(``labs/tools/dataset_critic.py``) both read pasted or uploaded rows through
``parse_jsonl`` here, so a row the critic calls usable is a row Training
accepts, and the row cap, the encodings and the error hints are the same.
Pure Python (json, re, dataclasses): no torch, no datasets, no Gradio.

Row formats after parsing:

* SFT rows:  ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
  ending with an assistant turn (the text the loss is computed on).
* DPO rows:  TRL's conversational preference format
  ``{"prompt": [system?, user, ...], "chosen": [{"role": "assistant", ...}],
  "rejected": [{"role": "assistant", ...}]}``.

Accepted input: ``messages`` rows, ``prompt``/``completion`` rows (strings or
turns) and ``prompt``/``chosen``/``rejected`` pairs (TRL's implicit-prompt form
too). Content is a string, or a list of ``{"type": "text", "text": ...}`` parts
(joined with newlines).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from core.config import env_int

# Input limits (issue 7). Read once at import from the environment so a learner
# who duplicates the Space can raise them; every function also reads the module
# attribute at call time, so tests (and the UI) can adjust them.
MAX_UPLOAD_MB = max(1, env_int("FTLAB_MAX_UPLOAD_MB", 5))
MAX_ROWS = max(1, env_int("FTLAB_MAX_ROWS", 5000))
MAX_MESSAGE_CHARS = max(1, env_int("FTLAB_MAX_MESSAGE_CHARS", 20_000))
# A single line longer than this is refused before json.loads sees it, so one
# enormous line cannot tie up the worker or balloon memory.
MAX_LINE_CHARS = 200_000
MAX_TURNS = 200
# Enough to show a learner the pattern of what is wrong without a wall of text.
MAX_ERRORS_SHOWN = 40

METHODS = ("sft", "dpo")
ROLES = ("system", "user", "assistant")
# Roles other tools use; we name the rename instead of guessing silently, so the
# learner's file and what we train on never disagree.
ROLE_RENAMES = {
    "human": "user", "usr": "user", "prompter": "user", "customer": "user",
    "bot": "assistant", "gpt": "assistant", "model": "assistant", "ai": "assistant",
    "assistent": "assistant", "chatbot": "assistant", "response": "assistant",
    "sys": "system", "developer": "system", "instruction": "system",
}



@dataclass
class ParseResult:
    rows: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    detected_format: str = "empty"  # "messages" | "prompt_completion" | "preference" | "mixed: a + b" | "empty" | "unknown"
    lines_read: int = 0             # non-blank lines looked at
    file_problem: str = ""          # why the file as a whole could not be read ("" when it could)
    lines: list[int] = field(default_factory=list)  # the file line (1-based) of each row, parallel to rows

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.errors

    def markdown(self) -> str:
        """A short report for the UI: what was understood, then every problem."""
        if self.file_problem:
            # Not "0 valid rows of 0 read · format: empty": say what is wrong with the file.
            head = f"**The file could not be read: {self.file_problem}.**"
        else:
            head = (f"**{len(self.rows)} valid row(s)** of {self.lines_read} read · format: "
                    f"`{self.detected_format}`")
        parts = [head]
        if self.errors:
            parts.append("**Fix these before training:**\n" + "\n".join(f"- {e}" for e in self.errors))
        if self.warnings:
            parts.append("**Worth a look:**\n" + "\n".join(f"- {w}" for w in self.warnings))
        return "\n\n".join(parts)



def canonical(row) -> str:
    """One row as compact, key-sorted JSON: the same row always gives the same text (fingerprints, duplicates)."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":"))



def content_text(content) -> str | None:
    """Text of a message's content: a string, or a list of ``{"type": "text", "text": str}``
    parts joined with newlines; None for anything else (images, numbers, objects)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "\n".join(p["text"] for p in content)
    return None


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


class _Line:
    """Collects the problems of one line so messages all start the same way."""

    def __init__(self, lineno: int, max_chars: int):
        self.n = lineno
        self.max_chars = max_chars
        self.errors: list[str] = []
        self.extra_keys: set[str] = set()

    def err(self, text: str) -> None:
        self.errors.append(f"line {self.n}: {text}")

    def messages(self, value, where: str, only_role: str | None = None) -> list[dict] | None:
        """Validate a list of {role, content} turns; return them normalised or None."""
        if not isinstance(value, list):
            self.err(f"'{where}' must be a list of {{\"role\", \"content\"}} objects, got {_type_name(value)} — "
                     f"wrap the turns in [ ]")
            return None
        if not value:
            self.err(f"'{where}' is empty — add the conversation turns")
            return None
        if len(value) > MAX_TURNS:
            self.err(f"'{where}' has {len(value)} turns; the limit is {MAX_TURNS} — split the conversation")
            return None
        out, bad = [], False
        for i, msg in enumerate(value):
            path = f"{where}[{i}]"
            if not isinstance(msg, dict):
                self.err(f"{path} must be an object like {{\"role\": \"user\", \"content\": \"...\"}}, got {_type_name(msg)}")
                bad = True
                continue
            self.extra_keys.update(k for k in msg if k not in ("role", "content"))
            role = self.role(msg, path, only_role)
            content = self.content(msg, path)
            if role is None or content is None:
                bad = True
                continue
            out.append({"role": role, "content": content})
        return None if bad else out

    def role(self, msg: dict, path: str, only_role: str | None) -> str | None:
        if "role" not in msg:
            hint = " (this looks like ShareGPT: rename 'from' to 'role')" if "from" in msg else ""
            self.err(f"{path} has no 'role' — add \"role\": \"user\" or \"assistant\"{hint}")
            return None
        role = msg["role"]
        if not isinstance(role, str):
            self.err(f"{path}.role must be a string, got {_type_name(role)} — use \"user\" or \"assistant\"")
            return None
        if role not in ROLES:
            key = role.strip().lower()
            if key in ROLES:
                fix = f"write it in lower case without spaces: '{key}'"
            elif key in ROLE_RENAMES:
                fix = f"rename it to '{ROLE_RENAMES[key]}'"
            else:
                fix = "rename it"
            self.err(f"{path}.role must be one of system/user/assistant, got {role[:40]!r} — {fix}")
            return None
        if only_role and role != only_role:
            self.err(f"{path}.role must be '{only_role}' here, got '{role}' — put earlier turns in 'prompt'")
            return None
        return role

    def content(self, msg: dict, path: str) -> str | None:
        if "content" not in msg:
            hint = " (this looks like ShareGPT: rename 'value' to 'content')" if "value" in msg else ""
            self.err(f"{path} has no 'content' — add the text as \"content\": \"...\"{hint}")
            return None
        return self.text(msg["content"], f"{path}.content")

    def text(self, value, path: str) -> str | None:
        drop = "drop this turn" if "[" in path else "drop the line"
        if value is None:
            self.err(f"{path} is null — write the text, or {drop}")
            return None
        if isinstance(value, list):
            joined = content_text(value)
            if joined is None:
                self.err(f"{path} must be a string or a list of {{\"type\": \"text\", \"text\": ...}} parts; "
                         f"other parts (images, files) aren't supported — keep the text parts only")
                return None
            value = joined
        if not isinstance(value, str):
            self.err(f"{path} must be a string, got {_type_name(value)} — put the text in double quotes")
            return None
        if not value.strip():
            self.err(f"{path} is empty — write the text, or {drop}")
            return None
        if len(value) > self.max_chars:
            self.err(f"{path} is {len(value):,} characters; the limit is {self.max_chars:,} "
                     f"(FTLAB_MAX_MESSAGE_CHARS) — shorten it")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # json.loads accepts "\ud800" escapes; a lone surrogate would later
            # crash the tokenizer, so refuse it here with a place to look.
            self.err(f"{path} contains an unpaired surrogate escape (\\udXXX) — remove it or re-export the file as UTF-8")
            return None
        return value

    def turns(self, value, where: str) -> list[dict] | None:
        """A prompt given as a string or a list of turns."""
        if isinstance(value, str) or value is None or not isinstance(value, list):
            if isinstance(value, (dict, int, float, bool)):
                self.err(f"'{where}' must be a string or a list of turns, got {_type_name(value)}")
                return None
            text = self.text(value, f"'{where}'")
            return None if text is None else [{"role": "user", "content": text}]
        return self.messages(value, where)

    def answer(self, value, where: str) -> list[dict] | None:
        """A completion/chosen/rejected given as a string or a list of assistant turns."""
        if isinstance(value, list):
            return self.messages(value, where, only_role="assistant")
        if isinstance(value, (dict, int, float, bool)):
            self.err(f"'{where}' must be a string or a list of assistant turns, got {_type_name(value)}")
            return None
        text = self.text(value, f"'{where}'")
        return None if text is None else [{"role": "assistant", "content": text}]

    def check_conversation(self, msgs: list[dict], where: str, need_reply: bool) -> bool:
        before = len(self.errors)
        for i, m in enumerate(msgs):
            if m["role"] == "system" and i != 0:
                self.err(f"{where}[{i}] is a 'system' turn after the start — move it to the first turn or drop it")
        if not any(m["role"] == "user" for m in msgs):
            self.err(f"'{where}' has no 'user' turn — add the user's message the reply answers")
        if need_reply:
            if not any(m["role"] == "assistant" for m in msgs):
                self.err(f"'{where}' has no 'assistant' turn — add the reply the model should learn")
            elif msgs[-1]["role"] != "assistant":
                self.err(f"the last turn of '{where}' is '{msgs[-1]['role']}', not 'assistant' — end with the reply "
                         f"to learn (or drop the trailing turn)")
        else:
            if msgs[-1]["role"] != "user":
                self.err(f"'{where}' must end with a 'user' turn, got '{msgs[-1]['role']}' — the answers go in "
                         f"'chosen' and 'rejected'")
        return len(self.errors) == before


def _detect(obj: dict) -> str:
    if "messages" in obj:
        return "messages"
    if "chosen" in obj or "rejected" in obj:
        return "preference"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    return "unknown"


def _unknown_format(obj: dict, line: _Line, method: str) -> None:
    keys = ", ".join(repr(k) for k in list(obj)[:8]) or "no keys"
    if "conversations" in obj:
        line.err("ShareGPT 'conversations' rows aren't read directly — rename 'conversations' to 'messages', "
                 "'from' to 'role', 'value' to 'content', 'human' to 'user' and 'gpt' to 'assistant'")
    elif "instruction" in obj and "output" in obj:
        line.err("Alpaca rows (instruction/input/output) aren't read directly — write them as "
                 "'prompt' (instruction plus input) and 'completion' (output)")
    elif "prompt" in obj:
        need = "'chosen' and 'rejected'" if method == "dpo" else "'completion'"
        line.err(f"has 'prompt' but no {need} — add {need}")
    elif "text" in obj:
        line.err("plain 'text' rows aren't supported: training on the reply only needs to know which part is the "
                 "reply — use 'messages' or 'prompt' + 'completion'")
    else:
        want = "'prompt', 'chosen' and 'rejected'" if method == "dpo" else "'messages' (or 'prompt' + 'completion')"
        line.err(f"no recognised fields (found {keys}) — each row needs {want}")


def _sft_row(obj: dict, fmt: str, line: _Line) -> dict | None:
    if fmt == "messages":
        msgs = line.messages(obj["messages"], "messages")
        if msgs is None or not line.check_conversation(msgs, "messages", need_reply=True):
            return None
        return {"messages": msgs}
    prompt = line.turns(obj["prompt"], "prompt")
    completion = line.answer(obj["completion"], "completion")
    if prompt is None or completion is None:
        return None
    if not line.check_conversation(prompt, "prompt", need_reply=False):
        return None
    return {"messages": prompt + completion}


def _dpo_row(obj: dict, line: _Line, warnings: Counter) -> dict | None:
    for key in ("chosen", "rejected"):
        if key not in obj:
            line.err(f"missing '{key}' — a preference pair needs 'prompt', 'chosen' and 'rejected'")
            return None
    if "prompt" not in obj:
        # TRL's implicit-prompt form: full conversations that share their start.
        ch, rj = obj["chosen"], obj["rejected"]
        if not (isinstance(ch, list) and isinstance(rj, list)):
            line.err("missing 'prompt' — add the prompt the two answers reply to")
            return None
        ch_msgs, rj_msgs = line.messages(ch, "chosen"), line.messages(rj, "rejected")
        if ch_msgs is None or rj_msgs is None:
            return None
        k = 0
        while k < min(len(ch_msgs), len(rj_msgs)) - 1 and ch_msgs[k] == rj_msgs[k]:
            k += 1
        prompt, chosen, rejected = ch_msgs[:k], ch_msgs[k:], rj_msgs[k:]
        if not prompt:
            line.err("missing 'prompt' and 'chosen'/'rejected' share no opening turns — add a 'prompt'")
            return None
        warnings["implicit"] += 1
        for where, turns in (("chosen", chosen), ("rejected", rejected)):
            if any(m["role"] != "assistant" for m in turns):
                line.err(f"'{where}' continues with a non-assistant turn after the shared prompt — "
                         f"give an explicit 'prompt' and assistant-only answers")
                return None
    else:
        prompt = line.turns(obj["prompt"], "prompt")
        chosen = line.answer(obj["chosen"], "chosen")
        rejected = line.answer(obj["rejected"], "rejected")
        if prompt is None or chosen is None or rejected is None:
            return None
    if not line.check_conversation(prompt, "prompt", need_reply=False):
        return None
    if [m["content"].strip() for m in chosen] == [m["content"].strip() for m in rejected]:
        line.err("'chosen' and 'rejected' are the same — a pair needs a better and a worse answer; "
                 "fix one of them or drop the line")
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _split_lines(data, limit_bytes: int, limit_rows: int, result: ParseResult) -> tuple[list[tuple[int, str]], int] | None:
    """Size and encoding checks, then the non-blank lines with their 1-based numbers.

    Returns (first limit_rows + 1 non-blank lines, number of non-blank lines),
    or None with the reason in `result.errors`. Blank lines are dropped and
    lines past the row cap only counted, so a file of millions of tiny lines
    costs a counter, not millions of tuples.
    """
    if data is None:
        result.file_problem = "no file was given"
        result.errors.append("no file was given — choose a .jsonl file")
        return None
    size_text = "the file is {:.1f} MB; the limit is {:g} MB (FTLAB_MAX_UPLOAD_MB) — trim it or split it"
    if isinstance(data, str):
        # Characters never outnumber UTF-8 bytes, so check before encoding a huge string.
        if len(data) > limit_bytes or len(data.encode("utf-8", "surrogatepass")) > limit_bytes:
            result.file_problem = "it is larger than the upload limit"
            result.errors.append(size_text.format(len(data.encode("utf-8", "surrogatepass")) / 2**20, limit_bytes / 2**20))
            return None
        text = data
    elif isinstance(data, (bytes, bytearray)):
        if len(data) > limit_bytes:
            result.file_problem = "it is larger than the upload limit"
            result.errors.append(size_text.format(len(data) / 2**20, limit_bytes / 2**20))
            return None
        data = bytes(data)
        if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(data):
            result.file_problem = "it is UTF-16 text, not UTF-8"
            result.errors.append("the file is UTF-16 encoded — save it as UTF-8 and upload again")
            return None
        if b"\x00" in data:
            result.file_problem = "it is a binary file, not JSONL text"
            # JSON text never holds a raw NUL byte: this is a binary file.
            result.errors.append("the file contains NUL bytes — it is not a UTF-8 JSONL text file; "
                                 "export the data as JSON Lines")
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            result.file_problem = ("it is not UTF-8 text (probably Latin-1/Windows-1252 or another "
                                   "encoding): save it as UTF-8 and upload again")
            _report_bad_bytes(data, result)
            return None
    else:
        raise TypeError("parse_jsonl takes bytes or str")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines, count = [], 0
    for i, ln in enumerate(text.split("\n")):
        if ln and not ln.isspace():
            count += 1
            if count <= limit_rows:
                lines.append((i + 1, ln.rstrip("\r")))
    return lines, count


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: ASCII text with a NUL after (or before) every character."""
    sample = data[:2000]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return odd.count(0) > 0.9 * len(odd) or even.count(0) > 0.9 * len(even)


def _report_bad_bytes(data: bytes, result: ParseResult) -> None:
    """Name each line with bytes that are not UTF-8, and where in the file they are."""
    offset, bad = 0, 0
    for i, raw in enumerate(data.split(b"\n")):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad += 1
            if bad <= MAX_ERRORS_SHOWN:
                result.errors.append(f"line {i + 1}: byte 0x{raw[exc.start]:02X} at byte offset {offset + exc.start:,} "
                                     f"is not valid UTF-8 — save the file as UTF-8 (no other encoding) and upload again")
        offset += len(raw) + 1
    if bad > MAX_ERRORS_SHOWN:
        result.errors.append(f"… and {bad - MAX_ERRORS_SHOWN:,} more lines with bytes that are not UTF-8")


def json_error_hint(text: str, exc: json.JSONDecodeError) -> str:
    """The likely cause of a JSON parse error on one line, and the fix.

    Read from where the parser stopped, not from the characters on the line:
    a record cut off after a comma also fails with "Expecting property name
    enclosed in double quotes", and that is not a quoting problem."""
    rest = text[exc.pos:].strip()
    if exc.msg.startswith("Unterminated string"):
        return ("a string never closes before the line ends: the record looks cut off, or a line break inside "
                "the text split it over several lines (write line breaks as \\n)")
    if not rest:
        return ("the line ends before the JSON is complete: the record looks cut off, or split over several "
                "lines — finish it, or join its lines into one")
    if exc.msg.startswith("Extra data"):
        return "there is more than one object on this line — put each on its own line"
    if rest[0] == "'":
        return "JSON needs double quotes around keys and strings, not single quotes"
    if rest[0] in "}]" and exc.msg.startswith(("Expecting property name", "Expecting value")):
        return f"there is a trailing comma before '{rest[0]}' — remove it"
    if re.match(r"(True|False|None)\b", rest):
        return "write true, false and null in lower case (JSON, not Python)"
    if exc.msg.startswith("Invalid control character"):
        return "a raw tab or line break is inside a string — write it as \\t or \\n"
    return "each line must be one complete JSON object (is a quote, comma or bracket missing?)"


@dataclass
class _Tally:
    """What the line-by-line pass collects for the summary."""
    errors: list[str] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    mismatched: list[int] = field(default_factory=list)
    extra_top: Counter = field(default_factory=Counter)
    extra_msg: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    seen: dict[str, int] = field(default_factory=dict)
    duplicates: list[tuple[int, int]] = field(default_factory=list)


def parse_jsonl(data: bytes | str, method: str, *, max_bytes: int | None = None,
                max_rows: int | None = None, max_message_chars: int | None = None) -> ParseResult:
    """Parse and check a JSONL upload for `method` ("sft" or "dpo"); never raises on bad data.

    Returns ParseResult(rows, errors, warnings, detected_format). Rows are normalised
    to the module's SFT/DPO formats; each error names the line, the field and the fix.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    limit_bytes = max_bytes if max_bytes is not None else MAX_UPLOAD_MB * 1024 * 1024
    limit_rows = max_rows if max_rows is not None else MAX_ROWS
    max_chars = max_message_chars if max_message_chars is not None else MAX_MESSAGE_CHARS
    result = ParseResult()
    lines = _read_lines(data, limit_bytes, limit_rows, result)
    if lines is None:
        return result
    tally = _Tally()
    first_is_array = lines[0][1].lstrip().startswith("[")
    for lineno, text in lines:
        _parse_line(lineno, text, method, max_chars, first_is_array and lineno == lines[0][0], result, tally)
    result.errors = _ordered_errors(tally, method)
    _summarise(result, tally)
    return result


def _read_lines(data, limit_bytes: int, limit_rows: int, result: ParseResult) -> list[tuple[int, str]] | None:
    """The file's non-blank lines, or None with the file-level problem in ``result``."""
    try:
        split = _split_lines(data, limit_bytes, limit_rows, result)
    except MemoryError:
        result.file_problem = "it is too large to read"
        result.errors.append("the file is too large to read — upload a smaller file")
        return None
    if split is None:
        return None
    lines, count = split
    result.lines_read = count
    if not count:
        result.file_problem = "it is empty (no JSON lines in it)"
        result.errors.append("the file is empty — it needs one JSON object per line")
        return None
    if count > limit_rows:
        result.file_problem = f"it has {count:,} rows; the limit is {limit_rows:,}"
        result.errors.append(f"the file has {count:,} rows; the limit is {limit_rows:,} (FTLAB_MAX_ROWS) — "
                             f"keep the first {limit_rows:,} or split the file")
        return None
    return lines


def _load_json(text: str, first_is_array: bool, line: _Line) -> dict | None:
    """The line's JSON object, or None with the reason in ``line.errors``."""
    if len(text) > MAX_LINE_CHARS:
        line.err(f"the line is {len(text):,} characters; the limit is {MAX_LINE_CHARS:,} — shorten the texts")
        return None
    try:
        obj = json.loads(text)
    except RecursionError:
        line.err("the JSON is nested too deeply to read — a row is one flat object with a few lists")
        return None
    except MemoryError:
        line.err("the JSON on this line is too large to read — shorten it")
        return None
    except json.JSONDecodeError as exc:
        hint = ("this looks like a JSON array; JSONL needs one object per line, without [ ] or commas between rows"
                if first_is_array else json_error_hint(text, exc))
        line.err(f"not valid JSON ({exc.msg} at column {exc.colno}) — {hint}")
        return None
    if not isinstance(obj, dict):
        line.err(f"expected a JSON object {{...}}, got {_type_name(obj)} — each line must be one object")
        return None
    return obj


def _parse_line(lineno: int, text: str, method: str, max_chars: int, first_is_array: bool,
                result: ParseResult, tally: _Tally) -> None:
    line = _Line(lineno, max_chars)
    obj = _load_json(text, first_is_array, line)
    if obj is None:
        tally.errors += line.errors
        return
    _parse_object(obj, lineno, method, line, result, tally)


def _parse_object(obj: dict, lineno: int, method: str, line: _Line, result: ParseResult, tally: _Tally) -> None:
    fmt = _detect(obj)
    if fmt == "unknown":
        _unknown_format(obj, line, method)
        tally.errors += line.errors
        return
    tally.formats[fmt] += 1
    if (method == "sft") != (fmt != "preference"):
        tally.mismatched.append(lineno)
        return
    known = {"messages"} if fmt == "messages" else (
        {"prompt", "completion"} if fmt == "prompt_completion" else {"prompt", "chosen", "rejected"})
    tally.extra_top.update(k for k in obj if k not in known)
    row = _sft_row(obj, fmt, line) if method == "sft" else _dpo_row(obj, line, tally.notes)
    tally.extra_msg.update(line.extra_keys)
    if row is None:
        tally.errors += line.errors or [f"line {lineno}: row could not be read"]
        return
    key = canonical(row)
    if key in tally.seen:
        tally.duplicates.append((lineno, tally.seen[key]))
    else:
        tally.seen[key] = lineno
    result.rows.append(row)
    result.lines.append(lineno)


def _ordered_errors(tally: _Tally, method: str) -> list[str]:
    """Every problem in file order (so the learner can walk down the file), capped."""
    errors = list(tally.errors)
    if tally.mismatched:
        first, more = tally.mismatched[0], len(tally.mismatched) - 1
        where = f"line {first}" + (f" (and {more:,} more)" if more else "")
        if method == "dpo":
            errors.insert(0, f"{where}: this is SFT data (messages or prompt/completion) but the method is DPO — "
                             f"switch the method to SFT, or give rows with 'prompt', 'chosen' and 'rejected'")
        else:
            errors.insert(0, f"{where}: this is preference data (prompt/chosen/rejected) but the method is SFT — "
                             f"switch the method to DPO, or give rows with 'messages' or 'prompt' + 'completion'")
    errors.sort(key=lambda e: int(m.group(1)) if (m := re.match(r"line (\d+)", e)) else 0)
    if len(errors) > MAX_ERRORS_SHOWN:
        hidden = len(errors) - MAX_ERRORS_SHOWN
        errors = errors[:MAX_ERRORS_SHOWN] + [f"… and {hidden:,} more problems not shown — fix the ones above first"]
    return errors


def _summarise(result: ParseResult, tally: _Tally) -> None:
    """The detected format and the warnings (nothing here refuses a row)."""
    formats = tally.formats
    if formats:
        ranked = [f for f, _ in formats.most_common()]
        result.detected_format = ranked[0] if len(ranked) == 1 else "mixed: " + " + ".join(ranked)
        if len(ranked) > 1 and not tally.mismatched:
            result.warnings.append(f"the file mixes formats ({', '.join(f'{f}: {c}' for f, c in formats.most_common())}); "
                                   f"all are converted to the same form")
    else:
        result.detected_format = "unknown"
    if tally.extra_top:
        result.warnings.append("ignored fields: " + ", ".join(f"'{k}' ({c} rows)" for k, c in tally.extra_top.most_common(6)))
    if tally.extra_msg:
        result.warnings.append("ignored message fields: " + ", ".join(repr(k) for k, _ in tally.extra_msg.most_common(6)))
    if tally.notes["implicit"]:
        result.warnings.append(f"{tally.notes['implicit']} row(s) had no 'prompt'; it was taken from the turns "
                               f"'chosen' and 'rejected' share")
    if tally.duplicates:
        shown = ", ".join(f"line {a} repeats line {b}" for a, b in tally.duplicates[:3])
        result.warnings.append(f"{len(tally.duplicates)} exact duplicate row(s) ({shown}) — duplicates weigh those "
                               f"examples more; consider removing them")
    if result.rows and len(result.rows) < 10 and not result.errors:
        result.warnings.append(f"only {len(result.rows)} row(s): everything goes to training and nothing is held "
                               f"out for validation or testing")
