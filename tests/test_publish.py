"""Push to a protocol-faithful fake Hub with the real huggingface_hub client."""
from __future__ import annotations

import hashlib
import socket
import zipfile

import pytest

from fakes.hub_server import FakeHub
from test_publish_support import make_run_dir
from training.hub.publish import adapter_zip, push_run, validate_repo_id

TOKEN = "hf_test_good_token"
REPO = "learner/support-json-adapter"


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pubrun")
    return make_run_dir(root, hub_dataset="acme/support-tickets")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    # hf_xet is installed and the constant was read at import time: a fake
    # Hub cannot serve Xet storage, so switch it off for these tests only.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with FakeHub() as fake:
        yield fake


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_push_lands_every_file_byte_identical(hub, run_root):
    result = push_run(run_root, REPO, TOKEN, private=True, endpoint=hub.url)
    assert result.ok, result.message
    assert result.url.endswith(REPO) and "/commit/" in result.commit_url
    repo = hub.repos[REPO]
    assert repo.private
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "chat_template.jinja"):
        assert _sha(repo.files[name]) == _sha((run_root / "adapter" / name).read_bytes()), name
    assert repo.files["README.md"] == (run_root / "publish" / "README.md").read_bytes()
    assert repo.files["loss_curve.png"][:8] == b"\x89PNG\r\n\x1a\n"
    # a pickle the trainer leaves behind is not something to publish
    assert "training_args.bin" not in repo.files
    # weights went through LFS (batch, PUT, verify), as on the real Hub
    routes = hub.routes_called()
    assert routes.index("create") < routes.index("preupload") < routes.index("lfs_batch") \
        < routes.index("lfs_put") < routes.index("lfs_verify") < routes.index("commit")
    assert _sha(repo.files["adapter_model.safetensors"]) in hub.lfs_store
    assert all(r["token"] == TOKEN for r in hub.requests if r["route"] != "lfs_put")


def test_model_card_metadata_validates_and_says_what_was_trained(hub, run_root):
    from huggingface_hub import ModelCard

    assert push_run(run_root, REPO, TOKEN, private=False, endpoint=hub.url).ok
    card = ModelCard(hub.repos[REPO].files["README.md"].decode(), ignore_metadata_errors=False)
    data = card.data.to_dict()
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["library_name"] == "peft" and data["pipeline_tag"] == "text-generation"
    assert {"sft", "lora", "trl"} <= set(data["tags"])
    assert data["datasets"] == ["acme/support-tickets"] and data["license"] == "apache-2.0"
    text = card.text
    assert "ab" * 32 in text and "| 12 | 1234 |" in text  # data fingerprint
    assert "| json valid | 0.250 | 1.000 |" in text  # base vs tuned
    assert "![Training and validation loss](loss_curve.png)" in text
    assert "PeftModel.from_pretrained(base" in text and "merge_and_unload()" in text
    assert '{"item": "b"}' in text  # a sample output


def test_card_loading_code_really_loads_and_merges_the_adapter(run_root):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # The card's recipe, run against the local base the fixture trained on.
    base_dir = run_root.parent.parent / "base"
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    ids = torch.tensor([[2, 5, 9, 10]])
    before = base(ids).logits.detach().clone()
    model = PeftModel.from_pretrained(base, str(run_root / "adapter"))
    with_adapter = model(ids).logits.detach()
    merged = model.merge_and_unload()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert not torch.allclose(before, with_adapter)
    assert torch.allclose(merged(ids).logits, with_adapter, atol=1e-4)


def test_second_push_is_idempotent(hub, run_root):
    assert push_run(run_root, REPO, TOKEN, private=True, endpoint=hub.url).ok
    again = push_run(run_root, REPO, TOKEN, private=True, endpoint=hub.url)
    assert again.ok, again.message
    assert len(hub.repos[REPO].commits) == 1  # nothing changed, nothing re-uploaded


@pytest.mark.parametrize("status, route, words", [
    (401, "create", "401"),
    (403, "create", "manage-repos"),
    (403, "preupload", "write-repos"),
    (503, "create", "HTTP 503"),
    ("drop", "create", "No answer from the Hub"),
])
def test_hub_failures_keep_the_adapter_and_a_retry_succeeds(hub, run_root, status, route, words):
    hub.fail(status, on=route, times=1)
    failed = push_run(run_root, REPO, TOKEN, private=True, endpoint=hub.url)
    assert not failed.ok and failed.retryable
    assert words in failed.message and TOKEN not in failed.message
    assert "downloaded" in failed.message
    # the adapter is still on disk and in the download zip, byte for byte
    with zipfile.ZipFile(adapter_zip(run_root)) as zf:
        assert zf.read("adapter/adapter_model.safetensors") == \
            (run_root / "adapter" / "adapter_model.safetensors").read_bytes()
    retry = push_run(run_root, REPO, TOKEN, private=True, endpoint=hub.url)
    assert retry.ok, retry.message
    assert hub.repos[REPO].files["adapter_model.safetensors"] == \
        (run_root / "adapter" / "adapter_model.safetensors").read_bytes()


def test_token_without_manage_scope_explains_what_is_missing(hub, run_root):
    hub.add_user("hf_write_only", "learner", scopes={"write-repos"})
    result = push_run(run_root, REPO, "hf_write_only", private=True, endpoint=hub.url)
    assert not result.ok and "manage-repos" in result.message
    assert REPO not in hub.repos


def test_wrong_token_is_a_401_message_without_the_token(hub, run_root):
    result = push_run(run_root, REPO, "hf_not_a_real_token", private=True, endpoint=hub.url)
    assert not result.ok and "401" in result.message and "hf_not_a_real_token" not in result.message


def test_unreachable_hub_is_reported_plainly(run_root, monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = push_run(run_root, REPO, TOKEN, private=True, endpoint=f"http://127.0.0.1:{port}")
    assert not result.ok and "No answer from the Hub" in result.message


def test_run_without_adapter_is_refused_before_any_request(hub, tmp_path):
    (tmp_path / "run").mkdir()
    result = push_run(tmp_path / "run", REPO, TOKEN, private=True, endpoint=hub.url)
    assert not result.ok and "no finished adapter" in result.message
    assert hub.requests == []


@pytest.mark.parametrize("name, error", [
    ("my-model", None), ("org-x/my.model_v2", None),
    ("", "empty"), ("-lead", "start or end"), ("trail.", "start or end"), ("a--b", "'--'"),
    ("a..b", "'..'"), ("sp ace", "letters, digits"), ("x" * 97, "at most 96"), ("a/b/c", "single '/'"),
])
def test_repo_names_are_checked_before_any_request(name, error):
    repo_id, message = validate_repo_id(name, "learner")
    if error is None:
        assert message is None and repo_id.endswith(name.split("/")[-1])
    else:
        assert repo_id is None and error in message


def test_name_without_sign_in_asks_to_sign_in():
    repo_id, message = validate_repo_id("my-model", None)
    assert repo_id is None and "Sign in" in message


def test_merged_model_is_pushed_under_merged(hub, run_root):
    result = push_run(run_root, REPO, TOKEN, private=True, include_merged=True, endpoint=hub.url)
    assert result.ok, result.message
    files = hub.repos[REPO].files
    assert "merged/config.json" in files and "merged/model.safetensors" in files
    assert files["merged/model.safetensors"] == (run_root / "merged" / "model.safetensors").read_bytes()
    assert 'subfolder="merged"' in files["README.md"].decode()
