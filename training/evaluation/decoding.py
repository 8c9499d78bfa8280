"""Greedy decoding of a batch of prompts: the tokens `model.generate` would give, for less
work, so the whole-split evaluation runs at the model's speed on a CPU.

What `generate` spends that these answers don't need (docs/benchmarks.md, issue 26):
- every row of a batch is computed at every step until the slowest row stops; here a row
  leaves the batch (and the KV cache) the step it stops, so the last steps compute only the
  rows still writing;
- its KV cache grows by concatenation, which copies the whole cache at every step (~30% of a
  36-row step at 400 tokens on 2 CPU cores); here each layer's keys and values live in
  buffers sized for prompt + cap (`PreallocatedLayer`) and a step writes its token in place;
- one left-padded prefill computes the padding too; here prompts are prefilled in groups of
  similar length and packed into one left-padded cache.

Positions follow the attention mask as in `generate` (a left-padded row starts at 0) and
padded slots are masked, so a row's greedy tokens are the ones `generate` gives
(tests/test_generation_speed.py checks it; bench/generate.py on the whole split).
"""
from __future__ import annotations

import threading
from typing import Callable

from transformers.cache_utils import Cache, DynamicLayer

PREFILL_ROWS_CPU = 8  # prompts per prefill call on a CPU: close lengths, little padding
HEAD_SLICE = 1024  # vocabulary rows per product of the output head on a CPU (`next_tokens`)


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers [rows, heads, capacity, head_dim] that hold
    the first `length` positions; `keys`/`values` are views of what is filled."""

    def __init__(self, keys, values, length: int):
        super().__init__()
        self.key_buffer, self.value_buffer, self.length = keys, values, length
        self.device, self.is_initialized = keys.device, True
        self._refresh()

    def _refresh(self) -> None:
        self.keys = self.key_buffer[..., :self.length, :]
        self.values = self.value_buffer[..., :self.length, :]

    def update(self, key_states, value_states, *args, **kwargs):
        new = key_states.shape[-2]
        if self.length + new > self.key_buffer.shape[-2]:
            raise RuntimeError("the decoding cache is full: more tokens than prompt + cap")
        self.key_buffer[..., self.length:self.length + new, :] = key_states
        self.value_buffer[..., self.length:self.length + new, :] = value_states
        self.length += new
        self._refresh()
        return self.keys, self.values

    def batch_select_indices(self, indices) -> None:
        self.key_buffer = self.key_buffer.index_select(0, indices)
        self.value_buffer = self.value_buffer.index_select(0, indices)
        self._refresh()


def left_padded(prompts: list[list[int]], pad_id: int, device):
    """(ids, mask) with every prompt ending at the same position, so the new tokens of the whole
    batch line up (right padding would make the model continue after pad tokens)."""
    import torch
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def positions(mask):
    """Position ids from a left-padded attention mask, as `generate` computes them."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def next_tokens(model, **inputs):
    """-> (cache, each row's greedy next token: the argmax of its last position's logits).

    On a CPU the output head runs a slice of the vocabulary at a time, keeping each slice's
    best: one product of a 41-row step with SmolLM2's 49,152-row head ran at half the speed
    of the model's other products (~90 ms on one thread; in slices ~58 ms, the same logits).
    Models that shape their logits after the head (a soft cap, a scale) do so monotonically,
    so the argmax is the one `generate` takes."""
    import torch

    head = model.get_output_embeddings()
    if model.device.type != "cpu" or not isinstance(head, torch.nn.Linear):
        out = model(**inputs, logits_to_keep=1)
        return out.cache, out.logits[:, -1].argmax(-1)
    out = model.get_decoder()(**inputs)
    hidden = out.last_hidden_state[:, -1]
    best = best_at = None
    for start in range(0, head.out_features, HEAD_SLICE):
        bias = None if head.bias is None else head.bias[start:start + HEAD_SLICE]
        logits = torch.nn.functional.linear(hidden, head.weight[start:start + HEAD_SLICE], bias)
        at = logits.argmax(-1)
        value = logits.gather(-1, at[:, None])[:, 0]
        if best is None:
            best, best_at = value, at
        else:  # strictly greater: the first of equal values wins, as in one argmax
            better = value > best
            best, best_at = torch.where(better, value, best), torch.where(better, at + start, best_at)
    return out.cache, best_at


def prefill(model, prompts: list[list[int]], new_tokens: int, pad_id: int, group: int):
    """-> (cache, mask, first tokens): every prompt's keys and values packed left-padded to the
    longest prompt in buffers with room for `new_tokens` more, its mask, its first greedy token."""
    import torch

    rows, width, device = len(prompts), max(len(p) for p in prompts), model.device
    mask = torch.zeros(rows, width, dtype=torch.long, device=device)
    first = torch.zeros(rows, dtype=torch.long, device=device)
    buffers: list[tuple] = []
    order = sorted(range(rows), key=lambda i: len(prompts[i]))
    for start in range(0, rows, group):
        idx = order[start:start + group]
        ids, part = left_padded([prompts[i] for i in idx], pad_id, device)
        w = ids.shape[1]
        cache, tokens = next_tokens(model, input_ids=ids, attention_mask=part, position_ids=positions(part),
                                    use_cache=True)
        at = torch.tensor(idx, device=device)
        for layer, got in enumerate(cache.layers):
            if layer == len(buffers):  # zeros, not garbage: a masked slot must not hold a NaN
                shape = (rows, got.keys.shape[1], width + new_tokens, got.keys.shape[-1])
                buffers.append((got.keys.new_zeros(shape), got.values.new_zeros(shape)))
            buffers[layer][0][at, :, width - w:width] = got.keys
            buffers[layer][1][at, :, width - w:width] = got.values
        mask[at, width - w:] = part
        first[at] = tokens
    return Cache(layers=[PreallocatedLayer(k, v, width) for k, v in buffers]), mask, first


