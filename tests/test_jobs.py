"""Hugging Face Jobs from the Training tab (training/hub/jobs.py), with the real huggingface_hub client
against the fake Hub's jobs endpoints (tests/fakes/hub_server.py): hardware and prices, the
estimate, launch (private dataset upload + job spec), following the log into loss points,
cancel, the finished job as a run, and every refusal and failure the learner can meet."""
from __future__ import annotations

import json
import time

import pytest

from fakes.hub_server import FakeHub
from test_publish_support import make_run_dir
from test_recipe import _move_data_into_layout
from training.run import charts
from training.hub import jobs
from training.run import runs

TOKEN = "hf_test_good_token"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with FakeHub(hang_max_s=10) as fake:
        yield fake


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobrun")
    run_dir = make_run_dir(root)
    _move_data_into_layout(run_dir)
    return root


@pytest.fixture
def run_dir(run_root, monkeypatch):
    monkeypatch.setenv("FTLAB_DATA_DIR", str(run_root))
    return run_root / "runs" / "TestRun_0123456789abcdef"


def _flavors(hub):
    flavors, error = jobs.list_flavors(TOKEN, endpoint=hub.url)
    assert error is None
    return flavors


def _launch(hub, run_dir, flavor="a10g-small", token=TOKEN, **kw):
    return jobs.launch(run_dir, flavor, token, namespace="learner", repo_name="zebra-adapter",
                       offered=[f.name for f in _flavors(hub)], endpoint=hub.url, **kw)


def _log(step, **values):
    return jobs.LOG_TAG + json.dumps({"step": step, **values})


def test_hardware_list_has_prices_per_hour_and_this_runs_estimate(hub, run_dir):
    flavors = {f.name: f for f in _flavors(hub)}
    assert flavors["a10g-small"].usd_per_hour == pytest.approx(1.00, abs=0.01)  # billed per minute
    assert flavors["h200x8"].gpus == 8 and flavors["cpu-basic"].gpus == 0
    tokens, method, base = jobs.run_tokens(run_dir)
    assert tokens > 0 and method == "sft" and base.endswith("135M-Instruct")
    small = jobs.estimate(tokens, jobs.params_billions(base), flavors["a10g-small"])
    big = jobs.estimate(tokens * 10_000, 1.7, flavors["h200x8"])
    slow = jobs.estimate(tokens * 10_000, 1.7, flavors["t4-small"])
    assert small.usd > 0 and small.total_s >= jobs.STARTUP_S
    assert big.train_s < slow.train_s  # 8 H200s beat one T4
    assert "$1.00/h" in flavors["a10g-small"].choice_label(small)
    assert jobs.estimate(tokens, 0.135, flavors["cpu-basic"]) is None  # no GPU figure: no guess


def test_launch_uploads_a_private_recipe_and_starts_the_uv_script_with_the_token_as_secret(hub, run_dir):
    record, message = _launch(hub, run_dir)
    assert record is not None, message
    data = hub.repos["datasets/learner/zebra-adapter-recipe"]
    assert data.private
    assert {"ftlab_job.py", "sft.yaml", "data/train.jsonl", "README.md"} <= set(data.files)
    job = hub.jobs[record["job_id"]]
    spec = job.spec
    assert spec["flavor"] == "a10g-small" and spec["dockerImage"] == jobs.UV_IMAGE
    assert spec["command"][:3] == ["uv", "run", "/recipe/ftlab_job.py"]
    assert spec["command"][spec["command"].index("--push-to") + 1] == "learner/zebra-adapter"
    assert spec["secrets"] == {"HF_TOKEN": TOKEN}
    assert spec["volumes"] == [{"type": "dataset", "source": "learner/zebra-adapter-recipe",
                                "mountPath": "/recipe", "readOnly": True}]
    assert spec["timeoutSeconds"] > 0
    assert TOKEN not in json.dumps(record) and TOKEN not in message  # the browser keeps no token
    assert jobs.clean_record(json.loads(json.dumps(record))) == record


