"""Generation at the model's speed (issue 26 part 3): chat decoding and the evaluation, before and after.

One process, both sides interleaved (A, B, A, B ...), medians reported:

- **plain generate**: `model.generate` on the tuned model (adapter applied), greedy, the
  chat's prompt and token cap, nothing else, in a worker thread as the chat's: the model's own speed.
- **chat now**: `inference.chat_stream` as the app runs it (the cached `RunModels` pair: the
  adapter merged into a copy of the base; `torch.inference_mode`; updates throttled to
  `STREAM_EVERY_S`), consumed to the end.
- **chat before**: the same function on the previous cache entry (`load_for_run`: the PEFT
  model, adapter applied unmerged at every step) with an update per token (`STREAM_EVERY_S=0`).

tokens/s = the reply's tokens (the same greedy tokens on every side: checked) / wall time
from the call to the last update (prefill included, as for plain generate).

Evaluation: `evaluate.evaluate_stream` on the first BENCH_GEN_EVAL_N test rows (default:
the whole split), base and tuned, answers compared one by one (greedy: must be identical):
- **before**: the previous entry (the PEFT model, adapter unmerged), 8 rows per
  `model.generate` call (`generate_batch_before`), the sides one after another;
- **after**: the cached pair, rows per batch from the token budget (`evaluate.rows_per_call`),
  `training.evaluation.decoding` (finished rows leave the batch, a preallocated cache, the two
  sides at once on a CPU), base answers generated and kept;
- **again**: the same, a later run on the same questions: only the tuned side is generated.

The run: BENCH_GEN_RUN=<run id under FTLAB_DATA_DIR> (a trained default run), else a
clinical_soap run with the CPU defaults whose adapter is the default LoRA shape (r=16 on
attention) with seeded random weights (not trained: no time for 64 steps on a busy machine;
the compute per token is the same as a trained one's).

    FTLAB_DATA_DIR=/tmp/gen .venv/bin/python -m bench.generate
    BENCH_GEN_EVAL_N=8 BENCH_GEN_REPEATS=3 .venv/bin/python -m bench.generate
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

from bench.common import Row, median, quick, ratio

PROMPT = "Write a short story about a cat who learns to cook, with a title."


def _say(*what) -> None:
    print(time.strftime("%H:%M:%S"), *what, file=sys.stderr, flush=True)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores, shared"


def seeded_run(std: float = 0.02, seed: int = 7) -> str:
    """A clinical_soap run with the CPU defaults and an adapter of the default shape whose
    LoRA B is seeded random (nonzero: the tuned answers differ from the base's)."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    from training.data.loading import load_builtin
    from training.run import config, engine, runs

    s = load_builtin("clinical_soap")
    cfg, errors = config.validate(config.defaults("cpu"), "sft", base_model="embedded/SmolLM2-135M-Instruct",
                                  dataset=config.DataRef(name="clinical_soap"))
    assert not errors, errors
    rid = engine.start_run(cfg, {"train": s.train, "validation": s.validation[:2], "test": s.test})
    engine.stop_idle_run(rid)
    path = runs.read_run(rid)["model"]["path"]
    torch.manual_seed(seed)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(path), peft.LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(config.TARGET_MODULE_CHOICES[
            cfg.lora_target_modules]), task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, std)
    model.save_pretrained(str(runs.run_dir(rid) / "adapter"))
    runs.update_run(rid, status="stopped")
    return rid


def _cache(loader):
    from training.evaluation.model_cache import ModelCache
    return ModelCache(lambda key: loader(key[0]), max_models=1, janitor=False)


def _plain(models, tok, max_new: int) -> tuple[float, str, int]:
    """`generate` in a worker thread, as the chat runs it (under a shared CPU the main thread
    and a worker thread are scheduled differently: the same call in the main thread was 3-4x slower)."""
    import threading

    import torch

    from training.evaluation.inference import left_padded, prompt_ids
    ids, mask = left_padded(tok, [prompt_ids(tok, [{"role": "user", "content": PROMPT}])], models.device)
    result = {}

    def work():
        with torch.inference_mode():
            result["out"] = models.tuned.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new,
                                                  do_sample=False, pad_token_id=tok.pad_token_id,
                                                  eos_token_id=tok.eos_token_id)
    t0 = time.perf_counter()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    wall = time.perf_counter() - t0
    out = result["out"]
    new = out[0][ids.shape[1]:]
    return wall, tok.decode(new, skip_special_tokens=True).strip(), int(len(new))


