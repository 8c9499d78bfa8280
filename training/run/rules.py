"""The Training tab's rules, as plain functions returning plain values (no Gradio).

`training/views/tab.py` lays out the tab and turns these answers into component
updates; tests call these directly. The rules: one active run per learner,
building the run config from the learner's inputs (validated once, in
training/run/config.py), where a dataset came from, and which run may train or
resume now.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.data import checks
from training.run import runs
from training.run.config import DataRef, RunConfig, validate
from training.run.runs import RunStatus

MAX_RUNS_KEPT = 10

CREATED_MSG = ("Run created. Waiting for the training slot: if others are training, your place in "
               "the queue shows on the progress panel. Stop cancels it.")
BUSY_MSG = ("You already have a run training or waiting in the queue. Stop it, or wait "
            "for it to finish, before starting another (one run at a time per learner).")
NOT_RESUMABLE = {RunStatus.FINISHED: "it has finished", RunStatus.RUNNING: "it is training now",
                 RunStatus.PLANNED: "it has not started yet",
                 RunStatus.FAILED: "it failed in a way a retry would repeat (see its message); start a new run"}


@dataclass(frozen=True)
class Prepared:
    """The answer to Start: a new run (go=True) or a refusal with its message."""
    run_id: str | None   # the new run, or the learner's busy run (None: keep what is shown)
    run_ids: list[str]
    message: str
    go: bool


def remember(run_ids: Any, run_id: str) -> list[str]:
    ids = [r for r in runs.clean_run_ids(run_ids) if r != run_id] + [run_id]
    return ids[-MAX_RUNS_KEPT:]


def data_ref(dataset: dict) -> DataRef:
    """Where the loaded dataset came from ("builtin:…", "upload:…", "hub:owner/name")."""
    return DataRef.from_source(dataset.get("name", ""), dataset.get("source", ""))


def build_config(dataset: dict | None, model_id: str, method: str, values: dict,
                 heading: str = "Fix these settings first:") -> tuple[RunConfig | None, str]:
    """The learner's inputs -> (RunConfig, "") or (None, what to fix first)."""
    if not dataset:
        return None, "Load a dataset first (step 1)."
    if dataset.get("method") != method:
        return None, f"This dataset is for {str(dataset.get('method')).upper()}: switch the method first."
    from training.run.base_model import BASE_MODELS, DEFAULT_MODEL

    # The picker offers a fixed list; anything else (a tampered request) trains the default.
    base = model_id if model_id in BASE_MODELS else DEFAULT_MODEL
    cfg, errors = validate(values, method, base_model=base, dataset=data_ref(dataset))
    if errors:
        return None, f"**{heading}**\n" + "\n".join(f"- {e}" for e in errors)
    return cfg, ""


def data_check(cfg: RunConfig, rows: list[dict]) -> tuple[checks.CheckReport | None, str, str]:
    """Apply the base model's chat template to the rows as training will.
    -> (report, the effective model id, error message when the tokenizer could not load)."""
    from training.run.base_model import load_tokenizer, resolve_model

    try:
        effective, path, _notice = resolve_model(cfg.base_model)
        tok = load_tokenizer(path)
    except Exception as exc:  # a Hub hiccup while fetching the tokenizer: say so, keep everything
        return None, "", f"❌ The model's tokenizer could not be loaded ({type(exc).__name__}). Try again."
    return checks.check_dataset(tok, rows, cfg.method, cfg.max_length), effective, ""


def prepare(dataset: dict | None, model_id: str, method: str, run_ids: Any, values: dict) -> Prepared:
    """Create the run on disk if every rule allows it (one run at a time, valid settings,
    data with something to train on); the GPU is asked for only after this says go."""
    ids = runs.clean_run_ids(run_ids)
    busy = runs.active_run(ids)
    if busy:
        return Prepared(busy, ids, BUSY_MSG, False)
    cfg, problem = build_config(dataset, model_id, method, values, "Not started. Fix these settings:")
    if cfg is None:
        return Prepared(None, ids, problem, False)
    # Refuse a run that would train on nothing before any GPU time is requested.
    rep, _eff, error = data_check(cfg, dataset["train"])
    if rep is None:
        return Prepared(None, ids, error, False)
    if not rep.ok:
        return Prepared(None, ids, "**Not started.**\n\n" + rep.markdown(), False)
    from training.run import engine
    try:
        run_id = engine.start_run(cfg, dataset)
    except ValueError as exc:
        return Prepared(None, ids, f"**Not started.** {exc}", False)
    runs.cleanup_old_runs()  # a cheap moment to drop expired runs of everyone
    return Prepared(run_id, remember(ids, run_id), CREATED_MSG, True)


