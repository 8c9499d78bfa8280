"""Run a run's recipe on Hugging Face Jobs: hardware and prices, estimate, launch, follow, cancel, result.

Built on `huggingface_hub`'s Jobs API (`list_jobs_hardware`, `run_job`, `inspect_job`,
`fetch_job_logs`, `cancel_job`); no Gradio here (training/views/jobs_ui.py is the panel).

A launch exports the run's recipe (training/hub/recipe.py: the TRL config from
`config.trl_args`, the data, and the uv script training/hub/ftlab_job.py), uploads that
folder as a private dataset repository of the learner's, and starts a job in the uv
image that mounts it read-only at /recipe and runs `uv run /recipe/ftlab_job.py`: TRL
on every GPU of the flavour, then a push of the adapter and card to the learner's model
repository (the job gets the learner's token as its `HF_TOKEN` secret, encrypted by the Hub).

Following a job is polling: each poll inspects it and replays its log (`follow=False`,
a bounded request), and the `FTLAB_LOG {...}` lines the script prints become the same
log events local runs write (training/run/runs.py), so training/run/charts.py draws them. A poll
that loses the log stream keeps what it read; the next poll replays the whole log.

Every Hub call runs under `hub_timeouts.run_with_deadline`. The token is an argument
of each call and is never stored, logged or put in a message.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.config import env_float
from training.hub import timeouts as hub_timeouts
from training.hub import model_card
from training.hub import publish
from training.hub import recipe
from training.run import runs
from training.run.runs import RunStatus

# huggingface_hub's DEFAULT_UV_IMAGE (Debian with Python 3.12 and uv), what `hf jobs uv run` uses.
UV_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"
MOUNT = "/recipe"
OUTPUT_DIR = "/tmp/ftlab-output"
LOG_TAG, ERROR_TAG, DONE_TAG = "FTLAB_LOG ", "FTLAB_ERROR ", "FTLAB_DONE "  # printed by ftlab_job.py
LOG_FILE = "ftlab_log.jsonl"
TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
JOB_ID_RE = re.compile(r"^[A-Za-z0-9]{8,64}$")
LABELS = {"app": "fine-tuning-lab"}

# Peak dense bf16 tensor throughput per GPU (fp16 for the T4, which has no bf16), in TFLOPS,
# from NVIDIA's datasheets (the figures without sparsity). The A10G is AWS's lower-clocked
# A10; the RTX PRO 6000 Blackwell figure is its datasheet FP4 peak / 8 (dense, bf16).
PEAK_TFLOPS = {"T4": 65, "A10G": 70, "L4": 121, "L40S": 362, "A100": 312, "H100": 989, "H200": 989,
               "RTXPRO6000": 500}
# Share of that peak a LoRA run really gets (an assumption, not measured here): small models
# and short sequences leave the GPU's matrix units mostly idle.
USED_FRACTION_SMALL, USED_FRACTION_LARGE = 0.15, 0.30
# Container start, `uv` installing torch + TRL, and the base model download, before step 1
# (an assumption; a first run in an account pulls the image too).
STARTUP_S = 300.0


def start_timeout_s() -> float:
    """How long a job may wait for a machine before the panel calls it stuck."""
    return env_float("FTLAB_JOB_START_TIMEOUT_S", 900.0)


def job_timeout_hours() -> float:
    """The Hub stops (and stops billing) a job after this long, whatever it is doing."""
    return env_float("FTLAB_JOB_TIMEOUT_HOURS", 6.0)


# ---------------------------------------------------------------- hardware, prices, estimate
@dataclass(frozen=True)
class Flavor:
    name: str
    label: str
    gpus: int
    gpu_model: str
    vram: str
    usd_per_hour: float

    def choice_label(self, est: "Estimate | None" = None) -> str:
        what = f"{self.gpus} × {self.gpu_model} ({self.vram})" if self.gpus else "CPU only"
        text = f"{self.name} · {what} · ${self.usd_per_hour:.2f}/h"
        return text + (f" · this run ≈ {est.minutes:.0f} min, ≈ ${est.usd:.2f}" if est else "")


PER_HOUR = {"second": 3600.0, "minute": 60.0, "hour": 1.0}


def to_flavor(hw: Any) -> Flavor:
    """A `JobHardwareInfo` from the Hub as a Flavor (price per hour)."""
    acc = hw.accelerator
    gpus = int(acc.quantity) if acc is not None and str(acc.quantity).isdigit() else 0
    per_hour = float(hw.unit_cost_usd) * PER_HOUR.get(str(hw.unit_label).lower(), 60.0)
    return Flavor(hw.name, hw.pretty_name, gpus, acc.model if acc else "", acc.vram if acc else "", per_hour)


def peak_tflops(gpu_model: str) -> float | None:
    key = re.sub(r"[^A-Z0-9]", "", (gpu_model or "").upper())
    matches = [k for k in PEAK_TFLOPS if k in key]
    return PEAK_TFLOPS[max(matches, key=len)] if matches else None


def params_billions(model_id: str) -> float | None:
    """Parameter count read from a model name ("SmolLM2-1.7B", "Qwen2.5-0.5B", "135M")."""
    found = re.findall(r"(\d+(?:\.\d+)?)\s*([MB])(?![a-z])", model_id or "", flags=re.I)
    if not found:
        return None
    value, unit = found[-1]
    return float(value) / (1000.0 if unit.upper() == "M" else 1.0)


@dataclass(frozen=True)
class Estimate:
    tokens: int
    train_s: float
    total_s: float
    usd: float

    @property
    def minutes(self) -> float:
        return self.total_s / 60.0


def estimate(tokens: int, params_b: float | None, flavor: Flavor, method: str = "sft") -> Estimate | None:
    """Time and cost of a run on a flavour: LoRA needs ~4 × params FLOPs per token (forward and
    the input gradients; no weight gradients for the frozen base), DPO ~6 × (a reference forward
    too), at a share of the GPUs' peak; plus the start-up. Billed by the minute. None if unknown."""
    peak = peak_tflops(flavor.gpu_model)
    if not (peak and flavor.gpus and params_b):
        return None
    used = USED_FRACTION_SMALL if params_b < 1 else USED_FRACTION_LARGE
    flops = (6 if method == "dpo" else 4) * params_b * 1e9 * tokens
    train_s = flops / (flavor.gpus * peak * 1e12 * used)
    total_s = train_s + STARTUP_S
    return Estimate(int(tokens), train_s, total_s, math.ceil(total_s / 60.0) / 60.0 * flavor.usd_per_hour)


