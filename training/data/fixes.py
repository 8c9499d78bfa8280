"""Lab 2's mechanical fixes for a pasted dataset, and whether it may go to the Training tab.

    >>> r = fix_jsonl(text, "sft")      # drop exact duplicates, one of each near-duplicate
    >>> r.before, r.after, r.dropped    # pair, and rows the Training tab cannot train on
    >>> ok, why = sendable(r.text, "sft")

The findings are the critic's (``labs/tools/dataset_critic.py`` ``critic_findings``:
its exact and near-duplicate pairs) and the Training tab's (``core/chat_rows.py``
``parse_jsonl``: which rows it refuses, and why), so what Lab 2 shows, what the
fixes drop and what the Training tab accepts never disagree. The fixes only drop
lines; every kept line is the learner's text as it was. No Gradio here: the Lab 2
buttons are thin wrappers around these two functions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from core import chat_rows
from training.data.loading import MIN_SPLIT_ROWS, split_indices

MAX_DROPS_SHOWN = 40
CANNOT_TRAIN = "cannot train: "


@dataclass
class FixResult:
    text: str                  # the fixed JSONL (the kept lines, unchanged)
    before: int                # non-blank lines in the input
    after: int                 # lines kept
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (input line, reason), in line order
    blocking: list[str] = field(default_factory=list)  # what the fixes cannot solve; stops a send

    @property
    def ok(self) -> bool:
        return not self.blocking

    def markdown(self) -> str:
        out = [f"**Fixes: {self.before:,} rows → {self.after:,} rows** ({len(self.dropped):,} dropped)."]
        if self.dropped:
            out += ["", *[f"- line {n}: {why}" for n, why in self.dropped[:MAX_DROPS_SHOWN]]]
            if len(self.dropped) > MAX_DROPS_SHOWN:
                out.append(f"- … and {len(self.dropped) - MAX_DROPS_SHOWN:,} more")
        if self.blocking:
            out += ["", "**❌ Can't be sent to the Training tab yet:**", *[f"- {b}" for b in self.blocking]]
        else:
            out += ["", "✅ No blocking problems: this can be sent to the Training tab."]
        return "\n".join(out)


def _numbered_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line, text) of each non-blank line, numbered as the critic and the Training tab number them."""
    return [(n, ln.rstrip("\r")) for n, ln in enumerate(text.lstrip("\ufeff").split("\n"), 1) if ln.strip()]


def _input_problem(text, method: str) -> str | None:
    """Why `text` can't be looked at at all, or None."""
    if method not in chat_rows.METHODS:
        return f"the method must be one of {', '.join(m.upper() for m in chat_rows.METHODS)}, not {method!r}"
    if not isinstance(text, str) or not text.strip():
        return "there is no dataset: paste JSONL, one JSON object per line"
    size = len(text.encode("utf-8", "surrogatepass"))
    limit = chat_rows.MAX_UPLOAD_MB * 1024 * 1024
    if size > limit:
        return (f"the dataset is {size / 2**20:.1f} MB; the Training tab takes at most {chat_rows.MAX_UPLOAD_MB} MB "
                f"(FTLAB_MAX_UPLOAD_MB): send a part of it")
    return None


def _why_refused(line: str, method: str) -> tuple[str, bool]:
    """(the Training tab's reason for refusing this one line, whether the other method would take it)."""
    errors = chat_rows.parse_jsonl(line, method, max_rows=1).errors
    reason = errors[0].removeprefix("line 1: ") if errors else "the row could not be read"
    other = "dpo" if method == "sft" else "sft"
    return reason, chat_rows.parse_jsonl(line, other, max_rows=1).ok


def _untrainable(numbered: list[tuple[int, str]], kept: set[int], method: str) -> tuple[dict[int, str], int, int]:
    """Reasons for the lines the Training tab refuses; -> (reasons, lines of the other method, JSON objects)."""
    reasons, other_method, objects = {}, 0, len(kept)
    for n, line in numbered:
        if n in kept:
            continue
        reason, other_ok = _why_refused(line, method)
        reasons[n] = CANNOT_TRAIN + reason
        other_method += other_ok
        try:
            objects += isinstance(json.loads(line), dict)
        except (ValueError, RecursionError):
            pass
    return reasons, other_method, objects


