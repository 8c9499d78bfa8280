"""Push a finished run to the Hugging Face Hub: adapter, tokenizer, model card, loss PNG.

The token is a plain argument of `push_run` and lives only for that call:
it is never logged, stored, echoed, or put into a message we return (every
message is built from status codes and our own words). Whatever the Hub
answers, the adapter stays on disk and `adapter_zip` keeps it downloadable;
a retry calls `push_run` again, which is idempotent (create with
exist_ok, and the client skips files the Hub already has).

No torch at import time; merging the optional full model imports it lazily.
"""
from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from training.hub import model_card

MAX_NAME_LEN = 96
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")

# Files from adapter/ that someone needs to use the adapter. Anything else the
# trainer may have left there (training_args.bin is a pickle, optimizer state)
# is not published.
ADAPTER_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "generation_config.json",
)
REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")
MERGED_FILES_SUFFIXES = (".json", ".safetensors", ".jinja", ".txt", ".model")


@dataclass
class PushResult:
    ok: bool
    message: str  # Markdown for the learner; never contains the token
    url: str | None = None
    commit_url: str | None = None
    files: list[str] = field(default_factory=list)
    retryable: bool = False


# ---------------------------------------------------------------- names
def check_part(part: str, what: str) -> str | None:
    if not part:
        return f"The {what} is empty."
    if len(part) > MAX_NAME_LEN:
        return f"The {what} is {len(part)} characters long; the Hub allows at most {MAX_NAME_LEN}."
    if not _NAME_RE.match(part):
        return f"The {what} may only use letters, digits, '-', '_' and '.'."
    if "--" in part or ".." in part:
        return f"The {what} may not contain '--' or '..'."
    if part[0] in "-." or part[-1] in "-.":
        return f"The {what} may not start or end with '-' or '.'."
    return None


def validate_repo_id(name: str, namespace: str | None) -> tuple[str | None, str | None]:
    """Check a repository name before any request. -> (repo_id, None) or (None, message).

    `name` may be a bare name (then `namespace`, the signed-in user, is used) or
    "namespace/name" to push into an organisation the user can write to.
    """
    name = (name or "").strip()
    if "/" in name:
        if name.count("/") != 1:
            return None, "Use the form `name` or `namespace/name`, with a single '/'."
        namespace, name = name.split("/")
    namespace = (namespace or "").strip()
    if not namespace:
        return None, "Sign in first (or paste a token) so the app knows your Hub user name."
    for part, what in ((namespace, "namespace"), (name, "repository name")):
        error = check_part(part, what)
        if error:
            return None, error
    return f"{namespace}/{name}", None


# ---------------------------------------------------------------- local artefacts
def adapter_files(run_dir: Path) -> list[Path]:
    adapter = Path(run_dir) / "adapter"
    return [adapter / f for f in ADAPTER_FILES if (adapter / f).is_file()]


def prepare_publish_dir(run_dir: Path, repo_id: str, include_merged: bool = False) -> Path:
    """Write README.md and the loss PNG under <run_dir>/publish/ and return that folder."""
    run_dir = Path(run_dir)
    out = run_dir / "publish"
    out.mkdir(parents=True, exist_ok=True)
    png = model_card.write_loss_png(model_card.read_log(run_dir / "log.jsonl"), out / model_card.LOSS_PNG)
    card = model_card.render_model_card(run_dir, repo_id, has_loss_png=png is not None,
                                        include_merged=include_merged)
    from training.hub.gguf_export import card_section  # GGUF files pushed earlier stay described

    (out / "README.md").write_text(card + card_section(run_dir), encoding="utf-8")
    return out


def adapter_zip(run_dir: Path) -> Path | None:
    """A zip of the adapter (plus card and PNG when written) the learner can always download."""
    run_dir = Path(run_dir)
    files = adapter_files(run_dir)
    if not files:
        return None
    out = run_dir / "publish"
    out.mkdir(parents=True, exist_ok=True)
    target = out / "adapter.zip"
    tmp = out / "adapter.zip.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"adapter/{f.name}")
        for extra in ("README.md", model_card.LOSS_PNG):
            if (out / extra).is_file():
                zf.write(out / extra, f"adapter/{extra}")
    tmp.replace(target)  # atomic, so a download never sees half a zip
    return target


