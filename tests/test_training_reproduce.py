"""A run trained in the app can be reproduced and reused outside it (embedded SmolLM2-135M, CPU, tiny runs).

* The exported recipe, run through TRL's own CLI entry (`trl sft|dpo` main with the
  parsed YAML, in-process), trains the same per-step losses as the app's engine
  on the same data and seed.
* The adapter pushed to the (fake) Hub names the public base model and loads with
  `AutoPeftModelForCausalLM.from_pretrained(repo_id)` to the run's own logits.
"""
from __future__ import annotations

import json
import os

import pytest

from training.run import config
from training.run import engine
from training.hub import recipe
from training.run import runs

ANSWER = '{"animal": "zebra"}'
SFT_ROWS = [{"messages": [{"role": "system", "content": "Answer in JSON."},
                          {"role": "user", "content": f"Note {i}: the patient saw a {w}."},
                          {"role": "assistant", "content": ANSWER}]}
            for i, w in enumerate(["dog", "cat", "bird", "horse", "fish", "cow", "goat", "frog"])]
DPO_ROWS = [{"prompt": [{"role": "user", "content": f"Give the animal in note {i} as JSON."}],
             "chosen": [{"role": "assistant", "content": ANSWER}],
             "rejected": [{"role": "assistant", "content": "Sure! The animal is a zebra."}]} for i in range(6)]
# 3 steps (DPO: 2) with an evaluation, and in the recipe a checkpoint, at the last one;
# dropout on, so the comparison also covers the random state of the adapter and of dropout.
HP = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "lora_target_modules": "qv", "learning_rate": 2e-3,
      "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_steps": 3,
      "max_length": 64, "eval_steps": 3, "early_stopping_patience": 0, "seed": 11}
PUBLIC_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _app_run(method: str, rows: list[dict], **over) -> str:
    cfg, errors = config.validate(dict(HP, **over), method, dataset=config.DataRef(name="inline rows"))
    assert not errors, errors
    rid = engine.start_run(cfg, {"train": rows, "validation": rows[:2], "test": rows[:2]})
    info = engine.run_slice(rid, max_slice_steps=100)
    assert info["status"] == "finished", info.get("error")
    return rid


def _recipe_losses(rid: str, method: str, model_dir, tmp_path) -> list[tuple[int, float]]:
    """Export the run's recipe and train it with TRL's CLI entry on the embedded base, on CPU."""
    import importlib

    cli = importlib.import_module(f"trl.scripts.{method}")
    folder = recipe.unpack(recipe.export_recipe(runs.run_dir(rid)), tmp_path / f"recipe-{method}")
    out = tmp_path / f"out-{method}"
    args = cli.make_parser().parse_args_and_config(
        ["--config", str(folder / f"{method}.yaml"), "--model_name_or_path", str(model_dir),
         "--output_dir", str(out), "--use_cpu", "true", "--disable_tqdm", "true"], fail_with_unknown_args=True)
    cwd = os.getcwd()
    os.chdir(folder)  # the YAML names its data as the local folder `data`, as its README says
    try:
        cli.main(*args)
    finally:
        os.chdir(cwd)
    steps = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((steps[-1] / "trainer_state.json").read_text())["log_history"]
    return [(e["step"], e["loss"]) for e in history if "loss" in e]


def _app_losses(rid: str) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in runs.read_log(rid) if "loss" in e]


def _table(title: str, app, rec) -> str:
    lines = [title, "| step | app loss | recipe loss | rel. diff |", "|---|---|---|---|"]
    for (s, a), (_, b) in zip(app, rec):
        lines.append(f"| {s} | {a:.6f} | {b:.6f} | {abs(a - b) / abs(a):.2e} |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def sft_run(module_data_dir):
    return _app_run("sft", SFT_ROWS)


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_recipe_trains_the_same_losses_as_the_app(method, sft_run, module_data_dir, embedded_model_dir,
                                                  tmp_path, capsys):
    # DPO's first loss is ln 2 whatever the settings (the adapter starts as the reference):
    # no warmup, so step 2 already shows the first update.
    rid = sft_run if method == "sft" else _app_run("dpo", DPO_ROWS, learning_rate=5e-4, max_steps=2, eval_steps=2,
                                                   warmup_ratio=0.0)
    app = _app_losses(rid)
    rec = _recipe_losses(rid, method, embedded_model_dir, tmp_path)
    with capsys.disabled():  # the table goes into the lead's note
        print("\n" + _table(f"{method.upper()}: app engine vs exported recipe (trl {method} main)", app, rec))
    assert [s for s, _ in app] == [s for s, _ in rec] == list(range(1, 4 if method == "sft" else 3))
    for (_, a), (_, b) in zip(app, rec):
        assert b == pytest.approx(a, rel=0.01)
    assert app[-1][1] != app[0][1]  # it trained: the loss moved


PUSH = """
import sys
from training.hub import publish
from training.run import runs
result = publish.push_run(runs.run_dir(sys.argv[1]), sys.argv[2], sys.argv[3], private=False, endpoint=sys.argv[4])
print(result.message)
sys.exit(0 if result.ok else 1)
"""
LOAD_FROM_HUB = """
import sys, torch
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok.apply_chat_template([{"role": "user", "content": sys.argv[2]}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
with torch.no_grad():
    torch.save(model(**ids).logits, sys.argv[3])
"""


def test_pushed_adapter_names_the_public_base_and_loads_from_the_hub(sft_run, embedded_model_dir, tmp_path):
    import subprocess
    import sys

    import torch

    from fakes.hub_server import FakeHub
    from training.evaluation.inference import load_for_run

    adapter_cfg = json.loads((runs.run_dir(sft_run) / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == PUBLIC_BASE  # never the local models/ path
    prompt = "Note 99: the patient saw a lion."
    # The run trained offline (HF_HUB_OFFLINE, which huggingface_hub reads once, at import, and
    # which blocks loopback too): the push and the download run in processes of their own.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=ROOT)
    with FakeHub() as hub:
        # The public base id resolves to the embedded model, served by the fake Hub.
        hub.seed_folder(PUBLIC_BASE, embedded_model_dir)
        pushed = subprocess.run([sys.executable, "-c", PUSH, sft_run, "learner/zebra-notes", "hf_test_good_token",
                                 hub.url], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert pushed.returncode == 0, pushed.stdout[-2000:] + pushed.stderr[-2000:]
        config_json = json.loads(hub.repos["learner/zebra-notes"].files["adapter_config.json"])
        assert config_json["base_model_name_or_path"] == PUBLIC_BASE
        # Someone else loads it by repo id alone: a fresh process and cache, the client
        # pointed at the fake Hub.
        env["HF_ENDPOINT"] = hub.url
        done = subprocess.run([sys.executable, "-c", LOAD_FROM_HUB, "learner/zebra-notes", prompt,
                               str(tmp_path / "logits.pt")], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    own, tok = load_for_run(sft_run, adapter=True)
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        mine = own(**ids).logits
    theirs = torch.load(tmp_path / "logits.pt")
    assert theirs.shape == mine.shape and torch.allclose(mine, theirs, atol=1e-4)
