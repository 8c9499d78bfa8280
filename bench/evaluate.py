"""The Training tab's evaluation (base vs tuned on the test split) on CPU: before and after.

Before = the previous `evaluate_run` loop, kept here verbatim in spirit: one example at a
time, tuned then base (`disable_adapter()`), a cap of (longest reference in characters)/3
+ 16 new tokens, no stopping rule but end-of-sequence. After = `training.evaluation.evaluate.
evaluate_stream` as the app runs it: batches with left padding, KV cache on, a cap of
1.25 x the longest reference in tokens + 16, and for JSON tasks each answer ends when its
object closes. Both sides load the model themselves (the load is part of what the learner
waits for), use the same run and the same test rows, alternate, and report medians.

The run: BENCH_EVAL_RUN=<run id under FTLAB_DATA_DIR> uses a trained one; otherwise a run
on the built-in clinical_soap set is trained with the CPU defaults (`config.defaults("cpu")`)
for BENCH_EVAL_TRAIN_STEPS steps (default: the CPU default run's), so the tuned side answers
as after the default run;
BENCH_EVAL_TRAIN_STEPS=0 saves an untrained adapter instead (LoRA B = 0: tuned answers
equal the base's and rarely stop early, the worst case for the JSON stop).
The machine is shared: besides wall time, the CPU seconds each side used are reported
(they depend far less on the neighbours), with the load average during the run.

    python -m bench.evaluate                  # 5 examples (the default), 1 repeat per side
    BENCH_EVAL_N=5 BENCH_EVAL_REPEATS=2 python -m bench.evaluate
"""
from __future__ import annotations

import os
import resource
import time

from bench.common import Row, median, quick, ratio

