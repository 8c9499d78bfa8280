"""The Training tab: pick a model and data, check it, train with LoRA (SFT or DPO), watch it learn,
evaluate, chat, download.

`build_training_tab()` is called inside an open gr.Blocks/Tab by app.py. The
handlers below are plain functions (state in, state out) so tests call them
directly; the heavy libraries (torch, transformers, trl, peft) are imported
only inside the functions that train or generate.

Per-learner state: the current run id (gr.State) and the learner's run ids
(gr.BrowserState, so reopening the page re-attaches to the run). Runs on disk
are keyed by unguessable ids; nothing per learner lives in module globals.
"""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import gradio as gr

from core.config import env_int, env_str
from training.data import checks, sources
from training.run import config
from training.evaluation import report as eval_report
from training.evaluation import view as eval_view
from training.evaluation.report import CASES_LABEL
from training.views import compare_ui, tokens_ui
from training.workflow import handoffs
from training.run import rules
from training.run import runs
from training.workflow.certificate import MAX_NAME as MAX_CERT_NAME
from training.gpu import calls as gpu_mod
from training.gpu import zerogpu
from training.run import status as run_status
from training.run.base_model import BASE_MODELS, DEFAULT_MODEL, hub_reachable
from training.run.status import curves, effective_batch_md, model_notice, run_choices, starting_md
from training.run.runs import RunStatus

RUNS_STORAGE_KEY = "fine-tuning-lab-runs"
RUNS_SECRET_DEFAULT = "fine-tuning-lab-runs-v1"
GPU_CONCURRENCY = max(1, env_int("FTLAB_GPU_CONCURRENCY", 1))

INTRO = (
    "## Train a real model\n"
    "Fine-tune a small instruct model with **LoRA** on a built-in dataset or your own JSONL. "
    "Work through the steps in order; each opens when the one before it is done (you can open "
    "any of them yourself): **1** pick a model and data, **2** check the data (nothing is trained "
    "yet), **3** start and watch the loss curves, **4** compare the tuned model with the base, "
    "chat with it and download it."
)

DATA_SOURCES = list(sources.SOURCES)  # (label shown, key sent)


# ------------------------------------------------------------------ helpers

def _model_choices() -> list[tuple[str, str]]:
    return [(info.label, mid) for mid, info in BASE_MODELS.items()]


PRESET_FIELDS = tuple(config.PRESETS[config.DEFAULT_PRESET])  # the fields a preset sets
METHOD_FIELDS = tuple(config.DPO_DEFAULTS)                      # the fields a method switch sets
BATCH_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps")  # the effective batch


def apply_preset(name: str, method: str):
    p = config.preset_values(name, method)
    return [p[k] if p else gr.update() for k in PRESET_FIELDS]


def apply_method_defaults(method: str):
    """Switching SFT <-> DPO sets that method's learning rate and beta."""
    from training.run.engine import default_device
    d = config.method_defaults(method, default_device())
    return [d[k] for k in METHOD_FIELDS]


def _downloadable(path):
    return runs.downloadable_copy(path)


def source_fields(source: str):
    """Show only the field of the chosen data source: (built-in, upload, hub id) visibility."""
    return tuple(gr.update(visible=source == key) for _, key in DATA_SOURCES)


def open_when(done: bool):
    """Open the next step's accordion once this one is done; otherwise leave it as the learner set it."""
    return gr.Accordion(open=True) if done else gr.skip()


def steps_for_run(run_id: str | None):
    """With a run on screen, step 3 is open; with its adapter saved, step 4 too."""
    info = runs.read_run(run_id) if run_id and runs.exists(run_id) else None
    return open_when(info is not None), open_when(bool(info and info.get("has_adapter")))


def certificate_handler(progress, run_id: str | None, name: str | None):
    """-> (certificate file, message): the PNG once earned, else what is still to do."""
    from training.workflow import certificate
    try:
        path, message = certificate.issue(progress, run_id, name)
    except Exception as exc:  # drawing failed: say so, keep everything else
        return gr.skip(), f"❌ The certificate could not be drawn ({type(exc).__name__}). Try again."
    return (_file_shown(path) if path else gr.skip()), message


def _file_shown(path: str | None):
    """The download box appears only once there is a file in it."""
    return gr.update(value=path, visible=path is not None)


# ------------------------------------------------------------------ dataset

def load_dataset_handler(source: str, builtin_name: str, upload, hub_id: str, method: str,
                         current: dict | None):
    """-> (dataset state, status markdown). On any problem the previous dataset is kept.
    `source` is the radio's key (training/data/sources.py), never its label."""
    return sources.load(source, builtin_name, upload, hub_id, method, current, online=hub_reachable)


# ------------------------------------------------------------------ check + plan

def _histogram(rep: checks.CheckReport) -> str:
    """Rows per token length with max length marked and what it cuts (inline SVG)."""
    from training.run import charts
    return charts.length_histogram_svg(rep.lengths, rep.max_length, rep.cut_summary())


