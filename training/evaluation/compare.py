"""Two to four of a learner's runs side by side: curves, settings, metrics. No Gradio here.

"I lowered the learning rate: was it better?" is answered three ways, each only
where the runs can be compared:

- **Loss curves overlaid** (`overlay_figure`), one colour per run, train solid and
  eval dashed, each run named by the settings that tell it apart (`legend_names`).
  Only runs of the same method on the same data: a loss on other rows measures
  something else.
- **Settings side by side** (`settings_rows`), the rows that differ marked.
- **Metrics side by side** (`metrics_comparison`) when the runs were evaluated on
  the same test rows: each run's tuned answers scored per row by the evaluation's
  own scorer, and every run after the first compared with the first by the
  evaluation's paired bootstrap (same resampled rows for both runs), so the
  difference has its own 95% interval.

What cannot be compared is said (`comparison(...)["cannot"]`) rather than drawn.

    >>> a = {"run_id": "A" * 16, "config": {"method": "sft", "learning_rate": 1e-3}}
    >>> b = {"run_id": "B" * 16, "config": {"method": "sft", "learning_rate": 2e-4}}
    >>> legend_names([a, b])
    ['AAAAAA · lr 1e-03', 'BBBBBB · lr 2e-04']
"""
from __future__ import annotations

import math
from typing import Any

from training.run.config import HYPERPARAMETERS

MIN_RUNS, MAX_RUNS = 2, 4
COLOURS = ("#2563eb", "#dc2626", "#059669", "#9333ea")

# Short names for the legend (the settings table uses the config's own labels).
SHORT = {"learning_rate": "lr", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
         "lora_target_modules": "targets", "lr_scheduler_type": "sched", "warmup_ratio": "warmup",
         "num_train_epochs": "epochs", "max_steps": "steps", "per_device_train_batch_size": "batch",
         "gradient_accumulation_steps": "accum", "max_length": "max len", "eval_steps": "eval every",
         "early_stopping_patience": "patience", "seed": "seed", "beta": "beta"}
LABELS = {f.name: f.metadata["label"] for f in HYPERPARAMETERS}
HP_NAMES = [f.name for f in HYPERPARAMETERS]


def short_id(info: dict) -> str:
    return str(info.get("run_id", ""))[:6]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-2 or abs(value) >= 1e5:
            return f"{value:.0e}"
        return f"{value:g}"
    return str(value)


def _data_name(cfg: dict) -> str:
    ds = cfg.get("dataset") or {}
    fp = ds.get("fingerprint") or {}
    rows = f", {fp['rows']} rows" if fp.get("rows") else ""
    return f"{ds.get('name') or '?'}{rows}"


def setting_values(info: dict) -> dict[str, str]:
    """The settings of one run as shown, by key (method, model, data, each hyperparameter)."""
    cfg = info.get("config") or {}
    out = {"method": str(cfg.get("method", "")).upper(), "base_model": str(cfg.get("base_model", "")),
           "dataset": _data_name(cfg)}
    for name in HP_NAMES:
        if name == "beta" and cfg.get("method") != "dpo":
            continue
        if name in cfg:
            out[name] = _fmt(cfg[name])
    batch, accum = cfg.get("per_device_train_batch_size"), cfg.get("gradient_accumulation_steps")
    if isinstance(batch, int) and isinstance(accum, int):
        out["effective_batch"] = str(batch * accum)
    out["steps_done"] = f"{int(info.get('step') or 0)} / {int(info.get('total_steps') or 0)}"
    out["status"] = str(info.get("status", ""))
    return out


ROW_LABELS = {"method": "Method", "base_model": "Base model", "dataset": "Data", **LABELS,
              "effective_batch": "Effective batch", "steps_done": "Steps trained", "status": "Status"}


def settings_rows(infos: list[dict]) -> list[dict]:
    """[{"key", "label", "values": [one per run], "differs": bool}] in the table's order."""
    values = [setting_values(i) for i in infos]
    keys = [k for k in ROW_LABELS if any(k in v for v in values)]
    rows = []
    for k in keys:
        vals = [v.get(k, "—") for v in values]
        rows.append({"key": k, "label": ROW_LABELS[k], "values": vals, "differs": len(set(vals)) > 1})
    return rows


