"""Take the model home: a run's merged model as GGUF files for llama.cpp and Ollama.

Written with the `gguf` package (the writer half of llama.cpp's own Python library), by
inverting what transformers' GGUF reader does (`modeling_gguf_pytorch_utils.py`,
`integrations/ggml.py`, `integrations/gguf/gguf_tokenizer_mapping.py`):

- tensor names from `gguf.get_tensor_name_map(arch, n_layers)` (`model.layers.N.self_attn.q_proj`
  -> `blk.N.attn_q`), the tied `lm_head` left out (the reader ties it back when `output.weight`
  is absent);
- Llama only: the rows of `q_proj`/`k_proj` permuted the way llama.cpp's converter does (its
  rotary embedding pairs neighbouring values, Hugging Face's pairs the two halves); the reader's
  `LlamaTensorProcessor` reverses it. Qwen2 keeps its layout (llama.cpp uses NEOX rope there);
- metadata under llama.cpp's key names (`llama.context_length`, ...) and the tokenizer as
  `tokenizer.ggml.*` (model "gpt2", tokens, token types, merges, special ids, chat template),
  field for field as in the embedded SmolLM2 GGUF that llama.cpp itself wrote;
- 1-D tensors (norms, biases) stay f32, as llama.cpp writes them; 2-D ones are f16, or q8_0
  (blocks of 32 weights sharing one f16 scale: 34 bytes per 32 weights).

`export_run` is a generator of progress dicts (merge, convert, quantise, zip) so the panel can
stream it. Everything is written under `<run_dir>/gguf.tmp-*` and renamed to `<run_dir>/gguf/`
only when complete: an interrupted or failed export serves no half file. The files live in the
run directory, so the retention sweep (`runs.cleanup_old_runs`) deletes them with the run.

No torch at import time.
"""
from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shlex
import shutil
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

QUANTS = ("f16", "q8_0")
QUANT_HELP = {
    "f16": "16-bit floats: the merged model as trained, to within rounding; twice the size of q8_0.",
    "q8_0": "8-bit blocks with one scale per 32 weights: about half the size and faster on a CPU; "
            "answers usually the same, not always.",
}
# model_type -> llama.cpp architecture. Only what the Training tab offers, and what this module
# was checked against (tests/test_gguf_export.py); anything else is refused with the reason.
ARCHS = {"llama": "llama", "qwen2": "qwen2"}
# llama.cpp's name for how a vocabulary splits text before BPE (`tokenizer.ggml.pre`); it picks
# it by hashing the tokenizer's output, we by the base model (the two the tab offers).
PRE_TOKENIZERS = (("smollm2", "smollm"), ("qwen2", "qwen2"))
EXPORT_DIR = "gguf"
MANIFEST = "export.json"
Q8_BLOCK, Q8_BYTES = 32, 34
# Disk head-room kept free on top of what the export writes (bytes).
DISK_MARGIN = 200 * 1024 ** 2
# Seconds per million parameters on this kind of CPU (2 cores), measured on the default run
# (docs/benchmarks.md); the estimate shown before and during an export.
RATE_S_PER_M = {"merge": 0.08, "f16": 0.10, "q8_0": 0.14, "zip": 0.02}


class ExportError(Exception):
    """A refusal or failure with a sentence for the learner (our own words, no user text)."""


# ---------------------------------------------------------------- what can be exported
def _cfg(config: Any, key: str, default=None):
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def rope_theta(config: Any) -> float:
    params = _cfg(config, "rope_parameters") or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta or _cfg(config, "rope_theta") or 10000.0)


