"""Where the labs and the Training tab meet (issue 11): the learner's own run, read by a lab's tool.

Plain functions, no Gradio: the Training tab's buttons call them.

    >>> diagnose_run(None).startswith("Start a run")
    True
"""
from __future__ import annotations

from core.text import plural
from training import runs

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
    result = curves.diagnose_training_curve(log)
    return "**Your run, diagnosed by the Lab 3 curve doctor**\n\n" + curves.curve_markdown(result)


# Lab 3's recommendation -> the Training tab's settings, by name. The names on the
# right are the run config's fields (training/config.py); values are checked there.
LAB3_FIELDS = {"r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "target_key": "target_modules",
               "learning_rate": "learning_rate", "epochs": "epochs", "per_device_batch_size": "batch_size",
               "gradient_accumulation_steps": "grad_accum", "max_seq_length": "max_length",
               "eval_steps": "eval_steps"}


def runnable_model(hub_id: str | None, params_b: float | None = None) -> tuple[str, str]:
    """(a base model the Training tab offers, a note when it is not the one asked for)."""
    from training.base_model import BASE_MODELS, DEFAULT_MODEL

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
    """(settings by run-config name, base model id, notes) from a recommend_lora_config result."""
    values = {ours: result[theirs] for theirs, ours in LAB3_FIELDS.items() if theirs in result}
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
    from training.data import BUILTIN

    if not result.get("fine_tune") and not result.get("use_dpo"):
        return None, None, (f"Lab 1 recommends {result.get('recommendation', 'not fine-tuning')}: nothing to "
                            "train. You can still try a built-in set to see what fine-tuning does.")
    method = "dpo" if result.get("use_dpo") else "sft"
    key = next((k for k, info in BUILTIN.items() if info.method == method), None)
    title = BUILTIN[key].title if key else "a built-in set"
    return method, key, (f"From Lab 1 ({result.get('recommendation')}): method {method.upper()} and "
                         f"**{title}**, the built-in set closest to that kind of task. Upload your own "
                         "data in step 1 to train on your case.")