def legend_names(infos: list[dict]) -> list[str]:
    """Each run named by its short id and the hyperparameters that differ between the runs."""
    cfgs = [i.get("config") or {} for i in infos]
    differing = [n for n in HP_NAMES if len({_fmt(c.get(n)) for c in cfgs}) > 1]
    names = []
    for info, cfg in zip(infos, cfgs):
        parts = [f"{SHORT.get(n, n)} {_fmt(cfg.get(n))}" for n in differing[:3]]
        names.append(" · ".join([short_id(info), *parts]))
    return names


# ------------------------------------------------------------------ what can be compared

def _data_key(cfg: dict) -> tuple:
    ds = cfg.get("dataset") or {}
    fp = ds.get("fingerprint") or {}
    return (fp.get("sha256") or (ds.get("source"), ds.get("name")),)


def same_data(infos: list[dict]) -> bool:
    return len({_data_key(i.get("config") or {}) for i in infos}) == 1


def same_method(infos: list[dict]) -> bool:
    return len({(i.get("config") or {}).get("method") for i in infos}) == 1


def common_rows(metrics: list[dict]) -> int:
    """How many leading test rows every evaluation shares (same prompt and same reference)."""
    samples = [m.get("samples") or [] for m in metrics]
    n = min(len(s) for s in samples) if samples else 0
    for i in range(n):
        first = (samples[0][i].get("prompt"), samples[0][i].get("reference"))
        if any((s[i].get("prompt"), s[i].get("reference")) != first for s in samples[1:]):
            return i
    return n


def metrics_comparison(infos: list[dict], metrics: list[dict | None]) -> dict:
    """Each run's tuned metrics on the test rows they share, and each run minus the first with
    the paired bootstrap's 95% interval. -> {"rows": [...], "n", "cannot": str}."""
    from training.evaluation import evaluate

    missing = [short_id(i) for i, m in zip(infos, metrics) if not m or not m.get("samples")]
    if missing:
        return {"rows": [], "n": 0, "cannot": (
            "Metrics not compared: run " + ", ".join(missing) + (" has" if len(missing) == 1 else " have")
            + " not been evaluated. Open it and press **Evaluate base vs tuned** on the same number of "
              "test examples.")}
    n = common_rows(metrics)
    if n == 0:
        return {"rows": [], "n": 0, "cannot": (
            "Metrics not compared: these runs were evaluated on different test rows, so a difference "
            "would mix the runs with the rows.")}
    keys = [k for k in evaluate.shown_metrics(metrics[0]) if all(k in (m.get("tuned") or {}) for m in metrics)]
    refs = [s["reference"] for s in metrics[0]["samples"][:n]]
    per_row = [evaluate.row_values([s["tuned"] for s in m["samples"][:n]], refs) for m in metrics]
    rows = []
    for key in keys:
        if not all(key in pr for pr in per_row):
            continue
        first_vals, weights = per_row[0][key]
        if sum(weights) <= 0:
            continue
        mean0 = _wmean(first_vals, weights)
        for idx, (info, pr) in enumerate(zip(infos, per_row)):
            vals = pr[key][0]
            value = _wmean(vals, weights)
            row = {"metric": evaluate.METRIC_LABELS[key], "key": key, "run": short_id(info), "index": idx,
                   "value": value, "ci": None, "diff": None, "diff_ci": None}
            boot = evaluate.paired_bootstrap(first_vals, vals, weights)
            row["ci"] = boot["tuned"]
            if idx:
                row["diff"], row["diff_ci"] = value - mean0, boot["change"]
            rows.append(row)
    note = ""
    sizes = {len(m["samples"]) for m in metrics}
    if len(sizes) > 1:
        note = f"Compared on the {n} test rows every run was evaluated on (the runs evaluated {sorted(sizes)} rows)."
    return {"rows": rows, "n": n, "cannot": "", "note": note}


def _wmean(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights)) / total if total else math.nan


