"""The "Export for llama.cpp / Ollama" part of the Publish panel: sizes first, a streamed export, a zip,
and an optional push of the files next to the adapter. Logic in training/hub/gguf_export.py.

No `from __future__ import annotations` here: gradio reads the OAuth parameter annotations at run time.
"""
import functools

import gradio as gr

from training.hub import gguf_export as ge
from training.hub import timeouts as hub_timeouts
from training.run import runs

INTRO = (
    "#### Take it home: llama.cpp and Ollama\n"
    "Merges the adapter into the base model and writes it as a GGUF file, the format llama.cpp and "
    "Ollama run on a laptop, with an Ollama `Modelfile` (chat template and the system prompt the run "
    "trained with) and a README with the commands. **f16** keeps the merged weights to within rounding; "
    "**q8_0** stores 8 bits per weight (one scale per 32), about half the size and faster on a CPU; "
    "its answers usually match but not always (evaluate again if it matters). The files count against this run's disk space and are "
    "deleted with the run."
)
CHOICES = [("f16", "f16"), ("q8_0", "q8_0")]


def _run_dir(run_id):
    if not runs.valid_run_id(run_id) or not runs.exists(run_id):
        return None, "Train a model first: there is no run to export yet."
    path = runs.run_dir(run_id)
    reason = ge.check_run(path)
    return (None, reason) if reason else (path, None)


def sizes_handler(run_id):
    """-> (choices update with each file's size, sizes markdown)."""
    path, error = _run_dir(run_id)
    if error:
        return gr.update(choices=CHOICES), error
    config = ge.run_model_config(path)
    if not config:
        return gr.update(choices=CHOICES), "Sizes are known once the base model is on disk."
    sizes = ge.estimate_bytes(config, 4_000_000)
    seconds = ge.estimate_seconds(config, ge.QUANTS)
    labels = [(f"{q} (~{ge.human_bytes(sizes[q])})", q) for q in ge.QUANTS]
    text = ("Each file before it is written: " + ", ".join(
        f"**{q}** ~{ge.human_bytes(sizes[q])}" for q in ge.QUANTS)
        + f". The zip holds the files uncompressed (GGUF weights do not compress). Both take about "
          f"{ge.human_seconds(sum(seconds.values()))} on this machine.")
    done = ge.existing_export(path)
    if done:
        text += " An earlier export of this run is ready below; exporting again replaces it."
    return gr.update(choices=labels), text


def _status(event) -> str:
    bar_done = int(round(event["fraction"] * 20))
    bar = "▰" * bar_done + "▱" * (20 - bar_done)
    return (f"**{event['stage'].capitalize()}**: {event['message']}\n\n`{bar}` {event['fraction']:.0%} · "
            f"{ge.human_seconds(event['elapsed'])} so far · about {ge.human_seconds(event['eta_s'])} left")


def export_handler(run_id, quants):
    """Generator -> (status markdown, zip for download, push button update)."""
    path, error = _run_dir(run_id)
    if error:
        yield error, None, gr.update(visible=False)
        return
    for event in ge.export_run(path, tuple(quants or ())):
        if event["kind"] == "progress":
            yield _status(event), None, gr.update(visible=False)
        elif event["kind"] == "error":
            yield event["message"], None, gr.update(visible=False)
            return
        else:
            files = ", ".join(f"`{info['file']}` ({ge.human_bytes(info['bytes'])})"
                              for info in event["files"].values())
            text = (f"Export ready in {ge.human_seconds(event['seconds'])}: {files}, with `Modelfile` and "
                    "`README.md`. Unzip it and run `ollama create <name> -f Modelfile`, or "
                    "`llama-cli -m <file>.gguf`.")
            if event.get("system_prompt") is not None:
                text += f" The Modelfile's system prompt is {event['system_source']}."
            yield text, runs.downloadable_copy(event["zip"]), gr.update(visible=True)


def _push(path, repo_name, namespace, token, private):
    from training.hub import publish

    repo_id, refused = publish.resolve_repo(repo_name, namespace, token)
    if refused:
        return refused
    return ge.push_gguf(path, repo_id, token, bool(private), endpoint=publish.hub_endpoint())


def push_handler(run_id, repo_name, private, token_text,
                 oauth_token: gr.OAuthToken | None = None, oauth_profile: gr.OAuthProfile | None = None):
    """-> status markdown. Pushes the last export next to the adapter, under one deadline."""
    from training.hub import publish
    from training.views.publish_ui import login_enabled

    path, error = _run_dir(run_id)
    if error:
        return error
    if not ge.existing_export(path):
        return "Export the model first (Export for llama.cpp / Ollama), then push it."
    token = (oauth_token.token if oauth_token is not None else "") or (token_text or "").strip()
    if not token:
        how = "Sign in with Hugging Face above" if login_enabled() else "Paste a Hugging Face access token with write access above"
        return f"{how}, then push."
    namespace = oauth_profile.username if oauth_profile is not None else None
    budget = hub_timeouts.push_budget_s(ge.upload_bytes(path))
    finished, result, watch = hub_timeouts.run_with_deadline(
        functools.partial(_push, path, repo_name, namespace, token, private), budget)
    del token
    if not finished or (watch.timed_out and not result.ok):
        return publish.timeout_message(watch.stage, min(budget, watch.elapsed()), watch.last_status).replace(
            "your adapter is still saved here", "your GGUF export is still saved here")
    return result.message


def build_gguf_panel(run_id_state, repo_name, private, token_box, accordion=None) -> dict:
    """Build inside the open Publish accordion; returns the components (elem ids `publish-gguf-*`)."""
    gr.Markdown(INTRO, elem_id="publish-gguf-intro")
    quants = gr.CheckboxGroup(CHOICES, value=["q8_0"], label="GGUF files to write",
                              elem_id="publish-gguf-format")
    sizes = gr.Markdown(elem_id="publish-gguf-sizes")
    export = gr.Button("Export for llama.cpp / Ollama", elem_id="publish-gguf-export")
    status = gr.Markdown(elem_id="publish-gguf-status")
    zip_file = gr.File(label="GGUF export (zip: GGUF, Modelfile, README)", interactive=False,
                       elem_id="publish-gguf-file")
    push = gr.Button("Push the GGUF files to my Hub repo (next to the adapter)", visible=False,
                     elem_id="publish-gguf-push")
    push_status = gr.Markdown(elem_id="publish-gguf-push-status")

    export.click(export_handler, [run_id_state, quants], [status, zip_file, push], api_name="publish_gguf_export",
                 concurrency_id="gguf-export", concurrency_limit=1)
    push.click(push_handler, [run_id_state, repo_name, private, token_box], [push_status],
               api_name="publish_gguf_push")
    refresh = dict(fn=sizes_handler, inputs=[run_id_state], outputs=[quants, sizes], show_progress="hidden",
                   api_visibility="private")
    run_id_state.change(**refresh)
    if accordion is not None:
        accordion.expand(**refresh)
    return {"gguf_quants": quants, "gguf_sizes": sizes, "gguf_export": export, "gguf_status": status,
            "gguf_file": zip_file, "gguf_push": push, "gguf_push_status": push_status}
