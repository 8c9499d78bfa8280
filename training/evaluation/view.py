"""The side-by-side view of an evaluation: expected, base and tuned next to each other.

A gr.Dataframe laid the four columns out at their text's full width, so at
1280 px only the input showed and the outputs sat ~3,600 px to the right
(issue 16). This is a fixed-layout HTML table instead: the three outputs share
the width and wrap, the input is cut to a short preview that expands in place,
and an output that matches the expected answer exactly is marked.

Differences from the expected answer are highlighted (issue 11): for a JSON
answer each field of the expected object is marked right (✓) or wrong (✗, with
the expected value), missing, or invented (+), by the scorer's own rule (same
dotted path, equal value); an answer that is not JSON, or a text answer, gets a
word diff (difflib): words the model wrote that the expected answer does not
have are <ins>, expected words it left out are <del>.

`adversarial_html` shows the adversarial cases (training/evaluation/design.py) with
the checks each model failed.

Everything shown is escaped: model outputs and learner data are text, never HTML.

    >>> "Expected" in samples_html({"samples": [{"prompt": "p", "reference": "r", "base": "b", "tuned": "r"}]})
    True
"""
from __future__ import annotations

import difflib
import html
import json

INPUT_PREVIEW = 140  # characters of the input shown before "show all"
PENDING = "…"  # training.evaluation.evaluate.PENDING: an answer still being generated (not imported: no torch chain)

CSS = """
#train-samples table.side-by-side { table-layout: fixed; width: 100%; border-collapse: collapse; font-size: 0.9em; }
#train-samples .side-by-side th, #train-samples .side-by-side td {
  border: 1px solid var(--border-color-primary); padding: 6px 8px; vertical-align: top; text-align: left; }
#train-samples .side-by-side td { white-space: pre-wrap; overflow-wrap: anywhere; }
#train-samples .side-by-side td .cell { max-height: 16em; overflow-y: auto; }
#train-samples .side-by-side col.input { width: 22%; }
#train-samples .side-by-side td.match { background: rgba(22, 163, 74, 0.10); }
#train-samples .side-by-side td.miss { background: rgba(220, 38, 38, 0.06); }
#train-samples .side-by-side summary { cursor: pointer; color: var(--link-text-color); }
#train-samples .fields { list-style: none; margin: 0; padding: 0; white-space: normal; }
#train-samples .f-ok { color: #15803d; }
#train-samples .f-bad { color: #b91c1c; font-weight: 600; }
#train-samples .f-extra { color: #b45309; font-weight: 600; }
#train-samples ins { background: rgba(220, 38, 38, 0.18); text-decoration: none; }
#train-samples del { background: rgba(37, 99, 235, 0.15); color: #1e3a8a; }
"""

ADVERSARIAL_CSS = """
#train-eval-adversarial table { table-layout: fixed; width: 100%; border-collapse: collapse; font-size: 0.9em; }
#train-eval-adversarial th, #train-eval-adversarial td {
  border: 1px solid var(--border-color-primary); padding: 6px 8px; vertical-align: top; text-align: left; }
#train-eval-adversarial td { white-space: pre-wrap; overflow-wrap: anywhere; }
#train-eval-adversarial td .cell { max-height: 12em; overflow-y: auto; }
#train-eval-adversarial td.pass { background: rgba(22, 163, 74, 0.10); }
#train-eval-adversarial td.fail { background: rgba(220, 38, 38, 0.08); }
#train-eval-adversarial .reason { color: #b91c1c; font-weight: 600; white-space: normal; }
"""


def _input_cell(text: str) -> str:
    if len(text) <= INPUT_PREVIEW:
        return f'<div class="cell">{html.escape(text)}</div>'
    preview = html.escape(text[:INPUT_PREVIEW].rstrip()) + "…"
    return (f'<details><summary>{preview} <em>(show all)</em></summary>'
            f'<div class="cell">{html.escape(text)}</div></details>')


def _value(v) -> str:
    return html.escape(json.dumps(v, ensure_ascii=False))


def field_marks(text: str, reference: str) -> str | None:
    """The expected object's fields, each marked against the answer; None when the reference
    is not a JSON object (then a word diff is shown instead)."""
    from core.scoring import flatten, parse_json
    ref_ok, ref = parse_json(reference)
    if not (ref_ok and isinstance(ref, dict)):
        return None
    ok, obj = parse_json(text)
    if not (ok and isinstance(obj, dict)):
        return (f'<div class="f-bad">✗ not a JSON object: none of the {len(flatten(ref))} fields can be read'
                f'</div>{html.escape(text)}')
    want, got = flatten(ref), flatten(obj)
    items = []
    for key, value in want.items():
        if key not in got:
            items.append(f'<li class="f-bad">✗ {html.escape(key)}: missing (expected {_value(value)})</li>')
        elif got[key] == value:
            items.append(f'<li class="f-ok">✓ {html.escape(key)}: {_value(value)}</li>')
        else:
            items.append(f'<li class="f-bad">✗ {html.escape(key)}: {_value(got[key])} '
                         f'(expected {_value(value)})</li>')
    items += [f'<li class="f-extra">+ {html.escape(k)}: {_value(v)} (not in the expected answer)</li>'
              for k, v in got.items() if k not in want]
    right = sum(1 for k, v in want.items() if got.get(k, object()) == v)
    return f'<div>{right}/{len(want)} fields right</div><ul class="fields">{"".join(items)}</ul>'