TARGET_S = 60.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def before(run_id: str, n: int, max_new_tokens: int | None = None) -> dict:
    """The previous evaluation loop (sequential, one model load)."""
    from training.data import checks
    from training.evaluation import evaluate
    from training.run import runs
    from training.evaluation.inference import decode_answer, left_padded, prompt_ids, load_for_run

    data = runs.read_datasets(run_id)
    rows = (data["test"] or data["validation"])[:n]
    cap = max_new_tokens or max(32, min(384, max(len(checks.completion_pairs(r)[1]) for r in rows) // 3 + 16))
    model, tok = load_for_run(run_id, adapter=True)
    preds = {"tuned": [], "base": []}

    def one(prompt) -> str:
        import torch
        ids, mask = left_padded(tok, [prompt_ids(tok, prompt)], model.device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=cap, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        return decode_answer(tok, out[0][ids.shape[1]:], False)

    refs = []
    for row in rows:
        prompt, ref = checks.completion_pairs(row)
        refs.append(ref)
        preds["tuned"].append(one(prompt))
        with model.disable_adapter():
            preds["base"].append(one(prompt))
    return {"cap": cap, "tuned": evaluate.scores(preds["tuned"], refs), "base": evaluate.scores(preds["base"], refs),
            "updates": 1}


def after(run_id: str, n: int, max_new_tokens: int | None = None) -> dict:
    from training.evaluation import evaluate
    from training.evaluation.model_cache import ModelCache
    from training.evaluation.inference import load_for_run

    cache = ModelCache(lambda key: load_for_run(key[0]), max_models=1, janitor=False)  # a cold load, as above
    updates, first = 0, None
    t0 = time.monotonic()
    for event in evaluate.evaluate_stream(run_id, n_samples=n, max_new_tokens=max_new_tokens, cache=cache,
                                           reuse_base=False):
        updates += 1
        if event["kind"] == "progress" and event["answers"] and first is None:
            first = time.monotonic() - t0
        m = event["metrics"]
    return {"cap": m["max_new_tokens"], "tuned": m["tuned"], "base": m["base"], "updates": updates,
            "first_answer_s": first}


def _timed(fn, *args) -> dict:
    t0, c0 = time.monotonic(), _cpu()
    out = fn(*args)
    out.update(wall_s=time.monotonic() - t0, cpu_s=_cpu() - c0)
    return out


def _trained_run(steps: int) -> str:
    from training.run import config
    from training.run import engine
    from training.run import runs
    from training.data.loading import load_builtin

    rid = os.environ.get("BENCH_EVAL_RUN", "").strip()
    if rid:
        return rid
    s = load_builtin("clinical_soap")
    # All the CPU defaults, not only the batch: a partial dict falls back to the GPU table
    # (learning rate 2e-4), which trained a run that had learnt nothing in 12 steps.
    cfg, errors = config.validate({**config.defaults("cpu"), "max_steps": max(1, steps)}, "sft",
                                  base_model="embedded/SmolLM2-135M-Instruct",
                                  dataset=config.DataRef(name="clinical_soap"))
    assert not errors, errors
    rid = engine.start_run(cfg, {"train": s.train, "validation": s.validation[:2], "test": s.test})
    if steps <= 0:  # the smoke test: an untrained adapter (LoRA B = 0) is enough to run both sides
        engine.stop_idle_run(rid)
        _untrained_adapter(rid)
        return rid
    info = engine.run_slice(rid, max_slice_steps=steps)
    assert runs.read_run(rid)["has_adapter"], info
    return rid


def _untrained_adapter(rid: str) -> None:
    import peft
    from transformers import AutoModelForCausalLM

    from training.run import runs
    path = runs.read_run(rid)["model"]["path"]
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(path),
                                peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(str(runs.run_dir(rid) / "adapter"))


def run(quick_mode: bool | None = None) -> list[Row]:
    q = quick() if quick_mode is None else quick_mode
    n = int(os.environ.get("BENCH_EVAL_N") or (1 if q else 5))
    repeats = int(os.environ.get("BENCH_EVAL_REPEATS") or 1)
    from training.run.config import CPU_DEFAULTS
    steps = int(os.environ.get("BENCH_EVAL_TRAIN_STEPS") or (0 if q else CPU_DEFAULTS["max_steps"]))
    cap = 8 if q else None
    rid = _trained_run(steps)
    from training.evaluation.inference import load_for_run
    load_for_run(rid)  # warm-up, untimed: imports and file cache would otherwise count against the first side
    load0 = os.getloadavg()[0]
    old, new = [], []
    for _ in range(repeats):
        old.append(_timed(before, rid, n, cap))
        new.append(_timed(after, rid, n, cap))
    load = f"load avg {load0:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)"
    wo, wn = median([r["wall_s"] for r in old]), median([r["wall_s"] for r in new])
    co, cn = median([r["cpu_s"] for r in old]), median([r["cpu_s"] for r in new])
    label = f"evaluate CPU, {n} example{'s' if n != 1 else ''}"
    rows = [
        Row(f"{label}: wall time, load included", f"{wn:.1f} s", f"{wo:.1f} s", ratio(wn, wo),
            f"≤ {TARGET_S:.0f} s on an idle 2-core CPU", machine=load, met=wn <= TARGET_S),
        Row(f"{label}: CPU seconds used (all threads)", f"{cn:.1f} s", f"{co:.1f} s", ratio(cn, co), machine=load),
        Row(f"{label}: first answer on screen", f"{median([r['first_answer_s'] for r in new]):.1f} s",
            f"{wo:.1f} s (all at the end)", machine=load),
        Row(f"{label}: updates shown while it runs", str(new[0]["updates"]), "1", machine=load),
        Row(f"{label}: new-token cap", str(new[0]["cap"]), str(old[0]["cap"]), machine=load),
    ]
    for side in ("tuned", "base"):
        rows.append(Row(f"{label}: {side} valid JSON / exact match",
                        f"{new[0][side]['json_valid']:.0%} / {new[0][side]['exact_match']:.0%}",
                        f"{old[0][side]['json_valid']:.0%} / {old[0][side]['exact_match']:.0%}", machine=load))
    return rows


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