def test_follow_parses_log_lines_into_the_charts_loss_points_then_the_job_becomes_a_run(hub, run_dir, tmp_path):
    record, _ = _launch(hub, run_dir)
    jid = record["job_id"]
    assert "waiting for a `a10g-small` machine" in jobs.poll(record, TOKEN, hub.url).message
    hub.job_update(jid, stage="RUNNING", logs=["Installed 80 packages in 1.2s", _log(1, loss=2.1, learning_rate=1e-4),
                                               "{'loss': 2.1, 'grad_norm': 1.0}", _log(2, loss=1.7),
                                               _log(2, eval_loss=1.9)])
    view = jobs.poll(record, TOKEN, hub.url)
    assert view.stage == "RUNNING" and not view.finished
    assert [(e["step"], e.get("loss"), e.get("eval_loss")) for e in view.events] == [
        (1, 2.1, None), (2, 1.7, None), (2, None, 1.9)]
    assert "step 2, train loss 1.7000, eval loss 1.9000" in view.message
    svg = charts.loss_svg(view.events)  # the same chart the local runs draw
    assert 'id="curve-train-loss"' in svg and 'id="curve-eval-loss"' in svg
    # The job pushes its adapter and log to the model repo, then ends.
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for f in (run_dir / "adapter").iterdir():
        if f.name != "training_args.bin":
            (pushed / f.name).write_bytes(f.read_bytes())
    (pushed / jobs.LOG_FILE).write_text("".join(json.dumps(e) + "\n" for e in view.events + [{"step": 3, "loss": 1.2}]))
    hub.seed_folder("learner/zebra-adapter", pushed)
    done = jobs.DONE_TAG + '{"repo": "learner/zebra-adapter"}'
    hub.job_update(jid, stage="COMPLETED", logs=[_log(3, loss=1.2), done])
    view = jobs.poll(record, TOKEN, hub.url)
    assert view.finished and view.ok and "learner/zebra-adapter" in view.message
    rid, message = jobs.finish_as_run(record, TOKEN, view.events, endpoint=hub.url)
    assert rid, message
    info = runs.read_run(rid)
    assert info["status"] == "finished" and info["has_adapter"] and info["step"] == 3
    assert info["published"]["repo_id"] == "learner/zebra-adapter" and info["best_step"] == 2
    assert [e["loss"] for e in runs.read_log(rid) if "loss" in e] == [2.1, 1.7, 1.2]
    assert runs.read_run("TestRun_0123456789abcdef")["step"] == 20  # the source run is untouched


def test_cancel_stops_the_job(hub, run_dir):
    record, _ = _launch(hub, run_dir)
    hub.job_update(record["job_id"], stage="RUNNING")
    assert "Cancel requested" in jobs.cancel(record, TOKEN, hub.url)
    view = jobs.poll(record, TOKEN, hub.url)
    assert view.stage == "CANCELED" and view.finished and not view.ok and "billing stopped" in view.message


@pytest.mark.parametrize("setup, expected", [
    (lambda hub: hub.add_user("hf_no_jobs", "learner", {"manage-repos", "write-repos"}), "`jobs` scope"),
    (lambda hub: hub.users.__setitem__("hf_no_card", jobs_user(can_pay=False)), "payment method"),
    (lambda hub: hub.fail(401, on="job_create"), "sign in again"),
    (lambda hub: hub.fail(400, on="job_create"), "flavour `a10g-small`"),
    (lambda hub: hub.fail(429, on="job_create"), "(429)"),
    (lambda hub: hub.fail(503, on="job_create"), "HTTP 503"),
    (lambda hub: hub.fail(403, on="commit"), "`manage-repos` and `write-repos`"),
])
def test_hub_refusals_give_a_clear_message_and_start_nothing(hub, run_dir, setup, expected):
    setup(hub)
    token = "hf_no_jobs" if "hf_no_jobs" in hub.users else "hf_no_card" if "hf_no_card" in hub.users else TOKEN
    record, message = _launch(hub, run_dir, token=token)
    assert record is None and expected in message, message
    assert not hub.jobs
    assert token not in message


