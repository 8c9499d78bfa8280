"""One row's tokens as the trainer sees them: trained or not, special, cut off by max length.

Step 2 of the Training tab shows any training row (by number, the longest, the
next), for SFT (messages or prompt/completion) and DPO (prompt + chosen and
prompt + rejected). The sequences are built exactly as the trainer builds them:

* SFT: `checks.encode_sft`, the encoding the engine hands to TRL's SFTTrainer
  (its collator keeps the labels as they are; -100 on the prompt).
* DPO: TRL's DPOTrainer tokenization (trl 1.16 `DPOTrainer._prepare_dataset`):
  the chat template applied to the prompt with the generation prompt, and to
  prompt + chosen / prompt + rejected; the completion starts where the token
  ids diverge; the collator concatenates and cuts each sequence at max length
  (`keep_start`).

`tests/test_token_view.py` holds both against `labels != -100` of a real batch.

Special tokens (end of turn, EOS, the role header of the generation prompt)
are drawn as visible marks, the part past max length is struck out after a
✂ marker, and every piece of text is HTML-escaped.

No torch here: only a tokenizer is needed (the data check already loads it).
"""
from __future__ import annotations

import html
from typing import Any

from training.data import checks


# ------------------------------------------------------------------ the sequences

def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _template_ids(tokenizer, messages: list[dict], **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)
    return list(out["input_ids"])


def _header_span(tokenizer, prompt_messages: list[dict]) -> tuple[int, int]:
    """Token positions of the generation prompt's role header (e.g. '<|im_start|>assistant\\n'):
    what the template adds when asked to open the assistant's turn."""
    try:
        bare = _template_ids(tokenizer, prompt_messages, add_generation_prompt=False)
        opened = _template_ids(tokenizer, prompt_messages, add_generation_prompt=True)
    except Exception:  # a template that needs the generation prompt: no header to mark
        return 0, 0
    start = _common_prefix(bare, opened)
    return start, len(opened)


def sft_sequences(tokenizer, row: dict) -> list[dict]:
    """[{"name", "ids", "trained": [bool], "header": (start, end)}] for one SFT row, uncut."""
    enc = checks.encode_sft(tokenizer, row, 10**9)
    prompt_msgs, _ = checks.completion_pairs(row)
    header = _header_span(tokenizer, prompt_msgs) if prompt_msgs else (0, 0)
    header = (header[0], min(header[1], enc["prompt_len"]))
    return [{"name": "example", "ids": list(enc["input_ids"]),
             "trained": [lab != -100 for lab in enc["labels"]], "header": header}]


def dpo_sequences(tokenizer, row: dict) -> list[dict]:
    """prompt + chosen and prompt + rejected, split the way TRL's DPO trainer splits them, uncut."""
    pr = checks.preference_row(row)
    prompt_ids = _template_ids(tokenizer, pr["prompt"], add_generation_prompt=True)
    full = {k: _template_ids(tokenizer, pr["prompt"] + pr[k]) for k in ("chosen", "rejected")}
    p_len = min(_common_prefix(prompt_ids, full["chosen"]), _common_prefix(prompt_ids, full["rejected"]))
    header = _header_span(tokenizer, pr["prompt"])
    header = (header[0], min(header[1], p_len))
    return [{"name": f"prompt + {k}", "ids": prompt_ids[:p_len] + full[k][p_len:],
             "trained": [False] * p_len + [True] * (len(full[k]) - p_len), "header": header}
            for k in ("chosen", "rejected")]


def sequences(tokenizer, row: dict, method: str) -> list[dict]:
    return dpo_sequences(tokenizer, row) if method == "dpo" else sft_sequences(tokenizer, row)


def trained_ids(seq: dict, max_length: int) -> list[int]:
    """The token ids that carry loss once the sequence is cut at max length (what a test
    compares with `labels != -100` of the trainer's batch)."""
    return [t for t, tr in list(zip(seq["ids"], seq["trained"]))[:max_length] if tr]


def counts(seq: dict, max_length: int) -> dict:
    n = len(seq["ids"])
    kept = seq["trained"][:max_length]
    return {"tokens": n, "kept": min(n, max_length), "trained": sum(kept),
            "cut": max(0, n - max_length), "trained_cut": sum(seq["trained"][max_length:])}


# ------------------------------------------------------------------ which row

def row_lengths(tokenizer, rows: list[dict], method: str) -> list[int]:
    """Each row's full token length (the longest of chosen/rejected for DPO); -1 where it fails."""
    out = []
    for row in rows:
        try:
            out.append(max(len(s["ids"]) for s in sequences(tokenizer, row, method)))
        except Exception:
            out.append(-1)
    return out


def pick_row(n_rows: int, how: str, current: int | None, lengths: list[int] | None = None) -> int:
    """0-based index of the row to show: "longest", "next" (after current, wrapping), or the
    1-based row number `current` ("number")."""
    if n_rows <= 0:
        return 0
    if how == "longest" and lengths:
        return max(range(len(lengths)), key=lambda i: (lengths[i], -i))
    cur = int(current or 1)
    if how == "next":
        return cur % n_rows  # row cur (1-based) is index cur-1; the next is index cur
    return min(max(cur, 1), n_rows) - 1


# ------------------------------------------------------------------ HTML