def check_handler(dataset: dict | None, model_id: str, method: str, values: dict):
    """-> (critic md, check md, histogram svg, highlight, plan md). Spends no training time.

    `values`: the hyperparameters by name (training/run/config.py); the rule is `rules.check`."""
    c = rules.check(dataset, model_id, method, values)
    if c.report is None:
        return c.critic_md, c.check_md, "", [], ""
    plan_md = _plan_md(c.plan, dataset) if c.plan else c.plan_md
    return c.critic_md, c.check_md, _histogram(c.report), c.report.highlight, plan_md


def _plan_md(p: dict, dataset: dict) -> str:
    """The plan, the GPU as read (or the assumption named), and on ZeroGPU what the run will ask of
    the learner's daily quota."""
    from training.evaluation import evaluate
    from training.run.device import describe_gpu
    from training.run.engine import plan_markdown

    parts = [plan_markdown(p)]
    if p.get("where") in ("zerogpu", "gpu"):
        parts.append(f"GPU: {describe_gpu()}.")
    if p.get("where") == "zerogpu":
        test = len(dataset.get("test") or dataset.get("validation") or [])
        parts.append(zerogpu.plan_note(p, gpu_mod.eval_request_for(evaluate.default_n(test, "cuda"), 6)))
    return "\n\n".join(parts)


# ------------------------------------------------------------------ a run's status (ZeroGPU's words added)

def _refusal_md(info: dict) -> str | None:
    """A paused run's ZeroGPU refusal in the learner's words (what it needs, what is left, when it
    resets, the ways on), or None."""
    refusal = info.get("gpu_refusal") if info.get("status") == RunStatus.PAUSED else None
    if not refusal:
        return None
    return zerogpu.refusal_markdown(refusal, refusal.get("what") or "this run", refusal.get("needs_s"),
                                    kept=_kept(info), cpu_choice=_cpu_choice(info))


def status_md(info: dict | None) -> str:
    return run_status.status_md(info, _refusal_md(info) if info else None)


def run_view(run_id: str | None, charts: bool = True):
    return run_status.run_view(run_id, charts, message_for=_refusal_md)


def _kept(info: dict) -> str:
    step, total = int(info.get("step") or 0), int(info.get("total_steps") or 0)
    if not step:
        return "Nothing is lost: the run is kept, ready to start."
    return f"Nothing is lost: the run is paused at step {step} of {total} with its checkpoint."


def _cpu_choice(info: dict) -> str:
    """The CPU offered as a way on: how long what is left would take on this machine's CPU
    (the plan's CPU estimate per step)."""
    from training.run.config import RunConfig
    from training.run.engine import step_seconds

    try:
        per = step_seconds(RunConfig.from_dict(info["config"]), "cpu")
        left = max(0, int(info.get("total_steps") or 0) - int(info.get("step") or 0))
        about = zerogpu.fmt_s(max(60, left * per))
    except Exception:  # noqa: BLE001 - an estimate only
        about = "a while"
    return (f"**Continue on the CPU** (*Resume on CPU*): slower, no quota; what is left takes about {about} "
            "here.")


def fix_leakage_handler(dataset: dict | None):
    """-> (dataset state, message). The fixed copy replaces the state; otherwise it is kept as it was."""
    try:
        fixed, message = checks.fix_leakage(dataset)
    except Exception as exc:  # a malformed state must not lose the learner's dataset
        return dataset, f"❌ The leakage fix could not run ({type(exc).__name__}); your dataset is unchanged."
    return (fixed if fixed is not None else dataset), message


# ------------------------------------------------------------------ start / train / stop

def prepare_run_handler(dataset: dict | None, model_id: str, method: str, run_ids: Any, values: dict):
    """Create the run on disk (fast, outside the GPU queue). -> (run_id, run_ids, status md, go).

    `go` tells the chained train_handler whether to train: a refused start must
    not quietly resume some earlier run of the learner."""
    p = rules.prepare(dataset, model_id, method, run_ids, values)
    return (p.run_id if p.run_id else gr.update()), p.run_ids, p.message, ("start" if p.go else "")


