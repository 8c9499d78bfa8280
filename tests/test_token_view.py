"""Step 2's token view shows what the trainer trains: held against `labels != -100` of the real
batch TRL's SFT and DPO trainers build for the same row (the engine's own trainer, no step taken)."""
import pytest

from training.data import tokens
from training.data.loading import load_builtin
from training.run import charts, config, engine, runs
from training.run.base_model import load_tokenizer, resolve_model


@pytest.fixture(scope="module")
def tok():
    _, path, _ = resolve_model(config.DEFAULT_BASE_MODEL)
    return load_tokenizer(path)


def _trainer(tok, method: str, rows: list[dict], max_length: int):
    cfg, errors = config.validate({"max_length": max_length, "max_steps": 1, "per_device_train_batch_size": 1,
                                   "gradient_accumulation_steps": 1}, method,
                                  dataset=config.DataRef(name="token view rows"))
    assert not errors, errors
    rid = engine.start_run(cfg, {"train": rows, "validation": [], "test": []})
    info = runs.read_run(rid)
    train_ds, _ = engine._datasets(cfg, tok, runs.read_datasets(rid), 0)
    return engine._trainer(cfg, info, tok, train_ds, None, engine._make_callback(
        rid, slice_end=1, total=1, on_event=None, elapsed_before=0.0, patience=0, ckpt_every=0), "cpu", False)


def _kept(ids, labels):
    return [int(i) for i, lab in zip(ids, labels) if int(lab) != -100]


def test_sft_trained_tokens_equal_the_batch_labels(ftlab_data_dir, tok):
    rows = load_builtin("clinical_soap").train[:3]
    seqs = [tokens.sft_sequences(tok, r)[0] for r in rows]
    prompt_lens = [s["trained"].index(True) for s in seqs]
    max_length = max(prompt_lens) + 6  # every row keeps a few trained tokens; the longer ones are cut
    assert any(len(s["ids"]) > max_length for s in seqs)
    trainer = _trainer(tok, "sft", rows, max_length)
    for i, seq in enumerate(seqs):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        assert ids == seq["ids"][:max_length]
        assert _kept(ids, labels) == tokens.trained_ids(seq, max_length)
        c = tokens.counts(seq, max_length)
        assert c["trained"] == len(_kept(ids, labels)) and c["cut"] == len(seq["ids"]) - max_length


def test_dpo_chosen_and_rejected_equal_the_batch_completion_mask(ftlab_data_dir, tok):
    rows = load_builtin("preference").train[:2]
    seqs = [tokens.dpo_sequences(tok, r) for r in rows]
    max_length = max(s[0]["trained"].index(True) for s in seqs) + 5
    trainer = _trainer(tok, "dpo", rows, max_length)
    for i, (chosen, rejected) in enumerate(seqs):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        for k, seq in enumerate((chosen, rejected)):
            assert _kept(batch["input_ids"][k].tolist(), labels[k].tolist()) == tokens.trained_ids(seq, max_length)


def test_marks_are_visible_escaped_and_the_cut_is_shown(tok):
    row = {"messages": [{"role": "user", "content": "<script>alert(1)</script> " + "word " * 60},
                        {"role": "assistant", "content": "<b>done</b>"}]}
    html, number = tokens.view(tok, [row, row], "sft", 48, "next", 2)
    assert number == 1  # "next" after the last row wraps to the first
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>done" not in html
    assert "⟨|im_end|⟩" in html and "⟨|im_start|⟩" in html  # special tokens as marks, not invisible text
    assert 'class="tok-prompt tok-header' in html  # the generation prompt's role header
    assert "✂ max length 48" in html and "tok-cut" in html and "cut off" in html
    assert "the trainer drops this row" in html
    short = {"prompt": "Hi", "completion": "Hello"}
    html, number = tokens.view(tok, [row, short], "sft", 512, "longest", None)
    assert number == 1 and "nothing cut" in html


def test_histogram_marks_max_length_and_the_check_says_what_it_cuts(tok):
    from training.data import checks
    rows = load_builtin("clinical_soap").train[:6]
    rep = checks.check_dataset(tok, rows, "sft", 200)
    over = sorted(n - 200 for n in rep.lengths if n > 200)
    assert over and rep.cut_summary().startswith(f"max length 200 cuts {len(over)} of 6 rows, by {over[0]}")
    assert rep.cut_summary() in rep.markdown()
    svg = charts.length_histogram_svg(rep.lengths, 200, rep.cut_summary())
    assert 'id="hist-max-length"' in svg and 'id="hist-cut-0"' in svg and "max length 200" in svg
    roomy = checks.check_dataset(tok, rows, "sft", 1024)
    assert roomy.cut_summary() == "" and any("far above every row" in w for w in roomy.warnings)
    assert not any("far above" in w for w in rep.warnings)
