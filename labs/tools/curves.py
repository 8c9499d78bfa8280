"""Training-curve doctor: parse a pasted loss log and say what is wrong and what to do.

    >>> r = diagnose_training_curve("step,train_loss,eval_loss\\n100,2.0,2.1\\n200,1.5,1.7\\n"
    ...                             "300,1.1,1.5\\n400,0.8,1.6\\n500,0.5,1.8\\n600,0.3,2.0")
    >>> r["diagnosis"], r["best_eval_step"]
    ('overfitting', 300)

Forgiving parser: CSV / TSV / space-separated columns with or without a
header (HF notebook tables with "No log" included), Trainer's printed
``{'loss': ..., 'epoch': ...}`` lines, ``key=value`` log lines, JSON Lines,
and a ``log_history`` list (or a whole ``trainer_state.json``). Nothing is
ever evaluated as code.
"""
from __future__ import annotations

import json
import math
import re
import statistics
from typing import Any
from labs.tools.spec import MAX_PASTE_BYTES, ToolSpec, num

MAX_POINTS = 100_000

_STEP_KEYS = ("step", "steps", "global_step", "iter", "iteration", "it")
_TRAIN_KEYS = ("train_loss", "loss", "training_loss", "trainloss", "train")
_GRAD_KEYS = ("grad_norm", "gradient_norm", "grad-norm", "gnorm")
_EVAL_KEYS = ("eval_loss", "val_loss", "validation_loss", "valid_loss", "dev_loss", "eval",
              "val", "validation", "test_loss")
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)"
# Key length bounded: an unbounded `[\w/.-]*` backtracks quadratically on one long run of
# letters (a 300k-character pasted line took minutes); no real metric name is this long.
_KV_RE = re.compile(r"['\"]?([A-Za-z_][\w/.-]{0,80})['\"]?\s*[:=]\s*(" + _NUM + r")(?![\w.])")
_HEADER_ALIASES = [  # multi-word headers (HF notebook table) → one token
    (re.compile(r"training\s+loss", re.I), "train_loss"),
    (re.compile(r"train\s+loss", re.I), "train_loss"),
    (re.compile(r"validation\s+loss", re.I), "eval_loss"),
    (re.compile(r"(?:eval|val|valid|dev)\s+loss", re.I), "eval_loss"),
    (re.compile(r"global\s+step", re.I), "step"),
]

ACTIONS = {
    "nan": "Stop and restart from the last good checkpoint with a lower learning rate (e.g. /3), "
           "gradient clipping (max_grad_norm=1.0) and bf16 rather than fp16; check the data for "
           "empty targets or examples whose labels are all masked.",
    "divergence": "Lower the learning rate 3-10x, add warmup (warmup_steps=0.03-0.1), keep "
                  "max_grad_norm=1.0, and restart from the last checkpoint before the rise.",
    "overfitting": "Use the checkpoint at the best eval step (load_best_model_at_end=True with "
                   "metric_for_best_model='eval_loss', or checkpoint-<best step>), add early "
                   "stopping (EarlyStoppingCallback, patience 2-3 evals), and next time train "
                   "fewer epochs, add or diversify data, or use a smaller r / more dropout.",
    "spikes": "Isolated spikes usually come from a bad batch or a learning rate at the edge: "
              "inspect the examples fed at those steps, keep gradient clipping on, and lower the "
              "learning rate or raise gradient accumulation if spikes recur.",
    "oscillation": "The loss swings without a trend: lower the learning rate and/or raise the "
                   "effective batch (more gradient_accumulation_steps) to smooth the updates.",
    "plateau": "The loss is not going down: check that labels are not all masked (a hand-written "
               "template whose generation markers wrap nothing, or rows so long that max_length cuts "
               "off every answer token), raise the learning rate "
               "(LoRA usually 1e-4 to 2e-4), or raise r / target all linear layers.",
    "grad_spikes": "The gradient norm jumped at these steps (before clipping): with max_grad_norm=1.0 "
                   "the update is clipped, so one spike is harmless; if the loss jumps with it or spikes "
                   "recur, look at the examples of those steps and lower the learning rate.",
    "healthy": "Nothing alarming: keep the checkpoint with the lowest eval loss and check task "
               "metrics on held-out data, since loss alone does not show format or accuracy.",
    "converged": "The loss has flattened after learning: more steps will not help much; stop "
                 "here or at the best eval checkpoint.",
}