def train_handler(run_id: str | None, go: str = "start"):
    """Train slices until the run ends; yields (status md, progress md, loss chart, lr chart). In the GPU queue.

    `go` is "start" (train a new, planned run), "resume" (go on from a checkpoint), "cpu" (go on
    from a checkpoint in this process, on its CPU: the choice when ZeroGPU refuses) or ""
    (the click was refused: change nothing)."""
    if not go or not run_id or not runs.exists(run_id):
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip()  # keep the refusal message on screen
        return
    info = runs.read_run(run_id)
    if not rules.may_train(info, go):
        yield run_view(run_id)  # already running elsewhere, finished or stopped: just show it
        return
    status, prog, loss, lr = run_view(run_id)
    yield starting_md(info), prog, loss, lr
    last_push = 0.0
    try:
        events = gpu_mod.train_on_cpu(run_id) if go == "cpu" else gpu_mod.train_until_done(run_id)
        for event in events:
            now = time.monotonic()
            # Redraw at most twice a second (and on every log line and status change).
            if event.get("kind") in ("log", "status", "slice_end", "error", "gpu_refused", "gpu_lost"):
                last_push = now
                yield run_view(run_id)
            elif now - last_push > 0.5:  # elapsed time moves on; the curves have no new point
                last_push = now
                status, prog, _, _ = run_view(run_id, charts=False)
                yield status, prog, gr.skip(), gr.skip()
    except Exception as exc:  # anything else: the run is kept, resumable, never left "running"
        msg = str(exc)[:300] if isinstance(exc, gr.Error) else type(exc).__name__
        info = runs.read_run(run_id)
        if info["status"] in (RunStatus.RUNNING, RunStatus.PLANNED) and not _trains_elsewhere(info):
            runs.update_run(run_id, status=RunStatus.PAUSED, owner_pid=None)
        status, prog, loss, lr = run_view(run_id)
        yield (status + f"\n\n❌ The GPU call failed ({msg}). Your run is kept: press **Resume** to continue.",
               prog, loss, lr)
        return
    yield run_view(run_id)


def _trains_elsewhere(info: dict) -> bool:
    """A running run whose trainer is alive in another process (a GPU worker still saving)."""
    import os
    pid = info.get("owner_pid")
    return info["status"] == RunStatus.RUNNING and pid != os.getpid() and runs.pid_alive(pid)


def stop_handler(run_id: str | None) -> str:
    if not run_id or not runs.exists(run_id):
        return "There is no run to stop."
    from training.run.engine import stop_idle_run
    info = stop_idle_run(run_id)
    if info["status"] == RunStatus.RUNNING:
        return "Stopping at the end of the current step; the adapter trained so far will be saved."
    return status_md(info)


def resume_check_handler(run_id: str | None, run_ids: Any) -> tuple[str, str]:
    """-> (status md, go: "resume" or "")."""
    message, go = rules.resume(run_id, run_ids)
    return message, "resume" if go else ""


def resume_cpu_check_handler(run_id: str | None, run_ids: Any) -> tuple[str, str]:
    """-> (status md, go: "cpu" or ""): Resume, in this process on its CPU."""
    message, go = rules.resume(run_id, run_ids)
    return (message.replace("Resuming", "Resuming on the CPU") if go else message), "cpu" if go else ""


# ------------------------------------------------------------------ re-attach

def runs_dropdown(run_ids: Any, current: str | None = None):
    """The learner's runs, newest first, with the current run selected."""
    choices = run_choices(run_ids)
    ids = [rid for _, rid in choices]
    return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None))


def attach_handler(run_ids: Any, chosen: str | None = None):
    """On page load / "Show run": pick the learner's run and show its state.
    -> (run_id, runs dropdown, status, progress, loss chart, lr chart, metrics rows, samples rows, timer)"""
    from training.evaluation import evaluate
    rid, live = rules.pick_run(run_ids, chosen)
    status, prog, loss, lr = run_view(rid)
    metrics = evaluate.read_metrics(rid) if rid else None
    running = rules.is_running(rid)
    # run_ids is not written back here: on a page load this may run before the browser
    # has restored its stored ids, and writing would wipe them.
    return (rid, runs_dropdown(live, rid), status, prog, loss, lr,
            evaluate.metrics_rows(metrics), eval_view.samples_html(metrics), gr.Timer(active=running))


def poll_handler(run_id: str | None):
    """Timer tick while a run trains elsewhere (e.g. after a page reload): redraw, stop when done."""
    status, prog, loss, lr = run_view(run_id)
    running = rules.is_running(run_id)
    return status, prog, loss, lr, gr.Timer(active=running)


# ------------------------------------------------------------------ after the run

def eval_slider(test_size: int | None, device: str | None = None):
    """The count slider for a test split of this size: 1..all of it, the default per device
    (all on a GPU, a ~1-minute subset on a CPU), and the two numbers in its info line."""
    from training.run.engine import default_device
    if not test_size:
        return gr.skip()
    return gr.update(**eval_report.slider(test_size, device or default_device()))


def eval_extras(run_id: str | None):
    """-> (count slider, interval note, per-field chart, adversarial cases) for the run on screen,
    from its saved metrics.json (shown again when the learner re-opens or switches runs)."""
    from training.evaluation import evaluate
    m = evaluate.read_metrics(run_id) if run_id and runs.exists(run_id) else None
    return (eval_slider(eval_report.run_test_size(run_id)), evaluate.interval_note(m), eval_report.fields_chart(m),
            eval_view.adversarial_html(m))


