"""Dataset critic: line-by-line review of a JSONL fine-tuning dataset.

    >>> report = critique_jsonl('{"messages": [{"role": "user", "content": "Hi"}]}')
    >>> report["fixes"][0]["kind"]
    'no_assistant'

Accepts the three layouts TRL trains on: chat ``messages``, ``prompt`` /
``completion``, and ``prompt`` / ``chosen`` / ``rejected`` preference pairs
(plus plain ``text``). Every problem names its line number (1-based, as an
editor shows it) and the fix. The Training tab runs this before spending GPU
time, so it must stay fast: 10k lines take about a second or two.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from typing import Any, Callable

from core import chat_rows
from labs.tools.spec import MAX_PASTE_BYTES, ToolSpec, num

# Beyond this many approximate tokens an example is likely truncated by the
# usual max_length settings (TRL's SFTConfig default is 1024).
LONG_EXAMPLE_TOKENS = 1024
# Roles and their common misspellings are the Training tab's (core/chat_rows.py).
ROLES = chat_rows.ROLES
ROLE_FIXES = chat_rows.ROLE_RENAMES
MAX_LINES_PER_FIX = 12
MAX_PAIRS = 50

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

_FIXES = {
    "too_many_rows": "Keep at most the Training tab's row limit (FTLAB_MAX_ROWS) per file, or split the file.",
    "not_utf8": "Re-save the file as UTF-8 (most editors: 'Save with encoding' → UTF-8).",
    "bad_json": "Make each line one complete JSON object: double-quoted keys and strings, no "
                "trailing commas, no line breaks inside a record.",
    "not_object": "Wrap the record in an object, e.g. {\"messages\": [...]}.",
    "unknown_format": "Use one of: {\"messages\": [...]}, {\"prompt\", \"completion\"}, or "
                      "{\"prompt\", \"chosen\", \"rejected\"}.",
    "sharegpt": "Rename 'conversations' to 'messages', 'from' to 'role', 'value' to 'content', "
                "and roles human→user, gpt→assistant.",
    "bad_messages": "'messages' must be a list of {\"role\": ..., \"content\": ...} objects.",
    "missing_role": "Give every message a 'role': system, user, assistant or tool.",
    "unknown_role": "Use only system, user, assistant or tool as roles.",
    "missing_content": "Give every message a 'content' string.",
    "empty_content": "Fill in or delete messages with empty content; empty targets teach the "
                     "model to say nothing (the Training tab refuses them).",
    "wrong_type": "Make the field a string (or, for conversational prompt/completion, a list of "
                  "messages).",
    "no_assistant": "Add the assistant reply: without one there is nothing to learn.",
    "not_trainable": "The Training tab refuses these lines for the reason shown; fix each as its message says.",
    "ends_with_user": "End each conversation with the assistant turn you want learned.",
    "mixed_formats": "Convert every line to one layout; trainers read the columns of the first "
                     "rows and fail or drop the rest.",
    "exact_duplicate": "Delete the repeated lines; duplicates over-weight those examples and "
                       "leak between train and eval splits.",
    "near_duplicate": "Keep one of each near-identical pair (or make them genuinely different).",
    "conflicting_answers": "Same input, different targets: decide the right answer and keep one.",
    "mixed_dates": "Write every date one way (ISO 8601, YYYY-MM-DD, is unambiguous); the model "
                   "copies whichever mix it sees.",
    "broken_json_output": "Targets meant as JSON must parse: double quotes, no trailing commas, "
                          "lowercase true/false/null.",
    "chosen_equals_rejected": "Make 'rejected' a genuinely worse answer; identical pairs carry "
                              "no preference signal.",
    "long_example": "Shorten these examples or raise max_length; otherwise the end (often the "
                    "answer) is cut off.",
    "blank_line": "Remove blank lines (most loaders skip them, some fail).",
}

_SEVERITY = {
    "not_utf8": "error", "bad_json": "error", "not_object": "error", "unknown_format": "error",
    "sharegpt": "error", "bad_messages": "error", "missing_role": "error", "unknown_role": "error",
    "missing_content": "error", "wrong_type": "error", "no_assistant": "error",
    "too_many_rows": "error", "not_trainable": "error", "empty_content": "error",
    "mixed_formats": "error", "broken_json_output": "error", "chosen_equals_rejected": "error",
    "conflicting_answers": "warning", "ends_with_user": "warning",
    "exact_duplicate": "warning", "near_duplicate": "warning", "mixed_dates": "warning",
    "long_example": "warning", "blank_line": "info",
}

# A word of n characters counts ceil(n/4) pieces (the greedy \w{1,4} chunks),
# each punctuation mark one: one C-level regex pass, so 10k lines stay fast.
_TOKEN_RE = re.compile(r"\w{1,4}|[^\w\s]", re.UNICODE)


def approx_token_count(text: str) -> int:
    """Cheap, deterministic token estimate: about 4 characters per sub-word
    piece, one token per punctuation mark (close to BPE tokenizers on English)."""
    return len(_TOKEN_RE.findall(text))


# ISO 8601, US-style slashes, day-first dots, and written-out month names.
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec")
DATE_PATTERNS = {
    "ISO 8601 (2024-03-05)": re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
    "slashes (03/05/2024)": re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
    "dots (05.03.2024)": re.compile(r"\b\d{1,2}\.\d{1,2}\.\d{4}\b"),
    "written month (March 5, 2024)": re.compile(
        rf"\b(?:(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}|\d{{1,2}} (?:{_MONTHS}) \d{{4}})\b"),
}


class _Example:
    __slots__ = ("line", "fmt", "inputs", "targets", "full")

    def __init__(self, line: int, fmt: str, inputs: str, targets: list[str], full: str):
        self.line, self.fmt, self.inputs, self.targets, self.full = line, fmt, inputs, targets, full


def _too_big(limit: int) -> ValueError:
    return ValueError(f"The dataset is larger than {limit / 1_000_000:g} MB; check a sample "
                      "of it here, or split it into parts.")


def _decode(text: str | bytes, limit: int) -> tuple[list[str], list[int]]:
    """Lines of the paste, plus the line numbers that were not valid UTF-8."""
    if isinstance(text, str):
        if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
            raise _too_big(limit)
        return text.lstrip("\ufeff").replace("\r\n", "\n").split("\n"), []
    if not isinstance(text, (bytes, bytearray)):
        raise ValueError("text must be a string (or bytes from an uploaded file)")
    if len(text) > limit:
        raise _too_big(limit)
    raw_lines = bytes(text).removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").split(b"\n")
    lines, bad = [], []
    for number, raw in enumerate(raw_lines, 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
            lines.append("")
    return lines, bad


def _json_error_fix(line: str, exc: json.JSONDecodeError) -> str:
    return f"not valid JSON ({exc.msg} at column {exc.colno}); {chat_rows.json_error_hint(line, exc)}"


def _check_messages(messages: Any, where: str, add) -> tuple[list[str], list[str]] | None:
    """Validate a message list; returns (input texts, assistant texts) or None if unusable."""
    if not isinstance(messages, list) or not messages:
        add("bad_messages", f"{where} must be a non-empty list of messages")
        return None
    inputs, targets = [], []
    ok = True
    for i, msg in enumerate(messages, 1):
        if not isinstance(msg, dict):
            add("bad_messages", f"{where} item {i} is {type(msg).__name__}, not an object")
            ok = False
            continue
        role = msg.get("role")
        if role is None:
            if "from" in msg:
                add("sharegpt", f"{where} item {i} uses ShareGPT keys ('from'/'value')")
            else:
                add("missing_role", f"{where} item {i} has no 'role'")
            ok = False
            continue
        if role not in ROLES:
            hint = f" (did you mean '{ROLE_FIXES[str(role).lower()]}'?)" \
                if isinstance(role, str) and str(role).lower() in ROLE_FIXES else ""
            add("unknown_role", f"{where} item {i} has role {str(role)[:30]!r}{hint}")
            ok = False
            continue
        if "content" not in msg or msg["content"] is None:
            if role == "assistant" and msg.get("tool_calls"):
                continue  # a tool-calling turn may carry no text
            add("missing_content", f"{where} item {i} ({role}) has no 'content'")
            ok = False
            continue
        text = chat_rows.content_text(msg["content"])
        if text is None:
            add("wrong_type", f"{where} item {i} ({role}) content is "
                              f"{type(msg['content']).__name__}, not a string")
            ok = False
            continue
        if not text.strip():
            add("empty_content", f"{where} item {i} ({role}) has empty content")
        (targets if role == "assistant" else inputs).append(text)
    return (inputs, targets) if ok else None


def _parse_example(line_no: int, obj: Any, add) -> _Example | None:
    if not isinstance(obj, dict):
        add("not_object", f"the line is a JSON {type(obj).__name__}, not an object")
        return None
    if "messages" in obj:
        checked = _check_messages(obj["messages"], "'messages'", add)
        if checked is None:
            return None
        inputs, targets = checked
        roles = [m.get("role") for m in obj["messages"]]
        if "assistant" not in roles:
            add("no_assistant", "no assistant message")
            return None
        if roles[-1] != "assistant":
            add("ends_with_user", f"the last message is from '{roles[-1]}', not the assistant")
        return _Example(line_no, "chat", "\n".join(inputs), targets, "\n".join(inputs + targets))
    if "conversations" in obj:
        add("sharegpt", "uses ShareGPT 'conversations' instead of 'messages'")
        return None
    if "chosen" in obj or "rejected" in obj:
        fields = {}
        for key in ("prompt", "chosen", "rejected"):
            if key not in obj:
                # TRL also accepts implicit-prompt pairs (the prompt inside chosen/rejected
                # as messages); a missing prompt is only an error for plain strings.
                if key == "prompt" and isinstance(obj.get("chosen"), list):
                    fields[key] = ""
                    continue
                add("unknown_format", f"preference record is missing '{key}'")
                return None
            value = obj[key]
            if isinstance(value, list):
                checked = _check_messages(value, f"'{key}'", add)
                if checked is None:
                    return None
                fields[key] = "\n".join(checked[1] if key != "prompt" else checked[0])
            elif isinstance(value, str):
                fields[key] = value
            else:
                add("wrong_type", f"'{key}' is {type(value).__name__}, not a string")
                return None
            if not fields[key].strip() and key != "prompt":
                add("empty_content", f"'{key}' is empty")
        if fields["chosen"].strip() == fields["rejected"].strip():
            add("chosen_equals_rejected", "'chosen' and 'rejected' are identical")
        return _Example(line_no, "preference", fields["prompt"], [fields["chosen"], fields["rejected"]],
                        "\n".join(fields.values()))
    if "prompt" in obj or "completion" in obj:
        fields = {}
        for key in ("prompt", "completion"):
            if key not in obj:
                add("unknown_format", f"'{'completion' if key == 'completion' else 'prompt'}' "
                                      "is missing")
                return None
            value = obj[key]
            if isinstance(value, list):
                checked = _check_messages(value, f"'{key}'", add)
                if checked is None:
                    return None
                fields[key] = "\n".join(checked[0] if key == "prompt" else checked[1])
            elif isinstance(value, str):
                fields[key] = value
            else:
                add("wrong_type", f"'{key}' is {type(value).__name__}, not a string")
                return None
            if not fields[key].strip():
                add("empty_content", f"'{key}' is empty")
        return _Example(line_no, "prompt_completion", fields["prompt"], [fields["completion"]],
                        fields["prompt"] + "\n" + fields["completion"])
    if "text" in obj and isinstance(obj["text"], str):
        return _Example(line_no, "text", "", [obj["text"]], obj["text"])
    keys = ", ".join(list(map(str, obj))[:6]) or "none"
    add("unknown_format", f"unrecognised keys ({keys})")
    return None


def _looks_like_broken_json(text: str) -> str | None:
    """Why a target that starts like JSON fails to parse, or None if fine/not JSON."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        json.loads(stripped)
        return None
    except (json.JSONDecodeError, RecursionError):
        pass
    if re.search(r"[{,\[]\s*'[^'\n]*'\s*[:,\]]", stripped):
        return "single quotes (a Python dict, not JSON)"
    if re.search(r",\s*[}\]]", stripped):
        return "a trailing comma"
    if re.search(r"[:\[,]\s*(True|False|None)\b", stripped):
        return "Python True/False/None instead of true/false/null"
    if stripped.count("{") != stripped.count("}") or stripped.count("[") != stripped.count("]"):
        return "unbalanced brackets (cut off?)"
    return "invalid JSON"


