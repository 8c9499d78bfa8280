"""The "Run on Hugging Face Jobs" panel of the Training tab (thin: the logic is training/hub/jobs.py).

Sign-in is the publish panel's (training/views/publish_ui.py `login_enabled`): on a Space the
handlers receive the learner's OAuth token through their `gr.OAuthToken | None` parameter
(the Space asks for the `jobs` scope in README's metadata); elsewhere a password field,
whose value is only read by each request and never stored or logged.

The job record (ids and repo names, never a token) lives in a `gr.BrowserState`, like the
learner's run ids, so opening the panel after a reload re-attaches to the job. A `gr.Timer`
polls the job while it is live; polling stops when the job ends.

No `from __future__ import annotations` here: gradio reads the OAuth annotations at run time.
"""
import os

import gradio as gr

from core.config import env_str
from training.run import charts
from training.hub import jobs
from training.run import runs
from training.views.publish_ui import login_enabled

STORAGE_KEY = "ftlab-jobs"
SECRET_DEFAULT = "ftlab-jobs-state-v1"
POLL_S = 15

INTRO = """### Run on Hugging Face Jobs
When a GPU slice is too small (a bigger model, tens of thousands of rows, several GPUs), run this
run's recipe on a machine of your own choosing, billed per minute to **your** Hugging Face account
(a payment method or credits is needed). The app uploads the run's data as a **private dataset** of
yours, starts the job (TRL + `accelerate` on every GPU of the machine), follows its loss here, and
the job pushes the adapter and its model card to your model repository.

What the sign-in is asked for: **openid/profile**, your user name (the job and repos go under it);
**manage-repos**, to create the private dataset and the model repository; **write-repos**, to upload
into them; **jobs**, to start, follow and cancel jobs in your account (the only one that can cost money).
"""


def _endpoint():
    return os.environ.get("HF_ENDPOINT", "").strip() or None


def _token(token_text, oauth_token):
    return (oauth_token.token if oauth_token is not None else "") or (token_text or "").strip()


def _sign_in_hint():
    return ("Sign in with Hugging Face (allowing Jobs) first." if login_enabled()
            else "Paste a Hugging Face token with write access and the Jobs permission first.")


def _estimate_note(run_id, model):
    """(params in billions or None, tokens, method, note) for the run the tab shows."""
    if not runs.exists(run_id):
        return None, 0, "sft", "Plan or train a run first: a job runs that run's recipe."
    tokens, method, base = jobs.run_tokens(runs.run_dir(run_id))
    params = jobs.params_billions(model or base)
    note = (f"This run trains on ~{tokens:,} tokens ({method.upper()}, `{model or base}`). Estimates: "
            f"~{'6' if method == 'dpo' else '4'} × parameters FLOPs per token at {jobs.USED_FRACTION_SMALL:.0%}"
            f"–{jobs.USED_FRACTION_LARGE:.0%} of the GPUs' datasheet peak, plus ~{jobs.STARTUP_S / 60:.0f} min "
            "to start; billed by the minute.")
    if params is None:
        note += " The model's size is not in its name, so no estimate."
    return params, tokens, method, note


def refresh_handler(run_id, model, token_text, oauth_token: gr.OAuthToken | None = None):
    """-> (flavour dropdown, offered flavour names, status)."""
    token = _token(token_text, oauth_token)
    if not token:
        return gr.update(), [], _sign_in_hint()
    flavors, error = jobs.list_flavors(token, endpoint=_endpoint())
    if error:
        return gr.update(), [], error
    params, tokens, method, note = _estimate_note(run_id, (model or "").strip())
    choices = [(f.choice_label(jobs.estimate(tokens, params, f, method)), f.name) for f in flavors]
    first = next((f.name for f in flavors if f.gpus), None)
    return gr.update(choices=choices, value=first), [f.name for f in flavors], note


def launch_handler(run_id, flavor, repo_name, model, private, token_text, record, offered,
                   oauth_token: gr.OAuthToken | None = None, oauth_profile: gr.OAuthProfile | None = None):
    """-> (status, job record, timer)."""
    keep = (gr.update(), gr.update())
    live = jobs.clean_record(record)
    if live and not live.get("ended"):
        return (f"Job `{live['job_id']}` is still attached: cancel it, or wait for it to end.", *keep)
    if not runs.exists(run_id):
        return ("Plan or train a run first: a job runs that run's recipe.", *keep)
    token = _token(token_text, oauth_token)
    if not token:
        return (_sign_in_hint(), *keep)
    namespace = oauth_profile.username if oauth_profile is not None else None
    if not namespace:
        namespace, error = jobs.whoami(token, endpoint=_endpoint())
        if error:
            return (error, *keep)
    new, message = jobs.launch(runs.run_dir(run_id), flavor, token, namespace=namespace, repo_name=repo_name,
                               offered=offered, model=(model or "").strip(), public=not private,
                               endpoint=_endpoint())
    if new is None:
        return (message, *keep)
    return message, new, gr.Timer(active=True)


