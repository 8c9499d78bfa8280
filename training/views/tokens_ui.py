"""Step 2's row view: any training row's tokens as the trainer builds them (logic:
training/data/tokens.py).

`#train-tokens-row` (row number), `#train-tokens-show`, `#train-tokens-longest`,
`#train-tokens-next` pick the row; `#train-tokens` shows it: trained tokens green,
the prompt grey, special tokens as marks, the part past max length struck out
after a ✂ marker, and the counts under it. "Check data" shows row 1.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import gradio as gr

from training.data import checks, tokens
from training.run import rules


def tokens_handler(dataset: dict | None, model_id: str, method: str, how: str, row: Any, values: dict):
    """-> (row view html, row number). `how`: "number", "longest" or "next"."""
    cfg, problem = rules.build_config(dataset, model_id, method, values)
    if cfg is None:
        return f'<div class="tokview">{problem}</div>' if dataset else "", gr.skip()
    from training.run.base_model import load_tokenizer, resolve_model
    try:
        _, path, _ = resolve_model(cfg.base_model)
        tok = load_tokenizer(path)
    except Exception as exc:  # a Hub hiccup: say so, keep everything
        return f"❌ The model's tokenizer could not be loaded ({type(exc).__name__}). Try again.", gr.skip()
    rows = dataset["train"]
    try:
        number = int(row or 1)
    except (TypeError, ValueError):
        number = 1
    html, shown = tokens.view(tok, rows, cfg.method, cfg.max_length, how, number,
                              names=checks.train_row_names(dataset))
    return html, shown


def build_tokens(c: SimpleNamespace) -> None:
    """Inside step 2, under the histogram."""
    with gr.Group(elem_id="train-tokens-box"):
        gr.Markdown("**Any row, token by token** — exactly what the trainer builds at this max length "
                    "(DPO: prompt + chosen and prompt + rejected).")
        with gr.Row():
            c.tok_row = gr.Number(1, label="Row", precision=0, minimum=1, elem_id="train-tokens-row", scale=1)
            c.tok_show = gr.Button("Show row", size="sm", elem_id="train-tokens-show", scale=0)
            c.tok_longest = gr.Button("Longest", size="sm", elem_id="train-tokens-longest", scale=0)
            c.tok_next = gr.Button("Next", size="sm", elem_id="train-tokens-next", scale=0)
        c.tok_view = gr.HTML("", elem_id="train-tokens", css_template=tokens.CSS)


def wire_tokens(c: SimpleNamespace, by_name: Callable) -> None:
    """`by_name` turns the hyperparameter inputs into the handler's `values` dict (tab._by_name)."""
    for btn, how in ((c.tok_show, "number"), (c.tok_longest, "longest"), (c.tok_next, "next")):
        def handler(dataset, model_id, method, row, values, how=how):
            return tokens_handler(dataset, model_id, method, how, row, values)
        handler.__name__ = f"row_tokens_{how}"
        btn.click(by_name(handler), [c.dataset, c.model, c.method, c.tok_row, *c.hp_inputs],
                  [c.tok_view, c.tok_row], api_name=handler.__name__)
    c.tok_row.submit(by_name(lambda d, m, meth, row, values: tokens_handler(d, m, meth, "number", row, values)),
                     [c.dataset, c.model, c.method, c.tok_row, *c.hp_inputs], [c.tok_view, c.tok_row],
                     api_visibility="private")

    def first_row(dataset, model_id, method, values):
        return tokens_handler(dataset, model_id, method, "number", 1, values)
    c.check_btn.click(by_name(first_row), [c.dataset, c.model, c.method, *c.hp_inputs], [c.tok_view, c.tok_row],
                      api_visibility="private")