CSS = """
.tokview { font-size: 0.9em; }
.tokview .tok-text { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap;
  overflow-wrap: anywhere; word-break: break-word; line-height: 1.7; margin: 4px 0; max-width: 100%; }
.tokview .tok-prompt { color: #6b7280; }
.tokview .tok-trained { background: #dcfce7; color: #14532d; }
.tokview .tok-special { display: inline-block; border: 1px solid #7c3aed; border-radius: 4px; padding: 0 3px;
  margin: 0 1px; font-size: 0.8em; color: #5b21b6; background: #f5f3ff; line-height: 1.3; }
.tokview .tok-special.tok-trained { border-color: #15803d; color: #14532d; background: #dcfce7; }
.tokview .tok-header { outline: 1px dashed #7c3aed; }
.tokview .tok-cut { color: #b91c1c; text-decoration: line-through; opacity: 0.75; }
.tokview .tok-cutmark { display: inline-block; background: #b91c1c; color: #fff; border-radius: 4px;
  padding: 0 4px; font-size: 0.8em; margin: 0 2px; }
.tokview .tok-counts { color: #374151; margin: 2px 0 10px; }
.tokview .tok-legend span { margin-right: 10px; white-space: nowrap; }
"""


def _is_special(tokenizer, tok_id: int) -> bool:
    special = getattr(tokenizer, "_ftlab_special", None)
    if special is None:
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for tid, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
            if getattr(added, "special", False):
                special.add(int(tid))
        try:
            tokenizer._ftlab_special = special
        except Exception:
            pass
    return tok_id in special


def _piece(tokenizer, tok_id: int) -> str:
    return tokenizer.decode([tok_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _visible(text: str) -> str:
    """Whitespace a learner must see: a newline as ↵ (then the line break), a tab as →."""
    return text.replace("\t", "→\t").replace("\n", "↵\n")


def sequence_html(tokenizer, seq: dict, max_length: int) -> str:
    spans: list[list] = []  # [classes, escaped text, mergeable]; neighbours with the same classes merge
    h0, h1 = seq["header"]
    for pos, (tid, tr) in enumerate(zip(seq["ids"], seq["trained"])):
        if pos == max_length:
            spans.append(["tok-cutmark", html.escape(f"✂ max length {max_length}: cut from here"), False])
        classes = ["tok-trained" if tr else "tok-prompt"]
        if h0 <= pos < h1:
            classes.append("tok-header")
        if pos >= max_length:
            classes.append("tok-cut")
        piece = _piece(tokenizer, tid)
        if _is_special(tokenizer, tid):  # one visible mark per special token
            spans.append([" ".join(classes + ["tok-special"]), html.escape(f"⟨{piece.strip('<>')}⟩"), False])
            continue
        cls, text = " ".join(classes), html.escape(_visible(piece))
        if spans and spans[-1][2] and spans[-1][0] == cls:
            spans[-1][1] += text
        else:
            spans.append([cls, text, True])
    body = "".join(f'<span class="{cls}">{text}</span>' for cls, text, _ in spans)
    c = counts(seq, max_length)
    cut = (f" · <b>{c['cut']}</b> cut off (of them {c['trained_cut']} would have been trained)"
           if c["cut"] else " · nothing cut")
    if not c["trained"]:
        cut += " · ⚠️ nothing left to train on: the trainer drops this row"
    return (f'<div class="tok-seq" data-seq="{html.escape(seq["name"])}">'
            f'<div class="tok-name"><b>{html.escape(seq["name"])}</b></div>'
            f'<div class="tok-text">{body}</div>'
            f'<div class="tok-counts"><b>{c["tokens"]}</b> tokens · <b>{c["trained"]}</b> trained{cut}</div></div>')


LEGEND = ('<div class="tok-legend"><span class="tok-trained">trained</span>'
          '<span class="tok-prompt">not trained (prompt)</span>'
          '<span class="tok-special">⟨special⟩</span><span class="tok-header">generation prompt</span>'
          '<span class="tok-cut">cut by max length</span></div>')


def row_html(tokenizer, row: dict, method: str, max_length: int, name: str) -> str:
    seqs = sequences(tokenizer, row, method)
    parts = [sequence_html(tokenizer, s, max_length) for s in seqs]
    head = f'<div class="tok-row"><b>{html.escape(name)}</b> as the trainer sees it (max length {max_length})</div>'
    return f'<div class="tokview">{head}{LEGEND}{"".join(parts)}</div>'


def view(tokenizer, rows: list[dict], method: str, max_length: int, how: str, current: Any,
         names: list[str] | None = None, lengths: list[int] | None = None) -> tuple[str, int]:
    """(HTML of the chosen row, its 1-based number). `how`: "number", "longest" or "next"."""
    if not rows:
        return "", 0
    if how == "longest" and lengths is None:
        lengths = row_lengths(tokenizer, rows, method)
    i = pick_row(len(rows), how, current, lengths)
    name = names[i] if names and i < len(names) else f"train row {i + 1}"
    try:
        return row_html(tokenizer, rows[i], method, max_length, f"{name} (of {len(rows)})"), i + 1
    except Exception as exc:  # a row the template cannot render: say so, not crash
        return (f'<div class="tokview">{html.escape(name)} cannot be rendered with this model\'s chat '
                f"template: {html.escape(str(exc)[:200])}</div>"), i + 1