def _chat(rid: str, cache, max_new: int, every: float) -> tuple[float, str, int]:
    from training.evaluation import inference
    saved = inference.STREAM_EVERY_S
    inference.STREAM_EVERY_S = every
    updates = 0
    try:
        t0 = time.perf_counter()
        for history in inference.chat_stream(rid, [], PROMPT, max_new_tokens=max_new, cache=cache):
            updates += 1
        wall = time.perf_counter() - t0
    finally:
        inference.STREAM_EVERY_S = saved
    return wall, history[-1]["content"], updates


def chat_rows(rid: str, repeats: int, max_new: int) -> list[Row]:
    import torch

    from training.evaluation import inference
    new_cache, old_cache = _cache(inference.load_models), _cache(inference.load_for_run)
    models, tok = inference.load_models(rid)
    # warm both caches (loads are not what this measures) and check the three sides agree
    _, ref_text, n_tok = _plain(models, tok, max_new)
    texts = {"now": _chat(rid, new_cache, max_new, inference.STREAM_EVERY_S)[1],
             "before": _chat(rid, old_cache, max_new, 0.0)[1]}
    load0 = _load()
    walls: dict[str, list[float]] = {"plain": [], "now": [], "before": []}
    ups: dict[str, list[int]] = {"now": [], "before": []}
    for k in range(repeats):
        _say("chat repeat", k + 1, "of", repeats, _load())
        w, text, _ = _plain(models, tok, max_new)
        walls["plain"].append(w)
        assert text == ref_text
        w, text, u = _chat(rid, new_cache, max_new, inference.STREAM_EVERY_S)
        walls["now"].append(w), ups["now"].append(u)
        texts["now"] = text
        w, text, u = _chat(rid, old_cache, max_new, 0.0)
        walls["before"].append(w), ups["before"].append(u)
        texts["before"] = text
    same = texts["now"] == texts["before"] == ref_text
    tps = {k: n_tok / median(v) for k, v in walls.items()}
    cond = (f"{load0} → {_load()}; torch threads {torch.get_num_threads()}; {n_tok} new tokens, greedy, "
            f"{repeats} interleaved repeats, medians")
    return [
        Row("chat: plain generate on the tuned model (merged), tokens/s", f"{tps['plain']:.2f}", machine=cond),
        Row("chat: chat_stream now (merged pair, throttled updates), tokens/s", f"{tps['now']:.2f}",
            f"{tps['plain']:.2f} (plain)", ratio(tps["now"], tps["plain"]), "≥ 0.80x plain",
            machine=cond, met=tps["now"] >= 0.8 * tps["plain"]),
        Row("chat: chat_stream before (PEFT unmerged, update per token), tokens/s", f"{tps['before']:.2f}",
            f"{tps['plain']:.2f} (plain)", ratio(tps["before"], tps["plain"]), machine=cond),
        Row("chat: now vs before", f"{tps['now']:.2f}", f"{tps['before']:.2f}", ratio(tps["now"], tps["before"]),
            machine=cond),
        Row("chat: updates sent per reply", str(int(median(ups["now"]))), str(int(median(ups["before"]))),
            machine=cond),
        Row("chat: identical greedy reply (plain = now = before)", "yes" if same else "NO", target="identical",
            machine=cond, met=same),
    ]


BEFORE_BATCH = 8  # rows per generate call before the token budget (evaluate.rows_per_call)


def generate_batch_before(model, tokenizer, conversations, max_new_tokens, *, json_stop=False, on_step=None,
                          on_done=None, cancel=None) -> list[str]:
    """The evaluation's generation before `training.evaluation.decoding`: one left-padded
    `model.generate` call, every row computed until the slowest stops, the cache grown by
    concatenation (a row's answer is decoded as it stops, as the app did)."""
    import torch
    from transformers import StoppingCriteriaList

    from training.evaluation.inference import decode_answer, left_padded, prompt_ids, stopping_criteria
    ids, mask = left_padded(tokenizer, [prompt_ids(tokenizer, c) for c in conversations], model.device)
    width, answers = ids.shape[1], {}

    def finished(i, row):
        answers[i] = decode_answer(tokenizer, row[width:], json_stop)
        if on_done:
            on_done(i, answers[i])
    stop = stopping_criteria(tokenizer, len(conversations), json_stop=json_stop, on_step=on_step, on_done=finished,
                             cancel=cancel)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=int(max_new_tokens), do_sample=False,
                             use_cache=True, stopping_criteria=StoppingCriteriaList([stop]),
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    for i, row in enumerate(out.tolist()):
        if i not in answers:
            finished(i, row)
    return [answers[i] for i in range(len(conversations))]


