"""The uv script the recipe zip carries (training/ftlab_job.py) trains the recipe: two steps on
the embedded SmolLM2-135M, on the CPU, with no network, as `python ftlab_job.py` (the same
entry `uv run` and Hugging Face Jobs use). Its log lines are what the app's Jobs panel reads."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from test_recipe import _move_data_into_layout
from test_publish_support import make_run_dir
from training import jobs
from training.recipe import export_recipe, unpack


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
