"""Shared fixtures for the publish and recipe tests (no tests in this module).

`make_run_dir` builds a finished run directory the way the engine lays it out
(docs/architecture.md): run.json, log.jsonl, metrics.json and adapter/ holding
a real PEFT adapter saved from a tiny LlamaForCausalLM built from a config, plus
tokenizer files with a chat template. Nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

# A valid run id (training/run/runs.py accepts 16-64 url-safe characters).
RUN_ID = "TestRun_0123456789abcdef"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>", "user", "assistant", "system"]
    words += [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["{", "}", ":", '"', ",", " ", "\n"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<|im_end|>", bos_token="<|im_start|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_base_model_dir(path: Path) -> Path:
    """A tiny random Llama saved like a Hub checkpoint, with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


SFT_ROWS = [
    {"messages": [{"role": "user", "content": f"give me item {i}"},
                  {"role": "assistant", "content": '{"item": "%s"}' % chr(97 + i)}]}
    for i in range(12)
]

DPO_ROWS = [{"prompt": [{"role": "user", "content": f"give me item {i}"}],
             "chosen": [{"role": "assistant", "content": '{"item": "%s"}' % chr(97 + i)}],
             "rejected": [{"role": "assistant", "content": "no"}]} for i in range(12)]


def make_run_dir(root: Path, *, method: str = "sft", hub_dataset: str | None = None,
                 base_dir: Path | None = None) -> Path:
    """A finished run directory with a real (non-zero) PEFT adapter."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = base_dir or make_base_model_dir(root / "base")
    run_dir = root / "runs" / RUN_ID
    (run_dir / "adapter").mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    # B starts at zero; give it values so the adapter actually changes the model.
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(run_dir / "adapter")
    tokenizer.save_pretrained(run_dir / "adapter")
    (run_dir / "adapter" / "training_args.bin").write_bytes(b"pickle that must not be published")

    from training.run.config import DataRef, RunConfig

    dataset = DataRef(name=hub_dataset or "support-tickets (built-in)", source="hub" if hub_dataset else "builtin",
                      hub_id=hub_dataset, fingerprint={"sha256": "ab" * 32, "rows": len(SFT_ROWS), "bytes": 1234})
    cfg = RunConfig(method=method, base_model="HuggingFaceTB/SmolLM2-135M-Instruct", dataset=dataset,
                    lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules="qv", learning_rate=2e-4, warmup_ratio=0.05,
                    lr_scheduler_type="cosine", num_train_epochs=1.0, max_steps=20, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=128,
                    beta=0.1, seed=7)
    # The layout training/run/engine.py writes: the RunConfig as written by its type, and
    # the model actually loaded (id, local path, public Hub id) next to it.
    run = {
        "run_id": run_dir.name, "status": "finished", "step": 20, "total_steps": 20, "best_step": 18,
        "config": cfg.to_dict(),
        "model": {"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": str(base_dir),
                  "public_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "notice": ""},
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    events = [{"step": s, "loss": 2.5 - 0.1 * s, "elapsed": s * 0.5} for s in range(1, 21)]
    events += [{"step": s, "eval_loss": 2.6 - 0.1 * s} for s in (5, 10, 15, 20)]
    (run_dir / "log.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{broken")
    metrics = {"n": 4,
               "base": {"json_valid": 0.25, "exact_match": 0.0, "field_f1": 0.1},
               "tuned": {"json_valid": 1.0, "exact_match": 0.75, "field_f1": 0.9},
               "samples": [{"prompt": "give me item 1", "reference": '{"item": "b"}',
                            "base": "item?", "tuned": '{"item": "b"}'}]}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    rows = SFT_ROWS if method == "sft" else DPO_ROWS
    (run_dir / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:10]) + "\n")
    (run_dir / "validation.jsonl").write_text("\n".join(json.dumps(r) for r in rows[10:]) + "\n")
    return run_dir