def load_merged(run_dir: Path):
    """The run's base model with its adapter folded in (merge_and_unload), and its tokenizer.

    Reuses <run_dir>/merged/ when an earlier merge saved it. Only the adapter at the top of
    adapter/ is loaded: for a DPO run that is the policy, never a reference copy.
    """
    run_dir = Path(run_dir)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = run_dir / "merged"
    if (merged_dir / "config.json").is_file() and any(merged_dir.glob("*.safetensors")):
        return AutoModelForCausalLM.from_pretrained(merged_dir), AutoTokenizer.from_pretrained(merged_dir)
    from peft import PeftModel  # lazy: torch only when the learner asked for a merged model

    run = model_card.read_json(run_dir / "run.json")
    summary = model_card.run_summary(run)
    local = summary["load_path"]
    if local and Path(local).is_dir():
        base = AutoModelForCausalLM.from_pretrained(local)
        tokenizer = AutoTokenizer.from_pretrained(local)
    else:
        from training.run.base_model import load_base

        base, tokenizer, _notice = load_base(summary["load_id"])
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter"))
    return model.merge_and_unload(), tokenizer


def merge_to_dir(run_dir: Path) -> Path:
    """Fold the adapter into the base weights once and keep it in <run_dir>/merged/."""
    run_dir = Path(run_dir)
    out = run_dir / "merged"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out  # a retry reuses the merge instead of redoing it
    merged, tokenizer = load_merged(run_dir)
    tmp = run_dir / "merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- errors
def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_no_answer(exc: BaseException) -> bool:
    # httpx (and its fork used by huggingface_hub) raise TransportError
    # subclasses when the connection fails or closes without an answer.
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "NetworkError", "RemoteProtocolError", "ConnectError",
                         "TimeoutException", "ConnectionError"}) or isinstance(exc, OSError)


def explain_error(exc: BaseException, stage: str, repo_id: str) -> tuple[str, bool]:
    """Turn a failure into (message for the learner, worth retrying). Never echoes exception text."""
    status = _status_of(exc)
    keep = " Your adapter is still saved here and can be downloaded below."
    if status == 401:
        return ("The Hub did not accept your sign-in (401): the token is invalid or has expired. "
                "Sign in again (or paste a fresh token) and press Retry." + keep, True)
    if status == 403:
        if stage == "create":
            return (f"The Hub refused to create `{repo_id}` (403). Your token is missing the "
                    "`manage-repos` scope (needed to create repositories), or you cannot create repos "
                    "in that namespace. Sign in again granting it, or use a token with write access." + keep,
                    True)
        return (f"The Hub refused to write to `{repo_id}` (403). Your token is missing the "
                "`write-repos` scope, or the repository belongs to someone else." + keep, True)
    if status == 404:
        return (f"The Hub cannot find `{repo_id}` for this account (404). Check the namespace." + keep, True)
    if status == 409:
        return ("The Hub reported a conflict (409): another change to this repository was in progress. "
                "Press Retry in a moment." + keep, True)
    if status is not None and status >= 500:
        return (f"The Hub is having trouble right now (HTTP {status}). Nothing was lost; "
                "press Retry in a minute." + keep, True)
    if status is not None:
        return f"The Hub answered HTTP {status} during {stage}." + keep, True
    if _is_no_answer(exc):
        return ("No answer from the Hub (connection refused or closed). Check your connection "
                "and press Retry." + keep, True)
    return f"The push stopped during {stage} ({type(exc).__name__})." + keep, True


def timeout_message(stage: str, seconds: float, last_status: int | None) -> str:
    """The message when the Hub did not finish within the push's deadline (training/hub/timeouts.py)."""
    keep = " Nothing was lost: your adapter is still saved here and can be downloaded below."
    where = f" ({stage})" if stage else ""
    if last_status is not None and (last_status == 429 or last_status >= 500):
        return (f"The Hub kept failing (HTTP {last_status}) for {seconds:.0f} s{where}, so the push was "
                "stopped." + keep + " Press Retry in a minute.")
    return (f"The Hub did not answer within {seconds:.0f} s{where}, so the push was stopped." + keep +
            " Press Retry in a minute; if it keeps happening, the Hub may be down (status.huggingface.co).")