def refusal(config: Any) -> str | None:
    """Why this model cannot be converted (a sentence), or None when it can."""
    model_type = _cfg(config, "model_type")
    if model_type not in ARCHS:
        return (f"This model's architecture ({model_type or 'unknown'}) cannot be exported to GGUF here: "
                "the exporter handles Llama (SmolLM2) and Qwen2 (Qwen2.5) models only.")
    params = _cfg(config, "rope_parameters") or {}
    rope_type = (params.get("rope_type") if isinstance(params, dict) else None) or "default"
    scaling = _cfg(config, "rope_scaling")
    if rope_type != "default" or (isinstance(scaling, dict) and scaling.get("rope_type", scaling.get("type"))
                                  not in (None, "default")):
        return ("This model uses scaled rotary embeddings (rope type "
                f"{rope_type if rope_type != 'default' else scaling.get('rope_type', scaling.get('type'))}), "
                "which this exporter does not write: it cannot be exported to GGUF here.")
    heads = int(_cfg(config, "num_attention_heads") or 0)
    hidden = int(_cfg(config, "hidden_size") or 0)
    head_dim = _cfg(config, "head_dim")
    if heads <= 0 or hidden % heads or (head_dim and int(head_dim) != hidden // heads):
        return ("This model's attention heads are not hidden size / head count wide, which this exporter "
                "does not write: it cannot be exported to GGUF here.")
    if _cfg(config, "use_sliding_window"):
        return "This model uses sliding-window attention, which this exporter does not write."
    if model_type == "llama" and (_cfg(config, "attention_bias") or _cfg(config, "mlp_bias")):
        return "This Llama model has attention or MLP biases, which this exporter does not write."
    return None


def param_counts(config: Any) -> dict:
    """Weights by kind, from the config alone (no torch): {'matrix': n, 'vector': n, 'embed_rows': rows}."""
    hidden = int(_cfg(config, "hidden_size"))
    inter = int(_cfg(config, "intermediate_size"))
    layers = int(_cfg(config, "num_hidden_layers"))
    heads = int(_cfg(config, "num_attention_heads"))
    kv = int(_cfg(config, "num_key_value_heads") or heads)
    vocab = int(_cfg(config, "vocab_size"))
    head_dim = hidden // heads
    kv_dim = kv * head_dim
    per_layer = hidden * hidden * 2 + hidden * kv_dim * 2 + 3 * hidden * inter
    matrix = layers * per_layer + vocab * hidden
    if not _cfg(config, "tie_word_embeddings", True):
        matrix += vocab * hidden
    vector = layers * 2 * hidden + hidden
    if _cfg(config, "model_type") == "qwen2":
        vector += layers * (hidden + 2 * kv_dim)  # q/k/v biases
    return {"matrix": matrix, "vector": vector}


def estimate_bytes(config: Any, tokenizer_bytes: int = 0) -> dict[str, int]:
    """Size of each GGUF file before it is written: f16 2 bytes a weight, q8_0 34/32, norms f32."""
    counts = param_counts(config)
    vectors = counts["vector"] * 4
    return {"f16": counts["matrix"] * 2 + vectors + tokenizer_bytes,
            "q8_0": counts["matrix"] * Q8_BYTES // Q8_BLOCK + vectors + tokenizer_bytes}


def estimate_seconds(config: Any, quants: tuple[str, ...]) -> dict[str, float]:
    millions = sum(param_counts(config).values()) / 1e6
    plan = {"merge": RATE_S_PER_M["merge"] * millions}
    for q in quants:
        plan[q] = RATE_S_PER_M[q] * millions
    plan["zip"] = RATE_S_PER_M["zip"] * millions * len(quants)
    return plan


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def human_seconds(s: float) -> str:
    s = max(1, round(s))
    return f"{s} s" if s < 90 else f"{s // 60} min {s % 60:02d} s"


# ---------------------------------------------------------------- the run
def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def run_model_config(run_dir: Path) -> dict | None:
    """The base model's config.json as a dict (read without torch), or None if it is not on disk."""
    run = _read_json(Path(run_dir) / "run.json")
    model = run.get("model") or {}
    path = model.get("path")
    if path and (Path(path) / "config.json").is_file():
        return _read_json(Path(path) / "config.json")
    merged = Path(run_dir) / "merged" / "config.json"
    return _read_json(merged) if merged.is_file() else None


def check_run(run_dir: Path) -> str | None:
    """Why this run cannot be exported now (a sentence), or None."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        return "This run no longer exists (it was deleted or expired): train a model first."
    adapter = run_dir / "adapter"
    if not ((adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()):
        return ("This run has no trained adapter yet. Let it finish (or stop it early) first; "
                "the export merges the adapter into the base model.")
    config = run_model_config(run_dir)
    if config is not None:
        return refusal(config)
    return None


def pre_tokenizer_name(run: dict) -> str:
    ids = " ".join(str(x) for x in ((run.get("model") or {}).get("public_id"), (run.get("model") or {}).get("id"),
                                    (run.get("config") or {}).get("base_model"))).lower()
    for needle, pre in PRE_TOKENIZERS:
        if needle in ids:
            return pre
    return "default"


def _system_of(row: dict) -> str | None:
    for key in ("messages", "prompt"):
        msgs = row.get(key)
        if isinstance(msgs, list) and msgs and isinstance(msgs[0], dict) and msgs[0].get("role") == "system":
            content = msgs[0].get("content")
            if isinstance(content, list):
                content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return str(content or "")
    return None


def template_default_system(tokenizer) -> str | None:
    """The system prompt a ChatML template adds when the conversation has none (SmolLM2's, Qwen2.5's)."""
    marker = "\u0000FTLAB\u0000"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                             add_generation_prompt=False)
    except Exception:  # noqa: BLE001 - no template, or one that refuses a lone user turn
        return None
    m = re.match(r"^\s*<\|im_start\|>system\n(.*?)<\|im_end\|>", text, re.S)
    return m.group(1) if m and marker not in m.group(1) else None


def trained_system_prompt(run_dir: Path, tokenizer) -> tuple[str | None, str]:
    """(system prompt the run trained with, where it came from).

    The rows' own system message when they carry one (the most common one if they differ),
    else the one the chat template adds to every conversation without one.
    """
    rows: list[dict] = []
    for name in ("data/train.jsonl", "train.jsonl"):
        path = Path(run_dir) / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
            break
    systems = [s for s in (_system_of(r) for r in rows if isinstance(r, dict)) if s is not None]
    if systems:
        prompt, count = Counter(systems).most_common(1)[0]
        how = "the training rows' system message" + ("" if count == len(rows) else
                                                      f" (the most common one, in {count} of {len(rows)} rows)")
        return prompt, how
    default = template_default_system(tokenizer)
    if default is not None:
        return default, "the chat template's default (the training rows had none)"
    return None, "none"


# ---------------------------------------------------------------- tensors
def gguf_arch(config: Any):
    import gguf

    name = ARCHS[_cfg(config, "model_type")]
    for arch, arch_name in gguf.MODEL_ARCH_NAMES.items():
        if arch_name == name:
            return arch, name
    raise ExportError(f"The installed gguf package does not know the {name} architecture.")


def _permute_rope(w, n_head: int, n_head_kv: int | None):
    """llama.cpp's `LlamaModel.permute` (convert_hf_to_gguf.py); transformers' reader reverses it."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_tensors(model) -> Iterator[tuple[str, Any]]:
    """(GGUF name, float32 numpy array) for every weight of a merged Llama/Qwen2 model, in order."""
    import gguf
    import torch

    config = model.config
    arch, _ = gguf_arch(config)
    n_layers = int(config.num_hidden_layers)
    names = gguf.get_tensor_name_map(arch, n_layers)
    heads, kv = int(config.num_attention_heads), int(config.num_key_value_heads or config.num_attention_heads)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # the reader (and llama.cpp) reuse token_embd when output.weight is absent
        base, _, suffix = hf_name.rpartition(".")
        mapped = names.get_name(base)
        if mapped is None:
            raise ExportError(f"The exporter does not know where the weight {hf_name} goes in a GGUF file.")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if config.model_type == "llama":
            if base.endswith("self_attn.q_proj"):
                data = _permute_rope(data, heads, heads)
            elif base.endswith("self_attn.k_proj"):
                data = _permute_rope(data, heads, kv)
        yield f"{mapped}.{suffix}", data


def _encode(data, quant: str, name: str):
    """-> (array to store, raw dtype or None). 1-D tensors and norms stay f32, as llama.cpp keeps them."""
    import gguf
    import numpy as np

    if data.ndim <= 1 or name.endswith("_norm.weight"):
        return data.astype(np.float32), None
    if quant == "q8_0" and data.shape[-1] % Q8_BLOCK == 0:
        return gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0), \
            gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


# ---------------------------------------------------------------- tokenizer
def tokenizer_fields(tokenizer, vocab_size: int) -> dict:
    """The `tokenizer.ggml.*` values llama.cpp writes for a byte-level BPE vocabulary."""
    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED: embedding rows past the tokenizer (Qwen2.5 pads to a round size)
        elif i in added:
            tokens.append(by_id[i])
            types.append(3 if added[i].special else 4)  # CONTROL / USER_DEFINED
        else:
            tokens.append(by_id[i])
            types.append(1)  # NORMAL
    model = json.loads(tokenizer.backend_tokenizer.to_str()).get("model") or {}
    if model.get("type") != "BPE":
        raise ExportError("Only byte-level BPE tokenizers (SmolLM2's, Qwen2.5's) can be written to GGUF here.")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    return {"tokens": tokens, "types": types, "merges": merges, "bos": bos,
            "eos": tokenizer.eos_token_id, "unk": tokenizer.unk_token_id, "pad": tokenizer.pad_token_id,
            "add_bos": bool(bos is not None and probe and probe[0] == bos),
            "chat_template": tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None}


# ---------------------------------------------------------------- one file
def write_gguf(model, tokenizer, out_path: Path, quant: str, *, name: str = "model",
               pre: str = "default", on_tensor=None) -> Path:
    """Write the merged `model` with its tokenizer as one GGUF file (`quant` f16 or q8_0).

    Written to `<out_path>.part` and renamed at the end. `on_tensor(done, total)` is called as
    tensors are encoded.
    """
    import gguf

    if quant not in QUANTS:
        raise ExportError(f"Unknown GGUF type {quant!r}: choose f16 or q8_0.")
    config = model.config
    reason = refusal(config.to_dict())
    if reason:
        raise ExportError(reason)
    _, arch_name = gguf_arch(config)
    out_path = Path(out_path)
    part = out_path.with_name(out_path.name + ".part")
    tok = tokenizer_fields(tokenizer, int(config.vocab_size))
    for key in ("bos", "eos"):  # Qwen2.5's tokenizer names no BOS; its config does (llama.cpp writes it)
        if tok[key] is None and getattr(config, f"{key}_token_id", None) is not None:
            value = getattr(config, f"{key}_token_id")
            tok[key] = value[0] if isinstance(value, list) else value
    writer = gguf.GGUFWriter(str(part), arch=arch_name)
    try:
        writer.add_type("model")
        writer.add_name(name)
        writer.add_block_count(int(config.num_hidden_layers))
        writer.add_context_length(int(config.max_position_embeddings))
        writer.add_embedding_length(int(config.hidden_size))
        writer.add_feed_forward_length(int(config.intermediate_size))
        writer.add_head_count(int(config.num_attention_heads))
        writer.add_head_count_kv(int(config.num_key_value_heads or config.num_attention_heads))
        writer.add_rope_freq_base(rope_theta(config))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
        writer.add_vocab_size(int(config.vocab_size))
        writer.add_rope_dimension_count(int(config.hidden_size) // int(config.num_attention_heads))
        writer.add_add_space_prefix(False)
        writer.add_add_bos_token(tok["add_bos"])
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tok["tokens"])
        writer.add_token_types(tok["types"])
        writer.add_token_merges(tok["merges"])
        for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                         ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
            if tok[key] is not None:
                add(int(tok[key]))
        if tok["chat_template"]:
            writer.add_chat_template(tok["chat_template"])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        total = len(model.state_dict())
        for done, (tensor_name, data) in enumerate(gguf_tensors(model), start=1):
            stored, raw = _encode(data, quant, tensor_name)
            writer.add_tensor(tensor_name, stored, raw_dtype=raw)
            if on_tensor:
                on_tensor(done, total)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(part, out_path)
    except BaseException:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - already failing; the partial file goes below
            pass
        part.unlink(missing_ok=True)
        raise
    return out_path


# ---------------------------------------------------------------- Ollama and README
OLLAMA_CHATML = (
    '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n'
)


def _triple_quoted(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile_text(gguf_name: str, chat_template: str | None, system: str | None, *,
                   other: str | None = None) -> str:
    """An Ollama Modelfile: the file, its chat template (as Ollama's Go template), the system prompt."""
    lines = ["# Ollama Modelfile written by Fine-Tuning Lab.", f"FROM ./{gguf_name}"]
    if other:
        lines.append(f"# For the other precision: FROM ./{other}")
    chatml = bool(chat_template and "<|im_start|>" in chat_template)
    if chatml:
        lines += ["", "# The model's chat template (ChatML), in Ollama's template language.",
                  f"TEMPLATE {_triple_quoted(OLLAMA_CHATML)}", 'PARAMETER stop "<|im_end|>"']
    else:
        lines += ["", "# No TEMPLATE: Ollama reads the chat template stored in the GGUF file."]
    if system is not None:
        lines += ["", "# The system prompt the run was trained with.", f"SYSTEM {_triple_quoted(system)}"]
    lines += ["", "# Greedy decoding, as the app's evaluation and chat answer.", "PARAMETER temperature 0", ""]
    return "\n".join(lines)


def readme_text(files: dict[str, dict], model_name: str, base: str, system: str | None, how: str) -> str:
    first = next(iter(files))
    lines = [f"# {model_name}: the merged model as GGUF", "",
             f"Base model `{base}` with this run's LoRA adapter merged in (merge_and_unload), written by "
             "Fine-Tuning Lab for llama.cpp and Ollama.", "", "| file | type | size |", "|---|---|---|"]
    for quant, info in files.items():
        lines.append(f"| `{info['file']}` | {quant}: {QUANT_HELP[quant]} | {human_bytes(info['bytes'])} |")
    lines += ["| `Modelfile` | Ollama recipe: the file, chat template, system prompt, greedy decoding | |", "",
              "## Run it with Ollama", "", "```sh", f"ollama create {model_name} -f Modelfile",
              f"ollama run {model_name}", "```", "",
              "## Run it with llama.cpp", "", "```sh",
              f"llama-cli -m {files[first]['file']}" + (f" -sys {shlex.quote(system)}" if system else "")
              + " --temp 0", "```", ""]
    if system is not None:
        lines += [f"The system prompt above is {how}. The app's answers were greedy (temperature 0).", ""]
    lines += ["The app's tests read f16 exports back with transformers (`gguf_file=`) and get the merged "
              "model's greedy answers; q8_0 usually gives the same answers, not always.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the whole export

class _Cancelled(Exception):
    pass


def _threaded(fn, *args, **kwargs):
    """Run fn(*args, on_tensor=tick, **kwargs) in a thread; yield (done, total) ticks as they come and
    return fn's result. If the consumer stops (GeneratorExit), the next tick raises inside the
    worker, which is joined before this generator ends, so nothing keeps writing afterwards."""
    ticks: queue.Queue = queue.Queue()
    cancel = threading.Event()
    out: dict = {}

    def tick(done, total):
        if cancel.is_set():
            raise _Cancelled()
        ticks.put((done, total))

    def work():
        try:
            out["value"] = fn(*args, on_tensor=tick, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            out["error"] = exc
        finally:
            ticks.put(None)

    worker = threading.Thread(target=work, daemon=True, name="gguf-export")
    worker.start()
    try:
        while (item := ticks.get()) is not None:
            yield item
    finally:
        cancel.set()
        worker.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


@dataclass
class Progress:
    t0: float
    plan: dict[str, float]

    def event(self, stage: str, message: str, done_stages: list[str], part: float = 0.0, **extra) -> dict:
        total = sum(self.plan.values()) or 1.0
        done = sum(self.plan[s] for s in done_stages) + part * self.plan.get(stage, 0.0)
        elapsed = time.monotonic() - self.t0
        left = max(0.0, total - done)
        # Scale the remaining estimate by how the finished part compared with its estimate.
        if done > 0.05 * total:
            left *= max(0.5, min(3.0, elapsed / done))
        return {"kind": "progress", "stage": stage, "message": message, "fraction": min(1.0, done / total),
                "elapsed": elapsed, "eta_s": left, **extra}


def _tokenizer_bytes(tokenizer) -> int:
    try:
        return len(tokenizer.backend_tokenizer.to_str()) + len(tokenizer.chat_template or "")
    except Exception:  # noqa: BLE001
        return 0


def export_name(run_dir: Path) -> str:
    run = _read_json(Path(run_dir) / "run.json")
    model = str((run.get("model") or {}).get("public_id") or (run.get("model") or {}).get("id") or "model")
    method = str((run.get("config") or {}).get("method") or "").lower()
    name = "-".join(p for p in (model.rstrip("/").split("/")[-1], method, "ftlab") if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower()[:80] or "ftlab-model"


def existing_export(run_dir: Path) -> dict | None:
    """The manifest of the last complete export of this run, or None."""
    manifest = Path(run_dir) / EXPORT_DIR / MANIFEST
    info = _read_json(manifest) if manifest.is_file() else {}
    zip_name = info.get("zip")
    return info if zip_name and (Path(run_dir) / EXPORT_DIR / zip_name).is_file() else None


def _gone(run_dir: Path) -> bool:
    return not (Path(run_dir) / "run.json").is_file()


def explain_os_error(exc: OSError, run_dir: Path) -> str:
    import errno

    if _gone(run_dir):
        return "The run was deleted while it was being exported (it expired or was removed); nothing was kept."
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(Path(run_dir)).free if Path(run_dir).exists() else 0
        return (f"The disk filled up while writing the export ({human_bytes(free)} free now). "
                "The partial files were removed; delete an older run or pick only q8_0, then try again.")
    return f"The export could not write its files ({type(exc).__name__}); the partial files were removed."


def _disk_refusal(sizes: dict[str, int], quants, free: int) -> str | None:
    need = sum(sizes[q] for q in quants) * 2 + DISK_MARGIN  # the files, and the zip holding them
    if free >= need:
        return None
    return (f"Not enough disk space for this export: it needs about {human_bytes(need)} "
            f"(the GGUF files and the zip holding them) and {human_bytes(free)} is free. "
            "Nothing was written. Delete an older run or pick only q8_0, then try again.")


def export_run(run_dir: Path, quants: tuple[str, ...] | list[str] = QUANTS, *, disk_free=None) -> Iterator[dict]:
    """Merge, convert, quantise and zip one run. Yields progress dicts, then
    {"kind": "done", "zip": path, "files": {...}, ...} or {"kind": "error", "message": ...}.

    `disk_free(path) -> bytes` is injectable for tests (default: shutil.disk_usage).
    """
    run_dir = Path(run_dir)
    quants = tuple(q for q in QUANTS if q in set(quants or ()))
    if not quants:
        yield {"kind": "error", "message": "Pick at least one file type: f16, q8_0 or both."}
        return
    reason = check_run(run_dir)
    if reason:
        yield {"kind": "error", "message": reason}
        return
    for stale in run_dir.glob(f"{EXPORT_DIR}.tmp-*"):
        # Left by a process killed mid-export. Safe: the panel runs one export at a time
        # (concurrency_id "gguf-export", limit 1), so no live export owns one.
        shutil.rmtree(stale, ignore_errors=True)
    config = run_model_config(run_dir) or {}
    progress = Progress(time.monotonic(), estimate_seconds(config, quants) if config else {"merge": 1.0})
    done: list[str] = []
    tmp = run_dir / f"{EXPORT_DIR}.tmp-{secrets.token_hex(4)}"
    free_of = disk_free or (lambda p: shutil.disk_usage(p).free)
    if config:
        message = _disk_refusal(estimate_bytes(config), quants, free_of(run_dir))
        if message:  # known before the merge: say it at once
            yield {"kind": "error", "message": message}
            return
    try:
        yield progress.event("merge", "Merging the adapter into the base model…", done)
        from training.hub.publish import load_merged

        model, tokenizer = load_merged(run_dir)
        config = model.config.to_dict()
        reason = refusal(config)
        if reason:
            yield {"kind": "error", "message": reason}
            return
        progress.plan = estimate_seconds(config, quants)
        message = _disk_refusal(estimate_bytes(config, _tokenizer_bytes(tokenizer)), quants, free_of(run_dir))
        if message:
            yield {"kind": "error", "message": message}
            return
        done.append("merge")
        if _gone(run_dir):
            raise FileNotFoundError(str(run_dir))
        tmp.mkdir()
        run = _read_json(run_dir / "run.json")
        name = export_name(run_dir)
        pre = pre_tokenizer_name(run)
        files: dict[str, dict] = {}
        for quant in quants:
            stage = "convert" if quant == "f16" else "quantise"
            label = ("Writing the f16 GGUF file" if quant == "f16"
                     else "Quantising to q8_0 and writing the file")
            target = tmp / f"{name}-{quant}.gguf"
            yield {**progress.event(quant, f"{label}…", done), "stage": stage}
            ticks = _threaded(write_gguf, model, tokenizer, target, quant, name=name, pre=pre)
            try:
                for i, n in ticks:
                    if i == n or i % 16 == 0:
                        yield {**progress.event(quant, f"{label}: tensor {i} of {n}…", done, 0.9 * i / n),
                               "stage": stage}
            finally:
                ticks.close()  # stops and joins the writer before the temp folder is removed
            files[quant] = {"file": target.name, "bytes": target.stat().st_size}
            done.append(quant)
            if _gone(run_dir):
                raise FileNotFoundError(str(run_dir))
        yield progress.event("zip", "Writing the Modelfile and README and zipping…", done)
        system, how = trained_system_prompt(run_dir, tokenizer)
        order = [q for q in ("q8_0", "f16") if q in files]
        main = files[order[0]]["file"]
        other = files[order[1]]["file"] if len(order) > 1 else None
        (tmp / "Modelfile").write_text(modelfile_text(main, tokenizer.chat_template if isinstance(
            tokenizer.chat_template, str) else None, system, other=other), encoding="utf-8")
        base = str((run.get("model") or {}).get("public_id") or "the base model")
        (tmp / "README.md").write_text(readme_text({q: files[q] for q in order}, name, base, system, how),
                                       encoding="utf-8")
        zip_name = f"{name}-gguf.zip"
        with zipfile.ZipFile(tmp / (zip_name + ".part"), "w") as zf:
            for f in [files[q]["file"] for q in order] + ["Modelfile", "README.md"]:
                # GGUF weights hardly compress: stored, so zipping costs a copy, not minutes of deflate.
                kind = zipfile.ZIP_STORED if f.endswith(".gguf") else zipfile.ZIP_DEFLATED
                zf.write(tmp / f, f"{name}/{f}", compress_type=kind)
        os.replace(tmp / (zip_name + ".part"), tmp / zip_name)
        manifest = {"name": name, "files": files, "zip": zip_name, "zip_bytes": (tmp / zip_name).stat().st_size,
                    "system_prompt": system, "system_source": how, "base": base, "pre": pre,
                    "method": (run.get("config") or {}).get("method"), "created_at": time.time(),
                    "seconds": round(time.monotonic() - progress.t0, 1)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        done.append("zip")
        if _gone(run_dir):
            raise FileNotFoundError(str(run_dir))
        final = run_dir / EXPORT_DIR
        old = run_dir / f"{EXPORT_DIR}.tmp-old-{secrets.token_hex(4)}"
        if (final / "pushed.json").is_file():  # what the Hub holds, for the model card
            shutil.copy2(final / "pushed.json", tmp / "pushed.json")
        if final.exists():
            final.replace(old)
        tmp.replace(final)
        shutil.rmtree(old, ignore_errors=True)
        yield {**manifest, "kind": "done", "dir": str(final), "zip": str(final / zip_name)}
    except ExportError as exc:
        yield {"kind": "error", "message": str(exc)}
    except FileNotFoundError as exc:
        if _gone(run_dir):
            yield {"kind": "error", "message": "The run was deleted while it was being exported (it expired or "
                                               "was removed); nothing was kept."}
        else:
            yield {"kind": "error", "message": explain_os_error(exc, run_dir)}
    except OSError as exc:
        yield {"kind": "error", "message": explain_os_error(exc, run_dir)}
    finally:
        # Interrupted (the browser went away: GeneratorExit at a yield), failed or done:
        # a temp folder never stays behind, so no half file is ever served.
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the Hub
def card_section_for(files: dict) -> str:
    """Model-card lines saying which pushed file is which ('' when there are none)."""
    if not files:
        return ""
    lines = ["", "## GGUF files for llama.cpp and Ollama", "",
             "The merged model (base + this adapter) as GGUF, in `gguf/`:", "",
             "| file | what it is | size |", "|---|---|---|"]
    for quant in QUANTS:
        if quant in files:
            info = files[quant]
            lines.append(f"| `gguf/{info['file']}` | {quant}: {QUANT_HELP[quant]} | {human_bytes(info['bytes'])} |")
    lines += ["| `gguf/Modelfile` | for Ollama: `ollama create <name> -f Modelfile` (chat template, system prompt) | |",
              "| `gguf/README.md` | the commands to run it with Ollama or llama.cpp | |",
              "| `adapter_model.safetensors`, `adapter_config.json` | the LoRA adapter (PEFT), at the top | |", ""]
    return "\n".join(lines)


def card_section(run_dir: Path) -> str:
    """The GGUF lines for a run whose export was pushed ('' otherwise): an adapter re-push keeps them."""
    pushed = _read_json(Path(run_dir) / EXPORT_DIR / "pushed.json")
    return card_section_for(pushed.get("files") or {})


def gguf_repo_files(run_dir: Path) -> list[tuple[str, Path]]:
    """(path in the repo, local file) for the last complete export."""
    info = existing_export(run_dir)
    if not info:
        return []
    folder = Path(run_dir) / EXPORT_DIR
    names = [f["file"] for f in info["files"].values()] + ["Modelfile", "README.md"]
    return [(f"gguf/{n}", folder / n) for n in names if (folder / n).is_file()]


def upload_bytes(run_dir: Path) -> int:
    return sum(f.stat().st_size for _, f in gguf_repo_files(run_dir))


def push_gguf(run_dir: Path, repo_id: str, token: str, private: bool, endpoint: str | None = None):
    """Upload the last export under `gguf/` in the learner's repo, next to the adapter, in one commit
    with a model card that says which file is which. -> publish.PushResult. A failure leaves the
    repo as it was (one commit or none) and the export downloadable."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from training.hub import publish

    run_dir = Path(run_dir)
    info = existing_export(run_dir)
    if not info:
        return publish.PushResult(False, "Export the model first (Export for llama.cpp / Ollama), then push it.")
    if not token:
        return publish.PushResult(False, "Sign in with Hugging Face, or paste an access token, then push.")
    namespace, _, name = repo_id.partition("/")
    checked, error = publish.validate_repo_id(name, namespace)
    if error:
        return publish.PushResult(False, error)
    has_adapter = bool(publish.adapter_files(run_dir))
    publish_dir = publish.prepare_publish_dir(run_dir, repo_id)
    card = (publish_dir / "README.md").read_text(encoding="utf-8")
    if "## GGUF files for llama.cpp and Ollama" not in card:
        card += card_section_for(info["files"])
    card_path = publish_dir / "README.gguf.md"
    card_path.write_text(card, encoding="utf-8")
    operations = [CommitOperationAdd(path, str(local)) for path, local in gguf_repo_files(run_dir)]
    operations.append(CommitOperationAdd("README.md", str(card_path)))
    if has_adapter:  # next to the adapter: the repo gets both, so the card's table is true
        operations += [CommitOperationAdd(f.name, str(f)) for f in publish.adapter_files(run_dir)]
    stage = "create"
    try:
        api = HfApi(endpoint=endpoint)
        repo_url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
        stage = "upload"
        commit = api.create_commit(repo_id, operations, token=token, repo_type="model",
                                   commit_message="Upload GGUF files from Fine-Tuning Lab",
                                   commit_description="Merged model as GGUF (llama.cpp, Ollama), Modelfile, README.")
    except Exception as exc:  # noqa: BLE001 - the learner gets a message; the export stays downloadable
        message, retry = publish.explain_error(exc, stage, repo_id)
        message = message.replace("Your adapter is still saved here", "Your GGUF export is still saved here")
        return publish.PushResult(False, message, retryable=retry)
    (run_dir / EXPORT_DIR / "pushed.json").write_text(json.dumps({"files": info["files"], "repo": repo_id,
                                                                  "at": time.time()}), encoding="utf-8")
    url = str(repo_url)
    files = [op.path_in_repo for op in operations]
    return publish.PushResult(True, f"GGUF files pushed to [{repo_id}]({url}) under `gguf/`, next to the adapter "
                                    f"({len(files)} files, {'private' if private else 'public'}); the model card "
                                    "says which file is which.", url=url,
                              commit_url=getattr(commit, "commit_url", None), files=files)