def greedy(model, prompts: list[list[int]], max_new_tokens: int, *, pad_id: int,
           stops: Callable[[int, int], bool], on_done: Callable[[int, list[int]], None] | None = None,
           on_step: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
           prefill_rows: int | None = None) -> list[list[int]]:
    """Each prompt's greedy new tokens (its stopping token included), at most max_new_tokens.
    `stops(i, token)` says whether row i ends with this token; `on_done(i, tokens)` fires once
    per row as it ends (at the cap, or when `cancel` is set, with what it has)."""
    import torch

    out: list[list[int]] = [[] for _ in prompts]
    if not prompts or max_new_tokens < 1:
        return out
    group = prefill_rows or (len(prompts) if model.device.type == "cuda" else PREFILL_ROWS_CPU)
    cache, mask, tokens = prefill(model, prompts, max_new_tokens, pad_id, group)
    position = mask.sum(-1)
    live = list(range(len(prompts)))  # the prompts still writing, in batch order
    for step in range(1, max_new_tokens + 1):
        for i, token in zip(live, tokens.tolist()):
            out[i].append(token)
        writing = [j for j, i in enumerate(live) if not stops(i, out[i][-1])]
        if on_step:
            on_step(step)
        if step == max_new_tokens or (cancel is not None and cancel.is_set()):
            writing = []
        for j in sorted(set(range(len(live))) - set(writing)):
            if on_done:
                on_done(live[j], out[live[j]])
        if not writing:
            break
        if len(writing) < len(live):  # the rows that ended leave the batch and the cache
            at = torch.tensor(writing, device=mask.device)
            cache.batch_select_indices(at)
            mask, position, tokens = mask[at], position[at], tokens[at]
            live = [live[j] for j in writing]
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=-1)
        take_freed_threads()
        _, tokens = next_tokens(model, input_ids=tokens[:, None], attention_mask=mask,
                                position_ids=position[:, None], cache=cache, use_cache=True)
        position = position + 1
    return out


# ------------------------------------------------------------------ the two sides at once

def threads_each(device, jobs: int) -> int:
    """Intra-op threads for each of `jobs` decodes run at once: this process's threads shared
    out on a CPU with a thread for each; 0 where they should run one after another (a GPU,
    or too few threads)."""
    import torch
    total = torch.get_num_threads()
    return total // jobs if getattr(device, "type", str(device)) == "cpu" and jobs > 1 and total >= jobs else 0


_THREADS_LOCK = threading.Lock()


def _in_new_thread(fn, *args):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), name="torch-threads")
    t.start()
    t.join()
    return out[0]


def use_threads(n: int) -> None:
    """From now on this thread computes with n intra-op threads; the others keep theirs.

    `torch.set_num_threads` sets the calling thread's own count and the default that threads
    take when they first compute; a short-lived thread puts that default back at once. A thread
    takes the default at its first parallel operation or `get_num_threads`, whichever comes
    first, and that would undo an earlier `set_num_threads`: so that comes first here."""
    import torch
    with _THREADS_LOCK:
        torch.get_num_threads()  # this thread's count set up from the default now, not later
        default = _in_new_thread(torch.get_num_threads)  # a new thread starts at the default
        torch.set_num_threads(n)
        _in_new_thread(torch.set_num_threads, default)


class _Share:
    """The intra-op threads of a group of decoders run at once, shared out among those still running."""

    def __init__(self, total: int, jobs: int):
        self.total, self.running, self.lock = total, jobs, threading.Lock()

    def each(self) -> int:
        return max(1, self.total // max(1, self.running))

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


_decoder = threading.local()  # in a decoder thread of `at_once`: its group's share and its threads


def take_freed_threads() -> None:
    """In a decoder of `at_once`, between steps: once another decoder of its group has ended,
    compute with the threads it left (the base side runs on alone after the tuned side's rows
    have stopped)."""
    share = getattr(_decoder, "share", None)
    if share is not None and share.each() > _decoder.threads:
        _decoder.threads = share.each()
        use_threads(_decoder.threads)


def at_once(jobs: list[Callable[[], object]], threads: int) -> list:
    """Each job's result, the jobs run together in their own threads with `threads` intra-op
    threads each, a job that ends leaving its threads to the others (a small decoding step is
    many short operations: on 2 CPU cores two 1-thread decodes finish sooner than the same two
    one after another with 2 threads, docs/benchmarks.md). The first job's error, if any, is
    raised once all have ended."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []
    share = _Share(threads * len(jobs), len(jobs))

    def work(k: int) -> None:
        _decoder.share, _decoder.threads = share, threads
        try:
            use_threads(threads)
            results[k] = jobs[k]()
        except BaseException as exc:  # noqa: BLE001 - raised below in the caller's thread
            errors.append(exc)
        finally:
            share.leave()

    workers = [threading.Thread(target=work, args=(k,), name=f"decode-{k}", daemon=True) for k in range(len(jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return results
