"""The ZeroGPU stand-in itself (devtools/zerogpu.py): the real `spaces` package, in ZeroGPU mode,
against the fake scheduler, in a process of its own (the package patches torch for good).

What a learner's first run on the Space meets and the suite otherwise would not: a forked worker
per call, values pickled across, a kill at the requested duration, refusals by quota (charged by
the requested duration, per login state), a queue that gives up, CUDA emulated in the parent only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devtools.zerogpu import DAILY_QUOTA_S, FakeZeroGPU, learner_token

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.path.join(ROOT, "tests", "fakes", "zerogpu_probe.py")

TOKENS = {"plain": learner_token("ada", "regular"), "again": learner_token("ada", "regular"),
          "plain_function": learner_token("ada", "regular"),
          "refused_free": learner_token("cyd", "regular"), "refused_signed_out": learner_token("dan"),
          "illegal": learner_token("ada", "regular"), "queue_timeout": learner_token("eve", "pro"),
          "unavailable": learner_token("fay", "regular"), "killed": learner_token("gus", "pro"),
          "tensor": learner_token("ada", "regular"), "closure": learner_token("ada", "regular"),
          "gradio_error": learner_token("ada", "regular"), "other_error": learner_token("ada", "regular"),
          "xlarge": learner_token("hal", "pro")}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zerogpu")
    with FakeZeroGPU(queue_timeout_s=0.5) as fake:
        fake.set_left("cyd", 10, auth="regular", reset_in_s=3 * 3600)
        fake.set_left("dan", 5)
        fake.set_left("ip:127.0.0.1", 0)  # the anonymous bucket is spent
        fake.fail_next("queue-timeout", learner="eve")
        fake.fail_next("unavailable", learner="fay")
        env = dict(os.environ, **fake.app_env(folder))
        proc = subprocess.run([sys.executable, PROBE, json.dumps(TOKENS)], env=env, capture_output=True,
                              text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        cases = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                value = json.loads(line)
                cases[value["case"]] = value
        yield cases, fake


def _error(cases, case):
    assert "error" in cases[case], cases[case]
    return cases[case]["error"]


def test_each_call_runs_in_a_forked_worker_with_cuda_only_emulated_in_the_parent(probe):
    cases, fake = probe
    parent = cases["parent"]
    assert parent["cuda"] is True  # the package's emulation: the app's main process "sees" a GPU
    first = cases["plain"]["yields"]
    assert [y["i"] for y in first] == [0, 1, 2]
    assert {y["pid"] for y in first} != {parent["pid"]} and all(y["cuda"] is False for y in first)
    assert cases["plain_function"]["result"]["x"] == 42
    assert cases["cuda_in_parent"] == {"case": "cuda_in_parent", "cuda_tensors": 0, "packed": 0}
    assert fake.startup_reports == 0  # sent by gr.Blocks.launch only (no app launched here)
    # An idle worker on the same GPU is reused by the next call of the same function (as on a Space).
    assert cases["again"]["yields"][0]["pid"] == first[0]["pid"]


def test_quota_is_charged_by_the_requested_duration_per_learner(probe):
    _, fake = probe
    ada = [c for c in fake.calls if c.learner == "ada" and c.result == "approved"]
    assert ada and all(c.duration in (7, 5) for c in ada)
    assert fake.learners["ada"].left == DAILY_QUOTA_S["regular"] - sum(c.duration for c in ada)
    xl = next(c for c in fake.calls if c.learner == "hal")
    assert xl.size == "xlarge" and fake.learners["hal"].left == DAILY_QUOTA_S["pro"] - 20  # twice the quota


def test_refusals_carry_the_real_package_texts(probe):
    cases, _ = probe
    free = _error(cases, "refused_free")
    assert free["title"] == "ZeroGPU quota exceeded"
    assert "You have exceeded your free ZeroGPU quota (60s requested vs. 10s left). Try again in 2:59:" in free["message"]
    signed_out = _error(cases, "refused_signed_out")
    assert "You have exceeded your ZeroGPU quota (60s requested vs. 5s left)" in signed_out["message"]
    assert "Space app has reached its GPU limit" in _error(cases, "refused_no_token")["message"]
    illegal = _error(cases, "illegal")
    assert illegal["title"] == "ZeroGPU illegal duration" and "(400s) is larger than the maximum" in illegal["message"]
    queue = _error(cases, "queue_timeout")
    assert queue["title"] == "ZeroGPU queue timeout" and "No GPU was available after 60s" in queue["message"]
    assert _error(cases, "unavailable")["message"] == "No GPU was available"


def test_a_worker_past_its_duration_is_killed(probe):
    cases, fake = probe
    killed = cases["killed"]
    assert killed["error"]["title"] == "ZeroGPU worker error" and killed["error"]["message"] == "GPU task aborted"
    assert 2 <= killed["seconds"] < 8 and len(killed["yields"]) >= 3  # what came before the kill arrived
    lease = next(l for l in fake.leases if l.learner == "gus")
    assert lease.killed and lease.pid in fake.kills
    assert lease.killed_at - lease.granted_at == pytest.approx(lease.duration, abs=0.5)


def test_what_cannot_cross_the_fork_fails_loudly(probe):
    cases, _ = probe
    tensor = _error(cases, "tensor")
    assert tensor["title"] == "ZeroGPU worker error" and tensor["message"] == "PicklingError"
    assert _error(cases, "closure")["type"] == "PicklingError"  # an argument: refused in the parent
    assert _error(cases, "gradio_error")["message"] == "a message for the learner"  # gr.Error passes through
    other = _error(cases, "other_error")
    assert other["title"] == "ZeroGPU worker error" and other["message"] == "ValueError"


def test_the_stand_in_refuses_a_scheduler_that_is_not_local(tmp_path):
    env = dict(os.environ, SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL="http://device-api.example:80",
               FTLAB_ZEROGPU_STANDIN="1")
    proc = subprocess.run([sys.executable, "-c", "from devtools import zerogpu; zerogpu.activate()"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "runs only with SPACES_ZERO_GPU=true and a scheduler on 127.0.0.1" in proc.stderr
