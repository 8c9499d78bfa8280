"""Generation with a run's base model and tuned adapter; chat; merge.

Models are loaded per call and not cached in module globals: a cache keyed by
run would hold one learner's model in memory shared by everyone, and the
135M default loads from local disk in well under a second.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from training import runs

MAX_CHAT_CHARS = 4000
MAX_CHAT_TURNS = 12


def _device():
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_for_run(run_id: str, *, adapter: bool = True):
    """-> (model, tokenizer). With adapter=True the tuned PEFT model (adapter can be
    switched off with `model.disable_adapter()` to get the base back)."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.base_model import load_tokenizer

    info = runs.read_run(run_id)
    path = info["model"]["path"]
    device = _device()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    tokenizer = load_tokenizer(path)
    if adapter:
        from peft import PeftModel
        adir = runs.run_dir(run_id) / "adapter"
        if not (adir / "adapter_config.json").is_file():
            raise FileNotFoundError("This run has no saved adapter yet: train (or stop) it first.")
        model = PeftModel.from_pretrained(model, str(adir))
    model.to(device)
    model.eval()
    return model, tokenizer


def generate(model, tokenizer, messages: list[dict], max_new_tokens: int = 128) -> str:
    """Greedy continuation of a chat (deterministic, so base vs tuned is a fair comparison)."""
    import torch

    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=int(max_new_tokens), do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


def chat_reply(run_id: str, history: list | None, user_text: str, *, use_adapter: bool = True,
               max_new_tokens: int = 200) -> list[dict]:
    """Append the user's message and the tuned model's reply to a Gradio messages history."""
    history = [dict(m) for m in (history or []) if isinstance(m, dict)]
    text = (user_text or "").strip()
    if not text:
        return history
    if len(text) > MAX_CHAT_CHARS:
        return history + [{"role": "user", "content": text[:200] + "…"},
                          {"role": "assistant", "content": f"That message is too long: keep it under "
                                                           f"{MAX_CHAT_CHARS} characters."}]
    msgs = [{"role": m.get("role"), "content": _text(m.get("content"))} for m in history
            if m.get("role") in ("user", "assistant")][-MAX_CHAT_TURNS:]
    msgs.append({"role": "user", "content": text})
    model, tok = load_for_run(run_id, adapter=True)
    if use_adapter:
        reply = generate(model, tok, msgs, max_new_tokens)
    else:
        with model.disable_adapter():
            reply = generate(model, tok, msgs, max_new_tokens)
    return history + [{"role": "user", "content": text}, {"role": "assistant", "content": reply or "(empty reply)"}]


def merge_run(run_id: str) -> Path:
    """Merge the saved adapter into the base weights (merge_and_unload) → `merged/`.

    Only from a saved adapter, so the adapter is always kept whatever happens here.
    """
    import torch

    rdir = runs.run_dir(run_id)
    if not (rdir / "adapter" / "adapter_config.json").is_file():
        raise FileNotFoundError("Save an adapter first (finish or stop a run), then merge.")
    model, tok = load_for_run(run_id, adapter=True)
    merged = model.merge_and_unload()
    merged.to(torch.float32 if _device() == "cpu" else torch.bfloat16)
    tmp = rdir / "merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    target = rdir / "merged"
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
