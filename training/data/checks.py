"""Checks that run before any training time is spent (hyperparameters: training/run/config.py).

* Data: the base model's chat template is applied exactly as training will apply
  it, then we count examples with nothing to learn from (no completion tokens
  left, e.g. cut off by `max_length`), build a token-length histogram, and show
  for one example which tokens carry loss.

Completion-only loss, for any chat template: each example becomes a prompt and
a completion where
    prompt     = template(prompt messages, add_generation_prompt=True)
    completion = template(prompt + answer)[len(prompt):]   (answer + end-of-turn tokens)
so the model learns the answer and when to stop, and never the question. The
same `encode_sft` is used by the engine, so what the check shows is what trains.
This avoids `assistant_only_loss`, which needs `{% generation %}` markers: TRL 1.x
swaps in marked templates only for the families it recognises, and stops with an
error on any other template, SmolLM2's among them (older TRL trained silently on
nothing there, TRL issue 4147; see lesson 2).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


# ------------------------------------------------------------------ templating

def _text(content: Any) -> str:
    # Gradio / OpenAI-style content may be a list of blocks.
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


def _norm_messages(messages: Any) -> list[dict]:
    return [{"role": m.get("role"), "content": _text(m.get("content"))}
            for m in (messages or []) if isinstance(m, dict)]


def completion_pairs(row: dict) -> tuple[list[dict], str]:
    """(prompt messages, completion text) for an SFT row; uses training.data.loading's when present."""
    try:
        from training.data.loading import completion_pairs as data_pairs
        prompt, completion = data_pairs(row)
        return _norm_messages(prompt), _text(completion)
    except ImportError:
        pass
    except ValueError:
        # DataError (e.g. no final assistant turn): handled below as an example
        # with nothing to train on, which the check counts and reports.
        pass
    if "messages" in row:
        msgs = _norm_messages(row["messages"])
        if msgs and msgs[-1]["role"] == "assistant":
            return msgs[:-1], msgs[-1]["content"]
        return msgs, ""
    prompt = row.get("prompt")
    completion = row.get("completion")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if isinstance(completion, list):
        completion = _text(completion[-1].get("content")) if completion else ""
    return _norm_messages(prompt), completion or ""


def render_pair(tokenizer, prompt_messages: list[dict], completion: str) -> tuple[str, str]:
    """(prompt text, completion text) as the chat template renders them.

    The completion is what the template adds after the generation prompt for
    the assistant turn: the answer plus end-of-turn token(s).
    """
    prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        prompt_messages + [{"role": "assistant", "content": completion}], tokenize=False)
    if full.startswith(prompt_text):
        return prompt_text, full[len(prompt_text):]
    # Templates that render the last assistant turn differently (e.g. strip
    # reasoning): fall back to the answer + eos so the answer is still trained.
    return prompt_text, completion + (tokenizer.eos_token or "")


def _ids(tokenizer, text: str) -> list[int]:
    # The template already holds every special token it wants; adding BOS again
    # would train on a sequence the model never sees at inference.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_sft(tokenizer, row: dict, max_length: int) -> dict:
    """Token ids and labels (-100 on prompt tokens) for one SFT row, truncated to max_length."""
    prompt_msgs, completion = completion_pairs(row)
    prompt_text, completion_text = render_pair(tokenizer, prompt_msgs, completion)
    p_ids = _ids(tokenizer, prompt_text)
    full_ids = _ids(tokenizer, prompt_text + completion_text)
    # Tokens can merge across the boundary; the completion starts where the two diverge.
    n = 0
    for a, b in zip(p_ids, full_ids):
        if a != b:
            break
        n += 1
    labels = [-100] * n + full_ids[n:]
    if not completion.strip():
        labels = [-100] * len(full_ids)
    full_len = len(full_ids)
    ids, labels = full_ids[:max_length], labels[:max_length]
    supervised = sum(1 for x in labels if x != -100)
    return {"input_ids": ids, "labels": labels, "length": full_len, "prompt_len": n,
            "supervised": supervised, "truncated": full_len > max_length}


