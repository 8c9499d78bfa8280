"""The training comparison on a CUDA GPU in bf16, in one short script (one GPU visit).

The app's default GPU run (default model, the clinical_soap train split, one epoch,
default hyperparameters) vs a plain TRL SFTTrainer with the same settings in bf16.
Adds: seconds from starting the run to the first loss point, peak VRAM, and model
FLOP utilisation (the Trainer's FLOP count / training-step time / the GPU's peak
dense bf16 rate). Without a GPU it prints one row saying so; no numbers are made up.

    python -m bench.gpu
"""
from __future__ import annotations

import os
import shutil

from bench.common import Row, median, quick, ratio

# Peak dense bf16 tensor throughput (FLOP/s) by device name, from the vendors' data sheets.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
             "A10G": 70e12, "A10": 125e12, "T4": 65e12}


def has_cuda() -> bool:
    if shutil.which("nvidia-smi") is None and not os.path.exists("/dev/nvidia0"):
        return False
    from bench.common import run_py
    proc = run_py(["-c", "import torch; print(torch.cuda.is_available())"], timeout=120)
    return proc.stdout.strip().endswith("True")


def _peak(name: str) -> float | None:
    for key, value in PEAK_BF16.items():
        if key in name:
            return value
    return None


def run(quick_mode: bool | None = None) -> list[Row]:
    if not has_cuda():
        return [Row("GPU: training comparison in bf16", "not run: no CUDA GPU on this machine", "—", "—",
                    "default run fits one 60 s ZeroGPU call")]
    from bench.train import compare, rows_from

    q = quick() if quick_mode is None else quick_mode
    steps = int(os.environ.get("BENCH_GPU_STEPS") or (4 if q else 0))  # 0 = the default run (one epoch)
    repeats = int(os.environ.get("BENCH_GPU_REPEATS") or (1 if q else 2))
    ours, base = compare(steps, repeats, env={"BENCH_DEVICE": "cuda"})
    name = ours[0].get("gpu_name", "GPU")
    rows = rows_from(ours, base, label=f"GPU bf16 ({name})")
    wall = median([r["wall_s"] for r in ours])
    first = median([r.get("first_loss_s") for r in ours])
    rows.append(Row("GPU: start of run to first loss point (model load included)", f"{first:.1f} s"))
    rows.append(Row("GPU: default run, start to finished (load + train + evals + saves)", f"{wall:.1f} s",
                    f"{median([r['wall_s'] for r in base]):.1f} s", "—", "< 60 s with room", met=wall <= 45))
    vram_o, vram_b = median([r.get("peak_vram_mb") for r in ours]), median([r.get("peak_vram_mb") for r in base])
    rows.append(Row("GPU: peak VRAM", f"{vram_o / 1024:.2f} GB", f"{vram_b / 1024:.2f} GB", ratio(vram_o, vram_b)))
    peak = _peak(name)
    mfu = [r["flos"] / r["train_s"] / peak for r in ours if peak and r.get("flos") and r["train_s"] > 0]
    rows.append(Row("GPU: model FLOP utilisation, default run (Trainer FLOPs / step time / peak bf16)",
                    f"{median(mfu) * 100:.1f}%" if mfu else f"unknown peak for {name}"))
    return rows


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
