"""What the learner reads about a run, without Gradio: its status and progress lines, the
"Starting" line, its curves, the list of the learner's runs, the effective batch and the
offline notice. The Training tab's handlers (`training/views/tab.py`) show these.
"""
from __future__ import annotations

import functools
import json
import time
from typing import Any

from training.run import runs
from training.run.base_model import OFFLINE_NOTICE, hub_reachable
from training.run.runs import RunStatus

STATUS_TEXT = {
    RunStatus.PLANNED: "⏳ Waiting for the training slot",
    RunStatus.RUNNING: "🏃 Training",
    RunStatus.PAUSED: "⏸️ Paused between slices",
    RunStatus.STOPPED: "⏹️ Stopped",
    RunStatus.FINISHED: "✅ Finished",
    RunStatus.FAILED: "❌ Failed",
    RunStatus.INTERRUPTED: "⚠️ Interrupted",
}


def model_notice() -> str:
    """The offline notice at the top of the tab (empty while the Hub answers)."""
    if hub_reachable():
        return ""
    return f"ℹ️ {OFFLINE_NOTICE}"


def effective_batch_md(batch, accum) -> str:
    """The line under batch size and accumulation: examples per optimizer step."""
    try:
        b, a = int(batch), int(accum)
    except (TypeError, ValueError):
        return "Effective batch: fill in batch size and accumulation."
    return f"**Effective batch = {b} × {a} = {b * a}** examples per optimizer step."


def curves(run_id: str | None) -> tuple[str, str]:
    """(loss chart, learning-rate chart) as inline SVG (training/run/charts.py)."""
    log = runs.read_log(run_id) if run_id else []
    return _drawn(json.dumps(log, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _drawn(log_json: str) -> tuple[str, str]:
    """Drawn once per log: the poll of a run training elsewhere and every progress update
    redraw the same curves until a step is logged, and matplotlib takes ~0.2 s a chart."""
    from training.run import charts
    log = json.loads(log_json)
    return charts.loss_svg(log), charts.lr_svg(log)


def progress_md(info: dict | None) -> str:
    """Step, elapsed, ETA, speed, learning rate and the latest losses, on one line."""
    if not info:
        return ""
    step, total = int(info.get("step") or 0), int(info.get("total_steps") or 0)
    log = runs.read_log(info["run_id"])
    last = next((e for e in reversed(log) if "loss" in e), {})
    elapsed = float(last.get("elapsed") or info.get("elapsed_s") or 0.0)
    step = max(step, int(last.get("step") or 0))
    eta = (elapsed / step * (total - step)) if step else None
    parts = [f"**Step {step} / {total}**", f"elapsed {elapsed:.0f} s"]
    if eta is not None and info.get("status") == RunStatus.RUNNING:
        parts.append(f"ETA ~{eta:.0f} s")
    if last.get("tokens_per_s"):
        parts.append(f"{last['tokens_per_s']:.0f} tokens/s")
    if last.get("learning_rate") is not None:
        parts.append(f"lr {last['learning_rate']:.2e}")
    if isinstance(last.get("loss"), (int, float)):
        parts.append(f"train loss {last['loss']:.4f}")
    ev = next((e for e in reversed(log) if isinstance(e.get("eval_loss"), (int, float))), None)
    if ev:
        parts.append(f"eval loss {ev['eval_loss']:.4f}")
    return " · ".join(parts)


def status_md(info: dict | None, message: str | None = None) -> str:
    """The run's status, id, method and model, with its message (or `message`, which the views
    pass for a ZeroGPU refusal), the hardware it trained on, and the model's notice."""
    if not info:
        return "No run yet."
    head = STATUS_TEXT.get(info.get("status"), info.get("status", ""))
    cfg, model = info.get("config") or {}, info.get("model") or {}
    line = (f"**{head}** · run `{info['run_id'][:8]}` · {str(cfg.get('method', '')).upper()} on "
            f"`{model.get('id', '')}`")
    msg = message or info.get("error") or info.get("message") or ""
    notice = model.get("notice") or ""
    hw = info.get("hardware") or {}
    trained_on = (f"Trained on {hw['name']} ({hw['memory_gb']:g} GB, read when the slice ran)."
                  if hw.get("kind") == "gpu" else "")
    note = info.get("gpu_note") or ""  # what ZeroGPU did to a slice, said once, kept with the run
    parts = [line, msg, f"ℹ️ {note}" if note and note != msg else "", trained_on,
             f"ℹ️ {notice}" if notice else ""]
    return "\n\n".join(p for p in parts if p)


def run_view(run_id: str | None, charts: bool = True, message_for=None):
    """(status md, progress md, loss chart, lr chart) for a run; charts=False skips drawing them.
    `message_for(info)`: the views' own status message for a run (a ZeroGPU refusal), or None."""
    if not run_id or not runs.exists(run_id):
        loss, lr = curves(None)
        return "No run yet.", "", loss, lr
    info = runs.read_run(run_id)
    loss, lr = curves(run_id) if charts else (None, None)
    return status_md(info, message_for(info) if message_for else None), progress_md(info), loss, lr


def starting_md(info: dict) -> str:
    """What the learner waits for before the first step, from the run's plan; one-time costs
    are looked up now (another run may have paid them since the plan was made)."""
    from training.run.base_model import first_use_costs
    plan = info.get("plan") or {}
    first = first_use_costs((info.get("model") or {}).get("id", ""), plan.get("device", "cpu"))
    seconds = max(1, int(plan.get("load_s", 10)) - int(plan.get("first_time_s", 0))) + sum(s for s, _ in first)
    why = f"; longer this first time: {', '.join(w for _, w in first)}" if first else ""
    return f"**🏃 Starting:** loading the model and preparing the data (about {seconds:.0f} s{why})…"


def run_choices(run_ids: Any) -> list[tuple[str, str]]:
    """The learner's runs, newest first, as (label, run id): when, method, data, status, short id."""
    choices = []
    for info in runs.learner_runs(run_ids):
        when = time.strftime("%d %b %H:%M", time.localtime(info.get("created_at", 0)))
        cfg = info.get("config", {})
        label = (f"{when} · {str(cfg.get('method', '')).upper()} · {(cfg.get('dataset') or {}).get('name', '')} · "
                 f"{info.get('status')} · {info['run_id'][:6]}")
        choices.append((label, info["run_id"]))
    return choices