def poll_handler(record, token_text, run_id, run_ids, oauth_token: gr.OAuthToken | None = None):
    """-> (status, chart, job record, timer, run id, run ids)."""
    unchanged = (gr.update(), gr.update())
    live = jobs.clean_record(record)
    if live is None:
        return "No job yet.", "", None, gr.Timer(active=False), *unchanged
    token = _token(token_text, oauth_token)
    if not token:
        return (f"Job `{live['job_id']}` is attached. {_sign_in_hint()} (A pasted token is not kept.)",
                "", live, gr.Timer(active=False), *unchanged)
    view = jobs.poll(live, token, endpoint=_endpoint())
    chart = charts.loss_svg(view.events)
    message, run_update, ids_update = view.message, *unchanged
    if view.ok and not live.get("result_run"):
        rid, note = jobs.finish_as_run(live, token, view.events, endpoint=_endpoint())
        message += "\n\n" + note
        if rid:
            live = {**live, "result_run": rid}
            run_update, ids_update = rid, runs.clean_run_ids((run_ids or []) + [rid])
    if view.finished and (not view.ok or live.get("result_run")):
        live = {**live, "ended": True}
    return message, chart, live, gr.Timer(active=not live.get("ended")), run_update, ids_update


def _imported_run(record) -> str | None:
    live = jobs.clean_record(record)
    return live.get("result_run") if live else None


def cancel_handler(record, token_text, oauth_token: gr.OAuthToken | None = None):
    live = jobs.clean_record(record)
    if live is None or live.get("ended"):
        return "No running job to cancel."
    token = _token(token_text, oauth_token)
    if not token:
        return _sign_in_hint()
    return jobs.cancel(live, token, endpoint=_endpoint())


def build_jobs_panel(run_id_state, run_ids_state=None) -> dict:
    """Build inside an open Blocks (the Training tab); returns the components."""
    record = gr.BrowserState(None, storage_key=STORAGE_KEY,
                             secret=env_str("FTLAB_STATE_SECRET", SECRET_DEFAULT) + "-jobs")
    offered = gr.State([])
    timer = gr.Timer(POLL_S, active=False)
    with gr.Accordion("Run on Hugging Face Jobs", open=False, elem_id="jobs-panel") as panel:
        gr.Markdown(INTRO)
        if login_enabled():
            gr.LoginButton(elem_id="jobs-login")
        token_box = gr.Textbox(label="Hugging Face access token (write + Jobs)", type="password",
                               visible=not login_enabled(), placeholder="hf_...", elem_id="jobs-token",
                               info="Read by each request of this page and never stored. Reloading forgets it.")
        with gr.Row():
            model = gr.Textbox(label="Base model on the job (optional)", placeholder="the run's own",
                               max_length=200, elem_id="jobs-model",
                               info="A bigger model (e.g. Lab 3's pick) trains the same recipe.")
            repo = gr.Textbox(label="Model repository for the adapter", placeholder="my-lora-adapter",
                              max_length=200, elem_id="jobs-repo")
            private = gr.Checkbox(value=True, label="Private", elem_id="jobs-private")
        with gr.Row():
            refresh = gr.Button("Show hardware and prices", elem_id="jobs-refresh")
            flavor = gr.Dropdown([], label="Hardware flavour", elem_id="jobs-flavor")
        with gr.Row():
            launch = gr.Button("Launch job", variant="primary", elem_id="jobs-launch")
            poll = gr.Button("Refresh status", elem_id="jobs-poll")
            cancel = gr.Button("Cancel job", variant="stop", elem_id="jobs-cancel")
        status = gr.Markdown(elem_id="jobs-status")
        chart = gr.HTML(elem_id="jobs-chart")
    ids = run_ids_state if run_ids_state is not None else gr.State([])
    refresh.click(refresh_handler, [run_id_state, model, token_box], [flavor, offered, status],
                  api_name="jobs_hardware")
    launch.click(launch_handler, [run_id_state, flavor, repo, model, private, token_box, record, offered],
                 [status, record, timer], api_name="jobs_launch", concurrency_limit=4)
    poll_io = ([record, token_box, run_id_state, ids], [status, chart, record, timer, run_id_state, ids])
    # The run a finished job became: app.py wires its change to the tab's re-attach, so the
    # tab's curves, status and steps show that run (it changes once per job, not per poll).
    imported = gr.State(None)
    for event in (poll.click, timer.tick, panel.expand):  # opening the panel re-attaches after a reload
        event(poll_handler, *poll_io, api_visibility="private", concurrency_limit=8).then(
            _imported_run, record, imported, api_visibility="private")
    cancel.click(cancel_handler, [record, token_box], status, api_name="jobs_cancel")
    return {"panel": panel, "record": record, "token": token_box, "flavor": flavor, "repo": repo, "model": model,
            "private": private, "refresh": refresh, "launch": launch, "poll": poll, "cancel": cancel,
            "status": status, "chart": chart, "timer": timer, "imported": imported}