def run_tokens(run_dir: Path) -> tuple[int, str, str]:
    """(tokens the run trains on, its method, its base model id), from run.json and its data."""
    from training.run.engine import approx_tokens  # no torch at import

    run = model_card.read_json(Path(run_dir) / "run.json")
    s = model_card.run_summary(run)
    cfg = s["config"]
    rows = runs.read_jsonl(Path(run_dir) / "data" / "train.jsonl")
    per_example = min(approx_tokens(rows), float(cfg.max_length))
    steps = int(run.get("total_steps") or cfg.total_steps(len(rows)))
    return int(steps * cfg.effective_batch * per_example), cfg.method, s["base_model"]


# ---------------------------------------------------------------- errors
def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def explain(exc: BaseException | None, stage: str, *, flavor: str = "", seconds: float = 0.0) -> str:
    """A Hub failure in the learner's words (never the exception's text, which may echo a token)."""
    status = _status(exc) if exc is not None else None
    if exc is None or isinstance(exc, hub_timeouts.HubTimeout):
        return (f"The Hub did not answer within {seconds:.0f} s ({stage}). Nothing was lost; "
                "try again in a minute (status.huggingface.co says if the Hub is down).")
    if status == 401:
        return "The Hub did not accept your sign-in (401): sign in again, or paste a fresh token."
    if status == 402:
        return ("The Hub refused to start a paid job (402): Jobs are billed by the minute to your account, "
                "which needs a positive credit balance (prepaid credits, or a subscription's monthly credits) "
                "or a payment method: see huggingface.co/settings/billing. Nothing was started.")
    if status == 403 and stage == "uploading the data":
        return ("The Hub refused to create or write the private dataset repository (403): the token needs "
                "the `manage-repos` and `write-repos` scopes (write access).")
    if status == 403:
        return ("The Hub refused this Jobs request (403): your token is missing the `jobs` scope. On the "
                "Space, sign out and in again and allow Jobs; a personal token needs the Jobs permission "
                "(fine-grained: 'Start and manage Jobs') or write access.")
    if status in (400, 422) and stage == "starting the job":
        return (f"The Hub did not accept the hardware flavour `{flavor}` ({status}): refresh the list and "
                "pick one it offers now.")
    if status == 404:
        return f"The Hub has no such job or repository for this account (404) while {stage}."
    if status == 429:
        return "The Hub is limiting requests from this account (429): wait a minute, then try again."
    if status is not None and status >= 500:
        return f"The Hub is having trouble (HTTP {status}) while {stage}. Nothing was lost; try again in a minute."
    if status is not None:
        return f"The Hub answered HTTP {status} while {stage}."
    return f"No answer from the Hub while {stage} (connection refused or closed). Check the connection and retry."