PRIORITY = ("nan", "divergence", "overfitting", "spikes", "oscillation", "plateau", "healthy")
# Gradient-norm spikes are reported ("Also seen") but never make the diagnosis on their own.

# Step-to-step swing of the train loss that sampling alone causes at batch 1: the mean
# |loss[t+1] - loss[t]| over the mean loss, in the second half of the app's default run
# (64 steps of batch 1 on clinical_soap, tests/fixtures/default_run_log.json): 0.49. A
# batch of b examples averages b per-example losses, so its swing shrinks as 1/sqrt(b).
BATCH1_SWING = 0.5


# ------------------------------------------------------------------ parsing

def _to_float(token: Any) -> float | None:
    if isinstance(token, bool):
        return None
    if isinstance(token, (int, float)):
        return float(token)
    if not isinstance(token, str):
        return None
    t = token.strip().strip("'\"").rstrip(",;")
    if not t or t.lower() in ("-", "no log", "none", "null", "n/a", "na"):
        return None
    try:
        return float(t)
    except ValueError:
        return None


def _pick(record: dict, keys: tuple[str, ...]) -> Any:
    lowered = {str(k).lower().strip(): v for k, v in record.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    return None


def _from_records(records: list[dict]) -> list[dict]:
    points = []
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            continue
        step = _to_float(_pick(rec, _STEP_KEYS))
        axis = "step"
        if step is None:
            # Trainer's printed dicts carry only 'epoch'; it still lines up train and eval rows.
            step = _to_float(_pick(rec, ("epoch",)))
            axis = "epoch" if step is not None else "row"
        train = _to_float(_pick(rec, _TRAIN_KEYS))
        ev = _to_float(_pick(rec, _EVAL_KEYS))
        if train is None and ev is None:
            continue
        points.append({"step": step, "train": train, "eval": ev, "grad": _to_float(_pick(rec, _GRAD_KEYS)),
                       "order": i, "axis": axis})
    return points


def _try_json(text: str) -> list[dict] | None:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        data = json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        data = data.get("log_history", [data])
    if isinstance(data, list):
        return _from_records(data)
    # JSON Lines, one record per line.
    records = []
    for line in stripped.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            return None
        if isinstance(rec, dict):
            records.append(rec)
    return _from_records(records) if records else None


def _try_key_values(lines: list[str]) -> list[dict] | None:
    """Lines such as "{'loss': 1.2, 'epoch': 0.5}" or "step 100 | loss=1.2 eval_loss=1.4"."""
    records = []
    for line in lines:
        pairs = {k.lower(): v for k, v in _KV_RE.findall(line)}
        if not pairs:
            continue
        if "step" not in pairs:
            m = re.search(r"\b(?:step|iter(?:ation)?)\s*[#:]?\s*(\d+)", line, re.I)
            if m:
                pairs["step"] = m.group(1)
        records.append(pairs)
    points = _from_records(records)
    return points if points else None


def _split(line: str) -> list[str]:
    if "\t" in line:
        return [c.strip() for c in line.split("\t")]
    if "," in line and not re.search(r"\d,\d{3}\b", line):
        return [c.strip() for c in line.split(",")]
    if "|" in line:
        return [c.strip() for c in line.strip().strip("|").split("|")]
    return line.split()


def _try_table(lines: list[str]) -> list[dict] | None:
    header: list[str] | None = None
    rows: list[list[str]] = []
    for raw in lines:
        line = raw.strip()
        if not line or set(line) <= set("-|=+: "):
            continue  # blank lines and Markdown/ASCII table rules
        line = re.sub(r"no\s+log", "-", line, flags=re.I)
        cells = _split(line)
        numeric = [_to_float(c) is not None or c == "-" for c in cells]
        if not any(numeric) and header is None:
            norm = line
            for pattern, repl in _HEADER_ALIASES:
                norm = pattern.sub(repl, norm)
            header = [c.lower().strip("#").strip() for c in _split(norm)]
            continue
        if sum(numeric) >= 1:
            rows.append(cells)
    if not rows:
        return None
    if header:
        records = [dict(zip(header, row)) for row in rows]
        points = _from_records(records)
        if points:
            return points
    # No usable header: numeric columns are (step, train[, eval]) or just train.
    points = []
    for i, row in enumerate(rows, 1):
        nums = [_to_float(c) for c in row]
        if len(nums) == 1:
            points.append({"step": None, "train": nums[0], "eval": None, "order": i, "axis": "row"})
        elif len(nums) == 2:
            points.append({"step": nums[0], "train": nums[1], "eval": None, "order": i,
                           "axis": "step"})
        else:
            points.append({"step": nums[0], "train": nums[1], "eval": nums[2], "order": i,
                           "axis": "step"})
    return [p for p in points if p["train"] is not None or p["eval"] is not None] or None


def parse_log(log_text: str | list) -> tuple[list[dict], str]:
    """Points ``{"step", "train", "eval"}`` sorted by step (either loss may be None),
    and what the step axis is: "step", "epoch" or "row" (line order)."""
    if isinstance(log_text, list):
        points = _from_records(log_text)
    elif isinstance(log_text, str):
        text = log_text.replace("\r\n", "\n")
        lines = text.split("\n")
        if len(lines) > MAX_POINTS:
            raise ValueError(f"The log has more than {MAX_POINTS:,} lines; paste every Nth line.")
        points = _try_json(text)
        if not points:
            kv_lines = [ln for ln in lines if _KV_RE.search(ln)]
            points = _try_key_values(lines) if len(kv_lines) >= max(1, len(
                [ln for ln in lines if ln.strip()]) // 2) else None
        if not points:
            points = _try_table(lines)
    else:
        raise ValueError("log_text must be text")
    if not points:
        raise ValueError("No loss values found. Paste columns like 'step, train_loss, eval_loss' "
                         "(CSV, tabs or spaces), Trainer log lines, or the log_history JSON.")
    axes = {p.get("axis", "step") for p in points}
    axis = "step" if "step" in axes else "epoch" if "epoch" in axes else "row"
    if axis != "step" or any(p["step"] is None for p in points):
        if axis == "epoch" and all(p["step"] is not None for p in points):
            pass
        else:  # mixed or missing: fall back to line order, which is always defined
            axis = "row"
            for p in points:
                p["step"] = float(p["order"])
    points.sort(key=lambda p: (p["step"], p["order"]))
    # Merge rows with the same step (Trainer logs train and eval loss separately).
    merged: list[dict] = []
    for p in points:
        if merged and merged[-1]["step"] == p["step"]:
            for key in ("train", "eval", "grad"):
                if p.get(key) is not None:
                    merged[-1][key] = p[key]
        else:
            merged.append({"step": p["step"], "train": p["train"], "eval": p["eval"], "grad": p.get("grad")})
    for p in merged:
        if float(p["step"]).is_integer():
            p["step"] = int(p["step"])
    return merged, axis


# ---------------------------------------------------------------- analysis

def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _smooth(xs: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(xs)):
        chunk = xs[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _series(points: list[dict], key: str) -> tuple[list, list[float]]:
    pairs = [(p["step"], p[key]) for p in points if p[key] is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def expected_swing(effective_batch: int) -> float:
    """The relative step-to-step swing of the train loss that batch sampling alone explains."""
    return BATCH1_SWING / math.sqrt(max(1, int(effective_batch)))


def _noise_reading(tv: list[float], ev: list[float], amplitude: float, batch: int | None) -> str | None:
    """Why big step-to-step swings are sampling noise rather than an unstable run, or None.

    Judged on the trend, never on the raw swings: with a known effective batch, swings
    within what that batch implies are noise by themselves; otherwise (or beyond it) the
    run is healthy only when the smoothed train loss falls and the eval loss, the arbiter,
    falls too."""
    n = len(tv)
    q = max(2, n // 4)
    head, tail = _mean(tv[:q]), _mean(tv[-q:])
    smoothed_fall = (head - tail) / max(abs(head), 1e-9)
    eval_falls = len(ev) >= 2 and ev[-1] < ev[0] and ev[-1] <= min(ev) * 1.05
    eval_note = (f" and the eval loss falls from {ev[0]:.3g} to {ev[-1]:.3g}" if eval_falls else "")
    trend = (f"the smoothed train loss goes from {head:.3g} (first quarter) to {tail:.3g} (last quarter)"
             + eval_note)
    if batch is not None:
        allowed = 2 * expected_swing(batch)
        if amplitude <= allowed:
            return (f"The train loss swings by about {amplitude:.0%} from step to step: that is the sampling "
                    f"noise of an effective batch of {batch} (each step sees {batch} example"
                    f"{'s' if batch != 1 else ''}; up to ~{allowed:.0%} is expected), not instability. "
                    f"Read the trend instead: {trend}.")
    if smoothed_fall >= 0.1 and eval_falls:
        return (f"The train loss swings by about {amplitude:.0%} from step to step, but {trend}: the swings "
                "are noise between batches, and the run is learning.")
    return None


def _log_trend(tv: list[float], q: int) -> tuple[float, float]:
    """(fall of the mean log loss from the first to the last quarter, its standard error), the
    noise measured from step-to-step differences (robust: median absolute deviation)."""
    logs = [math.log(max(v, 1e-9)) for v in tv]
    diffs = [b - a for a, b in zip(logs, logs[1:])]
    if len(diffs) < 2:
        return 0.0, 0.0
    med = statistics.median(diffs)
    sigma = 1.4826 * statistics.median(abs(d - med) for d in diffs) / math.sqrt(2)
    return _mean(logs[:q]) - _mean(logs[-q:]), sigma * math.sqrt(2 / q)


def _grad_spikes(points: list[dict]) -> list:
    """Steps whose gradient norm is over 3x the median of the 20 before it (and clearly above it)."""
    gs = [(p["step"], p["grad"]) for p in points if p.get("grad") is not None and math.isfinite(p["grad"])]
    out = []
    for i in range(5, len(gs)):
        base = statistics.median(v for _, v in gs[max(0, i - 20): i])
        if gs[i][1] > 3 * base and gs[i][1] - base > 0.5:
            out.append(gs[i][0])
    return out


def diagnose_training_curve(log_text: str | list, effective_batch: int | None = None) -> dict:
    """Parse a log and return the main diagnosis, every finding, and the action for each.

    `effective_batch` (examples per optimizer step), when known, sets how much step-to-step
    noise is expected: a batch-1 run's loss swings widely and is still healthy."""
    batch = int(effective_batch) if isinstance(effective_batch, (int, float)) and effective_batch >= 1 else None
    points, axis = parse_log(log_text)
    t_steps, train = _series(points, "train")
    e_steps, evals = _series(points, "eval")
    findings: list[dict] = []

    def add(kind: str, detail: str, steps: list | None = None) -> None:
        findings.append({"kind": kind, "detail": detail, "steps": steps or [],
                         "action": ACTIONS[kind]})

    # 1. Non-finite values.
    bad = [p["step"] for p in points
           if any(v is not None and not math.isfinite(v) for v in (p["train"], p["eval"]))]
    if bad:
        add("nan", f"Loss is NaN or infinite from {axis} {bad[0]} ({len(bad)} point(s)).", bad[:20])
    fin_train = [(s, v) for s, v in zip(t_steps, train) if math.isfinite(v)]
    fin_eval = [(s, v) for s, v in zip(e_steps, evals) if math.isfinite(v)]
    ts, tv = [s for s, _ in fin_train], [v for _, v in fin_train]
    es, ev = [s for s, _ in fin_eval], [v for _, v in fin_eval]

    summary: dict[str, Any] = {"axis": axis, "points": len(points), "train_points": len(tv),
                               "eval_points": len(ev),
                               "first_step": points[0]["step"], "last_step": points[-1]["step"]}
    best_eval_step = None
    if tv:
        summary.update(first_train_loss=round(tv[0], 4), last_train_loss=round(tv[-1], 4),
                       min_train_loss=round(min(tv), 4))
    if ev:
        best_i = min(range(len(ev)), key=lambda i: (ev[i], i))
        best_eval_step = es[best_i]
        summary.update(first_eval_loss=round(ev[0], 4), last_eval_loss=round(ev[-1], 4),
                       best_eval_loss=round(ev[best_i], 4), best_eval_step=best_eval_step)

    n = len(tv)
    spike_steps: list = []
    noise_note = None
    if batch is not None:
        summary["effective_batch"] = batch
    if n >= 6:
        oscillating = False
        # 2. Oscillation (checked first: in a swinging curve every peak looks like a spike): big swings with no trend over the second half.
        half = tv[n // 2:]
        if len(half) >= 6:
            diffs = [b - a for a, b in zip(half, half[1:])]
            flips = sum(1 for a, b in zip(diffs, diffs[1:]) if a * b < 0) / max(1, len(diffs) - 1)
            amplitude = _mean([abs(d) for d in diffs]) / max(abs(_mean(half)), 1e-9)
            trend = abs(_mean(half[-len(half) // 3:]) - _mean(half[: len(half) // 3])) \
                / max(abs(_mean(half)), 1e-9)
            oscillating = flips >= 0.6 and amplitude >= 0.15 and trend < amplitude
            if oscillating:
                noise_note = _noise_reading(tv, ev, amplitude, batch)
                oscillating = noise_note is None
            if oscillating:
                add("oscillation", f"In the second half the train loss swings by about "
                                   f"{amplitude:.0%} per step without a clear trend.")
        # 3. Spikes: a point far above the recent median that the curve then recovers from.
        # With a known batch one hard example is not a spike: the bar rises with the noise the
        # run shows (4.5 standard deviations of the log loss: ~6x the median for a batch-1 run
        # whose per-example losses spread like the default run's, the usual 1.5x for large batches).
        q = max(2, n // 4)
        spike_ratio = max(1.5, math.exp(4.5 * _log_trend(tv, q)[1] / math.sqrt(2 / q))) \
            if batch is not None else 1.5
        for i in (range(3, n) if not oscillating else ()):
            window = tv[max(0, i - 20): i]
            # Baseline from the last few points (a long window lags a falling
            # curve); noise from step-to-step differences, which a trend barely moves.
            med = statistics.median(window[-5:])
            noise = statistics.median([abs(b - a) for a, b in zip(window, window[1:])]) \
                or 1e-3 * max(abs(med), 1e-6)
            recovered = i == n - 1 or tv[i + 1] < med + 0.5 * (tv[i] - med)
            if tv[i] > med * spike_ratio and tv[i] - med > 8 * noise and recovered:
                spike_steps.append(ts[i])
        q = max(2, n // 4)
        head, tail = _mean(tv[:q]), _mean(tv[-q:])
        # With a known batch the trend is read on a rolling mean: one easy or hard example
        # at batch 1 is neither the lowest point nor the end of the curve.
        curve = _smooth(tv, q) if batch is not None else tv
        lowest = min(curve)
        # A quarter's mean still carries the batch's noise: with a known batch a rise or a fall
        # counts only when it stands clear of it (in log loss, against the noise measured
        # from the step-to-step differences).
        fall, se = _log_trend(tv, q) if batch is not None else (0.0, 0.0)
        # 4. Divergence: the end is well above both the start and the best point.
        rising_tail = curve[-1] > lowest * 1.5 and tail > head * 1.1 and -fall >= 3 * se
        if rising_tail:
            low_i = curve.index(lowest)
            add("divergence", f"Train loss fell to {lowest:.3g} at {axis} {ts[low_i]} and then rose "
                              f"to {curve[-1]:.3g} by {axis} {ts[-1]}"
                              + (" (rolling mean)." if curve is not tv else "."), [ts[low_i], ts[-1]])
        if spike_steps:
            add("spikes", f"{len(spike_steps)} sudden jump(s) in train loss that recovered, at "
                          f"{axis} {', '.join(map(str, spike_steps[:10]))}"
                          + (" …" if len(spike_steps) > 10 else "") + ".",
                spike_steps[:20])
        # 5. Plateau: barely any improvement from the first to the last quarter.
        if not any(f["kind"] in ("divergence", "oscillation") for f in findings):
            improvement = (head - tail) / max(abs(head), 1e-9)
            flat = improvement < 0.03
            if batch is not None:
                # Noisy small-batch train loss: flat unless the fall is clear of the noise, and
                # the eval loss, when there is one, must have barely moved too.
                flat = fall < 2 * se or improvement < 0.03
                if len(ev) >= 2:
                    flat = flat and (ev[0] - min(ev)) / max(abs(ev[0]), 1e-9) < 0.03
            if flat:
                add("plateau", f"Train loss barely moved: {head:.3g} over the first quarter, "
                               f"{tail:.3g} over the last ({improvement:+.1%}).")

    # 6. Overfitting: eval rises after its best point while train keeps falling.
    if len(ev) >= 3 and best_eval_step is not None:
        best_i = es.index(best_eval_step)
        after = ev[best_i + 1:]
        if after and ev[-1] > ev[best_i] * 1.03 and len(after) >= 2 and after[-1] >= after[0]:
            train_at_best = [v for s, v in zip(ts, tv) if s <= best_eval_step]
            train_falling = bool(tv) and bool(train_at_best) and tv[-1] < train_at_best[-1]
            if train_falling or not tv:
                add("overfitting", f"Eval loss was lowest ({ev[best_i]:.3g}) at "
                                   f"{axis} {best_eval_step} and rose to {ev[-1]:.3g} by {axis} {es[-1]}"
                                   + (f" while train loss kept falling to {tv[-1]:.3g}."
                                      if tv else "."), [best_eval_step])
    if tv and ev:
        summary["final_gap"] = round(ev[-1] - tv[-1], 4)
    grad_steps = _grad_spikes(points)
    if grad_steps:
        add("grad_spikes", f"{len(grad_steps)} gradient-norm spike(s), over 3x the usual norm, at {axis} "
                           f"{', '.join(map(str, grad_steps[:10]))}" + (" …" if len(grad_steps) > 10 else "") + ".",
            grad_steps[:20])
    grads = [p["grad"] for p in points if p.get("grad") is not None and math.isfinite(p["grad"])]
    if grads:
        summary.update(median_grad_norm=round(statistics.median(grads), 4), max_grad_norm=round(max(grads), 4))

    kinds = [f["kind"] for f in findings]
    diagnosis = next((k for k in PRIORITY if k in kinds), "healthy")
    notes = [noise_note] if noise_note else []
    if diagnosis == "healthy":
        if n >= 6:
            late = tv[-max(2, n // 4):]
            if (max(late) - min(late)) / max(abs(_mean(late)), 1e-9) < 0.02:
                notes.append(ACTIONS["converged"])
        if not ev:
            notes.append("No eval loss in the log: without a held-out curve overfitting cannot be "
                         "seen. Set eval_strategy='steps' and give the trainer an eval split.")
        findings.append({"kind": "healthy", "detail": "Train loss goes down"
                         + (" and eval loss follows it." if ev else "."), "steps": [],
                         "action": ACTIONS["healthy"]})
    if n and n < 6:
        notes.append("Few points: the diagnosis is tentative; log more often (logging_steps).")
    return {
        "diagnosis": diagnosis,
        "headline": next(f["detail"] for f in findings if f["kind"] == diagnosis),
        "action": ACTIONS[diagnosis],
        "best_eval_step": best_eval_step,
        "spike_steps": spike_steps[:50],
        "grad_spike_steps": grad_steps[:50],
        "findings": findings,
        "summary": summary,
        "notes": notes,
        "points": [{"step": p["step"], "train": p["train"], "eval": p["eval"]}
                   for p in _thin(points, 200)],
    }


def _thin(points: list[dict], limit: int) -> list[dict]:
    """Every k-th point (always keeping the last) so a plot fits in the result."""
    if len(points) <= limit:
        return points
    k = math.ceil(len(points) / limit)
    kept = points[::k]
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


_LABELS = {"nan": "NaN / inf loss", "divergence": "Divergence", "overfitting": "Overfitting",
           "spikes": "Loss spikes", "oscillation": "Oscillation", "plateau": "Plateau",
           "healthy": "Healthy", "grad_spikes": "Gradient-norm spikes"}


def curve_markdown(result: dict) -> str:
    s = result["summary"]
    icon = "✅" if result["diagnosis"] == "healthy" else "⚠️"
    out = [f"### {icon} Diagnosis: {_LABELS[result['diagnosis']]}", "", result["headline"], "",
           f"**What to do:** {result['action']}", ""]
    rows = [(f"{s['axis']}s", f"{s['first_step']} → {s['last_step']} ({s['points']} points)")]
    if "first_train_loss" in s:
        rows.append(("train loss", f"{s['first_train_loss']} → {s['last_train_loss']} "
                                   f"(min {s['min_train_loss']})"))
    if "best_eval_loss" in s:
        rows.append(("eval loss", f"{s['first_eval_loss']} → {s['last_eval_loss']} "
                                  f"(best {s['best_eval_loss']} at {s['axis']} {s['best_eval_step']})"))
    if "final_gap" in s:
        rows.append(("eval − train at the end", str(s["final_gap"])))
    if "median_grad_norm" in s:
        rows.append(("gradient norm", f"median {s['median_grad_norm']}, max {s['max_grad_norm']}"))
    if "effective_batch" in s:
        rows.append(("effective batch", str(s["effective_batch"])))
    out += ["| | |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]]
    others = [f for f in result["findings"] if f["kind"] != result["diagnosis"]]
    if others:
        out += ["", "**Also seen**"]
        for f in others:
            where = f" ({s['axis']}s {', '.join(map(str, f['steps'][:10]))})" if f["steps"] else ""
            out.append(f"- **{_LABELS[f['kind']]}**{where}: {f['detail']} {f['action']}")
    if result["notes"]:
        out += ["", *[f"_{n}_" for n in result["notes"]]]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------ tool spec

SPECS = (
    ToolSpec(
        name="diagnose_training_curve",
        description="Diagnose a pasted training log (step, train loss, eval loss): healthy, overfitting (with "
            "the best eval step), divergence, loss spikes, plateau, NaN/inf, or oscillation, each with "
            "the action to take.",
        input_schema={
            "type": "object",
            "properties": {
                "log_text": {"type": "string", "maxLength": MAX_PASTE_BYTES,
                             "description": "Training log as pasted: CSV/TSV/space columns (step, train loss, "
                                            "eval loss), Trainer log lines, or a log_history JSON list."},
                "effective_batch": {"type": "integer", "minimum": 1,
                                    "description": "Examples per optimizer step (batch size x gradient "
                                                   "accumulation x devices), if known: sets how noisy the loss "
                                                   "may be while healthy."},
            },
            "required": ["log_text"],
            "additionalProperties": False,
        },
        fn=diagnose_training_curve,
        markdown=curve_markdown,
        reads_paste=True,
        empty_help=("Nothing to diagnose yet: paste a training log with one row per logged step "
                    "(step, train loss, eval loss), Trainer log lines, or a log_history JSON list."),
    ),
)