def shingles(text: str) -> set[str]:
    """Character 5-grams of the lowercased text with whitespace squeezed.

    Chat examples are short, so word n-grams swing too much on a one-word edit
    (a 20-word line loses a fifth of its word 3-grams); character 5-grams move
    in proportion to the characters changed. A text under 5 characters is its
    own single shingle."""
    norm = " ".join(text.lower().split())
    if len(norm) < 5:
        return {norm} if norm else set()
    return {norm[i:i + 5] for i in range(len(norm) - 4)}


# Float slack for the filters' bounds: rounding may only make a prefix longer or a bound
# looser (more candidates), never drop a pair whose exact Jaccard reaches the threshold.
_EPS = 1e-9
# Prefix matches are joined about this many at a time (numpy arrays of this length).
_CHUNK = 1 << 20
# The bucket filter's counts table (rows x buckets) and each batch of it hold at most this many.
_COUNTS = 1 << 22


def similar_pairs(sets: list[set], threshold: float) -> tuple[list[tuple[int, int, float]], int]:
    """Every pair of ``sets`` whose Jaccard is at least ``threshold``: [(i, j, jaccard)]
    sorted, i < j, and how many candidate pairs were confirmed by their exact Jaccard.

    Exact and complete (no sampling, nothing missed): a prefix-filter similarity join
    (AllPairs with PPJoin's positional filter; Bayardo et al. 2007, Xiao et al. 2008),
    done with numpy. Shingles are ranked rarest first across the whole dataset and each
    set is sorted by that rank. If J(x, y) >= t then |x ∩ y| >= t·|x ∪ y|, so the rarest
    shared shingle sits within the first |x| - ceil(t·|x|) + 1 shingles of x (the probe
    prefix) and, y being no longer than x, within the first |y| - ceil(2t/(1+t)·|y|) + 1
    of y (the index prefix): only pairs meeting there become candidates.
    Length filter: |y| >= t·|x|. Positional filter: at the k-th shared prefix shingle
    (positions i in x, j in y) the overlap is at most k + 1 + min(|x|-i-1, |y|-j-1); the
    pair is dropped if that is under ceil(t/(1+t)·(|x| + |y|)) anywhere. Bucket filter:
    with shingles hashed into buckets, the overlap is at most the sum over buckets of the
    smaller count. Each is an upper bound, so no pair at the threshold is dropped; every
    candidate left is confirmed by its exact Jaccard."""
    import numpy as np  # ~0.1-0.3 s the first time; the app has it loaded already (gradio)

    t = float(threshold)
    if not 0.0 < t <= 1.0:
        raise ValueError("threshold must be between 0 and 1")
    n = len(sets)
    size = np.fromiter(map(len, sets), dtype=np.int64, count=n)
    total = int(size.sum())
    if n < 2 or not total:
        return [], 0
    ids: dict = {}
    first_seen = np.fromiter((ids.setdefault(tok, len(ids)) for s in sets for tok in s), dtype=np.int64, count=total)
    # Rank shingles rarest first; ties by first appearance, so the ranking, and the
    # candidates, are the same on every run. Each set's shingles then in rank order.
    by_rarity = np.argsort(np.bincount(first_seen, minlength=len(ids)), kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[by_rarity] = np.arange(len(ids), dtype=np.int64)
    own = np.repeat(np.arange(n, dtype=np.int64), size)
    tok = np.sort(own * len(ids) + rank[first_seen]) - own * len(ids)  # own is ascending: sets stay in place
    del ids, first_seen, by_rarity, rank
    at = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(size) - size, size)  # position in its set
    share = t / (1.0 + t)
    probe_len = np.minimum(size, size - np.ceil(t * size - _EPS).astype(np.int64) + 1)
    index_len = np.minimum(size, size - np.ceil(2 * share * size - _EPS).astype(np.int64) + 1)
    # Visiting order: shortest first (ties by row), so an indexed y is never longer than x.
    order = np.argsort(size, kind="stable")
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n, dtype=np.int64)
    first_long_enough = np.searchsorted(size[order], t * size - _EPS, side="left")  # |y| >= t·|x|
    # Index prefixes, sorted by (shingle, visiting position).
    ix = np.flatnonzero(at < index_len[own])
    ikey = tok[ix] * n + pos[own[ix]]
    srt = np.argsort(ikey, kind="stable")
    ikey, iy, ij = ikey[srt], own[ix][srt], at[ix][srt]
    # Probe prefixes, in visiting order then position: each meets the index entries of its
    # shingle from sets visited earlier and long enough.
    px = np.flatnonzero(at < probe_len[own])
    px = px[np.argsort(pos[own[px]] * (int(size.max()) + 1) + at[px])]
    px_x, px_i, px_tok = own[px], at[px], tok[px]
    lo = np.searchsorted(ikey, px_tok * n + first_long_enough[px_x], side="left")
    hi = np.searchsorted(ikey, px_tok * n + pos[px_x], side="left")
    hits = hi - lo
    # Candidates: pairs with a shared prefix shingle that pass the positional filter at every one.
    cand_x, cand_y = [], []
    step_i = int(probe_len.max()) + 1
    ends = np.cumsum(hits)
    starts = 0
    while starts < len(px):
        # A chunk ends at a set boundary, so all of a pair's matches are in one chunk.
        stop = int(np.searchsorted(ends, (ends[starts - 1] if starts else 0) + _CHUNK, side="right"))
        stop = max(stop, starts + 1)
        while stop < len(px) and px_x[stop] == px_x[stop - 1]:
            stop += 1
        e = np.arange(starts, stop)
        c = hits[e]
        starts = stop
        m = int(c.sum())
        if not m:
            continue
        rep = np.repeat(e, c)
        idx = lo[rep] + np.arange(m, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
        x, i, y, j = px_x[rep], px_i[rep], iy[idx], ij[idx]
        lx, ly = size[x], size[y]
        # At its k-th match a pair fails if k + 1 + min(|x|-i-1, |y|-j-1) < need, i.e. k < -slack.
        slack = 1 + np.minimum(lx - i - 1, ly - j - 1) - np.ceil(share * (lx + ly) - _EPS).astype(np.int64)
        key = (x * n + y) * step_i + i  # distinct keys: sorted, each pair's matches in order of i
        by = np.argsort(key)
        key, slack = key[by], slack[by]
        pair = key // step_i
        first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        k = np.arange(m, dtype=np.int64) - np.repeat(first, np.diff(np.r_[first, m]))
        keep = pair[first[~np.logical_or.reduceat(k < -slack, first)]]
        cand_x.append(keep // n)
        cand_y.append(keep % n)
    pairs: list[tuple[int, int, float]] = []
    if not cand_x:
        return pairs, 0
    cx, cy = np.concatenate(cand_x), np.concatenate(cand_y)
    if len(cx):
        # Bucket filter: about two buckets per shingle of a typical set (64 to 1024), at most
        # 4M counts in all (32 MB while counted, a byte or two each once kept).
        nb = int(min(1024, max(64, 1 << int(2 * np.median(size[size > 0]) - 1).bit_length())))
        while nb > 64 and n * nb > _COUNTS:
            nb //= 2
        counts = np.bincount(own * nb + (tok & (nb - 1)), minlength=n * nb).reshape(n, nb)
        top = int(counts.max())
        counts = counts.astype(np.uint8 if top < 1 << 8 else np.uint16 if top < 1 << 16 else np.uint32)
        keep = np.zeros(len(cx), dtype=bool)
        step = max(1, _COUNTS // nb)
        for s in range(0, len(cx), step):
            bx, bw = cx[s:s + step], cy[s:s + step]
            bound = np.minimum(counts[bx], counts[bw]).sum(axis=1, dtype=np.int64)
            keep[s:s + step] = bound >= np.ceil(share * (size[bx] + size[bw]) - _EPS)
        cx, cy = cx[keep], cy[keep]
    for x, y in zip(cx.tolist(), cy.tolist()):
        inter = len(sets[x] & sets[y])
        jac = inter / (len(sets[x]) + len(sets[y]) - inter)
        if jac >= t:
            pairs.append((min(x, y), max(x, y), jac))
    pairs.sort()
    return pairs, len(cx)


def _near_duplicates(examples: list[_Example], threshold: float, keys: dict[int, str]) -> list[dict]:
    """Every pair of lines whose character-5-gram sets overlap by at least ``threshold``
    (Jaccard), exact duplicates left out (they are reported as such)."""
    found, _ = similar_pairs([shingles(e.full) for e in examples], threshold)
    pairs = {}
    for i, j, jac in found:
        a, b = examples[i].line, examples[j].line
        if keys[a] != keys[b]:
            pairs[(a, b)] = round(jac, 3)
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"lines": list(k), "jaccard": v} for k, v in ranked]


def _training_view(text: str | bytes, lines: list[str], dominant: str | None, max_bytes: int,
                   max_rows: int | None, problems: dict) -> int:
    """Read the paste with the Training tab's own parser (``core/chat_rows.py``):
    every line it refuses is an error here too, and the usable count is its
    count, so the critic never calls ready what Training would refuse."""
    method = "dpo" if dominant == "preference" else "sft"
    parsed = chat_rows.parse_jsonl(text, method, max_bytes=max_bytes, max_rows=max_rows)
    flagged = {n for kind, items in problems.items() if _SEVERITY[kind] == "error" for n, _ in items}
    limit = chat_rows.MAX_ROWS if max_rows is None else max_rows
    if parsed.lines_read > limit:
        first_over = [i for i, ln in enumerate(lines, 1) if ln.strip()][limit]
        problems["too_many_rows"].append(
            (first_over, f"{parsed.lines_read:,} rows; the Training tab takes at most {limit:,} (FTLAB_MAX_ROWS)"))
        return 0
    for error in parsed.errors:
        m = re.match(r"line (\d+)(?: \(and [\d,]+ more\))?: (.*)", error, re.S)
        if m and int(m.group(1)) not in flagged:
            problems["not_trainable"].append((int(m.group(1)), m.group(2)))
        elif not m and parsed.file_problem and parsed.lines_read and not flagged:
            problems["not_trainable"].append((1, error))
    return len(parsed.rows)


def critic_findings(text: str | bytes, tokenizer_count: Callable[[str], int] | None = None,
                    near_duplicate_threshold: float = 0.8,
                    max_bytes: int = MAX_PASTE_BYTES, max_rows: int | None = None) -> dict:
    """Everything the critic finds, uncapped: ``problems`` ({kind: [(line, message)]}),
    every exact-duplicate and near-duplicate pair, and the counts. ``critique_jsonl``
    summarises this for people and the advisor; the Training tab's data check and
    Lab 2's fixes (``training/data/fixes.py``) act on every pair, so they read it whole."""
    if not 0.0 < float(near_duplicate_threshold) <= 1.0:
        raise ValueError("near_duplicate_threshold must be between 0 and 1")
    lines, not_utf8 = _decode(text, max_bytes)
    problems: dict[str, list[tuple[int, str]]] = defaultdict(list)
    examples, blank, non_blank = read_examples(lines, not_utf8, problems)
    formats = Counter(e.fmt for e in examples)
    dominant = formats.most_common(1)[0][0] if formats else None
    _mixed_formats(examples, dominant, problems)
    keys, exact_pairs = exact_duplicates(examples, problems)
    conflicts = _conflicting_answers(examples, problems)
    near = _near_duplicates(examples, float(near_duplicate_threshold), keys)
    for pair in near:
        problems["near_duplicate"].append(
            (pair["lines"][1], f"about {pair['jaccard']:.0%} the same as line {pair['lines'][0]}"))
    date_hits = _mixed_dates(examples, problems)
    json_targets = _json_targets(examples, problems)
    usable = _training_view(text, lines, dominant, max_bytes, max_rows, problems)
    token_stats = _token_stats(examples, tokenizer_count, problems)
    return {"problems": problems, "exact_pairs": exact_pairs, "near": near, "conflicts": conflicts,
            "date_hits": date_hits, "json_targets": json_targets, "usable": usable,
            "token_stats": token_stats, "formats": formats, "dominant": dominant,
            "blank": blank, "non_blank": non_blank, "threshold": float(near_duplicate_threshold)}


def critique_jsonl(text: str | bytes, tokenizer_count: Callable[[str], int] | None = None,
                   near_duplicate_threshold: float = 0.8,
                   max_bytes: int = MAX_PASTE_BYTES, max_rows: int | None = None) -> dict:
    """Review a JSONL dataset; see the module docstring. Raises ValueError only
    for input it cannot look at (too large, wrong type). ``max_bytes`` lets the
    Training tab accept a larger uploaded file than a chat paste; ``max_rows``
    defaults to the Training tab's row limit."""
    return summarise(critic_findings(text, tokenizer_count, near_duplicate_threshold, max_bytes, max_rows))


def summarise(found: dict) -> dict:
    """The critic's report (capped lists) from ``critic_findings``."""
    problems, usable = found["problems"], found["usable"]
    fixes = _fixes(problems)
    errors = sum(f["count"] for f in fixes if f["severity"] == "error")
    invalid_lines = {n for kind, items in problems.items() if _SEVERITY[kind] == "error"
                     and kind not in ("mixed_formats",) for n, _ in items}
    exact_pairs, near, date_hits = found["exact_pairs"], found["near"], found["date_hits"]
    return {
        "ok": errors == 0 and usable > 0,
        "summary": {
            "lines": found["non_blank"], "blank_lines": found["blank"], "usable_examples": usable,
            "lines_with_errors": len(invalid_lines), "formats": dict(found["formats"]),
            "dominant_format": found["dominant"], "json_targets": found["json_targets"],
            "errors": errors, "warnings": sum(f["count"] for f in fixes if f["severity"] == "warning"),
        },
        "token_stats": found["token_stats"],
        "exact_duplicates": exact_pairs[:MAX_PAIRS],
        "exact_duplicate_count": len(exact_pairs),
        "near_duplicates": near[:MAX_PAIRS],
        "near_duplicate_count": len(near),
        "near_duplicate_threshold": found["threshold"],
        "conflicting_inputs": found["conflicts"][:MAX_PAIRS],
        "date_formats": {k: {"count": len(v), "lines": v[:MAX_LINES_PER_FIX]} for k, v in date_hits.items()},
        "fixes": fixes,
    }


def read_examples(lines: list[str], not_utf8: list[int], problems: dict) -> tuple[list[_Example], int, int]:
    """Parse each line into an example, noting its problems; -> (examples, blank lines, non-blank lines)."""
    for n in not_utf8:
        problems["not_utf8"].append((n, "the line is not valid UTF-8"))
    examples: list[_Example] = []
    blank = non_blank = 0
    last_content = max((i for i, ln in enumerate(lines, 1) if ln.strip()), default=0)
    bad_set = set(not_utf8)
    for number, line in enumerate(lines, 1):
        if number in bad_set:
            non_blank += 1
            continue
        if not line.strip():
            if number < last_content:
                blank += 1
                problems["blank_line"].append((number, "blank line"))
            continue
        non_blank += 1

        def add(kind: str, message: str, _n=number) -> None:
            problems[kind].append((_n, message))

        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            add("bad_json", _json_error_fix(line, exc))
            continue
        except RecursionError:
            add("bad_json", "nested too deeply to read")
            continue
        example = _parse_example(number, obj, add)
        if example is not None:
            examples.append(example)
    return examples, blank, non_blank


def _mixed_formats(examples: list[_Example], dominant: str | None, problems: dict) -> None:
    for e in examples:
        if e.fmt != dominant:
            problems["mixed_formats"].append((e.line, f"{e.fmt} record in a mostly {dominant} file"))


def exact_duplicates(examples: list[_Example], problems: dict) -> tuple[dict[int, str], list[list[int]]]:
    """By the example's text, so key order and spacing do not hide them."""
    seen: dict[str, int] = {}
    keys: dict[int, str] = {}
    pairs: list[list[int]] = []
    for e in examples:
        key = hashlib.sha1(("\x00".join([e.inputs, *e.targets])).encode("utf-8", "replace")).hexdigest()
        keys[e.line] = key
        if key in seen:
            pairs.append([seen[key], e.line])
            problems["exact_duplicate"].append((e.line, f"same as line {seen[key]}"))
        else:
            seen[key] = e.line
    return keys, pairs


def _conflicting_answers(examples: list[_Example], problems: dict) -> list[list[int]]:
    """Same input, different answer (only meaningful when there is an input)."""
    by_input: dict[str, list[_Example]] = defaultdict(list)
    for e in examples:
        if e.inputs.strip() and e.fmt in ("chat", "prompt_completion"):
            by_input[e.inputs.strip()].append(e)
    conflicts = []
    for group in by_input.values():
        answers = {tuple(t.strip() for t in e.targets) for e in group}
        if len(answers) > 1:
            conflicts.append([e.line for e in group])
            for e in group[1:]:
                problems["conflicting_answers"].append(
                    (e.line, f"same input as line {group[0].line}, different answer"))
    return conflicts


def _mixed_dates(examples: list[_Example], problems: dict) -> dict[str, list[int]]:
    """Date conventions in the targets, which the model learns to copy."""
    date_hits: dict[str, list[int]] = {}
    for e in examples:
        joined = "\n".join(e.targets)
        for label, pattern in DATE_PATTERNS.items():
            if pattern.search(joined):
                date_hits.setdefault(label, []).append(e.line)
    if len(date_hits) > 1:
        main = max(date_hits, key=lambda k: len(date_hits[k]))
        for label, hit_lines in date_hits.items():
            if label != main:
                for n in hit_lines:
                    problems["mixed_dates"].append((n, f"date written as {label}; most use {main}"))
    return date_hits


def _json_targets(examples: list[_Example], problems: dict) -> int:
    """Count targets that are JSON; flag those that start like JSON but do not parse."""
    json_targets = 0
    for e in examples:
        for t in e.targets[:1] if e.fmt == "preference" else e.targets:
            if t.strip()[:1] in ("{", "["):
                json_targets += 1
        for t in e.targets:
            why = _looks_like_broken_json(t)
            if why:
                problems["broken_json_output"].append(
                    (e.line, f"output starts like JSON but does not parse: {why}"))
                break
    return json_targets


def _token_stats(examples: list[_Example], tokenizer_count: Callable[[str], int] | None, problems: dict) -> dict:
    count_tokens = tokenizer_count or approx_token_count
    lengths = [count_tokens(e.full) for e in examples]
    for e, n in zip(examples, lengths):
        if n > LONG_EXAMPLE_TOKENS:
            problems["long_example"].append((e.line, f"about {n:,} tokens"))
    stats = _stats(lengths)
    stats["counter"] = "custom tokenizer" if tokenizer_count else "approximate (about 4 characters per token)"
    stats["total"] = sum(lengths)
    return stats


def _fixes(problems: dict) -> list[dict]:
    """One entry per kind of problem. Errors first; within a severity, what breaks
    loading before what hurts quality (the _FIXES order), so the first fix is
    always the one to do first."""
    fixes = []
    for kind, items in problems.items():
        unique_lines = list(dict.fromkeys(n for n, _ in items))
        fixes.append({"kind": kind, "severity": _SEVERITY[kind], "count": len(items),
                      "line_count": len(unique_lines),
                      "lines": unique_lines[:MAX_LINES_PER_FIX],
                      "examples": [f"line {n}: {m}" for n, m in items[:3]],
                      "fix": _FIXES[kind]})
    order = list(_FIXES)
    fixes.sort(key=lambda f: (SEVERITY_ORDER[f["severity"]], order.index(f["kind"])))
    for priority, fix in enumerate(fixes, 1):
        fix["priority"] = priority
    return fixes


def _stats(values: list[int]) -> dict:
    if not values:
        return {"count": 0, "min": 0, "mean": 0, "median": 0, "p95": 0, "max": 0}
    ordered = sorted(values)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"count": len(values), "min": ordered[0], "mean": round(sum(values) / len(values), 1),
            "median": pct(0.5), "p95": pct(0.95), "max": ordered[-1]}