def _call(fn: Callable[[], Any], stage: str, budget_s: float | None = None, **kw) -> tuple[Any, str | None]:
    """Run one Hub conversation under a deadline. -> (value, None) or (None, message)."""
    budget = budget_s or 2 * hub_timeouts.timeout_s()
    try:
        finished, value, watch = hub_timeouts.run_with_deadline(fn, budget)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message
        return None, explain(exc, stage, seconds=budget, **kw)
    if not finished:
        return None, explain(None, stage, seconds=budget, **kw)
    return value, None


def _api(endpoint: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint)


def whoami(token: str, endpoint: str | None = None) -> tuple[str | None, str | None]:
    """The token's user name (the job's namespace), or (None, message)."""
    value, error = _call(lambda: _api(endpoint).whoami(token=token), "checking your sign-in")
    return (value["name"], None) if value else (None, error)


def list_flavors(token: str, endpoint: str | None = None) -> tuple[list[Flavor], str | None]:
    """The Hub's live hardware list with prices (GPU flavours first, cheapest first)."""
    value, error = _call(lambda: _api(endpoint).list_jobs_hardware(token=token), "listing the hardware")
    if error:
        return [], error
    flavors = [to_flavor(hw) for hw in value]
    return sorted(flavors, key=lambda f: (f.gpus == 0, f.usd_per_hour)), None


# ---------------------------------------------------------------- launch
def job_command(model_repo: str, *, model: str = "", public: bool = False) -> list[str]:
    """The job's command: the recipe's uv script from the mounted dataset repository."""
    cmd = ["uv", "run", f"{MOUNT}/ftlab_job.py", "--recipe", MOUNT, "--output-dir", OUTPUT_DIR,
           "--push-to", model_repo]
    return cmd + (["--model", model] if model else []) + (["--public"] if public else [])


