"""The CPU training step scores only answer tokens, and learns exactly what TRL's loss teaches.

A learner would notice a different loss curve or a worse adapter: so the loss value and
every LoRA gradient must equal TRL's own SFT loss on the same batch (prompt tokens
masked, two rows of different length padded together).
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    import peft
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = peft.get_peft_model(LlamaForCausalLM(cfg), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False))
    rows = [{"input_ids": [1, 5, 6, 7, 8, 9, 10, 2], "labels": [-100, -100, -100, -100, 8, 9, 10, 2]},
            {"input_ids": [1, 11, 12, 13, 2], "labels": [-100, -100, 12, 13, 2]}]
    out = tmp_path_factory.mktemp("fast-loss")
    args = SFTConfig(output_dir=str(out), use_cpu=True, per_device_train_batch_size=2, report_to="none",
                     max_length=64, gradient_checkpointing=False, dataset_num_proc=None)
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<s>": 1, "</s>": 2},
                                                                               unk_token="<pad>")),
                                  pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)


def _loss_and_grads(trainer, loss_fn):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.train()
    trainer.model.zero_grad()
    loss = loss_fn(trainer.model, dict(batch), num_items_in_batch=None)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return float(loss), grads, batch


def test_supervised_loss_equals_trls_loss_and_gradients(trainer):
    from training.run import fast_loss

    trl_loss, trl_grads, batch = _loss_and_grads(trainer, trainer.compute_loss)
    assert int((batch["labels"] != -100).sum()) < int(batch["attention_mask"].sum())  # prompts are masked
    ours, our_grads, _ = _loss_and_grads(trainer, fast_loss.supervised_loss)
    assert ours == pytest.approx(trl_loss, rel=1e-5)
    assert trl_grads.keys() == our_grads.keys() and trl_grads
    for name, g in trl_grads.items():
        torch.testing.assert_close(our_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_install_replaces_the_training_loss_only(trainer):
    from training.run import fast_loss

    assert fast_loss.install(trainer)
    trl_loss, _, _ = _loss_and_grads(trainer, lambda m, b, **k: fast_loss.supervised_loss(m, b))
    installed, _, _ = _loss_and_grads(trainer, trainer.compute_loss)
    assert installed == pytest.approx(trl_loss, rel=1e-6)
    trainer.model.eval()
    with torch.no_grad():  # evaluation keeps TRL's own path (it asks for outputs)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        loss, outputs = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
    assert float(loss) == pytest.approx(trl_loss, rel=1e-5) and outputs.logits is not None
