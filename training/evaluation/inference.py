"""Generation with a run's base model and tuned adapter: batched evaluation answers,
streamed chat replies, merge.

A run's models are loaded once and kept in a small bounded cache
(`training.evaluation.model_cache`, at most FTLAB_MODEL_CACHE_SIZE runs, released after
FTLAB_MODEL_IDLE_SECONDS idle) as a `RunModels` pair: the plain base model, and the tuned
model with the adapter merged into its weights (`load_models`). The tuned copy shares every
tensor the adapter does not touch with the base (embeddings, MLPs, norms), so the pair
costs the base plus the adapted layers (~100 MB for r=16 on attention), not two models.
Merged, a tuned step is a plain forward: the unmerged PEFT model ran the two LoRA matmuls
of every adapted layer, in Python, at every generated token. Greedy answers stay the
same (tests/test_generation_speed.py, bench/generate.py).

Speed on a CPU also comes from: the KV cache, several prompts in one batch whose rows
leave as they stop (`training.evaluation.decoding`), a cap on new tokens,
`torch.inference_mode`, and for JSON answers a stop as soon as the JSON object closes. A streamed
chat reply is re-sent at most every STREAM_EVERY_S (each update re-sends and re-renders
the whole chat in the browser, which shares the CPU on a small machine).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from core.config import env_float, env_int
from training.run import runs
from training.evaluation.model_cache import ModelCache

MAX_CHAT_CHARS = 4000
MAX_CHAT_TURNS = 12
# A chat reply streams, so the learner sees it grow; the cap bounds the wait for a model
# that never stops (an untuned base model often rambles): ~200 tokens is ~15 s on 2 CPU cores.
CHAT_MAX_NEW_TOKENS = env_int("FTLAB_CHAT_MAX_NEW_TOKENS", 200)
STREAM_TIMEOUT_S = 600.0  # a generation thread that dies silently must not hang the reply forever
STREAM_EVERY_S = env_float("FTLAB_CHAT_STREAM_EVERY_S", 0.1)  # at most ~10 chat updates a second


def _device():
    """Where this process may compute: never CUDA in a ZeroGPU Space's main process
    (training/run/device.py); inside the GPU call's worker, the GPU."""
    from training.run.device import compute_device
    return compute_device()


def load_for_run(run_id: str, *, adapter: bool = True):
    """-> (model, tokenizer), uncached. With adapter=True the tuned PEFT model (adapter can be
    switched off with `model.disable_adapter()` to get the base back)."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.run.base_model import load_tokenizer

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
    # The training config may have turned the KV cache off (it is useless with gradient
    # checkpointing); generation needs it: without it every new token re-reads the whole text.
    model.config.use_cache = True
    model.to(device)
    model.eval()
    return model, tokenizer


class RunModels:
    """A run's two sides for generation: `base` (the plain base model) and `tuned` (the
    adapter merged into a copy that shares all untouched tensors with `base`)."""

    def __init__(self, base, tuned):
        self.base, self.tuned = base, tuned

    @property
    def device(self):
        return self.tuned.device

    @property
    def dtype(self):
        return self.base.dtype


def load_models(run_id: str) -> tuple[RunModels, object]:
    """-> (RunModels, tokenizer), uncached: what the cache holds for a run."""
    import copy

    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    from training.run.base_model import load_tokenizer

    info = runs.read_run(run_id)
    path = info["model"]["path"]
    adir = runs.run_dir(run_id) / "adapter"
    if not (adir / "adapter_config.json").is_file():
        raise FileNotFoundError("This run has no saved adapter yet: train (or stop) it first.")
    device = _device()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    base.config.use_cache = True  # see load_for_run
    base.to(device)
    base.eval()
    # A copy whose parameters are the base's own tensors (deepcopy's memo maps each to itself) ...
    shared = {id(t): t for t in [*base.parameters(), *base.buffers()]}
    tuned = PeftModel.from_pretrained(copy.deepcopy(base, memo=shared), str(adir))
    for module in tuned.modules():  # ... except the weights the merge rewrites: those get their own
        if isinstance(module, LoraLayer):
            layer = module.get_base_layer()
            for name in ("weight", "bias"):
                t = getattr(layer, name, None)
                if t is not None:
                    setattr(layer, name, torch.nn.Parameter(t.detach().clone(), requires_grad=False))
    tuned = tuned.merge_and_unload()  # peft's own merge: W + scale * B @ A
    tuned.config.use_cache = True
    tuned.to(device)
    tuned.eval()
    return RunModels(base, tuned), load_tokenizer(path)


@contextlib.contextmanager
def side(model, use_adapter: bool):
    """The model that answers for one side: from a RunModels pair its base or tuned model,
    from a PEFT model (load_for_run) the model itself with the adapter on or switched off."""
    if isinstance(model, RunModels):
        yield model.tuned if use_adapter else model.base
    elif use_adapter or not hasattr(model, "disable_adapter"):
        yield model
    else:
        with model.disable_adapter():
            yield model


# ------------------------------------------------------------------ the model cache

MODEL_CACHE = ModelCache(lambda key: load_models(key[0]),
                         max_models=min(2, max(1, env_int("FTLAB_MODEL_CACHE_SIZE", 2))),
                         idle_s=env_float("FTLAB_MODEL_IDLE_SECONDS", 300.0))


def _adapter_stamp(adir: Path) -> tuple:
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(adir.glob("adapter_*")))


@contextlib.contextmanager
def loaded(run_id: str, cache: ModelCache | None = None):
    """The run's models from the cache: `with loaded(rid) as e: e.model (RunModels), e.tokenizer, e.lock`."""
    adir = runs.run_dir(run_id) / "adapter"
    if not (adir / "adapter_config.json").is_file():
        raise FileNotFoundError("This run has no saved adapter yet: train (or stop) it first.")
    with (MODEL_CACHE if cache is None else cache).use((run_id, str(adir)), _adapter_stamp(adir)) as entry:
        yield entry