def evaluate_handler(run_id: str | None, n_samples: int | None, design: dict | None = None,
                     with_cases: bool = True, on_cpu: bool = False):
    """Yields (status md, metrics rows, side-by-side, interval note, per-field chart, adversarial cases)
    as the answers come in. `design`: the evaluation design (training/evaluation/design.py); None = the
    loaded dataset's default. `with_cases` False skips its adversarial cases this time. `on_cpu`:
    in this process on its CPU instead of a GPU call (the choice when ZeroGPU refuses)."""
    from training.evaluation import evaluate
    rest = (gr.skip(),) * 3  # interval note, per-field chart, adversarial cases
    if not run_id or not runs.exists(run_id):
        yield "Train a model first.", [], "", *rest
        return
    if not runs.read_run(run_id)["has_adapter"]:
        yield "This run has no saved adapter yet: let it finish or stop it.", [], "", *rest
        return
    n = int(n_samples) if n_samples else None
    yield eval_report.starting_md(n), gr.skip(), gr.skip(), *rest
    design, note = eval_report.design_for(run_id, design, with_cases)
    m = None
    call = gpu_mod.evaluate_on_cpu if on_cpu else gpu_mod.evaluate_gpu
    try:
        for event in call(run_id, n, design):
            m = event["metrics"]
            if event["kind"] == "done":
                break
            # The chart is drawn once at the end: matplotlib on every tick would take CPU from generation.
            rows, samples, _, adversarial = eval_report.tables(m, note, chart=False)
            yield eval_report.progress_md(event), rows, samples, "", gr.skip(), adversarial
    except Exception as exc:  # what was already shown stays on screen
        yield _eval_failed(exc, run_id, n, design), gr.skip(), gr.skip(), *rest
        return
    if not m:
        yield "❌ The evaluation returned nothing. The run is unchanged.", gr.skip(), gr.skip(), *rest
        return
    rows, samples, fields, adversarial = eval_report.tables(m, note)
    yield eval_report.summary_md(m), rows, samples, evaluate.interval_note(m), fields, adversarial


def _eval_failed(exc: Exception, run_id: str, n: int | None, design: dict) -> str:
    """What the learner reads when the evaluation's GPU call did not complete."""
    outcome = zerogpu.classify(exc)
    needs = gpu_mod.eval_request(run_id, n, design)
    if outcome is not None and outcome.refused:
        cpu = ("**Evaluate on the CPU** (*Evaluate on CPU*): slower (fewer examples by default), no quota."
               if zerogpu.on_zerogpu() else "")
        return zerogpu.refusal_markdown(outcome, "this evaluation", needs,
                                        kept="The run and its adapter are unchanged.", cpu_choice=cpu, jobs=False)
    if outcome is not None and outcome.kind == "aborted":
        return (f"❌ ZeroGPU ended the evaluation's GPU call (it asked for {zerogpu.fmt_s(needs)}) before it "
                "finished, or its worker died; nothing was saved and the run is unchanged. Evaluate fewer "
                "examples, or on the CPU.")
    return f"❌ Evaluation failed ({type(exc).__name__}: {str(exc)[:200]}). The run is unchanged."


def evaluate_cpu_handler(run_id: str | None, n_samples: int | None, design: dict | None = None,
                         with_cases: bool = True):
    """The evaluation in this process, on its CPU (a ZeroGPU Space's choice when the GPU is refused)."""
    yield from evaluate_handler(run_id, n_samples, design, with_cases, on_cpu=True)


def chat_handler(run_id: str | None, history: list | None, text: str, use_adapter: bool):
    """Yields (chat history, message box) as the reply streams in."""
    history = list(history or [])
    if not (text or "").strip():
        yield history, ""
        return
    if not run_id or not runs.exists(run_id) or not runs.read_run(run_id)["has_adapter"]:
        yield history + [{"role": "user", "content": text[:500]},
                         {"role": "assistant", "content": "Train a model first (or stop a run to save its adapter)."}], ""
        return
    try:
        for turn in gpu_mod.chat_gpu(run_id, history, text, bool(use_adapter)):
            yield turn, ""
    except Exception as exc:  # the learner's message goes back into the box to retry
        outcome = zerogpu.classify(exc)
        if outcome is not None:
            yield history + [{"role": "user", "content": text[:500]},
                             {"role": "assistant", "content": zerogpu.short_refusal(
                                 outcome, "this reply", gpu_mod.chat_request())}], text
            return
        yield history + [{"role": "user", "content": text[:500]},
                         {"role": "assistant", "content": f"(The model could not answer: {type(exc).__name__}.)"}], text


def download_adapter_handler(run_id: str | None):
    if not run_id or not runs.exists(run_id):
        return gr.skip(), "Train a model first."
    try:
        path = _downloadable(runs.zip_dir(run_id, "adapter"))
        return _file_shown(path), "Adapter zip ready (PEFT format + tokenizer)."
    except FileNotFoundError as exc:
        return gr.skip(), str(exc)


def merge_handler(run_id: str | None):
    if not run_id or not runs.exists(run_id):
        return gr.skip(), "Train a model first."
    from training.evaluation import inference
    try:
        inference.merge_run(run_id)
        path = _downloadable(runs.zip_dir(run_id, "merged"))
        return _file_shown(path), "Merged model ready (adapter folded into the base)."
    except FileNotFoundError as exc:
        return gr.skip(), str(exc)
    except Exception as exc:
        return gr.skip(), f"❌ Merging failed ({type(exc).__name__}); your adapter is unchanged."