def word_diff(text: str, reference: str) -> str:
    """The answer's words with what differs from the reference marked: <ins> words the answer
    has and the reference lacks, <del> reference words the answer left out. Escaped."""
    ref, out = reference.split(), text.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ref, out, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape(" ".join(out[j1:j2])))
            continue
        if op in ("replace", "delete"):
            parts.append(f"<del>{html.escape(' '.join(ref[i1:i2]))}</del>")
        if op in ("replace", "insert"):
            parts.append(f"<ins>{html.escape(' '.join(out[j1:j2]))}</ins>")
    return " ".join(parts)


def _output_cell(text: str, reference: str) -> str:
    if text == PENDING:
        return f'<td class="pending"><div class="cell">{PENDING}</div></td>'
    if text.strip() == reference.strip():
        return f'<td class="match"><div class="cell">{html.escape(text)} ✓</div></td>'
    if not text.strip():
        return '<td class="miss"><div class="cell"><em>(empty)</em></div></td>'
    marks = field_marks(text, reference)
    if marks is None:
        body = word_diff(text, reference)
    elif marks.startswith('<div class="f-bad">'):
        body = marks
    else:
        body = (f'{marks}<details><summary>the answer as written</summary>'
                f'{html.escape(text)}</details>')
    return f'<td class="miss"><div class="cell">{body}</div></td>'


def samples_html(metrics: dict | None) -> str:
    """The evaluated examples as an HTML table (empty string before any evaluation)."""
    samples = (metrics or {}).get("samples") or []
    if not samples:
        return ""
    head = ('<table class="side-by-side"><colgroup><col class="input"><col><col><col></colgroup>'
            "<thead><tr><th>Input</th><th>Expected</th><th>Base model</th><th>Tuned model</th></tr></thead><tbody>")
    rows = []
    for s in samples:
        ref = str(s.get("reference", ""))
        rows.append("<tr>"
                    f"<td>{_input_cell(str(s.get('prompt', '')))}</td>"
                    f'<td><div class="cell">{html.escape(ref)}</div></td>'
                    f"{_output_cell(str(s.get('base', '')), ref)}{_output_cell(str(s.get('tuned', '')), ref)}"
                    "</tr>")
    legend = ('<p class="legend">Green: the output equals the expected answer exactly (✓). Otherwise, for JSON, '
              "each expected field is marked ✓ right or ✗ wrong (with the expected value), + marks a field "
              "the model invented; for text, <ins>highlighted</ins> words are not in the expected answer and "
              "<del>struck</del> ones are missing from the output. "
              "Inputs longer than a few lines are cut: click one to see it whole.</p>")
    return head + "".join(rows) + "</tbody></table>" + legend


def _verdict_cell(answer: str, failed: list[str] | None) -> str:
    body = html.escape(answer) or "<em>(empty)</em>"
    if answer == PENDING:
        return f'<td><div class="cell">{PENDING}</div></td>'
    if failed is None:
        return f'<td><div class="cell">{body}</div><div>(no automatic check: judge it yourself)</div></td>'
    if not failed:
        return f'<td class="pass"><div>✓ passed</div><div class="cell">{body}</div></td>'
    reasons = "".join(f'<div class="reason">✗ {html.escape(r)}</div>' for r in failed)
    return f'<td class="fail">{reasons}<div class="cell">{body}</div></td>'


def adversarial_summary(cases: list[dict]) -> str:
    """One line: how many cases each model failed."""
    judged = [c for c in cases if c.get("tuned_failed") is not None and c.get("base_failed") is not None]
    if not judged:
        return ""
    fails = {side: sum(bool(c[f"{side}_failed"]) for c in judged) for side in ("base", "tuned")}
    return (f"Adversarial cases: the tuned model fails {fails['tuned']} of {len(judged)}, "
            f"the base model {fails['base']} of {len(judged)}.")


def adversarial_html(metrics: dict | None, note: str = "") -> str:
    """The adversarial cases as a table: the case, what should happen, each model's answer
    with the checks it failed (red) or ✓. `note` is shown when there are no cases."""
    cases = (metrics or {}).get("adversarial") or []
    if not cases:
        return f"<p>{html.escape(note)}</p>" if note else ""
    rows = []
    for c in cases:
        case = (f"<strong>{html.escape(c.get('title', ''))}</strong> "
                f"<em>({html.escape(str(c.get('category', '')).replace('_', ' '))})</em>"
                f'<div class="cell">{html.escape(c.get("input", ""))}</div>')
        rows.append(f"<tr><td>{case}</td><td>{html.escape(c.get('expect', ''))}</td>"
                    f"{_verdict_cell(c['base'], c.get('base_failed'))}"
                    f"{_verdict_cell(c['tuned'], c.get('tuned_failed'))}</tr>")
    head = (f"<p><strong>{html.escape(adversarial_summary(cases) or 'Adversarial cases')}</strong></p>"
            "<table><thead><tr><th>Case</th><th>Should</th><th>Base model</th><th>Tuned model</th></tr></thead>"
            "<tbody>")
    return head + "".join(rows) + "</tbody></table>"
