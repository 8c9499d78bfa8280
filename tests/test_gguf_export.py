"""GGUF export (training/hub/gguf_export.py), checked by reading the files back with transformers.

A tiny trained run (a 2-layer Llama with a small byte-level BPE tokenizer and a LoRA adapter trained
a few steps on the test rows) is exported to f16 and q8_0, and each file is loaded back with
`from_pretrained(gguf_file=...)`:

- f16: greedy answers to the test rows identical to the merged model's, top-1 agreement ≥ 98% over
  every position (prompt positions included, where an untrained tiny model has near-ties), and
  max |Δlogit| ≤ 0.01
  (f16 keeps 11 significant bits, a relative rounding error of at most 2^-11 ≈ 5e-4 per weight;
  on logits of order 1-10 that is ~1e-3; measured 3e-4 here, 0.045 on the 135M default-run model over 30 layers,
  docs/benchmarks.md);
- q8_0: top-1 token agreement ≥ 90% over every position of the test rows and max |Δlogit| ≤ 0.1
  (one scale per 32 weights: relative error up to 1/254 of the block's largest weight; measured
  ~0.01 here). On the 30-layer 135M model the errors add up: max |Δlogit| 1.5, top-1 97.7%,
  4 of 5 greedy answers identical (docs/benchmarks.md), so q8_0 is held to agreement, not identity.

The Qwen2 mapping is checked the same way on a tiny random Qwen2 (biases on q/k/v, untied head).
The tokenizer metadata is compared field by field with the embedded SmolLM2 GGUF, which llama.cpp
itself wrote.
"""
from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from training.hub import gguf_export as ge

F16_MAX_DLOGIT = 0.01
F16_MIN_TOP1 = 0.98
Q8_MAX_DLOGIT = 0.1
Q8_MIN_TOP1 = 0.9

