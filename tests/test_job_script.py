"""The uv script the recipe zip carries (training/hub/ftlab_job.py) trains the recipe: two steps on
the embedded SmolLM2-135M, on the CPU, with no network, as `python ftlab_job.py` (the same
entry `uv run` and Hugging Face Jobs use). Its log lines are what the app's Jobs panel reads."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from test_recipe import _move_data_into_layout
from test_publish_support import make_run_dir
from training.hub import jobs
from training.hub.recipe import export_recipe, unpack


def test_recipe_zip_carries_the_uv_script_with_its_dependencies(tmp_path):
    run_dir = make_run_dir(tmp_path)
    _move_data_into_layout(run_dir)
    zip_path = export_recipe(run_dir)
    assert "ftlab-recipe-sft/ftlab_job.py" in zipfile.ZipFile(zip_path).namelist()
    folder = unpack(zip_path, tmp_path / "x")
    script = (folder / "ftlab_job.py").read_text()
    assert script.startswith("# /// script") and '"trl==1.16.0"' in script  # PEP 723 header
    readme = (folder / "README.md").read_text()
    assert "hf jobs uv run --flavor" in readme and "--secrets HF_TOKEN" in readme


def test_script_trains_two_steps_on_cpu_and_logs_what_the_app_reads(tmp_path, embedded_model_dir):
    run_dir = make_run_dir(tmp_path)
    _move_data_into_layout(run_dir)
    folder = unpack(export_recipe(run_dir), tmp_path / "unpacked")
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false",
               HF_HOME=str(tmp_path / "hf"))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(folder / "ftlab_job.py"), "--model", str(embedded_model_dir), "--max-steps", "2",
         "--cpu", "--output-dir", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = jobs.parse_log(result.stdout.splitlines())
    assert [e["step"] for e in parsed.events if "loss" in e] == [1, 2]
    assert all(e["loss"] > 0 for e in parsed.events if "loss" in e)
    assert parsed.done and parsed.error_kind is None
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    assert (out / "ftlab_log.jsonl").is_file()


def test_several_processes_under_accelerate_then_one_push_to_the_hub(tmp_path):
    """The multi-GPU path (the script relaunching itself under `accelerate launch`, one process per
    device) run with two CPU processes (gloo) on a tiny model, then the push the job ends with,
    into the fake Hub: adapter, card and loss log, pushed once, by the parent."""
    from fakes.hub_server import FakeHub
    from test_publish_support import make_base_model_dir

    run_dir = make_run_dir(tmp_path)
    _move_data_into_layout(run_dir)
    folder = unpack(export_recipe(run_dir), tmp_path / "unpacked")
    base = make_base_model_dir(tmp_path / "tiny")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false", HF_HOME=str(tmp_path / "hf"),
               HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_test_good_token",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    with FakeHub() as hub:
        env["HF_ENDPOINT"] = hub.url
        result = subprocess.run(
            [sys.executable, str(folder / "ftlab_job.py"), "--model", str(base), "--max-steps", "2", "--cpu",
             "--processes", "2", "--output-dir", str(tmp_path / "out"), "--push-to", "learner/tiny-adapter"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        repo = hub.repos["learner/tiny-adapter"]
        commits = list(repo.commits)
    starts = [line for line in result.stdout.splitlines() if '"event": "start"' in line]
    assert len(starts) == 3  # the launcher and its two training processes
    parsed = jobs.parse_log(result.stdout.splitlines())
    assert [e["step"] for e in parsed.events if "loss" in e] == [1, 2] and parsed.done
    assert repo.private and len(commits) == 1
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "ftlab_log.jsonl"} <= set(repo.files)
    assert b"base_model:" in repo.files["README.md"] and "training_args.bin" not in repo.files
