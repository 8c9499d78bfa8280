"""A short soak (issue 26 part 2): 5 tiny runs from 3 sessions in this process through the
Training tab's handlers (data check, train, evaluate 2 rows, chat, adapter download, recipe
export), then the retention sweep with its clock moved forward. Nothing may accumulate:
descriptors and threads flat, no run left running, the run and download folders back to
their size before the soak. Memory is bounded loosely (allocator noise on a busy machine).
The 30-run version with its table: `python -m bench.soak` (docs/benchmarks.md)."""
from __future__ import annotations

import tempfile

from bench import soak


def test_five_runs_leave_nothing_behind(ftlab_data_dir, tmp_path, monkeypatch):
    from training.evaluation import evaluate, inference
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "tmp" / "gradio"))
    monkeypatch.setattr(inference, "CHAT_MAX_NEW_TOKENS", inference.CHAT_MAX_NEW_TOKENS)
    monkeypatch.setattr(evaluate, "new_token_cap", evaluate.new_token_cap)  # soak() caps both; undone after
    from training.run import engine
    monkeypatch.setattr(engine, "EVAL_MAX_ROWS", 1)  # the eval loss on 1 validation row: what accumulates is the same
    # Pharmacy notes: the built-in set with the shortest rows (the soak is not about the data).
    result = soak.soak(5, 3, eval_tokens=8, chat_tokens=8, dataset="pharmacy_meds")
    second, last = result["runs"][1], result["runs"][-1]
    assert abs(last["fds"] - second["fds"]) <= 3, (second["fds"], last["fds"])
    assert abs(last["os_threads"] - second["os_threads"]) <= 2, (second["os_threads"], last["os_threads"])
    assert last["rss_mb"] <= 1.5 * second["rss_mb"], (second["rss_mb"], last["rss_mb"])
    assert result["running"] == []
    assert result["swept"]["runs_removed"] == 5
    assert result["after_sweep"]["data"] == result["before"]["data"]
    assert result["after_sweep"]["downloads"] == (0, 0)
    assert result["after_sweep"]["gradio"] <= result["before"]["gradio"]