def comparison(infos: list[dict], logs: list[list[dict]], metrics: list[dict | None]) -> dict:
    """Everything the comparison view shows: {"names", "settings", "curves": bool, "metrics", "cannot": [...]}."""
    cannot = []
    curves = same_method(infos) and same_data(infos)
    if not same_method(infos):
        cannot.append("Loss curves not overlaid: SFT and DPO losses measure different things.")
    elif not same_data(infos):
        names = ", ".join(f"{short_id(i)}: {_data_name(i.get('config') or {})}" for i in infos)
        cannot.append(f"Loss curves not overlaid: these runs trained on different data ({names}), so their "
                      "losses are measured on different rows.")
    if curves and not any(any("loss" in e or "eval_loss" in e for e in log) for log in logs):
        curves = False
        cannot.append("No loss logged yet in these runs.")
    m = metrics_comparison(infos, metrics) if same_data(infos) else {
        "rows": [], "n": 0, "cannot": "Metrics not compared: the runs trained on different data."}
    if m["cannot"]:
        cannot.append(m["cannot"])
    return {"names": legend_names(infos), "settings": settings_rows(infos), "curves": curves,
            "metrics": m, "cannot": cannot}


# ------------------------------------------------------------------ the overlay

def overlay_figure(names: list[str], logs: list[list[dict]]):
    """Train loss (solid) and eval loss (dashed, big markers), one colour per run; series groups
    ``compare-train-<i>`` and ``compare-eval-<i>`` (i: the run's place in the comparison)."""
    from training.run import charts

    fig, ax = charts.figure(6.0, 3.4)
    drawn = False
    for i, (name, log) in enumerate(zip(names, logs)):
        colour = COLOURS[i % len(COLOURS)]
        train, evals = charts.series(log, "loss"), charts.series(log, "eval_loss")
        if train:
            xs, ys = zip(*train)
            (line,) = ax.plot(xs, ys, color=colour, linewidth=1.4, marker="o" if len(train) <= 80 else None,
                              markersize=2.5, label=f"{name} train")
            line.set_gid(f"compare-train-{i}")
            drawn = True
        if evals:
            xs, ys = zip(*evals)
            (line,) = ax.plot(xs, ys, color=colour, linewidth=1.8, linestyle="--", marker="s", markersize=6,
                              label=f"{name} eval")
            line.set_gid(f"compare-eval-{i}")
            drawn = True
    if not drawn:
        return None
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.grid(alpha=0.3)
    # Below the plot: with four runs the legend would cover the curves.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def overlay_svg(names: list[str], logs: list[list[dict]]) -> str:
    from training.run import charts
    return charts.svg(overlay_figure(names, logs), "No loss logged yet in these runs.")


# ------------------------------------------------------------------ the view (HTML, escaped)

CSS = """
.cmp-scroll { overflow-x: auto; max-width: 100%; }
.cmp-table { border-collapse: collapse; font-size: 0.9em; min-width: 100%; }
.cmp-table th, .cmp-table td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
.cmp-table tr.differs td, .cmp-table tr.differs th { background: #fef3c7; font-weight: 600; }
.cmp-table .swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 4px; }
.cmp-table .sig-up { color: #047857; font-weight: 600; }
.cmp-table .sig-down { color: #b91c1c; font-weight: 600; }
"""


def _esc(text: Any) -> str:
    import html
    return html.escape(str(text), quote=True)


def _swatch(i: int) -> str:
    return f'<span class="swatch" style="background:{COLOURS[i % len(COLOURS)]}"></span>'


