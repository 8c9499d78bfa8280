"""GGUF export of the default-run model: time, file sizes, and how closely the files answer.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.gguf     # ~5 min on 2 busy cores; not part of `python -m bench`

The model is the embedded SmolLM2-135M-Instruct with an adapter of the CPU default run's shape
(LoRA r=16, alpha=32 on the attention projections), trained `BENCH_GGUF_STEPS` (8) steps on the
first training rows of the built-in clinical_soap set (a real, non-zero adapter; the full default
run takes ~20 min here). The run is exported through `training.hub.gguf_export.export_run` (both
files, then q8_0 alone), and each GGUF file is read back with transformers (`gguf_file=`) and compared
with the merged model on `BENCH_GGUF_N` (5) test rows: max |Δlogit| over every position, top-1
agreement, and whether greedy answers (48 new tokens) are identical.

llama.cpp itself is not run: PyPI has no binary wheel of llama-cpp-python for this machine (a source
build takes too long on 2 cores) and Debian 12 has no llama.cpp package.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def _build_run(root: Path, steps: int) -> Path:
    import peft
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.data.loading import load_builtin
    from training.run import base_model
    from training.run.config import TARGET_MODULE_CHOICES, RunConfig

    base_dir = base_model.embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    cfg = RunConfig.from_dict({"method": "sft", "base_model": base_model.DEFAULT_MODEL})
    targets = TARGET_MODULE_CHOICES[cfg.lora_target_modules]  # the default run's adapted layers
    model = peft.get_peft_model(model, peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                       target_modules=targets, task_type="CAUSAL_LM"))
    data = load_builtin("clinical_soap")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    torch.manual_seed(0)
    for step in range(steps):
        row = data.train[step % len(data.train)]
        ids = torch.tensor([tok.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"][:256]])
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    run_dir = root / "runs" / "BenchGguf_0123456789abcdef"
    model.save_pretrained(run_dir / "adapter")
    tok.save_pretrained(run_dir / "adapter")
    (run_dir / "data").mkdir(parents=True)
    for split in ("train", "test"):
        (run_dir / "data" / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in getattr(data, split)), encoding="utf-8")
    run = {"run_id": run_dir.name, "status": "finished", "config": cfg.to_dict(),
           "model": {"id": base_model.EMBEDDED_ID, "path": str(base_dir),
                     "public_id": base_model.DEFAULT_MODEL, "notice": ""}}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


def _export(run_dir: Path, quants) -> tuple[dict, dict]:
    from training.hub import gguf_export as ge

    stage_start, stages, last = {}, {}, None
    t0 = time.monotonic()
    estimate = None
    for event in ge.export_run(run_dir, quants):
        if event["kind"] == "progress":
            estimate = estimate if estimate is not None else event["eta_s"]
            stage = event["stage"]
            if stage != last:
                now = time.monotonic() - t0
                if last is not None:
                    stages[last] = now - stage_start[last]
                stage_start[stage], last = now, stage
        else:
            stages[last] = time.monotonic() - t0 - stage_start[last]
            if event["kind"] == "error":
                raise RuntimeError(event["message"])
            return event, {"stages": stages, "total": time.monotonic() - t0, "estimate": estimate}
    raise RuntimeError("export ended without a result")


def _compare(run_dir: Path, done: dict, n: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from training.hub.publish import load_merged

    merged, tok = load_merged(run_dir)
    merged.eval()
    rows = [json.loads(line) for line in (run_dir / "data" / "test.jsonl").read_text().splitlines()][:n]
    out = {}
    folder = Path(done["dir"])
    for quant, info in done["files"].items():
        t0 = time.monotonic()
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=info["file"], dtype=torch.float32).eval()
        load_s = time.monotonic() - t0
        worst, agree, total, same = 0.0, 0, 0, 0
        with torch.no_grad():
            for row in rows:
                ids = torch.tensor([tok.apply_chat_template(row["messages"], tokenize=True,
                                                            return_dict=True)["input_ids"][:512]])
                a, b = merged(ids).logits, model(ids).logits
                worst = max(worst, (a - b).abs().max().item())
                agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
                total += a.shape[1]
                prompt = torch.tensor([tok.apply_chat_template(row["messages"][:-1], add_generation_prompt=True,
                                                               tokenize=True, return_dict=True)["input_ids"]])
                kw = dict(max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id)
                same += merged.generate(prompt, **kw).tolist() == model.generate(prompt, **kw).tolist()
        out[quant] = {"max_dlogit": worst, "top1": agree / total, "greedy_same": f"{same}/{len(rows)}",
                      "load_s": load_s, "positions": total}
    return out


def main() -> None:
    steps = int(os.environ.get("BENCH_GGUF_STEPS", "8"))
    n = int(os.environ.get("BENCH_GGUF_N", "5"))
    root = Path(tempfile.mkdtemp(prefix="bench-gguf-"))
    try:
        t0 = time.monotonic()
        run_dir = _build_run(root, steps)
        print(f"adapter trained {steps} steps in {time.monotonic() - t0:.0f} s; load average {os.getloadavg()}")
        done, timing = _export(run_dir, ("f16", "q8_0"))
        print(f"both files: {timing['total']:.1f} s (estimate shown at start {timing['estimate']:.0f} s), "
              f"stages {', '.join(f'{k} {v:.1f} s' for k, v in timing['stages'].items())}")
        for quant, info in done["files"].items():
            print(f"  {quant}: {info['bytes'] / 1e6:.1f} MB")
        print(f"  zip: {done['zip_bytes'] / 1e6:.1f} MB")
        from training.hub import gguf_export as ge

        print(f"  estimate before: {ge.estimate_bytes(ge.run_model_config(run_dir))}")
        for quant, row in _compare(run_dir, done, n).items():
            print(f"  {quant}: max |dlogit| {row['max_dlogit']:.4f}, top-1 agreement {row['top1']:.4f} over "
                  f"{row['positions']} positions, greedy answers identical {row['greedy_same']}, "
                  f"read back in {row['load_s']:.0f} s")
        q8_done, q8_timing = _export(run_dir, ("q8_0",))
        print(f"q8_0 alone: {q8_timing['total']:.1f} s, stages "
              f"{', '.join(f'{k} {v:.1f} s' for k, v in q8_timing['stages'].items())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
