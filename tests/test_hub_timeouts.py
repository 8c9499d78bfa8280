"""Hub calls outside a push are bounded too: metadata reads and Hub dataset loads.

The real huggingface_hub / datasets clients talk to the fake Hub, which holds
the request open and never answers ("hang").
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes.hub_server import FakeHub

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 2.0
SLACK_S = 15.0  # a shared 2-core test machine; without the bound these wait 60 s or more


@pytest.fixture
def hung_hub():
    with FakeHub(hang_max_s=120) as hub:
        yield hub


def test_a_read_with_timeout_none_is_capped_by_the_bound(hung_hub, monkeypatch):
    from huggingface_hub import HfApi

    from training.hub import timeouts as hub_timeouts

    monkeypatch.setenv("FTLAB_HUB_TIMEOUT_S", str(BOUND_S))
    hub_timeouts.install()
    hung_hub.fail("hang", on="repo_info", times=1)
    start = time.monotonic()
    with pytest.raises(Exception) as caught:  # huggingface_hub passes timeout=None through unchanged
        HfApi(endpoint=hung_hub.url).model_info("learner/anything", timeout=None)
    assert time.monotonic() - start < BOUND_S + SLACK_S
    assert "Timeout" in type(caught.value).__name__
    assert hung_hub.hanging == 1  # the Hub was still holding it: our side gave up


def test_a_hub_dataset_load_against_a_hung_hub_gets_a_message(hung_hub, tmp_path):
    # Every request the datasets library makes hangs (dataset info, file listing, downloads, the rest).
    for route in ("repo_info", "tree", "resolve", "unknown"):
        hung_hub.fail("hang", on=route, times=1000)
    env = {**os.environ, "HF_ENDPOINT": hung_hub.url, "HF_HOME": str(tmp_path), "FTLAB_HUB_TIMEOUT_S": str(BOUND_S),
           "HF_HUB_DISABLE_XET": "1"}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(key, None)
    code = ("import time\nimport datasets\nfrom training.data.loading import load_hub_dataset, DataError\n"
            "start = time.monotonic()\n"
            "try:\n    load_hub_dataset('someone/some_set', 'sft')\n"
            "except DataError as e:\n    print(e)\n"
            "print('took', time.monotonic() - start)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "did not answer" in out.stdout and "built-in set" in out.stdout, out.stdout + out.stderr[-2000:]
    took = float(out.stdout.rsplit("took", 1)[1])
    assert took < 3 * BOUND_S + SLACK_S, took
    assert hung_hub.hanging >= 1


def test_by_default_a_push_of_a_typical_adapter_is_answered_within_30_s(monkeypatch):
    from training.hub import timeouts as hub_timeouts

    monkeypatch.delenv("FTLAB_HUB_TIMEOUT_S", raising=False)
    monkeypatch.delenv("FTLAB_HUB_MIN_UPLOAD_MB_S", raising=False)
    # SmolLM2-135M adapters: the default preset (r=16 on attention) is 7.4 MB, the
    # largest (r=32 on all linear layers) ~39 MB.
    assert hub_timeouts.push_budget_s(7_404_368) < 25
    assert hub_timeouts.push_budget_s(39_000_000) < 30
    # A merged model (540 MB in float32) needs its upload time: the deadline grows with it.
    assert hub_timeouts.push_budget_s(540_000_000) > 100
