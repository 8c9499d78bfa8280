"""A certificate of completion, drawn in the app from what the learner has done.

Earned by passing the module test and finishing a run that was evaluated
against its base model (issue 11). It states the module, the date, the test
score and the run's base-vs-tuned headline; a name only if the learner types
one. Nothing about the learner is stored on the server: the PNG goes to a
swept download folder and is gone within the hour.

    >>> reason_not_ready({"test": {"best": 9, "passed": False}}, None)
    'Pass the module test first (your best is 9/15; 12 passes).'
"""
from __future__ import annotations

import time
import unicodedata
from pathlib import Path

from quizzes.grading import MODULE_TEST_ID, PASS_MARK, load_quiz, pass_threshold

MODULE = "Fine-Tuning Lab: fine-tuning LLMs with LoRA"
MAX_NAME = 60
HEADLINE_METRICS = (("json_valid", "valid JSON"), ("field_accuracy", "field accuracy"),
                    ("field_f1", "field F1"), ("exact_match", "exact match"), ("rouge_l", "ROUGE-L"))


def _test_size() -> int:
    return len(load_quiz(MODULE_TEST_ID)["questions"])


def reason_not_ready(progress: dict, metrics: dict | None) -> str | None:
    """None when the certificate is earned, else what is still to do (one sentence)."""
    test = (progress or {}).get("test") or {}
    total = _test_size()
    if not test.get("passed"):
        best = test.get("best")
        done = f" (your best is {best}/{total}; {pass_threshold(total)} passes)" if best is not None else ""
        return f"Pass the module test first{done}."
    if not metrics or not metrics.get("samples"):
        return "Evaluate a finished run against its base model first (step 4 of the Training tab)."
    return None


def headline(metrics: dict) -> str:
    """The run's result in one line: the first two metrics it has, base → tuned."""
    parts = []
    for key, label in HEADLINE_METRICS:
        base, tuned = (metrics.get("base") or {}).get(key), (metrics.get("tuned") or {}).get(key)
        if isinstance(base, (int, float)) and isinstance(tuned, (int, float)):
            parts.append(f"{label} {base:.0%} → {tuned:.0%}")
        if len(parts) == 2:
            break
    n = metrics.get("n") or len(metrics.get("samples") or [])
    return f"{', '.join(parts)} on {n} held-out test example{'s' if n != 1 else ''}" if parts else ""


def clean_name(name: str | None) -> str:
    """The learner's name as typed, minus control characters, trimmed to a line."""
    text = "".join(ch for ch in str(name or "") if unicodedata.category(ch)[0] != "C")
    return " ".join(text.split())[:MAX_NAME]


def render_png(out_path: Path, *, score: int, total: int, result: str, run_line: str,
               name: str = "", when: float | None = None) -> Path:
    """Draw the certificate (1200 × 850 px) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(12, 8.5), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.add_patch(Rectangle((0.03, 0.04), 0.94, 0.92, fill=False, linewidth=3, edgecolor="#4f46e5"))
    lines = [
        (0.84, "Certificate of completion", 34, "bold"),
        (0.74, "This certifies that" if name else "This certifies completion of", 16, "normal"),
        (0.64, name, 30, "bold") if name else (0.64, "", 1, "normal"),
        (0.54 if name else 0.64, f"{'completed ' if name else ''}{MODULE}", 20, "normal"),
        (0.43, f"Module test: {score}/{total} ({score / total:.0%}; {PASS_MARK:.0%} to pass)", 16, "normal"),
        (0.35, f"Own LoRA fine-tune: {run_line}", 14, "normal"),
        (0.29, result, 14, "normal"),
        (0.12, time.strftime("%d %B %Y", time.gmtime(when or time.time())), 14, "normal"),
    ]
    for y, text, size, weight in lines:
        if text:
            ax.text(0.5, y, text, ha="center", va="center", fontsize=size, fontweight=weight, wrap=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png")
    return out_path


def issue(progress, run_id: str | None, name: str | None) -> tuple[str | None, str]:
    """(PNG path to download, message) for the learner's progress and run; no file until it is earned."""
    from core.progress import repair
    from training.evaluation import evaluate
    from training.run import runs

    fixed, _ = repair(progress)
    info = runs.read_run(run_id) if run_id and runs.exists(run_id) else None
    metrics = evaluate.read_metrics(run_id) if info else None
    missing = reason_not_ready(fixed, metrics)
    if missing:
        return None, missing
    cfg = info.get("config") or {}
    model = str((info.get("model") or {}).get("id") or "").split("/")[-1] or "a small model"
    run_line = f"{str(cfg.get('method') or '').upper()} with LoRA on {model}, {plural_steps(info)}"
    out = runs.run_dir(run_id) / "certificate.png"
    render_png(out, score=int(fixed["test"]["best"]), total=_test_size(), result=headline(metrics),
               run_line=run_line, name=clean_name(name))
    path = runs.downloadable_copy(out)
    out.unlink(missing_ok=True)  # the name is not kept on the server
    return path, "Your certificate is ready: download it below."


def plural_steps(info: dict) -> str:
    from core.text import plural

    return plural(int(info.get("step") or 0), "training step")
