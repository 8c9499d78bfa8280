"""Publish panel for the Training tab: sign in, push to the Hub, retry, download, export a recipe,
export GGUF files for llama.cpp / Ollama (training/views/gguf_ui.py).

Sign-in: on a Space (SPACE_ID set) or when FTLAB_ENABLE_LOGIN=1 the panel shows
gradio's LoginButton, and the push handler receives the signed-in user's
token through its `gr.OAuthToken | None` parameter (gradio fills it from the
session; it is never a component value, so it never reaches browser storage).
Elsewhere gradio would only mock the login, so a password-type token field is
the fallback. Either way the token is passed to `push_run` and dropped when
the push's worker ends.

Every push runs under one deadline (training/hub/timeouts.py): if the Hub
never answers, the learner gets a message, Retry and the download by then,
and the handler's concurrency slot is free again.

No `from __future__ import annotations` here: gradio reads the OAuth
parameter annotations at run time.
"""
import functools
import os

import gradio as gr

from core.config import on_space
from training.hub import timeouts as hub_timeouts
from training.hub import publish
from training.hub import recipe
from training.run import runs
from training.views import gguf_ui

INTRO = (
    "### Share your adapter\n"
    "Push the trained adapter to your Hugging Face account with a model card that records "
    "how it was trained, or download it. When you need more than a GPU slice, export the "
    "same run as a TRL recipe to train on bigger hardware."
)


def login_enabled() -> bool:
    return on_space() or os.environ.get("FTLAB_ENABLE_LOGIN", "").strip() == "1"


def _endpoint():
    return publish.hub_endpoint()


def _run_dir(run_id):
    """The run directory if `run_id` names a finished run with an adapter, else (None, message)."""
    if not runs.valid_run_id(run_id) or not runs.exists(run_id):
        return None, "Train a model first: there is no run to publish yet."
    path = runs.run_dir(run_id)
    if not all((path / "adapter" / f).is_file() for f in publish.REQUIRED_FILES):
        return None, "This run has not saved an adapter yet. Let it finish (or stop it early) first."
    return path, None


def _downloadable(path):
    return runs.downloadable_copy(path)


def _merge_first(path, repo_name):
    """Merge before the Hub deadline starts: it is local work that may take a while. -> message or None."""
    try:
        publish.merge_to_dir(path)  # push_run then reuses the merged folder
    except Exception as exc:  # noqa: BLE001 - the learner gets a message, the adapter stays
        return publish.explain_error(exc, "merging the model", repo_name or "")[0]
    return None


def _upload_bytes(path, include_merged):
    files = list(publish.adapter_files(path))
    if include_merged and (path / "merged").is_dir():
        files += [f for f in (path / "merged").iterdir() if f.is_file()]
    return sum(f.stat().st_size for f in files)


def _hub_push(path, repo_name, namespace, token, private, include_merged):
    """Every Hub call of one push (sign-in lookup, create, upload, commit). -> PushResult."""
    repo_id, refused = publish.resolve_repo(repo_name, namespace, token)
    if refused:
        return refused
    return publish.push_run(path, repo_id, token, bool(private), include_merged=bool(include_merged),
                            endpoint=_endpoint())


