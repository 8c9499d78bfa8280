"""Sign in through gradio's local OAuth mock, then push with the token gradio injects.

Off a Space, gradio mocks /login/huggingface: at launch it asks the Hub's
whoami-v2 who owns HF_TOKEN, and after login the session holds the literal
token "mock-oauth-token-for-local-dev". Here the "Hub" is the fake, so the test
can check that the push reached it with that session token. The app runs in a
subprocess because huggingface_hub reads HF_ENDPOINT once, at import.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fakes.hub_server import FakeHub
from test_publish_support import RUN_ID, make_run_dir

MOCK_TOKEN = "mock-oauth-token-for-local-dev"
ROOT = Path(__file__).resolve().parent.parent

APP = r"""
import sys
import gradio as gr
from training.views.publish_ui import build_publish_panel

with gr.Blocks() as demo:
    run_id = gr.State(sys.argv[1])
    parts = build_publish_panel(run_id)
    assert parts["login"] is not None, "LoginButton missing with FTLAB_ENABLE_LOGIN=1"
demo.queue()
demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, show_error=True)
print("URL", demo.local_url, flush=True)
sys.stdin.read()  # run until the test closes our stdin
demo.close()
"""


@pytest.fixture
def login_app(tmp_path):
    data_dir = tmp_path / "data"
    make_run_dir(data_dir)  # -> data/runs/<RUN_ID>/, where training.run.runs looks
    with FakeHub() as hub:
        hub.add_user(MOCK_TOKEN, "learner")
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_TOKEN="hf_test_good_token", HF_HUB_DISABLE_XET="1",
                   HF_HOME=str(tmp_path / "hf_home"), FTLAB_ENABLE_LOGIN="1", FTLAB_DATA_DIR=str(data_dir),
                   GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(ROOT))
        env.pop("SPACE_ID", None)
        proc = subprocess.Popen([sys.executable, "-c", APP, RUN_ID], cwd=ROOT, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            url, seen = None, []
            for line in proc.stdout:  # blocks until the app prints its URL (or dies)
                seen.append(line)
                if line.startswith("URL "):
                    url = line.split()[1].rstrip("/")
                    break
            assert url, "app did not start:\n" + "".join(seen[-30:])
            yield url, hub
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_login_then_push_uses_the_session_token(login_app):
    from gradio_client import Client

    url, hub = login_app
    # gradio's mock asked the fake Hub who owns HF_TOKEN when it started
    assert "whoami" in hub.routes_called()
    with httpx.Client(follow_redirects=True) as http:
        page = http.get(f"{url}/login/huggingface")
        assert page.status_code == 200
        session = http.cookies.get("session")
    assert session, "the mocked login set no session cookie"

    client = Client(url, headers={"Cookie": f"session={session}"}, verbose=False)
    status, *_ = client.predict("login-adapter", True, False, "", api_name="/publish_push")
    assert "Published" in status, status
    assert MOCK_TOKEN not in status
    repo = hub.repos["learner/login-adapter"]
    assert repo.private and "adapter_model.safetensors" in repo.files
    writes = [r for r in hub.requests if r["route"] in ("create", "preupload", "commit")]
    assert writes and all(r["token"] == MOCK_TOKEN for r in writes)


def test_push_without_signing_in_asks_to_sign_in(login_app):
    from gradio_client import Client

    url, hub = login_app
    client = Client(url, verbose=False)
    status, *_ = client.predict("login-adapter", True, False, "", api_name="/publish_push")
    assert "Sign in" in status
    assert not hub.repos