@contextlib.contextmanager
def generation_before():
    """The evaluation as it was: `generate_batch_before`, the sides one after another."""
    from training.evaluation import evaluate, inference
    saved = inference.generate_batch, evaluate.together
    inference.generate_batch, evaluate.together = generate_batch_before, lambda model: False
    try:
        yield
    finally:
        inference.generate_batch, evaluate.together = saved


def _evaluate(rid: str, n: int, loader, batch: int | None = None, reuse_base: bool = False) -> dict:
    from training.evaluation import evaluate
    t0 = time.perf_counter()
    for event in evaluate.evaluate_stream(rid, n_samples=n, cache=_cache(loader), batch_size=batch,
                                          reuse_base=reuse_base):
        pass
    m = event["metrics"]
    return {"wall": time.perf_counter() - t0, "samples": m["samples"], "cap": m["max_new_tokens"],
            "rows": m["rows_per_call"], "reused": m["base_reused"]}


def eval_rows(rid: str, n: int) -> list[Row]:
    from training.evaluation import base_answers, inference
    load0 = _load()
    _say("evaluation before,", n, "rows", load0)
    with generation_before():
        before = _evaluate(rid, n, inference.load_for_run, BEFORE_BATCH)
    _say("evaluation after,", n, "rows", _load(), "before took", round(before["wall"], 1))
    base_answers.sweep(now=time.time() + base_answers.ttl_s() + 1)  # cold: nothing kept by an earlier bench
    after = _evaluate(rid, n, inference.load_models, reuse_base=True)  # answers both sides, keeps the base's
    _say("evaluation again (base answers kept by the first),", _load(), "after took", round(after["wall"], 1))
    again = _evaluate(rid, n, inference.load_models, reuse_base=True)
    _say("done", _load(), "again took", round(again["wall"], 1))
    assert not after["reused"] and again["reused"], (after["reused"], again["reused"])
    diffs = [i for i, (a, b, c) in enumerate(zip(before["samples"], after["samples"], again["samples"]))
             if not (a["base"], a["tuned"]) == (b["base"], b["tuned"]) == (c["base"], c["tuned"])]
    cond = (f"{load0} → {_load()}; {n} test rows × base + tuned, cap {after['cap']} tokens, "
            f"{before['rows']} → {after['rows']} rows per generate call, model load included")
    return [
        Row(f"evaluation, {n} rows: wall time", f"{after['wall']:.1f} s", f"{before['wall']:.1f} s",
            ratio(after["wall"], before["wall"]), "≤ 150 s for the whole split (36 rows) on this CPU",
            machine=cond, met=(after["wall"] <= 150) if n >= 36 else None),
        Row(f"evaluation, {n} rows, a later run on the same questions (base answers kept): wall time",
            f"{again['wall']:.1f} s", f"{before['wall']:.1f} s", ratio(again["wall"], before["wall"]),
            "≤ 150 s for the whole split (36 rows) on this CPU", machine=cond,
            met=(again["wall"] <= 150) if n >= 36 else None),
        Row(f"evaluation, {n} rows: identical answers (base and tuned; before = after = kept)",
            f"{2 * n - 2 * len(diffs)}/{2 * n}",
            target="all", machine=cond, met=not diffs),
    ]


def run(quick_mode: bool | None = None) -> list[Row]:
    q = quick() if quick_mode is None else quick_mode
    rid = os.environ.get("BENCH_GEN_RUN", "").strip() or seeded_run()
    repeats = int(os.environ.get("BENCH_GEN_REPEATS") or (1 if q else 3))
    max_new = int(os.environ.get("BENCH_GEN_TOKENS") or (16 if q else 100))
    n = int(os.environ.get("BENCH_GEN_EVAL_N") or (2 if q else 36))
    rows = chat_rows(rid, repeats, max_new)
    if n > 0:
        rows += eval_rows(rid, n)
    return rows


if __name__ == "__main__":
    from bench.common import table
    print(table(run()), flush=True)
