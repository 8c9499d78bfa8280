"""Shared pytest fixtures.

The embedded SmolLM2-135M is rebuilt from its GGUF file once (~20 s) into
`.data/models/` (git-ignored) and reused by every later session; each test
still gets its own empty data dir, with `models/` linked to that cache.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# `make test` runs one pytest-xdist worker per core, and the browser tests add a served app
# and Chromium beside them. torch's default team (a thread per core) in every worker would
# put 2-3 OpenMP teams on 2 cores, each waiting at every barrier for a descheduled thread:
# one intra-op thread per worker (and per app it launches, through the environment) is
# faster, not slower, here. The app itself keeps torch's default.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """Path of the plain (trainable) embedded model, built once and cached across sessions."""
    from training.run import base_model

    cache = ROOT / ".data"
    old = os.environ.get("FTLAB_DATA_DIR")
    os.environ["FTLAB_DATA_DIR"] = str(cache)
    try:
        return base_model.embedded_model_dir()
    finally:
        if old is None:
            os.environ.pop("FTLAB_DATA_DIR", None)
        else:
            os.environ["FTLAB_DATA_DIR"] = old


@pytest.fixture(scope="session")
def embedded_tokenizer(embedded_model_dir):
    from training.run.base_model import load_tokenizer
    return load_tokenizer(str(embedded_model_dir))


def _link_models(data: Path, model_dir: Path) -> None:
    (data / "models").mkdir(parents=True, exist_ok=True)
    link = data / "models" / model_dir.name
    if not link.exists():
        link.symlink_to(model_dir, target_is_directory=True)


@pytest.fixture
def ftlab_data_dir(tmp_path, monkeypatch, embedded_model_dir) -> Path:
    """A fresh FTLAB_DATA_DIR for one test, offline, with the embedded model available."""
    data = tmp_path / "ftlab"
    data.mkdir()
    _link_models(data, embedded_model_dir)
    monkeypatch.setenv("FTLAB_DATA_DIR", str(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return data


@pytest.fixture(scope="module")
def module_data_dir(tmp_path_factory, embedded_model_dir):
    """Like ftlab_data_dir, shared by a module's tests (for expensive training runs)."""
    data = tmp_path_factory.mktemp("ftlab_mod")
    _link_models(data, embedded_model_dir)
    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_DATA_DIR", str(data))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield data
    mp.undo()


# The longest files start first: `make test` runs two workers that take one file at a time
# (pytest-xdist --dist loadfile, in collection order), so a long file collected last would
# run on its own at the end while the other worker idles.
LONG_FILES_FIRST = ("test_browser_training.py", "test_zerogpu_app.py", "test_browser_gguf.py",
                    "test_safety_kill_drill.py", "test_bench_smoke.py", "test_browser_zerogpu.py",
                    "test_browser_compare.py", "test_soak.py", "test_training_engine.py",
                    "test_publish_timeouts.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
