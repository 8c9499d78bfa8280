"""The Jobs panel's handlers (training/views/jobs_ui.py) against the fake Hub, with a pasted token:
prices and this run's estimate in the flavour list, launch, the log into the chart, the end of
the job becoming the tab's run, re-attaching after a reload, cancel; and the panel in the app."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_jobs import TOKEN, _log, hub, run_dir, run_root  # noqa: F401 - fixtures
from training.views import jobs_ui

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def endpoint(hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    return hub


def _launched(hub, rid):
    flavor_update, offered, note = jobs_ui.refresh_handler(rid, "", TOKEN)
    status, record, timer = jobs_ui.launch_handler(rid, "a10g-small", "ui-adapter", "", True, TOKEN, None, offered)
    assert isinstance(record, dict), status
    return record


def test_flavour_list_shows_price_and_this_runs_estimate(endpoint, run_dir):  # noqa: F811
    update, offered, note = jobs_ui.refresh_handler(run_dir.name, "", TOKEN)
    labels = dict((value, label) for label, value in update["choices"])
    assert "$1.00/h" in labels["a10g-small"]
    assert re.search(r"this run ≈ \d+ min, ≈ \$\d+\.\d\d", labels["a10g-small"])
    assert update["value"] == "t4-small"  # the cheapest GPU first
    assert "a10g-small" in offered and "tokens" in note
    _, _, bigger = jobs_ui.refresh_handler(run_dir.name, "HuggingFaceTB/SmolLM2-1.7B-Instruct", TOKEN)
    assert "SmolLM2-1.7B" in bigger


def test_without_a_token_nothing_is_sent(endpoint, run_dir):  # noqa: F811
    _, offered, note = jobs_ui.refresh_handler(run_dir.name, "", "")
    assert offered == [] and "token" in note and not endpoint.requests
    status, record, _ = jobs_ui.launch_handler(run_dir.name, "a10g-small", "x", "", True, " ", None, ["a10g-small"])
    assert "token" in status and not endpoint.jobs


def test_launch_follow_and_the_result_becomes_the_tabs_run(endpoint, run_dir, tmp_path):  # noqa: F811
    hub = endpoint
    record = _launched(hub, run_dir.name)
    hub.job_update(record["job_id"], stage="RUNNING", logs=[_log(1, loss=2.0), _log(2, loss=1.5)])
    status, chart, record, timer, run_update, ids = jobs_ui.poll_handler(record, TOKEN, run_dir.name, [run_dir.name])
    assert "running" in status and 'id="curve-train-loss"' in chart and timer.active
    # A second launch while this one is attached is refused, nothing is started.
    again, *_ = jobs_ui.launch_handler(run_dir.name, "a10g-small", "ui-adapter", "", True, TOKEN, record,
                                      ["a10g-small"])
    assert "still attached" in again and len(hub.jobs) == 1
    # After a reload the pasted token is gone: the record re-attaches and asks for it.
    status, *_ = jobs_ui.poll_handler(json.loads(json.dumps(record)), "", run_dir.name, [])
    assert record["job_id"] in status and "not kept" in status
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for f in (run_dir / "adapter").iterdir():
        (pushed / f.name).write_bytes(f.read_bytes())
    hub.seed_folder("learner/ui-adapter", pushed)
    hub.job_update(record["job_id"], stage="COMPLETED", logs=[_log(3, loss=1.1)])
    status, chart, record, timer, run_update, ids = jobs_ui.poll_handler(record, TOKEN, run_dir.name, [run_dir.name])
    assert record["result_run"] == run_update and ids == [run_dir.name, run_update]
    assert "now a run here" in status and not timer.active and record["ended"]
    # The tab re-attaches to the run the job became (app.py wires the change of this value).
    assert jobs_ui._imported_run(record) == run_update and jobs_ui._imported_run(None) is None


def test_cancel_from_the_panel(endpoint, run_dir):  # noqa: F811
    record = _launched(endpoint, run_dir.name)
    assert "Cancel requested" in jobs_ui.cancel_handler(record, TOKEN)
    assert endpoint.jobs[record["job_id"]].stage == "CANCELED"
    status, *_ = jobs_ui.poll_handler(record, TOKEN, run_dir.name, [])
    assert "cancelled" in status


def test_the_app_has_the_panel_and_the_space_asks_for_the_jobs_scope():
    import app

    demo = app.build_app()
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"jobs-panel", "jobs-launch", "jobs-flavor", "jobs-cancel", "jobs-status", "jobs-chart"} <= ids
    header = (ROOT / "README.md").read_text().split("---")[1]
    assert re.search(r"hf_oauth_scopes:\n(  - [a-z-]+\n)*  - jobs\n", header)


def test_through_a_launched_server_the_panel_lists_launches_and_cancels(endpoint, run_dir):  # noqa: F811
    import gradio as gr
    from gradio_client import Client

    with gr.Blocks() as demo:
        parts = jobs_ui.build_jobs_panel(gr.State(run_dir.name))
    assert parts["token"].type == "password"  # off a Space: a pasted token, never a stored value
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        flavor, note = client.predict("", TOKEN, api_name="/jobs_hardware")
        assert flavor["value"] == "t4-small" and "tokens" in note
        out = client.predict("a10g-small", "api-adapter", "", True, TOKEN, None, api_name="/jobs_launch")
        status, record = out[0], out[1]
        assert "Job started on `a10g-small`" in status and TOKEN not in json.dumps(out)
        (job_id,) = endpoint.jobs
        assert record["job_id"] == job_id
        assert "Cancel requested" in client.predict(record, TOKEN, api_name="/jobs_cancel")
        assert endpoint.jobs[job_id].stage == "CANCELED"
    finally:
        demo.close()


def test_on_a_space_oauth_is_used_and_a_missing_jobs_scope_is_named(endpoint, run_dir):  # noqa: F811
    import gradio as gr

    hub = endpoint
    hub.add_user("hf_oauth_old", "learner", {"manage-repos", "write-repos"})  # signed in before `jobs` was asked
    profile = gr.OAuthProfile({"preferred_username": "learner", "name": "Learner", "picture": "",
                               "profile": "https://huggingface.co/learner"})
    old = gr.OAuthToken(token="hf_oauth_old", scope="openid profile manage-repos write-repos", expires_at=0)
    _, offered, _ = jobs_ui.refresh_handler(run_dir.name, "", "", oauth_token=old)
    status, record, _ = jobs_ui.launch_handler(run_dir.name, "a10g-small", "space-adapter", "", True, "", None,
                                               offered, oauth_token=old, oauth_profile=profile)
    assert "`jobs` scope" in status and not hub.jobs
    assert "whoami" not in hub.routes_called()  # the profile names the namespace
    fresh = gr.OAuthToken(token=TOKEN, scope="openid profile manage-repos write-repos jobs", expires_at=0)
    status, record, _ = jobs_ui.launch_handler(run_dir.name, "a10g-small", "space-adapter", "", True, "", None,
                                               offered, oauth_token=fresh, oauth_profile=profile)
    assert record and hub.jobs[record["job_id"]].spec["secrets"] == {"HF_TOKEN": TOKEN}
