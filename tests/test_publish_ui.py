"""The publish panel's handlers, off a Space: token-field fallback, checks, download, recipe."""
from __future__ import annotations

import zipfile

import pytest

from fakes.hub_server import FakeHub
from test_publish_support import RUN_ID, make_run_dir

TOKEN = "hf_test_good_token"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui_data")
    run_dir = make_run_dir(root)
    (run_dir / "data").mkdir()
    for split in ("train", "validation"):
        (run_dir / f"{split}.jsonl").replace(run_dir / "data" / f"{split}.jsonl")
    return root


@pytest.fixture
def env(monkeypatch, data_dir, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("FTLAB_DATA_DIR", str(data_dir))
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("FTLAB_ENABLE_LOGIN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the fake cannot serve Xet
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def test_off_a_space_the_panel_offers_a_password_token_field(env):
    import gradio as gr

    from training.views.publish_ui import build_publish_panel

    with gr.Blocks():
        parts = build_publish_panel(gr.State(RUN_ID))
    assert parts["login"] is None
    assert parts["token"].type == "password" and parts["token"].visible


def test_pasted_token_pushes_and_is_cleared_afterwards(env):
    from training.views.publish_ui import push_handler

    status, retry, download, token_update = push_handler(RUN_ID, "ui-adapter", True, False, f"  {TOKEN} ")
    assert "Published" in status and TOKEN not in status
    assert "adapter_model.safetensors" in env.repos["learner/ui-adapter"].files
    assert token_update["value"] == ""
    assert retry["visible"] is False
    with zipfile.ZipFile(download) as zf:
        assert "adapter/adapter_model.safetensors" in zf.namelist() and "adapter/README.md" in zf.namelist()


def test_failed_push_shows_retry_keeps_token_and_download(env):
    from training.views.publish_ui import push_handler

    env.fail(500, on="create", times=1)
    status, retry, download, token_update = push_handler(RUN_ID, "ui-adapter", True, False, TOKEN)
    assert "HTTP 500" in status and retry["visible"] is True
    assert "value" not in token_update  # the learner's input is not wiped on failure
    assert zipfile.ZipFile(download).namelist()
    status, retry, *_ = push_handler(RUN_ID, "ui-adapter", True, False, TOKEN)
    assert "Published" in status and retry["visible"] is False


def test_bad_repo_name_is_refused_before_the_push(env):
    from training.views.publish_ui import push_handler

    status, *_ = push_handler(RUN_ID, "bad--name", True, False, TOKEN)
    assert "'--'" in status
    assert not env.repos and "create" not in env.routes_called()


def test_missing_token_and_unknown_run_get_clear_messages(env):
    from training.views.publish_ui import export_handler, push_handler

    status, *_ = push_handler(RUN_ID, "x", True, False, "")
    assert "access token" in status
    status, *_ = push_handler("../../etc", "x", True, False, TOKEN)
    assert "Train a model first" in status
    message, file = export_handler("not a run id")
    assert "Train a model first" in message and file is None


def test_export_button_gives_a_recipe_zip(env):
    from training.views.publish_ui import export_handler

    message, path = export_handler(RUN_ID)
    assert "Recipe ready" in message
    names = zipfile.ZipFile(path).namelist()
    assert "ftlab-recipe-sft/sft.yaml" in names and "ftlab-recipe-sft/data/train.jsonl" in names
