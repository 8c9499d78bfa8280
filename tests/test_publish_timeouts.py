"""A Hub that accepts a push and never answers: the learner hears back within the bound.

The publish panel is served with the app's queue settings and driven with
gradio_client, as two learners would; the real huggingface_hub client talks to
the fake Hub, which holds one request open ("hang") at a chosen endpoint.
FTLAB_HUB_TIMEOUT_S is short here so the tests are quick; the default is 20 s.
"""
from __future__ import annotations

import threading
import time
import zipfile

import pytest

from fakes.hub_server import FakeHub
from test_publish_support import RUN_ID, make_run_dir

TOKEN = "hf_test_good_token"
SECOND_TOKEN = "hf_test_second_learner"
BOUND_S = 3.0
# Gradio's queue and the client's round trip on a shared 2-core test machine
# (load 15+ at times). Without the bound the wait is the fake's HANG_MAX_S.
SLACK_S = 20.0
HANG_MAX_S = 120.0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import gradio as gr
    import huggingface_hub.constants as constants

    from app import configure_queue
    from training.views.publish_ui import build_publish_panel

    root = tmp_path_factory.mktemp("timeouts")
    make_run_dir(root)  # -> root/runs/<RUN_ID>/ with a finished adapter
    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_DATA_DIR", str(root))
    mp.setenv("HF_HOME", str(root / "hf_home"))
    mp.delenv("SPACE_ID", raising=False)
    mp.delenv("FTLAB_ENABLE_LOGIN", raising=False)
    mp.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the fake cannot serve Xet
    hub = FakeHub(hang_max_s=HANG_MAX_S)
    hub.start()
    hub.add_user(SECOND_TOKEN, "second")
    mp.setenv("HF_ENDPOINT", hub.url)
    with gr.Blocks() as demo:
        build_publish_panel(gr.State(RUN_ID))
    configure_queue(demo)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield demo.local_url, hub
    finally:
        demo.close()
        hub.stop()
        mp.undo()


@pytest.fixture
def hub(served, monkeypatch):
    """The fake Hub, fresh for each test: no failures queued, no hang held."""
    monkeypatch.setenv("FTLAB_HUB_TIMEOUT_S", str(BOUND_S))
    url, fake = served
    fake.clear_failures()
    fake.lfs_store.clear()  # else the Hub already has this adapter's blobs and skips the upload
    fake._release.clear()
    fake._hang_started.clear()
    yield fake
    fake.release_hangs()


def learner(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def push(client, repo, token=TOKEN, api="/publish_push"):
    """-> (status, seconds it took, downloaded zip path)."""
    start = time.monotonic()
    status, *rest = client.predict(repo, True, False, token, api_name=api)
    return status, time.monotonic() - start, rest[0]


def _hub_workers():
    return [t for t in threading.enumerate() if t.name == "ftlab-hub-call"]


def assert_adapter_downloadable(download):
    with zipfile.ZipFile(download) as zf:
        assert "adapter/adapter_model.safetensors" in zf.namelist()


@pytest.mark.parametrize("route, stage", [
    ("whoami", "sign-in"),
    ("create", "creating the repository"),
    ("preupload", "preparing the upload"),
    ("lfs_put", "uploading files"),
    ("commit", "the commit"),
])
def test_a_hung_hub_gets_a_message_within_the_bound_and_retry_works(served, hub, route, stage):
    client = learner(served)
    hub.fail("hang", on=route, times=1)
    status, took, download = push(client, f"hang-{route}")

    assert took < BOUND_S + SLACK_S, f"message after {took:.1f} s"
    assert f"did not answer within {BOUND_S:.0f} s ({stage})" in status and "Retry" in status
    assert TOKEN not in status
    assert hub.hanging >= 1  # the Hub really was still holding the request
    assert_adapter_downloadable(download)
    assert f"learner/hang-{route}" not in hub.repos or not hub.repos[f"learner/hang-{route}"].commits

    # The Hub answers again (the hang was for one request): Retry publishes.
    status, _took, download = push(client, f"hang-{route}", api="/publish_retry")
    assert "Published" in status, status
    assert "adapter_model.safetensors" in hub.repos[f"learner/hang-{route}"].files
    assert_adapter_downloadable(download)


def test_an_abandoned_push_worker_ends_by_itself(served, hub):
    client = learner(served)
    hub.fail("hang", on="commit", times=1)
    status, *_ = push(client, "abandoned")
    assert "did not answer" in status
    # The request is still held by the Hub; the worker stops at its deadline
    # instead of waiting with it (client back-off sleeps at most a few seconds).
    for worker in _hub_workers():
        worker.join(timeout=15)
        assert not worker.is_alive(), "a timed-out push worker is still running"
    assert hub.hanging >= 1


def test_a_second_learner_pushes_while_the_first_push_hangs(served, hub, monkeypatch):
    # The default bound (20 s): B's whole push fits in it, even on a loaded machine.
    monkeypatch.delenv("FTLAB_HUB_TIMEOUT_S")
    first, second = learner(served), learner(served)
    hub.fail("hang", on="commit", times=1)
    start = time.monotonic()
    job = first.submit("stuck", True, False, TOKEN, api_name="/publish_push")
    assert hub.wait_for_hang(timeout=30), "learner A's commit never reached the Hub"

    status, took, download = push(second, "unblocked", token=SECOND_TOKEN)
    assert "Published" in status, status
    assert "adapter_model.safetensors" in hub.repos["second/unblocked"].files
    assert hub.hanging >= 1 and not job.done(), "B only finished after A's hang ended"

    status_a, *_ = job.result(timeout=60)
    assert "did not answer within 20 s (the commit)" in status_a
    assert time.monotonic() - start < 30 + SLACK_S
    status_a, *_ = push(first, "stuck", api="/publish_retry")
    assert "Published" in status_a


def test_repeated_server_errors_are_reported_within_the_bound(served, hub):
    # The client retries 5xx with back-off (~23 s of sleeps); the deadline cuts it short.
    client = learner(served)
    hub.fail(503, on="preupload", times=10)
    status, took, download = push(client, "flaky")
    assert took < BOUND_S + SLACK_S, f"message after {took:.1f} s"
    assert f"kept failing (HTTP 503) for {BOUND_S:.0f} s" in status and "Retry" in status
    assert_adapter_downloadable(download)