def may_train(info: dict, go: str) -> bool:
    """Whether the chained train step trains: a new run only while still planned (a run
    stopped while it waited in the queue stays stopped); a resume only when resumable."""
    return info["status"] == RunStatus.PLANNED if go == "start" else runs.can_resume(info)


def resume(run_id: str | None, run_ids: Any) -> tuple[str, bool]:
    """-> (message, go) for the Resume button."""
    if not run_id or not runs.exists(run_id):
        return "There is no run to resume: start one.", False
    busy = runs.active_run(run_ids)
    info = runs.read_run(run_id)
    if busy and busy != run_id:
        return "Another of your runs is training or queued: stop it before resuming this one.", False
    if not runs.can_resume(info):
        why = NOT_RESUMABLE.get(info["status"], str(info["status"]))
        return f"This run can't be resumed: {why}.", False
    return "Resuming from the last checkpoint…", True


def is_running(run_id: str | None) -> bool:
    return bool(run_id) and runs.exists(run_id) and runs.read_run(run_id)["status"] == RunStatus.RUNNING


def pick_run(run_ids: Any, chosen: str | None) -> tuple[str | None, list[str]]:
    """The run to show on page load / "Show run": the chosen one if it is still there,
    else the learner's newest. -> (run id or None, the learner's runs still on disk)."""
    live = [i["run_id"] for i in runs.learner_runs(runs.clean_run_ids(run_ids))]
    return (chosen if chosen in live else (live[0] if live else None)), live


# ------------------------------------------------------------------ step 2: check the data

@dataclass(frozen=True)
class Checked:
    """The answer to "Check data": the critic's and the template check's Markdown, the report
    (None when the check could not run) and the plan (or why there is none)."""
    critic_md: str
    check_md: str
    report: checks.CheckReport | None = None
    plan_md: str = ""
    plan: dict | None = None  # engine.plan's dict when the check passed (the views add the GPU's part)


def critic_md(dataset: dict) -> str:
    """The critic on the whole dataset (file line numbers) and the leakage check across splits."""
    try:
        from labs.tools.dataset_critic import critique_markdown
        chk = checks.check_splits(dataset)
        return critique_markdown(chk.critic) + "\n" + chk.markdown()
    except Exception as exc:  # the critic is advice; the training check below still runs
        return f"(The dataset critic could not run: {type(exc).__name__}.)"


def check(dataset: dict | None, model_id: str, method: str, values: dict) -> Checked:
    """Step 2 without spending training time: the critic, the chat-template check as training
    will apply it, and the plan when the check passes. `values`: the hyperparameters by name."""
    if dataset and dataset["method"] != method:
        return Checked(f"This dataset is for {dataset['method'].upper()}; switch the method or load another one.", "")
    cfg, problem = build_config(dataset, model_id, method, values)
    if not dataset:
        return Checked(problem, "")
    critic = critic_md(dataset)
    if cfg is None:
        return Checked(critic, problem)
    from training.run.engine import plan, plan_markdown

    rep, _eff, error = data_check(cfg, dataset["train"])
    if rep is None:
        return Checked(critic, error)
    rep.row_names = checks.train_row_names(dataset)  # name rows by the uploaded file's lines
    avg = (sum(rep.lengths) / len(rep.lengths)) if rep.lengths else None
    p = plan(cfg, len(dataset["train"]), avg_tokens=avg)
    # (The offline notice, if any, is already shown at the top of the tab.)
    plan_md = plan_markdown(p) if rep.ok else "No plan: fix the data check first."
    return Checked(critic, rep.markdown(), rep, plan_md, p if rep.ok else None)
