"""The run's curves, drawn once for every place that shows them.

The Training tab shows them live as inline SVG; the model card saves the same
figure as a PNG. Drawn with matplotlib rather than gradio's LinePlot, which
drew nothing for a one-point series, clipped its legend and labelled the axes
0.000000 / 1.000000 (issue 16). Every point is a marker, so a run's first
step is visible; the legend sits inside the plot; steps are whole numbers.

In the SVG, text stays text and each series is a group with a stable id
(``curve-train-loss``, ``curve-eval-loss``, ``curve-grad-norm``,
``curve-learning-rate``), so a browser test can see the points and the legend
as a learner does. The gradient norm (before clipping, as the trainer logs it)
shares the loss chart on its own right-hand axis: a spike there is what comes
before a loss spike or a divergence.

    >>> svg = loss_svg([{"step": 1, "loss": 2.0}])
    >>> 'id="curve-train-loss"' in svg and "train loss" in svg
    True
"""
from __future__ import annotations

import io
import math
import re

TRAIN = ("train loss", "#2563eb", "curve-train-loss")
EVAL = ("eval loss", "#f97316", "curve-eval-loss")
LR = ("learning rate", "#059669", "curve-learning-rate")
GRAD = ("grad norm", "#9333ea", "curve-grad-norm")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(events: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one logged quantity, skipping missing and non-finite values."""
    return [(int(e["step"]), float(e[key])) for e in events
            if _finite(e.get(key)) and isinstance(e.get("step"), int)]


def figure(width: float = 6.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")  # no display on a Space or in tests
    from matplotlib.figure import Figure

    # A bare Figure (not pyplot) keeps no global state between learners.
    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _draw(ax, points: list[tuple[int, float]], style: tuple[str, str, str], *, thin: bool = False):
    label, colour, gid = style
    xs, ys = zip(*points)
    # Markers on every point while they can be told apart; a lone point is always a dot.
    marker = "o" if len(points) <= 80 else None
    (line,) = ax.plot(xs, ys, label=label, color=colour, marker=marker, markersize=3 if thin else 4,
                      linewidth=1.0 if thin else 1.8, linestyle=":" if thin else "-")
    line.set_gid(gid)
    return line


def _finish(fig, ax, ylabel: str, yformat: str, handles=None) -> None:
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.yaxis.set_major_formatter(FormatStrFormatter(yformat))
    ax.grid(alpha=0.3)
    if handles:
        ax.legend(handles=handles, loc="upper right", frameon=True, fontsize=9)
    else:
        ax.legend(loc="upper right", frameon=True, fontsize=9)
    fig.tight_layout()


def loss_figure(events: list[dict]):
    """Train and eval loss against step, and the gradient norm on its own right-hand axis;
    None when nothing has been logged yet."""
    train, evals = series(events, "loss"), series(events, "eval_loss")
    if not train and not evals:
        return None
    fig, ax = figure()
    for points, style in ((train, TRAIN), (evals, EVAL)):
        if points:
            _draw(ax, points, style)
    grad = series(events, "grad_norm")
    if grad:
        from matplotlib.ticker import FormatStrFormatter
        right = ax.twinx()
        _draw(right, grad, GRAD, thin=True)
        right.set_ylabel("grad norm", color=GRAD[1])
        right.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        right.set_ylim(bottom=0)
        # One legend for both axes (the twin's own would cover the first).
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        _finish(fig, ax, "loss", "%.3g", handles=handles)
        return fig
    _finish(fig, ax, "loss", "%.3g")
    return fig


def lr_figure(events: list[dict]):
    points = series(events, "learning_rate")
    if not points:
        return None
    fig, ax = figure()
    _draw(ax, points, LR)
    _finish(fig, ax, "learning rate", "%.1e")
    return fig


def svg(fig, empty_text: str) -> str:
    """Inline SVG for the page (text kept as text), or a short note when there is no figure."""
    if fig is None:
        return f'<div class="curve-empty">{empty_text}</div>'
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ftlab"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})  # same figure, same text
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: it sits inside a div
    # Scale with the column (the viewBox keeps the proportions) instead of a fixed 432 pt.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 width="100%"', text, count=1)


def loss_svg(events: list[dict]) -> str:
    return svg(loss_figure(events), "The loss curve appears here after the first logged step.")


def lr_svg(events: list[dict]) -> str:
    return svg(lr_figure(events), "The learning-rate schedule appears here once training starts.")


# ------------------------------------------------------------------ per-field accuracy (evaluation)

BASE_BAR = ("base model", "#9ca3af")
TUNED_BAR = ("tuned model", "#2563eb")


def fields_figure(rows: list[tuple[str, float, float]]):
    """Grouped horizontal bars, base vs tuned, one pair per JSON field; None for a text task.

    Each bar is a group with a stable id (``field-base-<i>``, ``field-tuned-<i>``, i in the
    rows' order) and its field name as the tick label, so a test can count them."""
    if not rows:
        return None
    fig, ax = figure(6.0, 1.2 + 0.42 * len(rows))
    ys = range(len(rows))
    # The y axis is inverted below (first field on top): base sits above tuned in each pair.
    for offset, side, (label, colour), values in ((-0.2, "base", BASE_BAR, [r[1] for r in rows]),
                                                  (0.2, "tuned", TUNED_BAR, [r[2] for r in rows])):
        bars = ax.barh([y + offset for y in ys], values, height=0.38, color=colour, label=label)
        for i, bar in enumerate(bars):
            bar.set_gid(f"field-{side}-{i}")
    ax.set_yticks(list(ys), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()  # the first field of the schema on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers with this field right")
    from matplotlib.ticker import PercentFormatter
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def fields_svg(rows: list[tuple[str, float, float]]) -> str:
    return svg(fields_figure(rows), "Per-field accuracy appears here for a JSON task once it is evaluated.")


# ------------------------------------------------------------------ the length histogram

def length_histogram_svg(lengths: list[int], max_length: int, summary: str = "") -> str:
    """Rows per token length, the bars past max length in red, and a dashed line at max length
    (group ``hist-max-length``, bars ``hist-kept-<i>`` / ``hist-cut-<i>``) labelled with what it cuts."""
    if not lengths:
        return '<div class="curve-empty">The token lengths appear here after the check.</div>'
    top = max(max(lengths), max_length)
    width = max(8, -(-top // 12))
    edges = list(range(0, top + width + 1, width))
    counts = [0] * (len(edges) - 1)
    for n in lengths:
        counts[min(n // width, len(counts) - 1)] += 1
    fig, ax = figure(6.0, 2.6)
    kept = [(e, c) for e, c in zip(edges, counts) if e + width <= max_length]
    cut = [(e, c) for e, c in zip(edges, counts) if e + width > max_length]
    for group, colour, gid, label in ((kept, "#2563eb", "hist-kept", "rows"),
                                      (cut, "#dc2626", "hist-cut", "rows reaching past max length")):
        if group and any(c for _, c in group):
            bars = ax.bar([e for e, _ in group], [c for _, c in group], width=width * 0.9, align="edge",
                          color=colour, label=label)
            for i, patch in enumerate(bars):
                patch.set_gid(f"{gid}-{i}")
    line = ax.axvline(max_length, color="#111827", linestyle="--", linewidth=1.5,
                      label=f"max length {max_length}")
    line.set_gid("hist-max-length")
    ax.set_xlabel("tokens per row")
    ax.set_ylabel("rows")
    from matplotlib.ticker import MaxNLocator
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, top + width)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, frameon=True)
    if summary:
        ax.set_title(summary, fontsize=8)
    fig.tight_layout()
    return svg(fig, "")
