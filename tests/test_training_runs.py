"""Runs on disk: ids, status, interrupted detection, one active run per learner, cleanup (fast)."""
from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from training.run import runs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_run_ids_are_checked_before_any_path_is_built(ftlab_data_dir):
    for bad in ["../etc", "a/b", "", None, "x" * 100, "short", "abc def ghi jkl mno", "..%2f..%2fetc%2fpasswd"]:
        assert not runs.valid_run_id(bad)
        with pytest.raises(runs.RunNotFound):
            runs.read_run(bad)
    rid = runs.create_run({}, total_steps=5)
    assert runs.valid_run_id(rid) and runs.run_dir(rid).parent == runs.runs_root()
    assert runs.read_run(rid)["status"] == "planned"


def test_a_running_run_whose_process_died_is_shown_interrupted(ftlab_data_dir):
    rid = runs.create_run({}, total_steps=5)
    runs.update_run(rid, status="running", owner_pid=_dead_pid(), owner_host=socket.gethostname(),
                    heartbeat_at=time.time())
    info = runs.read_run(rid)
    assert info["status"] == "interrupted"
    assert "resume" in info["message"]
    # A live owner (this process) is left alone.
    rid2 = runs.create_run({}, total_steps=5)
    runs.claim(rid2)
    assert runs.read_run(rid2)["status"] == "running"


def test_stale_heartbeat_from_another_host_is_interrupted(ftlab_data_dir, monkeypatch):
    monkeypatch.setenv("FTLAB_HEARTBEAT_STALE_S", "60")
    rid = runs.create_run({}, total_steps=5)
    runs.update_run(rid, status="running", owner_pid=1, owner_host="other-host", heartbeat_at=time.time() - 120)
    assert runs.read_run(rid)["status"] == "interrupted"


def test_one_active_run_per_learner_and_browser_state_is_sanitised(ftlab_data_dir):
    a, b = runs.create_run({}), runs.create_run({})
    runs.claim(b)
    stored = [a, "../../x", 42, b, b]
    assert runs.clean_run_ids(stored) == [a, b]
    assert runs.active_run(stored) == b
    assert runs.active_run([a]) == a  # created and waiting for the GPU queue: counts as active
    runs.update_run(a, status="finished")
    assert runs.active_run([a]) is None
    assert runs.clean_run_ids("not a list") == []
    other = runs.create_run({})
    assert {i["run_id"] for i in runs.learner_runs([a, b])} == {a, b} and other not in [a, b]


def test_log_is_truncated_to_the_checkpoint_on_resume(ftlab_data_dir):
    rid = runs.create_run({})
    runs.append_log(rid, [{"step": s, "loss": 1.0 / s} for s in range(1, 6)])
    with open(runs.run_dir(rid) / "log.jsonl", "a") as fh:
        fh.write('{"step": 6, "lo')  # cut off by a crash mid-write
    assert [e["step"] for e in runs.read_log(rid)] == [1, 2, 3, 4, 5]
    runs.truncate_log_after(rid, 3)
    assert [e["step"] for e in runs.read_log(rid)] == [1, 2, 3]


def test_cleanup_removes_old_runs_only(ftlab_data_dir, monkeypatch):
    old, new = runs.create_run({}), runs.create_run({})
    runs.update_run(old, status="finished")
    now = time.time() + 49 * 3600
    runs.update_run(new, status="finished")
    # pretend `new` was touched just now, `old` 49 h ago
    info = runs._read_json(runs.run_dir(new) / "run.json")
    info["updated_at"] = now
    runs._atomic_write_json(runs.run_dir(new) / "run.json", info)
    assert runs.cleanup_old_runs(now=now) == 1
    assert not runs.exists(old) and runs.exists(new)


def test_stop_flag_and_adapter_zip(ftlab_data_dir):
    rid = runs.create_run({})
    assert not runs.stop_requested(rid)
    runs.request_stop(rid)
    assert runs.stop_requested(rid)
    runs.clear_stop(rid)
    assert not runs.stop_requested(rid)
    with pytest.raises(FileNotFoundError):
        runs.zip_dir(rid, "adapter")
    (runs.run_dir(rid) / "adapter").mkdir()
    (runs.run_dir(rid) / "adapter" / "adapter_config.json").write_text("{}")
    with zipfile.ZipFile(runs.zip_dir(rid, "adapter")) as zf:
        assert zf.namelist() == ["adapter/adapter_config.json"]
    with pytest.raises(ValueError):
        runs.zip_dir(rid, "../..")


def test_importing_the_training_ui_does_not_import_torch():
    code = ("import sys, training.views.tab, training.gpu.calls, training.run.engine, training.run.runs, training.data.checks, "
            "training.evaluation.evaluate, training.evaluation.inference; "
            "bad = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(Path(__file__).resolve().parent.parent))
    assert out.returncode == 0, out.stdout + out.stderr


def test_download_copies_are_served_from_their_own_folder_and_swept(tmp_path, monkeypatch):
    # Its own temp dir: a sweep with the clock moved forward in the shared /tmp would remove
    # the download another test's server has just handed out (seen under pytest-xdist).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    src = tmp_path / "adapter.zip"
    src.write_bytes(b"zip bytes")
    first = Path(runs.downloadable_copy(src))
    second = Path(runs.downloadable_copy(src))
    assert first.read_bytes() == b"zip bytes" and first.parent != second.parent
    # A sweep an hour-plus later removes both old copies, keeping only the new one.
    third = Path(runs.downloadable_copy(src, now=time.time() + runs.DOWNLOAD_TTL_S + 60))
    assert third.exists() and not first.exists() and not second.exists()
    assert runs.downloadable_copy(None) is None