def _upload_recipe(api, run_dir: Path, data_repo: str, token: str) -> None:
    """Export the run's recipe and upload the folder as a private dataset repository."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = recipe.unpack(recipe.export_recipe(run_dir, Path(tmp) / "zip"), Path(tmp) / "recipe")
        api.create_repo(data_repo, repo_type="dataset", private=True, exist_ok=True, token=token)
        api.upload_folder(repo_id=data_repo, repo_type="dataset", folder_path=str(folder), token=token,
                          commit_message="Fine-Tuning Lab recipe for a Hugging Face Job")


def _start(api, data_repo: str, model_repo: str, flavor: str, token: str, namespace: str,
           model: str, public: bool):
    from huggingface_hub import Volume

    return api.run_job(
        image=UV_IMAGE, command=job_command(model_repo, model=model, public=public),
        secrets={"HF_TOKEN": token}, flavor=flavor, timeout=f"{job_timeout_hours():g}h",
        volumes=[Volume(type="dataset", source=data_repo, mount_path=MOUNT, read_only=True)],
        labels=dict(LABELS), namespace=namespace, token=token)


MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def launch(run_dir: Path, flavor: str, token: str, *, namespace: str, repo_name: str,
           offered: Any, model: str = "", public: bool = False,
           endpoint: str | None = None) -> tuple[dict | None, str]:
    """Upload the recipe and start the job. -> (job record for the browser, message).

    The record holds ids and names only (never the token): it is what re-attaches after a reload."""
    model_repo, error = publish.validate_repo_id(repo_name, namespace)
    if error:
        return None, error
    if not flavor or flavor not in set(offered or ()):
        return None, "Pick a hardware flavour from the list (refresh it if it is empty)."
    if model and not MODEL_ID_RE.match(model):
        return None, "The base model must be a Hub id like `owner/name`."
    data_repo = f"{namespace}/{model_repo.split('/')[1]}-recipe"
    api = _api(endpoint)
    size = sum(f.stat().st_size for f in (Path(run_dir) / "data").glob("*.jsonl"))
    _, error = _call(lambda: _upload_recipe(api, Path(run_dir), data_repo, token), "uploading the data",
                     hub_timeouts.push_budget_s(size))
    if error:
        return None, error
    job, error = _call(lambda: _start(api, data_repo, model_repo, flavor, token, namespace, model, public),
                       "starting the job", flavor=flavor)
    if error:
        return None, error + f" The data is already in the private dataset `{data_repo}`; launching again reuses it."
    record = {"job_id": job.id, "namespace": namespace, "source_run": Path(run_dir).name, "flavor": flavor,
              "data_repo": data_repo, "model_repo": model_repo, "model": model, "created_at": time.time(),
              "url": job.url, "result_run": None}
    return record, f"Job started on `{flavor}`: [{job.id}]({job.url}). Billing runs until it ends or you cancel."


def clean_record(value: Any) -> dict | None:
    """A job record from browser storage, or None if it is not one of ours (checked before any use)."""
    if not isinstance(value, dict) or not JOB_ID_RE.match(str(value.get("job_id", ""))):
        return None
    repos_ok = all(publish.validate_repo_id(str(value.get(k) or ""), None)[1] is None
                   for k in ("data_repo", "model_repo"))
    if not repos_ok or publish.check_part(str(value.get("namespace") or ""), "namespace"):
        return None
    return value


# ---------------------------------------------------------------- follow
@dataclass
class Parsed:
    events: list[dict] = field(default_factory=list)
    error_kind: str | None = None   # "oom" when the script (or CUDA) said so
    done: bool = False              # the script printed FTLAB_DONE (trained and pushed)
    tail: list[str] = field(default_factory=list)  # last plain lines, for a failure message


OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "torch.OutOfMemoryError")


def _tagged(line: str, tag: str) -> dict | None:
    at = line.find(tag)
    if at < 0:
        return None
    try:
        value = json.loads(line[at + len(tag):])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_log(lines: list[str]) -> Parsed:
    """Log lines of a job -> the run log events (step, loss | eval_loss | learning_rate, elapsed)."""
    out, seen = Parsed(), set()
    for line in lines:
        event = _tagged(line, LOG_TAG)
        if event is not None:
            if isinstance(event.get("step"), int) and (event["step"], tuple(sorted(event))) not in seen:
                seen.add((event["step"], tuple(sorted(event))))
                out.events.append({k: v for k, v in event.items()
                                   if k in ("step", "loss", "eval_loss", "learning_rate", "elapsed")})
            continue
        error = _tagged(line, ERROR_TAG)
        if error is not None or any(m in line for m in OOM_MARKERS):
            out.error_kind = (error or {}).get("kind", "oom")
        elif _tagged(line, DONE_TAG) is not None:
            out.done = True
        elif line.strip():
            out.tail = (out.tail + [line.rstrip()])[-8:]
    return out


@dataclass
class JobView:
    stage: str                    # the Hub's stage, or "UNKNOWN" when it could not be read
    message: str                  # Markdown for the learner
    events: list[dict]
    finished: bool = False        # terminal: stop polling
    ok: bool = False              # completed and pushed: make it a run
    stream_lost: bool = False


def _read_logs(api, record: dict, token: str, lines: list[str]) -> BaseException | None:
    """Replay the job's log into `lines` (kept on a drop or at the deadline). -> the error, if any."""
    try:
        for line in api.fetch_job_logs(job_id=record["job_id"], namespace=record["namespace"], token=token):
            lines.append(line)
    except Exception as exc:  # noqa: BLE001 - a dropped stream keeps the lines read so far
        return exc
    return None


