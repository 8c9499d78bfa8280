"""Where the labs and the Training tab meet (issue 11): the learner's own run, read by a lab's tool.

Plain functions, no Gradio: the Training tab's buttons call them.

    >>> diagnose_run(None).startswith("Start a run")
    True
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from core.text import plural
from training.run import runs

MIN_POINTS = 3  # fewer logged losses say nothing about a curve's shape


def diagnose_run(run_id: str | None) -> str:
    """Lab 3's curve diagnosis on this run's own train and eval loss, as Markdown."""
    from labs.tools import curves

    if not run_id or not runs.exists(run_id):
        return "Start a run first: the diagnosis reads its loss log."
    log = [e for e in runs.read_log(run_id) if "loss" in e or "eval_loss" in e]
    n_train = sum("loss" in e for e in log)
    if n_train < MIN_POINTS:
        return (f"Only {plural(n_train, 'training loss value')} so far: the diagnosis needs at least "
                f"{MIN_POINTS}. Train a few more steps.")
    cfg = runs.read_run(run_id).get("config") or {}
    batch, accum = cfg.get("per_device_train_batch_size"), cfg.get("gradient_accumulation_steps")
    # The noise a loss curve may show while healthy depends on the examples per step.
    eff = batch * accum if isinstance(batch, int) and isinstance(accum, int) else None
    result = curves.diagnose_training_curve(log, effective_batch=eff)
    return "**Your run, diagnosed by the Lab 3 curve doctor**\n\n" + curves.curve_markdown(result)


def runnable_model(hub_id: str | None, params_b: float | None = None) -> tuple[str, str]:
    """(a base model the Training tab offers, a note when it is not the one asked for)."""
    from training.run.base_model import BASE_MODELS, DEFAULT_MODEL

    if hub_id in BASE_MODELS:
        return hub_id, ""
    # The largest offered model not bigger than the one asked for; the smallest otherwise.
    offered = sorted((info.params_m, mid) for mid, info in BASE_MODELS.items() if not mid.startswith("embedded"))
    wanted_m = (params_b or 0) * 1000
    fits = [mid for size, mid in offered if size <= wanted_m] or [DEFAULT_MODEL]
    chosen = fits[-1]
    return chosen, (f"{hub_id or 'That model'} is too big to train in this app, so the Training tab uses "
                    f"{chosen.split('/')[-1]} with the same LoRA settings. Run the exported recipe on your "
                    "own GPU for the full-size model.")


def lab3_settings(result: dict) -> tuple[dict, str, list[str]]:
    """(settings by run-config name, base model id, notes) from a recommend_lora_config result.

    Lab 3's tool names its settings as the run config does, so they go to `config.validate` as they are."""
    from training.run import config

    values = {k: result[k] for k in config.HP_NAMES if k in result}
    params_b = (result.get("base_params") or 0) / 1e9
    model_id, note = runnable_model(result.get("hub_id"), params_b)
    notes = [note] if note else []
    if result.get("quantization") == "4bit":
        notes.append("The recommendation used 4-bit (QLoRA) weights; the Training tab trains in full "
                     "precision, which its small models fit without quantization.")
    return values, model_id, notes


def lab1_settings(result: dict) -> tuple[str | None, str | None, str]:
    """(method, built-in dataset key, note) from an assess_use_case result.

    A recommendation that does not fine-tune (prompting, RAG) preselects nothing
    and says so: the Training tab is the wrong next step for it."""
    from training.data.loading import BUILTIN

    if not result.get("fine_tune") and not result.get("use_dpo"):
        return None, None, (f"Lab 1 recommends {result.get('recommendation', 'not fine-tuning')}: nothing to "
                            "train. You can still try a built-in set to see what fine-tuning does.")
    method = "dpo" if result.get("use_dpo") else "sft"
    key = next((k for k, info in BUILTIN.items() if info.method == method), None)
    title = BUILTIN[key].title if key else "a built-in set"
    return method, key, (f"From Lab 1 ({result.get('recommendation')}): method {method.upper()} and "
                         f"**{title}**, the built-in set closest to that kind of task. Upload your own "
                         "data in step 1 to train on your case.")


# ------------------------------------------------------------------ applying a lab's hand-off

@dataclass
class Applied:
    """What a lab's hand-off sets in the Training tab (None: left as it is) and what to tell the learner."""
    ok: bool
    message: str
    method: str | None = None
    builtin: str | None = None               # a built-in set to load
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # hyperparameters by run-config name
    dataset_text: str | None = None          # JSONL to load as the run's data (Lab 2)
    eval_design: dict | None = None
    job_model: str | None = None             # the full-size model for a Hugging Face Jobs run (Lab 3)
    origin: tuple[str, str] | None = None    # (which settings, where from)


@dataclass(frozen=True)
class Tab:
    """What the Training tab holds when a hand-off is applied: every applier reads what it needs."""
    current: dict[str, Any]          # the hyperparameters by run-config name
    method: str
    device: str
    design: dict | None = None       # the evaluation design (None: the dataset's default)


def _origin(h: dict) -> str:
    return f"Lab {h['lab']} ({h['via']}), {h['at']}"


def apply_strategy(h: dict, tab: Tab | None = None) -> Applied:
    method, key, note = lab1_settings(h["result"])
    if method is None:
        return Applied(ok=False, message=note)
    return Applied(ok=True, message=note, method=method, builtin=key,
                   origin=("method and data", _origin(h)))