# ------------------------------------------------------------------ the tab

def build_training_tab(progress_state: gr.BrowserState | None = None) -> dict:
    """Build inside an open Blocks; returns components for wiring (run_id state, run_ids BrowserState, …).

    `progress_state` is the course progress (module test score) the certificate needs. The
    steps are built top to bottom into one namespace of components, then wired."""
    c = SimpleNamespace(progress_state=progress_state)
    _tab_state(c)
    for build in (_step_data, _hyperparameters, _step_check, _step_train, _step_after):
        build(c)
    for wire in (_wire_data_and_check, _wire_runs, _wire_after_run):
        wire(c)
    return _parts_and_hooks(c)


def _tab_state(c: SimpleNamespace) -> None:
    """Per-learner state, the intro and the model notice."""
    c.run_ids = gr.BrowserState([], storage_key=RUNS_STORAGE_KEY,
                              secret=env_str("FTLAB_STATE_SECRET", RUNS_SECRET_DEFAULT) + "-runs")
    c.run_id = gr.State(None)
    c.dataset = gr.State(None)
    c.go = gr.State("")
    gr.Markdown(INTRO)
    c.notice = gr.Markdown(model_notice(), elem_id="train-model-notice")


def _step_data(c: SimpleNamespace) -> None:
    """Step 1: model, method and where the data comes from."""
    with gr.Group():
        gr.Markdown("### 1 · Model and data")
        # Where the settings came from when a lab handed them over (training/views/handoff_ui.py).
        c.origins = gr.State({})
        c.provenance = gr.Markdown(elem_id="train-provenance")
        with gr.Row():
            c.model = gr.Dropdown(_model_choices(), value=DEFAULT_MODEL, label="Base model", elem_id="train-model")
            c.method = gr.Radio([("SFT (learn from examples)", "sft"), ("DPO (learn from preferences)", "dpo")],
                              value="sft", label="Method", elem_id="train-method")
        c.source = gr.Radio(DATA_SOURCES, value=sources.BUILTIN, label="Data from", elem_id="train-source")
        # Only the field for the chosen source is shown (source_fields below).
        c.builtin = gr.Dropdown(sources.builtin_choices(), value=sources.first_builtin(), label="Built-in dataset",
                              elem_id="train-builtin")
        c.upload = gr.File(label="Your JSONL file", file_types=[".jsonl", ".json", ".txt"], type="filepath",
                         visible=False, elem_id="train-upload")
        c.hub_id = gr.Textbox(label="Hub dataset id (online only)", placeholder="owner/name", max_length=200,
                            visible=False, elem_id="train-hub-id")
        c.load_btn = gr.Button("Load dataset", elem_id="train-load")
        c.data_md = gr.Markdown(elem_id="train-data-status")


def _hyperparameters(c: SimpleNamespace) -> None:
    """The hyperparameter inputs, each built from the config table and keyed by its field name."""
    from training.run.engine import default_device
    d = config.defaults(default_device())
    with gr.Accordion("Hyperparameters", open=False, elem_id="train-hyperparameters") as c.hp_box:
        with gr.Row():
            c.preset = gr.Dropdown(list(config.PRESETS), value=config.DEFAULT_PRESET, label="LoRA preset (from Lab 3)")
            c.preset_btn = gr.Button("Apply preset", scale=0)
        # Every input is built from the config table (training/run/config.py) and keyed by its field name.
        c.hp: dict[str, Any] = {}
        for row in HP_ROWS:
            with gr.Row():
                c.hp.update({name: _hp_input(name, d[name]) for name in row})
            if "gradient_accumulation_steps" in row:
                c.eff_md = gr.Markdown(effective_batch_md(*(d[k] for k in BATCH_FIELDS)))


def _step_check(c: SimpleNamespace) -> None:
    """Step 2: check the data; nothing is trained."""
    with gr.Accordion("2 · Check the data (no training yet)", open=False, elem_id="train-step-check") as c.step_check:
        c.check_btn = gr.Button("Check data", elem_id="train-check")
        c.critic_md = gr.Markdown(elem_id="train-critic")
        with gr.Row():
            c.fix_leak_btn = gr.Button("Fix leakage", size="sm", scale=0, elem_id="train-fix-leakage")
            c.fix_leak_md = gr.Markdown(elem_id="train-fix-leakage-result")
        c.check_md = gr.Markdown(elem_id="train-check-result")
        with gr.Row():
            c.hist = gr.HTML("", elem_id="train-token-hist", elem_classes="curve")
            c.highlight = gr.HighlightedText(label="Which tokens are trained (first example)",
                                           color_map={"trained": "green", "prompt (not trained)": "gray"},
                                           show_legend=True)
        tokens_ui.build_tokens(c)
        c.plan_md = gr.Markdown(elem_id="train-plan")


