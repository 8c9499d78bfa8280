"""App start: import + build + first page served, app.py vs a bare Blocks with the same tabs.

Each start runs in a fresh interpreter (nothing cached in memory), sides alternate,
medians reported. The child also says whether torch/transformers were imported.
"""
from __future__ import annotations

import json
import os

from bench.common import Row, median, quick, ratio, run_py

CHILD = r"""
import json, socket, sys, time, urllib.request
t0 = time.perf_counter()
side = sys.argv[1]
if side == "app":
    import app
    demo = app.build_app()
else:
    import gradio as gr
    # Same tab structure as app.build_app, no content.
    with gr.Blocks(title="bare") as demo:
        with gr.Tabs():
            for n in range(1, 5):
                with gr.Tab(f"L{n}", id=f"lesson{n}"):
                    with gr.Tabs():
                        for sub in ("Lesson", "Quiz", "Lab"):
                            with gr.Tab(sub, id=f"lesson{n}-{sub.lower()}"):
                                pass
            with gr.Tab("Module Test", id="module_test"):
                pass
            with gr.Tab("Training", id="training"):
                pass
    demo.queue()
t_built = time.perf_counter()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
_, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port)
with urllib.request.urlopen(url, timeout=60) as r:
    page = r.read()
t_served = time.perf_counter()
heavy = [m for m in ("torch", "transformers", "peft", "trl") if m in sys.modules]
print("BENCH" + json.dumps({"build_s": t_built - t0, "served_s": t_served - t0, "heavy": heavy,
                            "page_bytes": len(page)}))
demo.close()
"""


def _once(side: str) -> dict:
    proc = run_py(["-c", CHILD, side], env={"GRADIO_ANALYTICS_ENABLED": "False"}, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH"):
            return json.loads(line[5:])
    raise RuntimeError(f"start of {side} failed:\n{proc.stderr[-2000:]}")


def run(quick_mode: bool | None = None) -> list[Row]:
    q = quick() if quick_mode is None else quick_mode
    repeats = int(os.environ.get("BENCH_START_REPEATS") or (1 if q else 5))
    app, bare = [], []
    for i in range(repeats):
        for side in (("app", "bare") if i % 2 == 0 else ("bare", "app")):
            (app if side == "app" else bare).append(_once(side))
    served_a, served_b = median([r["served_s"] for r in app]), median([r["served_s"] for r in bare])
    build_a, build_b = median([r["build_s"] for r in app]), median([r["build_s"] for r in bare])
    heavy = sorted({m for r in app for m in r["heavy"]})
    return [
        Row(f"start: import + build + first page served (median of {repeats})", f"{served_a:.2f} s",
            f"{served_b:.2f} s", ratio(served_a, served_b), "<= 1.5x", met=served_a <= 1.5 * served_b),
        Row("start: import + build only", f"{build_a:.2f} s", f"{build_b:.2f} s", ratio(build_a, build_b)),
        Row("start: torch/transformers imported at start", ", ".join(heavy) or "none", "none", "—",
            "none", met=not heavy),
    ]


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