# ------------------------------------------------------------------ stopping at the closing brace

class JsonScanner:
    """Follows generated text and says when its first JSON object closes.

    Braces inside strings (and escaped quotes) don't count. With `leading_only`
    the text must open with `{` (after whitespace), else it is not JSON and
    never "closes": used for chat, where prose may mention braces."""

    def __init__(self, leading_only: bool = False):
        self.leading_only = leading_only
        self.depth = 0
        self.started = self.closed = self.gave_up = False
        self.in_string = self.escape = False
        self.end = None  # characters consumed up to and including the closing brace
        self._seen = 0

    def feed(self, text: str) -> bool:
        for ch in text:
            if self.closed or self.gave_up:
                break
            self._seen += 1
            if not self.started:
                if ch == "{":
                    self.started, self.depth = True, 1
                elif self.leading_only and not ch.isspace():
                    self.gave_up = True
                continue
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif ch == "\\":
                    self.escape = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch == "{":
                self.depth += 1
            elif ch == "}":
                self.depth -= 1
                if self.depth == 0:
                    self.closed, self.end = True, self._seen
        return self.closed


def cut_at_json_end(text: str, leading_only: bool = False) -> str:
    """The text up to its first JSON object's closing brace (all of it if none closes).
    A token can carry more than the brace (`}\\n`, `}}`): this trims what follows."""
    scanner = JsonScanner(leading_only)
    return text[:scanner.end] if scanner.feed(text) else text


def stopping_criteria(tokenizer, batch_size: int, *, json_stop: bool, leading_only: bool = False,
                      on_step: Callable[[int], None] | None = None,
                      on_done: Callable[[int, list[int]], None] | None = None,
                      cancel: threading.Event | None = None):
    """A transformers StoppingCriteria that ends each sequence of a batch on its own when its
    JSON object closes (json_stop) or at EOS, reports each step and each finished row
    (`on_done(i, token ids so far)`), and stops every row once `cancel` is set."""
    import torch
    from transformers import StoppingCriteria

    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()

    class Stop(StoppingCriteria):
        def __init__(self):
            self.scanners = [JsonScanner(leading_only) for _ in range(batch_size)]
            self.done = [False] * batch_size
            self.steps = 0

        def __call__(self, input_ids, scores, **kwargs):
            self.steps += 1
            last = input_ids[:, -1].tolist()
            out = []
            for i, tok_id in enumerate(last):
                if not self.done[i]:
                    closed = json_stop and self.scanners[i].feed(tokenizer.decode([tok_id]))
                    if closed or tok_id in eos:
                        self.done[i] = True
                        if on_done:
                            on_done(i, input_ids[i].tolist())
                out.append(self.done[i])
            if on_step:
                on_step(self.steps)
            if cancel is not None and cancel.is_set():
                out = [True] * len(out)
            return torch.tensor(out, dtype=torch.bool, device=input_ids.device)

    return Stop()


# ------------------------------------------------------------------ generation