def jobs_user(can_pay: bool):
    from fakes.hub_server import FakeUser

    return FakeUser("learner", can_pay=can_pay)


def test_unknown_flavour_is_refused_before_anything_is_uploaded(hub, run_dir):
    record, message = _launch(hub, run_dir, flavor="b300x64")
    assert record is None and "Pick a hardware flavour" in message and not hub.repos


def test_out_of_memory_failure_says_so_and_what_to_change(hub, run_dir):
    record, _ = _launch(hub, run_dir)
    hub.job_update(record["job_id"], stage="ERROR", message="Job failed with exit code: 3",
                   logs=[_log(1, loss=2.0), "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB",
                         jobs.ERROR_TAG + '{"kind": "oom", "gpus": 1}'])
    view = jobs.poll(record, TOKEN, hub.url)
    assert view.finished and not view.ok
    assert "out of GPU memory" in view.message and "smaller batch size" in view.message
    assert "exit code: 3" in view.message and view.events == [{"step": 1, "loss": 2.0}]


def test_other_failure_shows_the_exit_and_the_last_log_lines(hub, run_dir):
    record, _ = _launch(hub, run_dir)
    hub.job_update(record["job_id"], stage="ERROR", message="Job failed with exit code: 1",
                   logs=["Traceback (most recent call last):", "OSError: gated repo, you must accept the terms"])
    message = jobs.poll(record, TOKEN, hub.url).message
    assert "exit code: 1" in message and "gated repo" in message and "out of GPU memory" not in message


def test_a_job_that_never_starts_is_called_stuck(hub, run_dir, monkeypatch):
    monkeypatch.setenv("FTLAB_JOB_START_TIMEOUT_S", "600")
    record, _ = _launch(hub, run_dir)
    hub.job_update(record["job_id"], created_at=time.time() - 1800)
    message = jobs.poll(record, TOKEN, hub.url).message
    assert "has not started" in message and "cancel it and launch on another flavour" in message


def test_a_dropped_log_stream_keeps_the_points_read_and_the_next_poll_reads_all(hub, run_dir):
    record, _ = _launch(hub, run_dir)
    hub.job_update(record["job_id"], stage="RUNNING", logs=[_log(s, loss=3.0 - s / 10) for s in range(1, 9)])
    hub.fail("cut", on="job_logs")
    view = jobs.poll(record, TOKEN, hub.url)
    assert view.stream_lost and "cut off" in view.message
    assert 0 < len(view.events) < 8  # what arrived before the cut
    again = jobs.poll(record, TOKEN, hub.url)
    assert not again.stream_lost and [e["step"] for e in again.events] == list(range(1, 9))


def test_a_hub_that_never_answers_is_given_up_on_within_the_bound(hub, run_dir, monkeypatch):
    record, _ = _launch(hub, run_dir)
    monkeypatch.setenv("FTLAB_HUB_TIMEOUT_S", "0.5")
    hub.fail("hang", on="job_inspect")
    started = time.monotonic()
    view = jobs.poll(record, TOKEN, hub.url)
    hub.release_hangs()
    assert time.monotonic() - started < 5
    assert view.stage == "UNKNOWN" and "did not answer" in view.message and "goes on" in view.message


def test_records_from_the_browser_are_checked_before_use():
    good = {"job_id": "0123456789abcdef01234567", "namespace": "learner", "data_repo": "learner/a-recipe",
            "model_repo": "learner/a", "source_run": "x"}
    assert jobs.clean_record(good) == good
    for bad in (None, "x", {**good, "job_id": "../../etc"}, {**good, "namespace": "a/b"},
                {**good, "model_repo": "no slash here/x/y"}):
        assert jobs.clean_record(bad) is None