# ---------------------------------------------------------------- push
def whoami_name(token: str, endpoint: str | None = None) -> tuple[str | None, str | None]:
    """User name for a token, or (None, message)."""
    from huggingface_hub import HfApi

    if not token:
        return None, "Sign in with Hugging Face, or paste an access token."
    try:
        return HfApi(endpoint=endpoint).whoami(token=token)["name"], None
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message
        return None, explain_error(exc, "sign-in", "")[0]


def hub_endpoint() -> str | None:
    """HF_ENDPOINT read at call time (huggingface_hub reads it once, at import)."""
    import os
    return os.environ.get("HF_ENDPOINT", "").strip() or None


def resolve_repo(repo_name: str, namespace: str | None, token: str) -> tuple[str | None, "PushResult | None"]:
    """(repo id, None), or (None, the PushResult to show): the learner's name is looked up when the
    repo name has no owner and none was given. Every push (adapter, GGUF) starts here."""
    if not namespace and "/" not in (repo_name or ""):
        namespace, error = whoami_name(token, endpoint=hub_endpoint())
        if error:
            return None, PushResult(False, error, retryable=True)
    repo_id, error = validate_repo_id(repo_name, namespace)
    return (repo_id, None) if not error else (None, PushResult(False, error))


def push_run(run_dir, repo_id: str, token: str, private: bool, include_merged: bool = False,
             endpoint: str | None = None) -> PushResult:
    """Create `repo_id` if needed and upload the run's adapter, card and PNG (and merged model)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    run_dir = Path(run_dir)
    missing = [f for f in REQUIRED_FILES if not (run_dir / "adapter" / f).is_file()]
    if missing:
        return PushResult(False, "This run has no finished adapter to publish yet "
                                 f"(missing {', '.join(missing)}). Train to the end first.")
    namespace, _, name = repo_id.partition("/")
    checked, error = validate_repo_id(name, namespace)
    if error:
        return PushResult(False, error)
    if not token:
        return PushResult(False, "Sign in with Hugging Face, or paste an access token, then push.")

    publish_dir = prepare_publish_dir(run_dir, repo_id, include_merged)
    adapter_zip(run_dir)  # downloadable whatever happens next

    operations = [CommitOperationAdd(path_in_repo=f.name, path_or_fileobj=str(f))
                  for f in adapter_files(run_dir)]
    operations.append(CommitOperationAdd("README.md", str(publish_dir / "README.md")))
    if (publish_dir / model_card.LOSS_PNG).is_file():
        operations.append(CommitOperationAdd(model_card.LOSS_PNG, str(publish_dir / model_card.LOSS_PNG)))

    stage = "merging the model"
    try:
        if include_merged:
            merged = merge_to_dir(run_dir)
            for f in sorted(merged.iterdir()):
                if f.is_file() and f.name.endswith(MERGED_FILES_SUFFIXES):
                    operations.append(CommitOperationAdd(f"merged/{f.name}", str(f)))
        api = HfApi(endpoint=endpoint)
        stage = "create"
        repo_url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
        stage = "upload"
        commit = api.create_commit(
            repo_id, operations, token=token, repo_type="model",
            commit_message="Upload LoRA adapter from Fine-Tuning Lab",
            commit_description="Adapter, tokenizer, model card and loss curve.",
        )
    except Exception as exc:  # noqa: BLE001 - the learner gets a message, the run is untouched
        message, retry = explain_error(exc, stage, repo_id)
        return PushResult(False, message, retryable=retry)
    url = str(repo_url)
    files = [op.path_in_repo for op in operations]
    return PushResult(True, f"Published to [{repo_id}]({url}) ({len(files)} files, "
                            f"{'private' if private else 'public'}).", url=url,
                      commit_url=getattr(commit, "commit_url", None), files=files)
