"""The side-by-side view of an evaluation: expected, base and tuned next to each other.

A gr.Dataframe laid the four columns out at their text's full width, so at
1280 px only the input showed and the outputs sat ~3,600 px to the right
(issue 16). This is a fixed-layout HTML table instead: the three outputs share
the width and wrap, the input is cut to a short preview that expands in place,
and an output that matches the expected answer exactly is marked.

Everything shown is escaped: model outputs and learner data are text, never HTML.

    >>> "Expected" in samples_html({"samples": [{"prompt": "p", "reference": "r", "base": "b", "tuned": "r"}]})
    True
"""
from __future__ import annotations

import html

INPUT_PREVIEW = 140  # characters of the input shown before "show all"

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
"""


def _input_cell(text: str) -> str:
    if len(text) <= INPUT_PREVIEW:
        return f'<div class="cell">{html.escape(text)}</div>'
    preview = html.escape(text[:INPUT_PREVIEW].rstrip()) + "…"
    return (f'<details><summary>{preview} <em>(show all)</em></summary>'
            f'<div class="cell">{html.escape(text)}</div></details>')


def _output_cell(text: str, reference: str) -> str:
    verdict = "match" if text.strip() == reference.strip() else "miss"
    mark = " ✓" if verdict == "match" else ""
    return f'<td class="{verdict}"><div class="cell">{html.escape(text) or "<em>(empty)</em>"}{mark}</div></td>'


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
    legend = ('<p class="legend">Green: the output equals the expected answer exactly (✓). '
              "Inputs longer than a few lines are cut: click one to see it whole.</p>")
    return head + "".join(rows) + "</tbody></table>" + legend