def apply_lora_config(h: dict, tab: Tab) -> Applied:
    """Lab 3's numbers over the tab's current ones, checked as a run would check them."""
    current, method, device = tab.current, tab.method, tab.device
    from training.run import config

    values, model_id, notes = lab3_settings(h["result"])
    wanted = h["result"].get("hub_id")
    job_model = wanted if wanted and wanted != model_id else None
    if job_model:
        notes.append(f"The Jobs panel below the run is set to train {job_model} itself on a Hub GPU.")
    merged = {**current, **values}
    _, errors = config.validate(merged, method)
    if errors:
        given = ", ".join(f"{k} = {v}" for k, v in values.items())
        return Applied(ok=False, message="Not applied (nothing in the Training tab changed): "
                       + " ".join(errors) + f" Lab 3 gave: {given}.")
    if not device.startswith("cuda") and int(merged.get("max_steps") or 0) > 0:
        notes.append(f"On this CPU the run keeps its cap of {merged['max_steps']} steps; set Max steps to 0 to "
                     f"train Lab 3's {values.get('num_train_epochs')} epochs (the plan in step 2 shows how long).")
    return Applied(ok=True, message=" ".join(["Applied to the Training tab.", *notes]), model=model_id,
                   settings=values, job_model=job_model, origin=("hyperparameters", _origin(h)))


def dataset_method(critic: dict) -> str:
    """SFT or DPO from what the critic found most (preference pairs train with DPO)."""
    return "dpo" if (critic.get("summary") or {}).get("dominant_format") == "preference" else "sft"


def apply_dataset(h: dict, tab: Tab | None = None) -> Applied:
    """Lab 2's dataset (fixed, when the learner applied the fixes), if nothing blocks a run."""
    from training.data import fixes as data_fixes

    text = h.get("fixed_text") or h["input"].get("text") or ""
    method = dataset_method(h["result"])
    ok, message = data_fixes.sendable(text, method)
    if not ok:
        return Applied(ok=False, message=f"Not sent: {message}")
    return Applied(ok=True, message="Sent to the Training tab as the run's data.", method=method,
                   dataset_text=text, origin=("data", _origin(h)))


def apply_eval_design(h: dict, tab: Tab | None = None) -> Applied:
    """Lab 4's metrics or cases over the run's current design (metrics from one tool, cases from another)."""
    from training.evaluation import design as eval_design

    current = tab.design if tab else None
    design, message = eval_design.apply_lab4(h["tool"], h["result"], current)
    if design is current:
        return Applied(ok=False, message=f"Not applied: {message.removeprefix('❌ ')}")
    return Applied(ok=True, message=f"The run's evaluation will use this design. {message}", eval_design=design,
                   origin=("evaluation", _origin(h)))


def registered(path: str) -> Callable:
    """The function a hand-off kind names ("module:function" in labs/handoff.py's KINDS)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def apply_handoff(h: Any, current: dict, method: str, device: str, design: dict | None = None) -> Applied:
    """One entry for every lab: what its latest hand-off changes in the Training tab, by the
    applier its kind declares (labs/handoff.py `KINDS`)."""
    from labs.handoff import kind_of

    kind = kind_of(h)
    if kind is None:
        return Applied(ok=False, message="Nothing to apply yet: run a calculator in the workbench or ask the "
                                         "advisor first.")
    return registered(kind.apply)(h, Tab(current, method, device, design))


def fix_dataset(h: dict) -> tuple[dict | None, str]:
    """Lab 2's extra button: the critic's mechanical fixes applied to the hand-off (the learner's
    paste stays as it was). -> (the fixed hand-off, message), or (None, why not)."""
    from training.data import fixes as data_fixes

    fixed = data_fixes.fix_jsonl(h["input"].get("text") or "", dataset_method(h["result"]))
    if fixed.blocking:
        return None, "⚠️ The fixes cannot make this dataset trainable: " + " ".join(fixed.blocking)
    note = f"after fixes {fixed.before} → {fixed.after} rows"
    return {**h, "fixed_text": fixed.text, "fixed_rows": fixed.after, "fix_note": note}, fixed.markdown()


def origins_md(origins: dict[str, str]) -> str:
    """The Training tab's provenance line: which settings came from which lab, and when."""
    if not origins:
        return ""
    parts = " · ".join(f"{what.capitalize()} from {where}" for what, where in origins.items())
    return f"↪ **Started from the labs:** {parts}. Every field stays yours to edit."


# ------------------------------------------------------------------ asking Lab 3 about a run

MAX_BRIEF_POINTS = 40   # loss points attached to the question (evenly spaced, last kept)
MAX_BRIEF_CHARS = 4000


def _spaced(points: list, n: int) -> list:
    if len(points) <= n:
        return points
    step = (len(points) - 1) / (n - 1)
    return [points[round(i * step)] for i in range(n)]


def run_brief(run_id: str | None) -> str | None:
    """A message for the LoRA advisor: this run's settings and curve, bounded in size; None without a run."""
    if not run_id or not runs.exists(run_id):
        return None
    info = runs.read_run(run_id)
    cfg = info.get("config") or {}
    hp = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    log = runs.read_log(run_id)
    train = _spaced([(e["step"], e["loss"]) for e in log if "loss" in e and "step" in e], MAX_BRIEF_POINTS)
    evals = _spaced([(e["step"], e["eval_loss"]) for e in log if "eval_loss" in e and "step" in e], MAX_BRIEF_POINTS)
    lines = ["Here is a LoRA run I trained in the Training tab. What does its curve say, and what would you "
             "change next?", "", "Settings: " + ", ".join(f"{k}={v}" for k, v in hp.items()),
             f"Status: {info.get('status')}, {info.get('step', 0)} of {info.get('total_steps', '?')} steps.",
             "Train loss (step: loss): " + ", ".join(f"{s}: {v:.4g}" for s, v in train),
             "Eval loss (step: loss): " + (", ".join(f"{s}: {v:.4g}" for s, v in evals) or "none logged")]
    return "\n".join(lines)[:MAX_BRIEF_CHARS]