def poll(record: dict, token: str, endpoint: str | None = None, now: float | None = None) -> JobView:
    """Inspect the job and replay its log; one bounded round trip of each."""
    api = _api(endpoint)
    job, error = _call(lambda: api.inspect_job(job_id=record["job_id"], namespace=record["namespace"],
                                               token=token), "reading the job's status")
    if error:
        return JobView("UNKNOWN", error + " The job itself goes on; the panel tries again.", [])
    lines: list[str] = []
    budget = 3 * hub_timeouts.timeout_s()
    dropped, log_error = _call(lambda: _read_logs(api, record, token, lines), "reading the log", budget)
    parsed = parse_log(list(lines))
    lost = bool(log_error or dropped)
    view = JobView(str(job.status.stage), "", parsed.events, stream_lost=lost)
    view.message = describe(job, record, parsed, now=now)
    if lost:
        view.message += ("\n\n⚠️ The log stream was cut off; the points so far are kept and the next "
                         "refresh reads the whole log again. The job itself is not affected.")
    view.finished = view.stage in TERMINAL
    view.ok = view.stage == "COMPLETED"
    return view


def _waited_s(job: Any, now: float | None) -> float:
    durations = getattr(job, "durations", None)
    if durations is not None and durations.scheduling_secs is not None:
        return float(durations.scheduling_secs)
    created = job.created_at.timestamp() if job.created_at else None
    return max(0.0, (now or time.time()) - created) if created else 0.0


def _progress(parsed: Parsed) -> str:
    losses = [e for e in parsed.events if e.get("loss") is not None]
    evals = [e for e in parsed.events if e.get("eval_loss") is not None]
    parts = [f"step {losses[-1]['step']}, train loss {losses[-1]['loss']:.4f}"] if losses else ["no step yet"]
    if evals:
        parts.append(f"eval loss {evals[-1]['eval_loss']:.4f}")
    return ", ".join(parts)


OOM_ADVICE = ("It ran out of GPU memory (CUDA out of memory). Change one of: a smaller batch size (raise "
              "gradient accumulation to keep the effective batch), a shorter max length, a smaller LoRA "
              "rank, or a flavour with more GPU memory per GPU.")


def describe(job: Any, record: dict, parsed: Parsed, now: float | None = None) -> str:
    """What the learner reads for one poll of a job."""
    stage, flavor, link = str(job.status.stage), record.get("flavor", ""), f"[{record['job_id']}]({job.url})"
    if stage == "SCHEDULING":
        waited = _waited_s(job, now)
        if waited > start_timeout_s():
            return (f"Job {link} has waited {waited / 60:.0f} min for a `{flavor}` machine and has not "
                    "started (such machines may be in short supply). Waiting costs nothing; cancel it and "
                    "launch on another flavour, or keep waiting.")
        return f"Job {link} is waiting for a `{flavor}` machine ({waited / 60:.0f} min so far; not billed yet)."
    if stage == "RUNNING":
        return f"Job {link} is running on `{flavor}`: {_progress(parsed)}."
    if stage == "COMPLETED":
        return f"Job {link} finished: {_progress(parsed)}. Adapter pushed to `{record['model_repo']}`."
    if stage == "CANCELED":
        return (f"Job {link} was cancelled; billing stopped. The dataset `{record['data_repo']}` stays in "
                "your account for another launch.")
    if stage == "DELETED":
        return f"Job {link} was deleted on the Hub."
    return _failure(job, link, parsed)