def _step_train(c: SimpleNamespace) -> None:
    """Step 3: start, stop, resume; the curves; the learner's runs; the diagnosis."""
    with gr.Accordion("3 · Train", open=False, elem_id="train-step-train") as c.step_train:
        with gr.Row():
            c.start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            c.stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
            c.resume_btn = gr.Button("Resume", elem_id="train-resume")
            # On ZeroGPU: go on in this process, on its CPU, when the GPU quota is spent.
            c.resume_cpu_btn = gr.Button("Resume on CPU", elem_id="train-resume-cpu", visible=zerogpu.on_zerogpu())
        c.status = gr.Markdown("No run yet.", elem_id="train-status")
        c.prog = gr.Markdown(elem_id="train-progress")
        with gr.Row():
            empty_loss, empty_lr = curves(None)
            c.loss_plot = gr.HTML(empty_loss, elem_id="train-loss-chart", elem_classes="curve")
            c.lr_plot = gr.HTML(empty_lr, elem_id="train-lr-chart", elem_classes="curve")
        with gr.Row():
            c.my_runs = gr.Dropdown([], label="Your runs (kept for a while on this server)", scale=3,
                                  elem_id="train-my-runs")
            c.show_btn = gr.Button("Show run", scale=0, elem_id="train-show-run")
        c.diagnose_btn = gr.Button("Diagnose this run (Lab 3's curve doctor)", size="sm", elem_id="train-diagnose")
        c.ask_btn = gr.Button("Ask the LoRA advisor (Lab 3) about this run", size="sm", elem_id="train-ask-advisor")
        c.diagnosis = gr.Markdown(elem_id="train-diagnosis")
        compare_ui.build_compare(c)
        c.timer = gr.Timer(2.0, active=False)


def _step_after(c: SimpleNamespace) -> None:
    """Step 4: evaluate, chat, download, certificate."""
    with gr.Accordion("4 · Evaluate, chat, download", open=False, elem_id="train-step-evaluate") as c.step_eval:
        with gr.Row():
            c.n_eval = gr.Slider(1, 10, value=_initial_eval_n(), step=1, label="Test examples to compare",
                                 elem_id="train-eval-n")
            c.eval_cases = gr.Checkbox(_cases_by_default(), label=CASES_LABEL, elem_id="train-eval-cases",
                                       info="Lab 4's, or the dataset's own; on a CPU about as long again.")
            c.eval_btn = gr.Button("Evaluate base vs tuned", elem_id="train-eval")
            c.eval_cpu_btn = gr.Button("Evaluate on CPU", elem_id="train-eval-cpu", visible=zerogpu.on_zerogpu())
        # The evaluation design: Lab 4's metrics and adversarial cases (set by its hand-off), None = defaults.
        c.eval_design = gr.State(None)
        c.eval_design_md = gr.Markdown(_describe_design(None), elem_id="train-eval-design")
        c.eval_md = gr.Markdown(elem_id="train-eval-status")
        c.metrics = gr.Dataframe(headers=["Metric", "Base [95% CI]", "Tuned [95% CI]", "Change [95% CI]"],
                                 label="Metrics on the test split", interactive=False, elem_id="train-eval-metrics")
        c.eval_ci = gr.Markdown(elem_id="train-eval-ci")
        c.eval_fields = gr.HTML("", elem_id="train-eval-fields", elem_classes="curve")
        c.samples = gr.HTML("", elem_id="train-samples", css_template=eval_view.CSS)
        c.eval_adversarial = gr.HTML("", elem_id="train-eval-adversarial", css_template=eval_view.ADVERSARIAL_CSS)
        c.chatbot = gr.Chatbot(label="Chat with your model", height=300)
        with gr.Row():
            c.chat_in = gr.Textbox(label="Message", placeholder="Paste a note to see what the tuned model does",
                                 max_length=4000, scale=4)
            c.use_adapter = gr.Checkbox(True, label="Use the tuned adapter (untick for the base model)")
            c.send = gr.Button("Send", scale=0)
        with gr.Row():
            c.dl_btn = gr.Button("Download adapter (.zip)")
            c.merge_btn = gr.Button("Merge into the base and download")
        c.dl_file = gr.File(label="Download", interactive=False, visible=False, elem_id="train-download")
        c.dl_md = gr.Markdown()
        gr.Markdown("#### Certificate of completion\nEarned by passing the module test and evaluating a "
                    "run you trained. Your name is printed only if you type one, and is not kept.")
        with gr.Row():
            c.cert_name = gr.Textbox(label="Name on the certificate (optional)", max_length=MAX_CERT_NAME, scale=3,
                                   elem_id="cert-name")
            c.cert_btn = gr.Button("Get my certificate", scale=1, elem_id="cert-get")
        c.cert_md = gr.Markdown(elem_id="cert-status")
        c.cert_file = gr.File(label="Certificate", interactive=False, visible=False, elem_id="cert-file")



def _cases_by_default() -> bool:
    """On a GPU the cases cost seconds; on a CPU they take about as long as the examples
    again, so there the learner opts in."""
    from training.run.engine import default_device
    return default_device().startswith("cuda")