def prompt_completion_row(row: dict) -> dict | None:
    """An SFT row as TRL's conversational prompt/completion row, split where `encode_sft`
    splits it: TRL's completion-only loss then trains exactly the tokens the app trains.
    None for a row with nothing to train on (the engine drops those too)."""
    prompt, completion = completion_pairs(row)
    if not completion.strip():
        return None
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}]}


def preference_row(row: dict) -> dict:
    """A DPO row as the engine trains on it: prompt messages, one chosen and one rejected answer."""
    prompt = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]

    def answer(v):
        return _text(v[-1]["content"]) if isinstance(v, list) else _text(v)
    return {"prompt": [{"role": m["role"], "content": _text(m["content"])} for m in prompt],
            "chosen": [{"role": "assistant", "content": answer(row["chosen"])}],
            "rejected": [{"role": "assistant", "content": answer(row["rejected"])}]}


def encode_dpo_lengths(tokenizer, row: dict, max_length: int) -> dict:
    prompt = _norm_messages(row.get("prompt") if isinstance(row.get("prompt"), list)
                            else [{"role": "user", "content": _text(row.get("prompt"))}])
    lens = {}
    for key in ("chosen", "rejected"):
        value = row.get(key)
        answer = _text(value[-1].get("content")) if isinstance(value, list) and value else _text(value)
        p_text, c_text = render_pair(tokenizer, prompt, answer)
        lens[key] = (len(_ids(tokenizer, p_text)), len(_ids(tokenizer, p_text + c_text)))
    p_len = lens["chosen"][0]
    longest = max(lens["chosen"][1], lens["rejected"][1])
    supervised = max(0, min(longest, max_length) - p_len)
    return {"length": longest, "prompt_len": p_len, "supervised": supervised,
            "truncated": longest > max_length}


# ------------------------------------------------------------------ the check

MAX_FAILED_SHOWN = 10