def settings_html(names: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{_swatch(i)}{_esc(n)}</th>" for i, n in enumerate(names))
    body = "".join(
        f'<tr class="{"differs" if r["differs"] else "same"}" data-key="{_esc(r["key"])}"><th>{_esc(r["label"])}'
        + (" ≠" if r["differs"] else "") + "</th>" + "".join(f"<td>{_esc(v)}</td>" for v in r["values"]) + "</tr>"
        for r in rows)
    n_diff = sum(r["differs"] for r in rows if r["key"] not in ("status", "steps_done"))
    caption = (f"{n_diff} setting{'s' if n_diff != 1 else ''} differ (highlighted, ≠)." if n_diff
               else "Same settings: the runs differ only by chance (or by their data).")
    return (f'<p class="cmp-caption">{_esc(caption)}</p><div class="cmp-scroll"><table class="cmp-table">'
            f"<thead><tr><th>Setting</th>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _pts(x: float) -> str:
    return f"{x * 100:+.0f}"


def metrics_html(m: dict, names: list[str]) -> str:
    if not m.get("rows"):
        return ""
    body = []
    for r in m["rows"]:
        lo, hi = r["ci"] or (r["value"], r["value"])
        value = f"{r['value']:.0%} [{lo:.0%}, {hi:.0%}]"
        if r["diff"] is None:
            diff, cls = "(reference)", ""
        else:
            dlo, dhi = r["diff_ci"]
            diff = f"{_pts(r['diff'])} pts [{_pts(dlo)}, {_pts(dhi)}]"
            cls = "sig-up" if dlo > 0 else "sig-down" if dhi < 0 else ""
        body.append(f'<tr><td>{_esc(r["metric"])}</td><td>{_swatch(r["index"])}{_esc(names[r["index"]])}</td>'
                    f'<td>{_esc(value)}</td><td class="{cls}">{_esc(diff)}</td></tr>')
    first = names[0] if names else ""
    note = (f"Tuned answers on the same {m['n']} test rows. Difference: each run minus {first}, with a 95% "
            "paired bootstrap interval (both runs scored on the same resampled rows); an interval that "
            "excludes 0 is coloured." + (" " + m["note"] if m.get("note") else ""))
    return (f'<p class="cmp-caption">{_esc(note)}</p><div class="cmp-scroll"><table class="cmp-table">'
            "<thead><tr><th>Metric</th><th>Run</th><th>Value [95%]</th><th>Difference vs first [95%]</th></tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table></div>")


def pick_choices(infos: list[dict]) -> list[tuple[str, str]]:
    """(label, run id) for the picker: short id, data, learning rate, status."""
    out = []
    for info in infos:
        cfg = info.get("config") or {}
        label = (f"{short_id(info)} · {str(cfg.get('method', '')).upper()} · {(cfg.get('dataset') or {}).get('name', '')}"
                 f" · lr {_fmt(cfg.get('learning_rate'))} · {info.get('status', '')}")
        out.append((label, info["run_id"]))
    return out


def view(learner_ids: Any, chosen: Any) -> dict:
    """What the comparison shows for the learner's chosen runs. Only the learner's own runs
    (`learner_ids`, from their browser state) can be compared: other ids are ignored.
    -> {"ids", "names", "note" (Markdown), "chart", "settings", "metrics"} (HTML strings)."""
    from training.evaluation import evaluate
    from training.run import runs

    mine = {i["run_id"]: i for i in runs.learner_runs(learner_ids)}
    picked = [rid for rid in dict.fromkeys(chosen or []) if isinstance(rid, str) and rid in mine]
    empty = {"ids": [], "names": [], "chart": "", "settings": "", "metrics": ""}
    if len(picked) < MIN_RUNS:
        return dict(empty, note=f"Pick {MIN_RUNS} to {MAX_RUNS} of your runs to compare.")
    if len(picked) > MAX_RUNS:
        return dict(empty, note=f"Pick at most {MAX_RUNS} runs: more curves than that cannot be told apart.")
    # Oldest first: the first run is the one the others are measured against.
    infos = sorted((mine[rid] for rid in picked), key=lambda i: i.get("created_at", 0))
    logs = [runs.read_log(i["run_id"]) for i in infos]
    metrics = [evaluate.read_metrics(i["run_id"]) for i in infos]
    c = comparison(infos, logs, metrics)
    note = "\n\n".join(f"⚠️ {x}" for x in c["cannot"])
    return {"ids": [i["run_id"] for i in infos], "names": c["names"], "note": note,
            "chart": overlay_svg(c["names"], logs) if c["curves"] else "",
            "settings": settings_html(c["names"], c["settings"]), "metrics": metrics_html(c["metrics"], c["names"])}