def _duplicates(found: dict, trainable: set[int], dropped: dict[int, str]) -> None:
    """Drop the later line of each exact pair, then of each near pair, while its partner stays."""
    exact = sorted((b, a) for a, b in found["exact_pairs"])
    near = sorted((p["lines"][1], p["lines"][0], p["jaccard"]) for p in found["near"])
    for b, a in exact:
        if b in trainable and a in trainable and a not in dropped and b not in dropped:
            dropped[b] = f"exact duplicate of line {a}"
    for b, a, jac in near:
        if b in trainable and a in trainable and a not in dropped and b not in dropped:
            dropped[b] = f"near-duplicate of line {a} ({jac:.0%} the same)"


def _size_problem(n: int) -> str | None:
    if n < MIN_SPLIT_ROWS:
        return (f"only {n} trainable row(s) are left; the Training tab needs at least {MIN_SPLIT_ROWS} so it can "
                f"hold some out for validation and test: add more examples")
    if n > chat_rows.MAX_ROWS:
        return (f"{n:,} rows; the Training tab takes at most {chat_rows.MAX_ROWS:,} (FTLAB_MAX_ROWS): "
                f"send the first {chat_rows.MAX_ROWS:,} or split the dataset")
    return None


def fix_jsonl(text: str, method: str, near_duplicate_threshold: float = 0.8) -> FixResult:
    """Drop exact duplicates, the later line of each near-duplicate pair, and rows the
    Training tab cannot train on (for `method`, "sft" or "dpo"); say what still blocks a send."""
    problem = _input_problem(text, method)
    if problem:
        return FixResult(text if isinstance(text, str) else "", 0, 0, blocking=[problem])
    from labs.tools.dataset_critic import critic_findings

    numbered = _numbered_lines(text)
    limit = chat_rows.MAX_UPLOAD_MB * 1024 * 1024
    parsed = chat_rows.parse_jsonl(text, method, max_bytes=limit, max_rows=len(numbered))
    trainable = set(parsed.lines)
    dropped, other_method, objects = _untrainable(numbered, trainable, method)
    # Not JSON Lines at all, or the other method's data: dropping rows would not help, so nothing is dropped.
    if not objects:
        first = dropped[numbered[0][0]].removeprefix(CANNOT_TRAIN)
        return FixResult(text, len(numbered), len(numbered), blocking=[
            f"this is not JSON Lines: no line holds a JSON object {{…}}; write one object per line (line "
            f"{numbered[0][0]}: {first})"])
    if other_method > len(trainable):
        other = "DPO" if method == "sft" else "SFT"
        return FixResult(text, len(numbered), len(numbered), blocking=[
            f"most rows ({other_method:,} of {len(numbered):,}) are {other} data but the method is "
            f"{method.upper()}: switch the method to {other}"])
    found = critic_findings(text, near_duplicate_threshold=near_duplicate_threshold, max_bytes=limit,
                            max_rows=len(numbered))
    _duplicates(found, trainable, dropped)
    kept = [line for n, line in numbered if n not in dropped]
    size = _size_problem(len(kept))
    return FixResult("".join(line + "\n" for line in kept), len(numbered), len(kept),
                     sorted(dropped.items()), [size] if size else [])


def sendable(text: str, method: str) -> tuple[bool, str]:
    """Whether `text` can go to the Training tab as it is, and the message to show."""
    problem = _input_problem(text, method)
    if problem:
        return False, f"Can't send: {problem}."
    parsed = chat_rows.parse_jsonl(text, method)
    if parsed.ok and not _size_problem(len(parsed.rows)):
        train, val, test = split_indices(parsed.rows)
        return True, (f"Ready to send: {len(parsed.rows):,} rows (the Training tab splits them into "
                      f"{len(train)} train, {len(val)} validation, {len(test)} test).")
    if parsed.ok or parsed.file_problem:  # every row is fine, but too few; or the file as a whole
        return False, f"Can't send: {parsed.errors[0] if parsed.file_problem else _size_problem(len(parsed.rows))}."
    fixed = fix_jsonl(text, method)
    if fixed.blocking:
        return False, "Can't send: " + "; ".join(fixed.blocking) + "."
    refused = [(n, why.removeprefix(CANNOT_TRAIN)) for n, why in fixed.dropped if why.startswith(CANNOT_TRAIN)]
    if not refused:
        return False, f"Can't send: {parsed.errors[0]}."
    n, why = refused[0]
    return False, (f"Can't send yet: the Training tab would refuse {len(refused)} row(s) (line {n}: {why}). "
                   f"Apply the fixes to drop them, or correct those lines.")