def _initial_eval_n() -> int:
    """Before any data is known: this device's default, within the slider's first range."""
    from training.evaluation import evaluate
    from training.run.engine import default_device
    return evaluate.default_n(10, default_device())


def _describe_design(design: dict | None) -> str:
    from training.evaluation import design as eval_design
    return eval_design.describe(design)


def _wire_data_and_check(c: SimpleNamespace) -> None:
    """Data source fields, loading, presets, method defaults, the check."""
    c.source.change(source_fields, c.source, [c.builtin, c.upload, c.hub_id], api_visibility="private")
    c.load_btn.click(load_dataset_handler, [c.source, c.builtin, c.upload, c.hub_id, c.method, c.dataset], [c.dataset, c.data_md]).then(
        lambda d: open_when(bool(d)), c.dataset, c.step_check, api_visibility="private")
    c.preset_btn.click(apply_preset, [c.preset, c.method], [c.hp[k] for k in PRESET_FIELDS])
    c.method.change(apply_method_defaults, c.method, [c.hp[k] for k in METHOD_FIELDS])
    for k in BATCH_FIELDS:
        c.hp[k].change(effective_batch_md, [c.hp[f] for f in BATCH_FIELDS], c.eff_md)
    # In the config table's order, which is also the order of these endpoints' API parameters.
    c.hp_inputs = [c.hp[k] for k in config.HP_NAMES]
    c.check_btn.click(_by_name(check_handler), [c.dataset, c.model, c.method, *c.hp_inputs],
                    [c.critic_md, c.check_md, c.hist, c.highlight, c.plan_md]).then(
        lambda plan: open_when((plan or "").startswith("**Plan:**")), c.plan_md, c.step_train,
        api_visibility="private")
    c.fix_leak_btn.click(fix_leakage_handler, c.dataset, [c.dataset, c.fix_leak_md])
    tokens_ui.wire_tokens(c, _by_name)


def _wire_runs(c: SimpleNamespace) -> None:
    """Start, resume, stop, re-attach and the poll; steps 3-4 open as the run goes."""
    c.view_out = [c.status, c.prog, c.loss_plot, c.lr_plot]
    c.steps = [c.step_train, c.step_eval]
    # "Your runs" follows the run: listed when it is created, its status updated when it ends.
    c.start_btn.click(_by_name(prepare_run_handler), [c.dataset, c.model, c.method, c.run_ids, *c.hp_inputs],
                    [c.run_id, c.run_ids, c.status, c.go]).then(
        runs_dropdown, [c.run_ids, c.run_id], c.my_runs).then(
        train_handler, [c.run_id, c.go], c.view_out, concurrency_id="gpu", concurrency_limit=GPU_CONCURRENCY).then(
        runs_dropdown, [c.run_ids, c.run_id], c.my_runs).then(steps_for_run, c.run_id, c.steps, api_visibility="private")
    c.resume_btn.click(resume_check_handler, [c.run_id, c.run_ids], [c.status, c.go]).then(
        train_handler, [c.run_id, c.go], c.view_out, concurrency_id="gpu", concurrency_limit=GPU_CONCURRENCY).then(
        runs_dropdown, [c.run_ids, c.run_id], c.my_runs).then(steps_for_run, c.run_id, c.steps, api_visibility="private")
    # Stop never waits behind the GPU queue: it only writes a flag file.
    c.stop_btn.click(stop_handler, c.run_id, c.status, concurrency_limit=None)
    c.attach_out = [c.run_id, c.my_runs, c.status, c.prog, c.loss_plot, c.lr_plot, c.metrics, c.samples, c.timer]
    c.show_btn.click(attach_handler, [c.run_ids, c.my_runs], c.attach_out).then(
        steps_for_run, c.run_id, c.steps, api_visibility="private")
    c.timer.tick(poll_handler, c.run_id, [c.status, c.prog, c.loss_plot, c.lr_plot, c.timer])
    # ZeroGPU refused: go on in this process, on its CPU (its own queue: it holds no GPU).
    c.resume_cpu_btn.click(resume_cpu_check_handler, [c.run_id, c.run_ids], [c.status, c.go]).then(
        train_handler, [c.run_id, c.go], c.view_out, concurrency_id="cpu-train", concurrency_limit=1,
        api_name="train_on_cpu").then(
        runs_dropdown, [c.run_ids, c.run_id], c.my_runs, api_name="runs_after_cpu", api_visibility="private").then(
        steps_for_run, c.run_id, c.steps, api_name="steps_after_cpu", api_visibility="private")
    compare_ui.wire_compare(c, attach_handler, steps_for_run)