@dataclass
class CheckReport:
    method: str
    max_length: int
    n_rows: int = 0
    n_usable: int = 0
    n_no_supervised: int = 0
    n_truncated: int = 0
    lengths: list[int] = field(default_factory=list)
    supervised_tokens: int = 0
    highlight: list[tuple[str, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Positions in the checked rows; `row_names` (set by the tab) turns them into the
    # uploaded file's line numbers, so no message names a position in the train split.
    failed: list[tuple[int, str]] = field(default_factory=list)
    no_supervised_rows: list[int] = field(default_factory=list)
    truncated_rows: list[int] = field(default_factory=list)
    example_index: int = 0
    row_names: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed

    def name(self, i: int) -> str:
        if self.row_names and 0 <= i < len(self.row_names):
            return self.row_names[i]
        return f"train example {i + 1}"

    def _names(self, rows: list[int], shown: int = 8) -> str:
        more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
        return ", ".join(self.name(i) for i in rows[:shown]) + more

    def histogram(self, bins: int = 12) -> list[dict]:
        """Rows {"tokens": bin upper edge, "examples": count} for a bar/line plot."""
        if not self.lengths:
            return []
        top = max(max(self.lengths), self.max_length)
        width = max(8, math.ceil(top / bins))
        counts = [0] * (math.ceil(top / width) + 1)
        for n in self.lengths:
            counts[min(n // width, len(counts) - 1)] += 1
        return [{"tokens": (i + 1) * width, "examples": c} for i, c in enumerate(counts)]

    def cut_summary(self) -> str:
        """How many rows max length cuts and by how many tokens ("" when it cuts none)."""
        over = sorted(n - self.max_length for n in self.lengths if n > self.max_length)
        if not over:
            return ""
        by = f"by {over[0]}" if over[0] == over[-1] else f"by {over[0]} to {over[-1]} tokens, median {over[len(over) // 2]}"
        return f"max length {self.max_length} cuts {len(over)} of {len(self.lengths)} rows, {by}" + (
            " tokens" if over[0] == over[-1] else "")

    def far_above(self) -> bool:
        """Max length far above every row: over twice the longest and at least 256 tokens more."""
        return bool(self.lengths) and self.max_length >= 2 * max(self.lengths) and \
            self.max_length - max(self.lengths) >= 256

    def markdown(self) -> str:
        lines = [f"**Training check** ({self.method.upper()}, max length {self.max_length} tokens)", ""]
        if self.lengths:
            srt = sorted(self.lengths)
            lines.append(f"- {self.n_rows} examples; token length median {srt[len(srt) // 2]}, "
                         f"longest {srt[-1]}.")
        lines.append(f"- {self.n_usable} examples have tokens to learn from "
                     f"({self.supervised_tokens} trained tokens in total).")
        if self.n_no_supervised:
            lines.append(f"- ⚠️ {self.n_no_supervised} examples have **no trained tokens** "
                         "(empty answer, or the prompt alone fills max length): they teach nothing "
                         f"({self._names(self.no_supervised_rows)}).")
        if self.n_truncated:
            lines.append(f"- ⚠️ {self.n_truncated} examples are **cut off** at max length: the model never "
                         f"sees how their answers end ({self.cut_summary()}). Raise max length or shorten them "
                         f"({self._names(self.truncated_rows)}).")
        if self.highlight:
            lines.append(f"- The highlighted example below is {self.name(self.example_index)}.")
        for w in self.warnings:
            lines.append(f"- ⚠️ {w}")
        for i, exc in self.failed[:MAX_FAILED_SHOWN]:
            lines.append(f"- ❌ {self.name(i)} can't be rendered with this model's chat template: {exc}")
        if len(self.failed) > MAX_FAILED_SHOWN:
            lines.append(f"- ❌ … and {len(self.failed) - MAX_FAILED_SHOWN} more examples that can't be rendered.")
        for e in self.errors:
            lines.append(f"- ❌ {e}")
        if self.ok:
            lines.append("- ✅ Ready to train.")
        return "\n".join(lines)


def _highlight(tokenizer, enc: dict) -> list[tuple[str, str | None]]:
    """(text, label) spans for gr.HighlightedText: prompt tokens vs trained tokens."""
    spans: list[tuple[str, str | None]] = []
    for tok_id, lab in zip(enc["input_ids"], enc["labels"]):
        label = "trained" if lab != -100 else "prompt (not trained)"
        piece = tokenizer.decode([tok_id])
        if spans and spans[-1][1] == label:
            spans[-1] = (spans[-1][0] + piece, label)
        else:
            spans.append((piece, label))
    return spans


def check_dataset(tokenizer, rows: list[dict], method: str, max_length: int,
                  example_index: int = 0) -> CheckReport:
    """Apply the template to every row as training will, and report what would be trained."""
    rep = CheckReport(method=method, max_length=int(max_length), n_rows=len(rows), example_index=example_index)
    if not rows:
        rep.errors.append("The training split is empty: add examples or pick a built-in dataset.")
        return rep
    min_completion = None
    for i, row in enumerate(rows):
        try:
            enc = encode_sft(tokenizer, row, max_length) if method == "sft" \
                else encode_dpo_lengths(tokenizer, row, max_length)
        except Exception as exc:  # a template error on one row must name the row, not crash
            rep.failed.append((i, str(exc)[:200]))
            continue
        rep.lengths.append(enc["length"])
        if enc["supervised"] == 0:
            rep.n_no_supervised += 1
            rep.no_supervised_rows.append(i)
        else:
            rep.n_usable += 1
            rep.supervised_tokens += enc["supervised"]
        if enc["truncated"]:
            rep.n_truncated += 1
            rep.truncated_rows.append(i)
        need = enc["prompt_len"] + 1
        min_completion = need if min_completion is None else min(min_completion, need)
        if method == "sft" and i == example_index:
            rep.highlight = _highlight(tokenizer, enc)
    if rep.n_usable == 0 and not rep.failed:
        hint = (f" The shortest prompt needs {min_completion} tokens: set max length above that."
                if min_completion and min_completion > max_length else "")
        rep.errors.append("No example has any token to train on, so this run would learn nothing."
                          " Check that each example ends with an assistant answer and that **Max length** "
                          f"({max_length}) leaves room for it.{hint}")
    elif rep.n_rows and rep.n_no_supervised / rep.n_rows > 0.5:
        rep.warnings.append("More than half the examples have nothing to train on.")
    if rep.far_above():
        longest = max(rep.lengths)
        fit = max(64, 1 << (longest - 1).bit_length())
        rep.warnings.append(f"Max length {max_length} is far above every row (the longest has {longest} tokens). "
                            "On a GPU the memory plan (Lab 3's estimate, the batch that fits) is sized for "
                            f"max length: {fit} keeps every row whole and plans for less memory.")
    return rep


# ------------------------------------------------------------------ across the splits
#
# The dataset critic (labs/tools/dataset_critic.py) reads the whole dataset, every
# row on its own line of the uploaded file, so its messages name the lines the
# learner can find; each duplicate pair it finds is then placed in its splits. A
# pair split across train and validation/test is leakage: the held-out score
# would reward remembering a training row.

SPLITS = ("train", "validation", "test")
# The critic reads up to this much; the upload limit (chat_rows.MAX_UPLOAD_MB) is far below.
CHECK_MAX_BYTES = 50_000_000
MAX_PAIRS_SHOWN = 12


def row_lines(dataset: dict) -> dict[str, list[int]]:
    """Each split's line numbers: the uploaded file's when the dataset carries them
    (`dataset["lines"]`), else rows counted over train, then validation, then test."""
    lines = dataset.get("lines")
    if isinstance(lines, dict) and all(len(lines.get(s) or []) == len(dataset.get(s) or []) for s in SPLITS):
        return {s: list(lines.get(s) or []) for s in SPLITS}
    out, n = {}, 0
    for s in SPLITS:
        k = len(dataset.get(s) or [])
        out[s], n = list(range(n + 1, n + k + 1)), n + k
    return out


def train_row_names(dataset: dict) -> list[str]:
    """How each train row is named to the learner: "line 12" (upload) or "row 12"."""
    noun = "line" if dataset.get("lines") else "row"
    return [f"{noun} {ln}" for ln in row_lines(dataset)["train"]]


def dataset_text(dataset: dict) -> tuple[str, dict[int, tuple[str, int]]]:
    """The rows as JSONL, each on its file line (blank lines in between), and line -> (split, index)."""
    where = {ln: (s, i) for s, lines in row_lines(dataset).items() for i, ln in enumerate(lines)}
    slots = [""] * max(where, default=0)
    for ln, (s, i) in where.items():
        slots[ln - 1] = json.dumps(dataset[s][i], ensure_ascii=False)
    return "\n".join(slots) + "\n", where


@dataclass
class Pair:
    kind: str                  # "exact" | "near"
    a: tuple[str, int]         # (split, line) of the earlier line
    b: tuple[str, int]
    similarity: float

    @property
    def leaks(self) -> bool:
        return self.a[0] != self.b[0]


@dataclass
class SplitCheck:
    critic: dict               # dataset_critic's report on the whole dataset
    pairs: list[Pair]          # every exact and near-duplicate pair
    counts: dict
    noun: str = "line"         # "line" for an upload; "row" when counted over the splits

    @property
    def leaks(self) -> list[Pair]:
        return [p for p in self.pairs if p.leaks]

    def describe(self, p: Pair) -> str:
        what = "exact duplicates" if p.kind == "exact" else f"near-duplicates ({p.similarity:.0%} the same)"
        return f"{self.noun} {p.a[1]} ({p.a[0]}) and {self.noun} {p.b[1]} ({p.b[0]}): {what}"

    def markdown(self) -> str:
        counts = " · ".join(f"{s} {self.counts[s]}" for s in SPLITS) + (
            "" if self.noun == "line" else "; rows counted over train, then validation, then test")
        head = "**Across the splits**"
        inside = len(self.pairs) - len(self.leaks)
        within = (f" {inside} duplicate pair(s) sit inside one split (listed above)." if inside else "")
        if not self.leaks:
            return (f"{head} ({counts}): ✅ no row of validation or test repeats or nearly repeats a row "
                    f"of another split, so the held-out scores are fair.{within}")
        shown = [f"- {self.describe(p)}" for p in self.leaks[:MAX_PAIRS_SHOWN]]
        if len(self.leaks) > MAX_PAIRS_SHOWN:
            shown.append(f"- … and {len(self.leaks) - MAX_PAIRS_SHOWN} more pairs")
        return "\n".join([
            f"{head} ({counts}): ❌ **evaluation leakage**: {len(self.leaks)} pair(s) of the same or nearly "
            "the same example sit in different splits. A model that memorised the training row would score "
            "well on its held-out twin, so validation loss and test scores would look better than the model is.",
            "", *shown, "",
            "**Fix leakage** drops the validation/test member of each pair and keeps everything else."
            + within])


def check_splits(dataset: dict, threshold: float = 0.8) -> SplitCheck:
    """The critic's report on every row of `dataset`, and where each duplicate pair sits."""
    from labs.tools.dataset_critic import critic_findings, summarise

    text, where = dataset_text(dataset)
    found = critic_findings(text, near_duplicate_threshold=threshold, max_bytes=CHECK_MAX_BYTES)
    # The gaps are the file's blank lines (or rows a fix dropped); the loader already skipped them.
    found["problems"].pop("blank_line", None)
    found["blank"] = 0
    lines = row_lines(dataset)

    def at(ln: int) -> tuple[str, int]:
        return where[ln][0], ln
    pairs = [Pair("exact", at(a), at(b), 1.0) for a, b in found["exact_pairs"]]
    pairs += [Pair("near", at(p["lines"][0]), at(p["lines"][1]), p["jaccard"]) for p in found["near"]]
    return SplitCheck(critic=summarise(found), pairs=pairs,
                      counts={s: len(lines[s]) for s in SPLITS},
                      noun="line" if dataset.get("lines") else "row")


def _dropped_member(p: Pair) -> tuple[str, int]:
    """The member a fix drops: the held-out one next to a train row; of a validation/test
    pair, the validation one (the test split is what the evaluation reports)."""
    if p.a[0] == "train":
        return p.b
    if p.b[0] == "train":
        return p.a
    return p.a if p.a[0] == "validation" else p.b


def fix_leakage(dataset: dict | None) -> tuple[dict | None, str]:
    """A copy of `dataset` without the held-out member of each leaking pair, and what changed.
    -> (None, why) when there is nothing to fix; the learner's dataset is never modified."""
    if not isinstance(dataset, dict) or not all(isinstance(dataset.get(s), list) for s in SPLITS):
        return None, "Load a dataset first (step 1); there is nothing to fix yet."
    chk = check_splits(dataset)
    if not chk.leaks:
        return None, "✅ No leakage: no validation or test row repeats a row of another split. Nothing changed."
    drop: dict[tuple[str, int], Pair] = {}
    for p in chk.leaks:
        if p.a in drop or p.b in drop:
            continue  # one of the pair is already gone, so this pair no longer leaks
        drop[_dropped_member(p)] = p
    lines = row_lines(dataset)
    fixed = dict(dataset, name=f"{dataset.get('name', 'dataset')} (leakage fixed)", lines={})
    for s in SPLITS:
        keep = [i for i, ln in enumerate(lines[s]) if (s, ln) not in drop]
        fixed[s] = [dataset[s][i] for i in keep]
        fixed["lines"][s] = [lines[s][i] for i in keep]
    return fixed, _fix_message(chk, drop, dataset, fixed)


def _fix_message(chk: SplitCheck, drop: dict, before: dict, after: dict) -> str:
    def counts(d: dict) -> str:
        return " · ".join(f"{s} {len(d[s])}" for s in SPLITS) + f" (total {sum(len(d[s]) for s in SPLITS)})"
    gone = [f"- dropped {chk.noun} {ln} ({s}): {chk.describe(p)}"
            for (s, ln), p in sorted(drop.items(), key=lambda kv: kv[0][1])]
    if len(gone) > MAX_PAIRS_SHOWN:
        gone = gone[:MAX_PAIRS_SHOWN] + [f"- … and {len(drop) - MAX_PAIRS_SHOWN} more"]
    empty = [s for s in ("validation", "test") if before[s] and not after[s]]
    warn = ([f"⚠️ The {' and '.join(empty)} split is now empty: that part of the evaluation can't run. "
             "Add more distinct examples."] if empty else [])
    return "\n".join([f"**Leakage fixed:** {len(drop)} held-out row(s) dropped; every training row kept.", "",
                      f"- before: {counts(before)}", f"- after: {counts(after)}", *gone, "", *warn,
                      "Press **Check data** again to check the fixed dataset."]).strip()