def push_handler(run_id, repo_name, private, include_merged, token_text,
                 oauth_token: gr.OAuthToken | None = None, oauth_profile: gr.OAuthProfile | None = None):
    """-> (status markdown, retry button update, adapter download, token box update)."""
    keep_token = gr.update()
    path, error = _run_dir(run_id)
    if error:
        return error, gr.update(visible=False), None, keep_token
    token = (oauth_token.token if oauth_token is not None else "") or (token_text or "").strip()
    download = _downloadable(publish.adapter_zip(path))
    if not token:
        how = "Sign in with Hugging Face above" if login_enabled() else "Paste a Hugging Face access token with write access"
        return f"{how}, then push.", gr.update(visible=False), download, keep_token
    if include_merged:
        error = _merge_first(path, repo_name)
        if error:
            return error, gr.update(visible=True), download, keep_token
    namespace = oauth_profile.username if oauth_profile is not None else None
    # The whole Hub conversation gets one deadline, so the learner hears back
    # (and this handler frees its concurrency slot) even if the Hub never answers.
    budget = hub_timeouts.push_budget_s(_upload_bytes(path, include_merged))
    finished, result, watch = hub_timeouts.run_with_deadline(
        functools.partial(_hub_push, path, repo_name, namespace, token, private, include_merged), budget)
    del token  # the worker drops its reference when it ends
    if not finished or (watch.timed_out and not result.ok):
        # The abandoned worker may still touch publish/: keep the zip made before the push.
        message = publish.timeout_message(watch.stage, min(budget, watch.elapsed()), watch.last_status)
        return message, gr.update(visible=True), download, keep_token
    download = _downloadable(publish.adapter_zip(path))  # now with the model card inside
    if result.ok:
        # A pasted token is cleared once it has done its job.
        return result.message, gr.update(visible=False), download, gr.update(value="")
    return result.message, gr.update(visible=result.retryable), download, keep_token


def export_handler(run_id):
    """-> (status markdown, recipe zip for download)."""
    path, error = _run_dir(run_id)
    if error:
        return error, None
    try:
        zip_path = recipe.export_recipe(path)
    except FileNotFoundError as exc:  # our own messages, no user text in them
        return str(exc), None
    return ("Recipe ready: unzip it and follow its README (`trl sft --config ...` or the multi-GPU "
            "`accelerate launch` variant)."), _downloadable(zip_path)


def build_publish_panel(run_id_state) -> dict:
    """Build inside an open Blocks (the Training tab); returns the components."""
    with gr.Accordion("Publish and export", open=False, elem_id="publish-panel") as panel:
        gr.Markdown(INTRO)
        login = None
        if login_enabled():
            login = gr.LoginButton(elem_id="publish-login")
        token_box = gr.Textbox(
            label="Hugging Face access token (write)", type="password", visible=not login_enabled(),
            placeholder="hf_...", elem_id="publish-token",
            info="Used once for this push and not stored. Create one at huggingface.co/settings/tokens.",
        )
        with gr.Row():
            repo_name = gr.Textbox(label="Repository name", placeholder="my-lora-adapter",
                                   info="A name, or namespace/name for an organisation.", elem_id="publish-repo")
            private = gr.Checkbox(value=True, label="Private repository")
            include_merged = gr.Checkbox(value=False, label="Also push the merged model (larger)")
        with gr.Row():
            push = gr.Button("Push to the Hub", variant="primary", elem_id="publish-push")
            retry = gr.Button("Retry push", visible=False, elem_id="publish-retry")
        status = gr.Markdown(elem_id="publish-status")
        adapter_file = gr.File(label="Adapter download (zip)", interactive=False, elem_id="publish-download")
        with gr.Row():
            export = gr.Button("Export recipe for bigger hardware", elem_id="publish-export")
        export_status = gr.Markdown()
        recipe_file = gr.File(label="Recipe (zip)", interactive=False, elem_id="publish-recipe")
        gguf = gguf_ui.build_gguf_panel(run_id_state, repo_name, private, token_box, accordion=panel)

    inputs = [run_id_state, repo_name, private, include_merged, token_box]
    outputs = [status, retry, adapter_file, token_box]
    push.click(push_handler, inputs, outputs, api_name="publish_push")
    retry.click(push_handler, inputs, outputs, api_name="publish_retry")
    export.click(export_handler, [run_id_state], [export_status, recipe_file], api_name="publish_export")
    return {"login": login, "token": token_box, "repo_name": repo_name, "private": private,
            "include_merged": include_merged, "push": push, "retry": retry, "status": status,
            "adapter_file": adapter_file, "export": export, "export_status": export_status,
            "recipe_file": recipe_file, **gguf}