def critique_markdown(result: dict) -> str:
    s, t = result["summary"], result["token_stats"]
    verdict = ("✅ Ready to train" if result["ok"] and not s["warnings"] else
               "🟡 Usable, with warnings" if result["ok"] else "❌ Fix the errors before training")
    fmts = ", ".join(f"{k}: {v}" for k, v in s["formats"].items()) or "none recognised"
    out = [
        f"### Dataset check: {verdict}", "",
        "| lines | usable examples | formats | errors | warnings |", "|---:|---:|---|---:|---:|",
        f"| {s['lines']:,} | **{s['usable_examples']:,}** | {fmts} | {s['errors']:,} | {s['warnings']:,} |",
        "", f"**Tokens per example** ({t['counter']})", "",
        "| min | median | mean | p95 | max | total |", "|---:|---:|---:|---:|---:|---:|",
        f"| {t['min']:,} | {t['median']:,} | {t['mean']:,} | {t['p95']:,} | {t['max']:,} | {t['total']:,} |",
    ]
    if result["fixes"]:
        out += ["", "**Fixes, most important first**", "",
                "| # | severity | problem | count | lines | fix |", "|---:|---|---|---:|---|---|"]
        for f in result["fixes"]:
            lines = ", ".join(map(str, f["lines"])) + (" …" if f["line_count"] > len(f["lines"]) else "")
            out.append(f"| {f['priority']} | {f['severity']} | {f['kind'].replace('_', ' ')} | "
                       f"{f['count']:,} | {lines} | {f['fix']} |")
        details = [ex for f in result["fixes"] for ex in f["examples"]]
        out += ["", "<details><summary>Examples</summary>", "",
                *[f"- {d}" for d in details[:40]], "", "</details>"]
    if result["near_duplicates"]:
        out += ["", f"**Near duplicates** (Jaccard ≥ {result['near_duplicate_threshold']:g} on character "
                "5-grams)", "", "| line | line | similarity |", "|---:|---:|---:|"]
        out += [f"| {p['lines'][0]} | {p['lines'][1]} | {p['jaccard']:.2f} |"
                for p in result["near_duplicates"][:20]]
        if result["near_duplicate_count"] > 20:
            out.append(f"\n…and {result['near_duplicate_count'] - 20} more pairs.")
    if result["exact_duplicates"]:
        shown = "; ".join(f"{a} = {b}" for a, b in result["exact_duplicates"][:15])
        out += ["", f"**Exact duplicates** ({result['exact_duplicate_count']}): {shown}"]
    if len(result["date_formats"]) > 1:
        out += ["", "**Date styles in outputs:** " + ", ".join(
            f"{k}: {v['count']}" for k, v in result["date_formats"].items())]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------ tool spec

SPECS = (
    ToolSpec(
        name="critique_jsonl",
        description="Validate a JSONL fine-tuning dataset line by line (chat 'messages', prompt/completion, "
            "or prompt/chosen/rejected preference pairs). Reports problems with line numbers and the "
            "fix, counts, approximate token-length statistics, exact and near-duplicate line pairs "
            "(every pair at the similarity threshold, compared exactly), mixed date conventions, "
            "assistant outputs that look like JSON but do not parse, DPO pairs whose chosen equals "
            "rejected, and a prioritised fix list.",
        input_schema={
            "type": "object",
            "properties": {
                "text": {"type": "string", "maxLength": MAX_PASTE_BYTES,
                         "description": "The JSONL dataset exactly as pasted, one JSON object per line."},
                "near_duplicate_threshold": num(
                    0.5, 1.0, "Jaccard similarity (character 5-grams, every pair found and computed "
                    "exactly) at or above which two lines count as near duplicates. Default 0.8."),
            },
            "required": ["text"],
            "additionalProperties": False,
        },
        fn=critique_jsonl,
        markdown=critique_markdown,
        reads_paste=True,
        empty_help=("Nothing to check yet: paste your dataset as JSONL, one JSON object per line, e.g. "
                    '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'),
    ),
)
