"""Recipe export: TRL's own parser accepts the config, and the exported command trains."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from test_publish_support import make_run_dir
from training.hub.recipe import export_recipe, unpack


def _move_data_into_layout(run_dir: Path) -> None:
    # runs.create_run keeps the splits under data/ (training/run/runs.py).
    (run_dir / "data").mkdir(exist_ok=True)
    for split in ("train", "validation"):
        (run_dir / f"{split}.jsonl").replace(run_dir / "data" / f"{split}.jsonl")


@pytest.fixture(scope="module")
def recipe_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    run_dir = make_run_dir(root)
    _move_data_into_layout(run_dir)
    zip_path = export_recipe(run_dir)
    return unpack(zip_path, root / "unpacked"), zip_path, run_dir


def test_export_holds_config_commands_and_the_exact_rows(recipe_dir):
    folder, zip_path, run_dir = recipe_dir
    names = set(zipfile.ZipFile(zip_path).namelist())
    for expected in ("sft.yaml", "fsdp.yaml", "zero3.yaml", "README.md", "data/train.jsonl",
                     "data/validation.jsonl"):
        assert f"ftlab-recipe-sft/{expected}" in names
    # Each row the run trained on, split into prompt and completion where the app splits it.
    exported = [json.loads(line) for line in (folder / "data" / "train.jsonl").read_text().splitlines()]
    saved = [json.loads(line) for line in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    assert [r["prompt"] + r["completion"] for r in exported] == [r["messages"] for r in saved]
    readme = (folder / "README.md").read_text()
    assert "trl sft --config sft.yaml" in readme
    assert "accelerate launch --config_file fsdp.yaml" in readme
    assert "zero3.yaml" in readme


def test_trl_parser_accepts_the_config_with_the_run_settings(recipe_dir):
    folder, _, _ = recipe_dir
    import warnings

    from trl.scripts.sft import make_parser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        script, training, model, _mixture = make_parser().parse_args_and_config(
            # --use_cpu only because this test machine has no GPU for TRL's default bf16.
            ["--config", str(folder / "sft.yaml"), "--use_cpu", "true"], fail_with_unknown_args=True)
    # transformers 5's name for the flag (the one mapping writes it), read by TRL's parser; the
    # deprecated `gradient_checkpointing` is neither written nor warned about.
    text = (folder / "sft.yaml").read_text()
    assert "activation_checkpointing: false" in text and "gradient_checkpointing" not in text
    assert training.activation_checkpointing is False and training.gradient_checkpointing is False
    assert not [w for w in caught if "gradient_checkpointing" in str(w.message)]
    assert script.dataset_name == "data" and script.dataset_test_split == "validation"
    assert model.use_peft and model.lora_r == 4 and model.lora_alpha == 8
    assert sorted(model.lora_target_modules) == ["q_proj", "v_proj"]
    assert training.learning_rate == pytest.approx(2e-4) and training.max_steps == 20
    assert training.per_device_train_batch_size == 2 and training.max_length == 128
    assert training.warmup_steps == pytest.approx(0.05) and training.lr_scheduler_type == "cosine"
    # The app's cadence: a log line every step, an evaluation every eval_steps, the best one kept.
    assert training.logging_steps == 1 and training.eval_steps == 20 and training.load_best_model_at_end


def test_accelerate_configs_parse_for_fsdp_and_deepspeed(recipe_dir):
    import yaml

    folder, _, _ = recipe_dir
    assert yaml.safe_load((folder / "fsdp.yaml").read_text())["distributed_type"] == "FSDP"
    zero3 = yaml.safe_load((folder / "zero3.yaml").read_text())
    assert zero3["distributed_type"] == "DEEPSPEED" and zero3["deepspeed_config"]["zero_stage"] == 3


def test_dpo_run_exports_a_config_the_dpo_parser_accepts(tmp_path):
    run_dir = make_run_dir(tmp_path, method="dpo")
    _move_data_into_layout(run_dir)
    folder = unpack(export_recipe(run_dir), tmp_path / "x")
    from trl.scripts.dpo import make_parser

    _script, training, *_ = make_parser().parse_args_and_config(
        ["--config", str(folder / "dpo.yaml"), "--use_cpu", "true"], fail_with_unknown_args=True)
    assert training.beta == pytest.approx(0.1)
    assert "trl dpo --config dpo.yaml" in (folder / "README.md").read_text()


def test_run_without_saved_rows_gives_a_clear_error(tmp_path):
    run_dir = make_run_dir(tmp_path)
    (run_dir / "train.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="no training rows"):
        export_recipe(run_dir)


def test_exported_command_trains_two_steps_on_the_embedded_model(recipe_dir):
    from training.run.base_model import embedded_model_dir

    folder, _, _ = recipe_dir
    model_dir = embedded_model_dir()
    trl = Path(sys.executable).with_name("trl")
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")
    # The README's command, with the overrides a CPU smoke test needs.
    result = subprocess.run(
        [str(trl), "sft", "--config", "sft.yaml", "--model_name_or_path", str(model_dir),
         "--max_steps", "2", "--output_dir", "smoke", "--use_cpu", "true"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    state = (folder / "smoke" / "checkpoint-2" / "trainer_state.json").read_text()
    assert '"global_step": 2' in state
    assert (folder / "smoke" / "adapter_model.safetensors").stat().st_size > 0