def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The chat's token ids up to the assistant's turn (the chat template, generation prompt added)."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def pad_id(tokenizer) -> int:
    """The id padding is written with (EOS where the tokenizer names no pad token); always masked."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def left_padded(tokenizer, prompts: list[list[int]], device):
    """Left-padded (ids, mask) for a batch of prompts (`decoding.left_padded`)."""
    from training.evaluation import decoding
    return decoding.left_padded(prompts, pad_id(tokenizer), device)


def decode_answer(tokenizer, ids, json_stop: bool, leading_only: bool = False) -> str:
    """The new tokens as text; for a JSON task, cut where the object closes."""
    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
    return cut_at_json_end(text, leading_only) if json_stop else text


def generate_batch(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int, *,
                   json_stop: bool = False, on_step: Callable[[int], None] | None = None,
                   on_done: Callable[[int, str], None] | None = None,
                   cancel: threading.Event | None = None) -> list[str]:
    """Greedy answers for several chats in one batch (deterministic, so base vs tuned is a
    fair comparison; `decoding.greedy`: each row leaves the batch when it stops). A row
    stops at EOS or, with json_stop, when its JSON object closes. `on_done(i, text)` fires
    as each row finishes."""
    import torch

    from training.evaluation import decoding

    scanners = [JsonScanner() for _ in conversations]
    answers: list[str] = [""] * len(conversations)

    def stops(i: int, token: int) -> bool:
        return token == tokenizer.eos_token_id or (json_stop and scanners[i].feed(tokenizer.decode([token])))

    def finished(i: int, tokens: list[int]) -> None:
        answers[i] = decode_answer(tokenizer, tokens, json_stop)
        if on_done:
            on_done(i, answers[i])

    with torch.inference_mode():
        decoding.greedy(model, [prompt_ids(tokenizer, c) for c in conversations], int(max_new_tokens),
                        pad_id=pad_id(tokenizer), stops=stops, on_done=finished, on_step=on_step, cancel=cancel)
    return answers


def generate(model, tokenizer, messages: list[dict], max_new_tokens: int = 128) -> str:
    """Greedy continuation of one chat."""
    return generate_batch(model, tokenizer, [messages], max_new_tokens)[0]


def stream_generate(model, tokenizer, messages: list[dict], max_new_tokens: int, *,
                    use_adapter: bool = True, lock: threading.Lock | None = None,
                    cancel: threading.Event | None = None) -> Iterator[str]:
    """Yields the reply text as it grows, token by token (TextIteratorStreamer; generate
    runs in a thread). A reply that opens a JSON object ends when that object closes.
    `model`: a RunModels pair or a PEFT model (`side`)."""
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                    timeout=STREAM_TIMEOUT_S)
    cancel = cancel or threading.Event()
    ids, mask = left_padded(tokenizer, [prompt_ids(tokenizer, messages)], model.device)
    stop = stopping_criteria(tokenizer, 1, json_stop=True, leading_only=True, cancel=cancel)
    failure: dict = {}

    def work() -> None:
        import torch
        try:
            with lock or contextlib.nullcontext(), torch.inference_mode(), side(model, use_adapter) as m:
                m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=int(max_new_tokens),
                               do_sample=False, use_cache=True, streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([stop]),
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        except BaseException as exc:  # noqa: BLE001 - reported to the reader below
            failure["exc"] = exc
            streamer.end()  # unblock the reader; ending twice is harmless

    thread = threading.Thread(target=work, name="chat-generate", daemon=True)
    thread.start()
    text = ""
    try:
        for piece in streamer:
            text += piece
            yield cut_at_json_end(text, leading_only=True)
    finally:
        cancel.set()  # the reader went away (client left): stop generating at the next token
        thread.join(timeout=STREAM_TIMEOUT_S)
    if "exc" in failure:
        raise failure["exc"]


# ------------------------------------------------------------------ chat

def _text(content) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


def chat_stream(run_id: str, history: list | None, user_text: str, *, use_adapter: bool = True,
                max_new_tokens: int | None = None, cache: ModelCache | None = None) -> Iterator[list[dict]]:
    """Yields the Gradio messages history with the user's message and the reply as it grows.
    The model comes from the cache, so only the first turn pays for loading it."""
    history = [dict(m) for m in (history or []) if isinstance(m, dict)]
    text = (user_text or "").strip()
    if not text:
        yield history
        return
    if len(text) > MAX_CHAT_CHARS:
        yield history + [{"role": "user", "content": text[:200] + "…"},
                         {"role": "assistant", "content": f"That message is too long: keep it under "
                                                          f"{MAX_CHAT_CHARS} characters."}]
        return
    msgs = [{"role": m.get("role"), "content": _text(m.get("content"))} for m in history
            if m.get("role") in ("user", "assistant")][-MAX_CHAT_TURNS:]
    msgs.append({"role": "user", "content": text})
    head = history + [{"role": "user", "content": text}]
    yield head + [{"role": "assistant", "content": "…"}]
    reply = ""
    sent = 0.0  # the first piece goes out at once, then at most one update per STREAM_EVERY_S
    with loaded(run_id, cache) as entry:
        for reply in stream_generate(entry.model, entry.tokenizer, msgs,
                                     int(max_new_tokens or CHAT_MAX_NEW_TOKENS),
                                     use_adapter=use_adapter, lock=entry.lock):
            now = time.monotonic()
            if now - sent >= STREAM_EVERY_S:
                sent = now
                yield head + [{"role": "assistant", "content": reply + " ▌"}]
    yield head + [{"role": "assistant", "content": reply.strip() or "(empty reply)"}]


def chat_reply(run_id: str, history: list | None, user_text: str, *, use_adapter: bool = True,
               max_new_tokens: int | None = None) -> list[dict]:
    """The history after one whole turn (chat_stream's last update)."""
    last: list[dict] = []
    for last in chat_stream(run_id, history, user_text, use_adapter=use_adapter, max_new_tokens=max_new_tokens):
        pass
    return last


# ------------------------------------------------------------------ merge

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