def _failure(job: Any, link: str, parsed: Parsed) -> str:
    said = (job.status.message or "").strip()
    head = f"Job {link} failed" + (f" ({said})" if said else " (the script exited with an error)") + "."
    if parsed.error_kind == "oom":
        return f"{head} {OOM_ADVICE}"
    tail = "\n".join(parsed.tail[-6:]) or "(no output)"
    return (f"{head} Reached {_progress(parsed)}. The last lines of its log:\n\n```text\n{tail}\n```\n"
            "Fix what they name and launch again; the data upload is reused.")


def cancel(record: dict, token: str, endpoint: str | None = None) -> str:
    api = _api(endpoint)
    _, error = _call(lambda: api.cancel_job(job_id=record["job_id"], namespace=record["namespace"], token=token),
                     "cancelling the job")
    if error:
        return error + f" If it keeps failing, cancel it on its page: {record.get('url', 'huggingface.co/jobs')}."
    return "Cancel requested: the Hub stops the job and its billing within moments."


# ---------------------------------------------------------------- the result as a run
def _download(api, record: dict, token: str, dest: Path) -> Path:
    patterns = list(publish.ADAPTER_FILES) + [LOG_FILE]
    return Path(api.snapshot_download(repo_id=record["model_repo"], token=token, local_dir=str(dest),
                                      allow_patterns=patterns))


def _run_facts(source: dict, record: dict) -> tuple[dict, dict]:
    """(config, model) of the new run: the source run's, with the job's base model if it chose another."""
    cfg = dict(source.get("config") or {})
    model = dict(source.get("model") or {})
    if record.get("model"):
        cfg["base_model"] = record["model"]
        model = {"id": record["model"], "path": None, "notice": "", "public_id": record["model"]}
    return cfg, model


def finish_as_run(record: dict, token: str, stream_events: list[dict],
                  endpoint: str | None = None) -> tuple[str | None, str]:
    """The finished job as a local run (adapter from the Hub repo, its log, already published).
    -> (run id, message). The source run is untouched; a failure leaves the job's result on the Hub."""
    if not runs.exists(record.get("source_run")):
        return None, (f"The adapter is on the Hub at `{record['model_repo']}`, but the run it came from was "
                      "removed here, so it cannot be shown as a run.")
    source = runs.read_run(record["source_run"])
    with tempfile.TemporaryDirectory() as tmp:
        got, error = _call(lambda: _download(_api(endpoint), record, token, Path(tmp) / "repo"),
                           "downloading the adapter", 3 * hub_timeouts.timeout_s())
        if error:
            return None, error + f" The adapter stays at `{record['model_repo']}`; refresh to try again."
        if not all((got / f).is_file() for f in publish.REQUIRED_FILES):
            return None, f"`{record['model_repo']}` holds no adapter (the job did not push one)."
        events = runs.read_jsonl(got / LOG_FILE) or stream_events
        cfg, model = _run_facts(source, record)
        rid = runs.create_run(cfg, runs.read_datasets(record["source_run"]), total_steps=source.get("total_steps", 0),
                              model=model, eval_rows=source.get("eval_rows"), precision=source.get("precision"),
                              job={k: record.get(k) for k in ("job_id", "flavor", "url", "data_repo")},
                              published={"repo_id": record["model_repo"]})
        shutil.copytree(got, runs.run_dir(rid) / "adapter", ignore=shutil.ignore_patterns(LOG_FILE, ".cache"))
    runs.append_log(rid, events)
    evals = [e for e in events if e.get("eval_loss") is not None]
    best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
    runs.update_run(rid, status=RunStatus.FINISHED, step=max([e["step"] for e in events] or [0]),
                    best_step=best["step"] if best else None, best_eval_loss=best["eval_loss"] if best else None,
                    message=f"Trained on Hugging Face Jobs (`{record.get('flavor')}`), published to "
                            f"`{record['model_repo']}`.")
    return rid, (f"The job's adapter is now a run here: evaluate it against the base in step 4. "
                 f"It is already published at `{record['model_repo']}`.")