def _wire_after_run(c: SimpleNamespace) -> None:
    """Evaluation, chat, downloads, diagnosis and the certificate."""
    # Streams: "minimal" keeps the answers already in readable instead of under a spinner overlay.
    c.eval_btn.click(evaluate_handler, [c.run_id, c.n_eval, c.eval_design, c.eval_cases],
                     [c.eval_md, c.metrics, c.samples, c.eval_ci, c.eval_fields, c.eval_adversarial],
                     concurrency_id="gpu", show_progress="minimal", concurrency_limit=GPU_CONCURRENCY)
    # The count follows the data: its range is the test split, its default this device's.
    c.dataset.change(lambda d: eval_slider(len((d or {}).get("test") or [])), c.dataset, c.n_eval,
                     api_visibility="private")
    c.run_id.change(eval_extras, c.run_id, [c.n_eval, c.eval_ci, c.eval_fields, c.eval_adversarial],
                    api_visibility="private")
    c.eval_design.change(_describe_design, c.eval_design, c.eval_design_md, api_visibility="private")
    c.send.click(chat_handler, [c.run_id, c.chatbot, c.chat_in, c.use_adapter], [c.chatbot, c.chat_in], concurrency_limit=2)
    c.chat_in.submit(chat_handler, [c.run_id, c.chatbot, c.chat_in, c.use_adapter], [c.chatbot, c.chat_in], concurrency_limit=2)
    c.dl_btn.click(download_adapter_handler, c.run_id, [c.dl_file, c.dl_md])
    c.diagnose_btn.click(handoffs.diagnose_run, c.run_id, c.diagnosis, api_name="diagnose_run")
    if c.progress_state is not None:
        c.cert_btn.click(certificate_handler, [c.progress_state, c.run_id, c.cert_name], [c.cert_file, c.cert_md],
                       api_name="certificate")
    c.merge_btn.click(merge_handler, c.run_id, [c.dl_file, c.dl_md], concurrency_limit=1)
    c.eval_cpu_btn.click(evaluate_cpu_handler, [c.run_id, c.n_eval, c.eval_design, c.eval_cases],
                         [c.eval_md, c.metrics, c.samples, c.eval_ci, c.eval_fields, c.eval_adversarial],
                         concurrency_id="cpu-eval", show_progress="minimal", concurrency_limit=1)


def _parts_and_hooks(c: SimpleNamespace) -> dict:
    """What app.py wires: shared components and the page-load / tab-select hooks."""
    # Hooks app.py wires (the tab does not reach into the root Blocks), each a chain of
    # (fn, inputs, outputs) steps: re-attach to the learner's latest run when the page opens
    # (runs live on disk), and again whenever this tab is selected, since its components only
    # exist in the page once it is opened and a reload shows the first tab.
    c.attach_chain = [(attach_handler, [c.run_ids], c.attach_out), (steps_for_run, c.run_id, c.steps)]
    c.page_load = [c.attach_chain, [(model_notice, None, c.notice)]]
    c.tab_select = [(attach_handler, [c.run_ids, c.run_id], c.attach_out), (steps_for_run, c.run_id, c.steps)]

    return {"run_id": c.run_id, "run_ids": c.run_ids, "dataset": c.dataset, "status": c.status,
            "start": c.start_btn, "stop": c.stop_btn, "resume": c.resume_btn, "model": c.model, "method": c.method,
            "hyperparameters": c.hp, "page_load": c.page_load, "tab_select": c.tab_select,
            # the labs' hand-offs (training/views/handoff_ui.py)
            "source": c.source, "builtin": c.builtin, "data_md": c.data_md, "step_check": c.step_check,
            "origins": c.origins, "provenance": c.provenance, "hp_box": c.hp_box, "ask_advisor": c.ask_btn, "diagnosis": c.diagnosis,
            "eval_design": c.eval_design, "eval_cases": c.eval_cases}


# The hyperparameter rows of the tab, by field name (labels, ranges, help: training/run/config.py).
HP_ROWS = (("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"),
           ("learning_rate", "lr_scheduler_type", "warmup_ratio", "beta"),
           ("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps"),
           ("max_length", "eval_steps", "early_stopping_patience", "seed"))


def _hp_input(name: str, value):
    """The input for one config field, from its table row (elem_id "train-hp-<name>")."""
    meta = config.SPEC[name]
    label = meta["label"] + (f" (cap {config.range_hi(name):g})" if callable(meta["hi"]) else "")
    # The one-line help stays in the table (docs, errors): shown under every input it would
    # push steps 2-4 down the page the learner works through.
    if meta["choices"]:
        return gr.Dropdown(list(meta["choices"]), value=value, label=label, elem_id=f"train-hp-{meta['elem'] or name}")
    return gr.Number(value, label=label, precision=0 if meta["whole"] else None, elem_id=f"train-hp-{meta['elem'] or name}")


def _by_name(handler):
    """Wire `handler(*fixed, values)` to Gradio's positional inputs [*fixed, *hp_inputs]:
    the values reach the handler as a dict keyed by field name, paired here with the same
    `config.HP_NAMES` the inputs were listed by."""
    names = config.HP_NAMES

    def wired(*args):
        fixed, values = args[:len(args) - len(names)], args[len(args) - len(names):]
        return handler(*fixed, dict(zip(names, values)))
    wired.__name__ = handler.__name__  # the API name stays the handler's
    return wired