SYSTEM = "You are a tiny test assistant."
TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ROWS = [{"messages": [{"role": "user", "content": f"give me item {i}"},
                      {"role": "assistant", "content": '{"item": "%s"}' % chr(97 + i)}]} for i in range(8)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is ~200x faster than many fighting over two busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_bpe_tokenizer():
    """A byte-level BPE tokenizer (the kind SmolLM2 and Qwen2.5 use) with ChatML special tokens."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = [json.dumps(r) for r in ROWS] * 4 + ["user assistant system give me item"]
    bpe.train_from_iterator(corpus, vocab_size=340, min_frequency=1,
                            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|im_start|>",
                                  eos_token="<|im_end|>", unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tok.chat_template = TEMPLATE
    return tok


def _prompt_ids(tok, row):
    return tok.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"]


def _full_ids(tok, row):
    return tok.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished run laid out as the engine writes it, with a LoRA adapter trained 30 steps."""
    import peft
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("gguf")
    tok = small_bpe_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    base_dir = root / "base"
    LlamaForCausalLM(config).save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    model = peft.get_peft_model(LlamaForCausalLM.from_pretrained(base_dir),
                                peft.LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(30):
        for row in ROWS[:4]:
            ids = torch.tensor([_full_ids(tok, row)])
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        opt.step()
        opt.zero_grad()
    run_dir = root / "runs" / "GgufRun_0123456789abcdef"
    model.save_pretrained(run_dir / "adapter")
    tok.save_pretrained(run_dir / "adapter")
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "data" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS[:4]) + "\n")
    (run_dir / "data" / "test.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS[4:]) + "\n")
    run = {"run_id": run_dir.name, "status": "finished", "step": 30, "total_steps": 30,
           "config": {"method": "sft", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"},
           "model": {"id": "tiny/llama", "path": str(base_dir), "public_id": "tiny/llama", "notice": ""}}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


@pytest.fixture(scope="module")
def exported(tiny_run):
    events = list(ge.export_run(tiny_run, ("f16", "q8_0")))
    return events


def _load_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model.eval()


def _compare(reference, other, tok, rows):
    """(max |Δlogit|, top-1 agreement, greedy answers equal) over the rows."""
    import torch

    worst, agree, total, same = 0.0, 0, 0, True
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([_full_ids(tok, row)])
            a, b = reference(ids).logits, other(ids).logits
            worst = max(worst, (a - b).abs().max().item())
            agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
            total += a.shape[1]
            prompt = torch.tensor([_prompt_ids(tok, row)])
            kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
            same &= reference.generate(prompt, **kw).tolist() == other.generate(prompt, **kw).tolist()
    return worst, agree / total, same


def test_export_streams_stages_and_writes_zip(exported, tiny_run):
    kinds = [e["kind"] for e in exported]
    assert kinds[-1] == "done", exported[-1]
    stages = [e["stage"] for e in exported if e["kind"] == "progress"]
    for stage in ("merge", "convert", "quantise", "zip"):
        assert stage in stages
    assert all("eta_s" in e and e["eta_s"] >= 0 for e in exported if e["kind"] == "progress")
    done = exported[-1]
    assert set(done["files"]) == {"f16", "q8_0"}
    with zipfile.ZipFile(done["zip"]) as zf:
        names = zf.namelist()
        modelfile = zf.read(next(n for n in names if n.endswith("/Modelfile"))).decode()
        readme = zf.read(next(n for n in names if n.endswith("/README.md"))).decode()
    assert any(n.endswith("-f16.gguf") for n in names) and any(n.endswith("-q8_0.gguf") for n in names)
    assert f"FROM ./{done['files']['q8_0']['file']}" in modelfile
    assert "TEMPLATE" in modelfile and "<|im_start|>" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert f'SYSTEM """{SYSTEM}"""' in modelfile  # the template's default: the rows had no system turn
    assert "ollama create" in readme and "llama-cli -m" in readme
    # Nothing half-written stays behind, and the files live in the run (deleted with it).
    assert not list(tiny_run.glob("gguf.tmp-*")) and not list((tiny_run / "gguf").glob("*.part"))
    assert ge.existing_export(tiny_run)["zip"] == Path(done["zip"]).name
    # The size shown before matches what was written, within the tokenizer's share.
    estimate = ge.estimate_bytes(ge.run_model_config(tiny_run))
    for quant in ("f16", "q8_0"):
        assert estimate[quant] <= done["files"][quant]["bytes"] <= estimate[quant] + 200_000


def test_llama_round_trip_f16_and_q8(exported, tiny_run):
    from training.hub.publish import load_merged

    merged, tok = load_merged(tiny_run)
    merged.eval()
    folder = Path(exported[-1]["dir"])
    test_rows = [json.loads(line) for line in (tiny_run / "data" / "test.jsonl").read_text().splitlines()]
    f16 = _load_gguf(folder / exported[-1]["files"]["f16"]["file"])
    worst, top1, same = _compare(merged, f16, tok, test_rows)
    assert same, "f16 greedy answers differ from the merged model's"
    # Every position is compared, prompt tokens too, where this tiny model has near-ties: one
    # flip in ~180 positions was seen at Δ 5e-4, hence agreement >= 98%, not 100%.
    assert worst <= F16_MAX_DLOGIT and top1 >= F16_MIN_TOP1
    q8 = _load_gguf(folder / exported[-1]["files"]["q8_0"]["file"])
    worst, top1, _ = _compare(merged, q8, tok, test_rows)
    assert worst <= Q8_MAX_DLOGIT and top1 >= Q8_MIN_TOP1
    # The tokenizer read back from the file splits the test rows as the run's tokenizer does.
    from transformers import AutoTokenizer

    back = AutoTokenizer.from_pretrained(str(folder), gguf_file=exported[-1]["files"]["f16"]["file"])
    for row in test_rows:
        text = tok.apply_chat_template(row["messages"], tokenize=False)
        assert back(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]


def test_qwen2_round_trip(tmp_path):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = small_bpe_tokenizer()
    torch.manual_seed(1)
    config = Qwen2Config(vocab_size=len(tok) + 12, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False, bos_token_id=None, eos_token_id=tok.eos_token_id)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0, 0.5)  # Qwen2's q/k/v biases must land where the reader looks
    path = ge.write_gguf(model, tok, tmp_path / "qwen2-f16.gguf", "f16", pre="qwen2")
    back = _load_gguf(path)
    assert type(back).__name__ == "Qwen2ForCausalLM"
    worst, top1, same = _compare(model, back, tok, ROWS[:3])
    assert worst <= F16_MAX_DLOGIT and top1 >= F16_MIN_TOP1 and same


def test_tokenizer_fields_match_llama_cpps_own_file(embedded_tokenizer):
    """The embedded GGUF was written by llama.cpp: our tokenizer fields must be the same, value for value."""
    from gguf import GGUFReader

    from training.run.base_model import embedded_gguf_path

    reference = GGUFReader(embedded_gguf_path())

    def field(key):
        return reference.fields[key].contents()

    ours = ge.tokenizer_fields(embedded_tokenizer, 49152)
    assert ours["tokens"] == field("tokenizer.ggml.tokens")
    assert ours["types"] == field("tokenizer.ggml.token_type")
    assert ours["merges"] == field("tokenizer.ggml.merges")
    assert ours["chat_template"] == field("tokenizer.chat_template")
    assert (ours["bos"], ours["eos"], ours["unk"], ours["pad"]) == tuple(
        field(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "unknown", "padding"))
    assert ours["add_bos"] == field("tokenizer.ggml.add_bos_token")
    assert ge.pre_tokenizer_name({"model": {"public_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}}) == \
        field("tokenizer.ggml.pre")


# ---------------------------------------------------------------- bad input and faults
def _errors(run_dir, quants=("q8_0",), **kw):
    events = list(ge.export_run(run_dir, quants, **kw))
    assert events[-1]["kind"] == "error", events[-1]
    assert not list(Path(run_dir).glob("gguf.tmp-*"))
    return events[-1]["message"]


def test_refusals_leave_nothing_half_written(tmp_path, tiny_run):
    import shutil

    assert "no trained adapter" in _errors(tmp_path / "missing") or "no longer exists" in _errors(
        tmp_path / "missing")
    bare = tmp_path / "runs" / "NoAdapter_0123456789abcd"
    bare.mkdir(parents=True)
    (bare / "run.json").write_text(json.dumps({"model": {"path": str(tmp_path)}}))
    assert "no trained adapter" in _errors(bare)
    assert "at least one" in _errors(tiny_run, quants=())
    # A full disk is refused before anything is merged or written.
    message = _errors(tiny_run, disk_free=lambda _p: 1000)
    assert "Not enough disk space" in message and "Nothing was written" in message
    # A model the exporter cannot convert is refused with the reason.
    assert "architecture (gpt2)" in ge.refusal({"model_type": "gpt2"})
    assert "scaled rotary" in ge.refusal({"model_type": "llama", "num_attention_heads": 4, "hidden_size": 64,
                                          "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}})
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    base = tmp_path / "gpt2base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    run = json.loads((other / "run.json").read_text())
    run["model"]["path"] = str(base)
    (other / "run.json").write_text(json.dumps(run))
    assert "cannot be exported to GGUF" in _errors(other)


def test_run_deleted_or_export_interrupted(tmp_path, tiny_run):
    import shutil

    victim = tmp_path / "victim"
    shutil.copytree(tiny_run, victim, ignore=shutil.ignore_patterns("gguf"))
    events = ge.export_run(victim, ("q8_0",))
    first = next(events)
    assert first["stage"] == "merge"
    assert next(events)["stage"] == "quantise"
    shutil.rmtree(victim)  # the retention sweep (or the learner) removed the run meanwhile
    rest = list(events)
    assert rest[-1]["kind"] == "error" and "deleted while it was being exported" in rest[-1]["message"]
    assert not victim.exists()

    again = tmp_path / "again"
    shutil.copytree(tiny_run, again, ignore=shutil.ignore_patterns("gguf"))
    events = ge.export_run(again, ("f16", "q8_0"))
    for event in events:
        if event.get("stage") == "quantise":
            events.close()  # the browser went away mid-export
            break
    assert not (again / "gguf").exists() and not list(again.glob("gguf.tmp-*"))
    assert not list(again.rglob("*.gguf")) and not list(again.rglob("*.part"))


def test_dpo_run_exports_the_policy(tmp_path, tiny_run):
    """A DPO adapter folder may hold TRL's frozen reference copy as a second adapter: only the
    top-level (policy) adapter is merged."""
    import shutil

    import torch

    from training.hub.publish import load_merged

    dpo = tmp_path / "dpo"
    shutil.copytree(tiny_run, dpo, ignore=shutil.ignore_patterns("gguf"))
    run = json.loads((dpo / "run.json").read_text())
    run["config"]["method"] = "dpo"
    (dpo / "run.json").write_text(json.dumps(run))
    # A reference adapter saved beside it, with weights that would change the answers.
    shutil.copytree(dpo / "adapter", dpo / "adapter" / "ref")
    from safetensors.torch import load_file, save_file

    ref_file = dpo / "adapter" / "ref" / "adapter_model.safetensors"
    save_file({k: v * 0 + 0.3 for k, v in load_file(ref_file).items()}, ref_file)
    policy, _ = load_merged(dpo)
    sft, _ = load_merged(tiny_run)
    for (name, a), (_, b) in zip(policy.state_dict().items(), sft.state_dict().items()):
        assert torch.equal(a, b), name
    done = list(ge.export_run(dpo, ("q8_0",)))[-1]
    assert done["kind"] == "done" and done["method"] == "dpo" and "-dpo-" in done["files"]["q8_0"]["file"]


# ---------------------------------------------------------------- the panel's handlers
@pytest.fixture
def panel_env(monkeypatch, tiny_run, tmp_path):
    import huggingface_hub.constants as constants

    from fakes.hub_server import FakeHub

    monkeypatch.setenv("FTLAB_DATA_DIR", str(tiny_run.parent.parent))
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("FTLAB_ENABLE_LOGIN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the fake cannot serve Xet
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def test_panel_shows_sizes_streams_the_export_and_pushes(panel_env, tiny_run):
    from training.views import gguf_ui

    run_id = tiny_run.name
    choices, text = gguf_ui.sizes_handler(run_id)
    labels = dict((v, k) for k, v in choices["choices"])
    assert labels["f16"].startswith("f16 (~") and labels["q8_0"].startswith("q8_0 (~") and "f16" in text
    assert "Train a model first" in gguf_ui.sizes_handler("NotARun_0123456789abcdef")[1]

    outputs = list(gguf_ui.export_handler(run_id, ["q8_0"]))
    assert any("about" in o[0] and "left" in o[0] for o in outputs[:-1])  # progress with a time estimate
    status, download, push = outputs[-1]
    assert "Export ready" in status and push["visible"] is True
    with zipfile.ZipFile(download) as zf:
        names = zf.namelist()
    assert [n for n in names if n.endswith(".gguf")] and any(n.endswith("/Modelfile") for n in names)

    assert "Paste a Hugging Face access token" in gguf_ui.push_handler(run_id, "take-home", True, "")
    panel_env.fail(403, on="create", times=1)
    message = gguf_ui.push_handler(run_id, "take-home", True, "hf_test_good_token")
    assert "403" in message and "GGUF export is still saved here" in message
    assert not (tiny_run / "gguf" / "pushed.json").exists()
    message = gguf_ui.push_handler(run_id, "take-home", True, "hf_test_good_token")
    assert "GGUF files pushed" in message, message
    repo = panel_env.repos["learner/take-home"]
    gguf_paths = [p for p in repo.files if p.startswith("gguf/") and p.endswith(".gguf")]
    assert gguf_paths and "gguf/Modelfile" in repo.files and "adapter_model.safetensors" in repo.files
    card = repo.files["README.md"]
    card = card if isinstance(card, (bytes, str)) else Path(card).read_bytes()
    card = card.decode() if isinstance(card, bytes) else card
    assert "## GGUF files for llama.cpp and Ollama" in card and f"`{gguf_paths[0]}`" in card
    # A later adapter push keeps the card's GGUF table (the repo still holds the files).
    from training.hub import publish

    publish_dir = publish.prepare_publish_dir(tiny_run, "learner/take-home")
    assert "## GGUF files for llama.cpp and Ollama" in (publish_dir / "README.md").read_text()
