"""Each benchmark script runs end to end on a tiny setting and reports its rows.

No timing is asserted (times on a shared machine say nothing); what is checked is
that every suite produces its comparison rows with both sides measured, that the
load test's sessions got their own results back, and that app start imports no torch.
The training suite runs on a tiny random Llama with the embedded model's tokenizer,
so both of its workers (the app's engine and plain TRL) finish in seconds.
"""
from __future__ import annotations

import pytest

from bench import advisor, evaluate, gpu, load, neardup, page, startup, train
from bench.common import Row, table


def _by_metric(rows: list[Row], start: str) -> Row:
    hits = [r for r in rows if r.metric.startswith(start)]
    assert hits, f"no row starting {start!r} in:\n{table(rows)}"
    return hits[0]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, embedded_model_dir):
    """A 2-layer, 64-wide Llama with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def test_startup_bench_compares_app_with_bare_blocks():
    rows = startup.run(quick_mode=True)
    served = _by_metric(rows, "start: import + build + first page served")
    assert served.ours.endswith(" s") and served.baseline.endswith(" s") and served.ratio.endswith("x")
    assert _by_metric(rows, "start: torch").ours == "none"


def test_load_bench_sessions_get_their_own_results_from_both_servers():
    rows = load.run(quick_mode=True)
    for model in ("paced", "burst"):
        errors = _by_metric(rows, f"load ({model}): errors")
        assert errors.ours == "0" and errors.baseline == "0"
        click = _by_metric(rows, f"load ({model}): /submit_module_test")
        assert "ms" in click.ours and "ms" in click.baseline
        assert _by_metric(rows, f"load ({model}): server CPU per request").ours.endswith(" ms")


def test_page_bench_compares_the_served_page_with_bare_gradio():
    rows = page.run(quick_mode=True)
    wire = _by_metric(rows, "page: first page on the wire")
    assert wire.ours.endswith(" KB") and wire.baseline.endswith(" KB") and wire.ratio.endswith("x")
    assert "(br)" in _by_metric(rows, "page: /config wire").ours  # the app's page parts arrive compressed


def test_advisor_bench_measures_both_paths_against_the_fake_api():
    rows = advisor.run(quick_mode=True)
    for prefix in ("advisor via stream_reply: time to first token",
                   "advisor via launched app /lab_strategy_send: time to first token",
                   "advisor via launched app vs bare gr.ChatInterface"):
        row = _by_metric(rows, prefix)
        assert row.ours.endswith(" ms") and row.baseline.endswith(" ms") and row.ratio.startswith("+")
    bill = _by_metric(rows, "advisor bill: 5 turns")
    assert float(bill.ours.replace(",", "")) < float(bill.baseline.replace(",", ""))


def test_training_bench_runs_both_sides(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("BENCH_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("BENCH_TRAIN_STEPS", "1")
    monkeypatch.setenv("BENCH_TRAIN_REPEATS", "1")
    rows = train.run(quick_mode=True)
    step = _by_metric(rows, "train CPU: one training step")
    assert step.ours.endswith(" ms") and step.baseline.endswith(" ms")
    assert _by_metric(rows, "train CPU: same step, loss difference").met  # same loss as TRL's
    tps = _by_metric(rows, "train CPU: supervised tokens/s")
    assert float(tps.ours) > 0 and float(tps.baseline) > 0
    loss = _by_metric(rows, "train CPU: eval loss")
    assert float(loss.ours) > 0 and float(loss.baseline) > 0
    # Both sides trained on answer tokens only, and the same examples.
    sup = _by_metric(rows, "train CPU: supervised tokens per run")
    assert int(sup.ours) > 0 and int(sup.baseline) > 0


def test_evaluation_bench_measures_before_and_after_on_one_run(ftlab_data_dir):
    rows = evaluate.run(quick_mode=True)
    wall = _by_metric(rows, "evaluate CPU, 1 example: wall time")
    assert wall.ours.endswith(" s") and wall.baseline.endswith(" s") and wall.ratio.endswith("x")
    assert int(_by_metric(rows, "evaluate CPU, 1 example: updates shown").ours) > 1


def test_gpu_bench_says_so_when_there_is_no_gpu():
    if gpu.has_cuda():
        pytest.skip("a GPU is present: the GPU bench runs for real there (python -m bench.gpu)")
    rows = gpu.run(quick_mode=True)
    assert len(rows) == 1 and "no CUDA GPU" in rows[0].ours


def test_gain_bench_trains_the_default_run_and_scores_both_sides(ftlab_data_dir, tmp_path, capsys):
    import json

    from bench import gain
    assert gain.main(["--smoke", "--datasets", "pharmacy_meds", "--out", str(tmp_path / "gain.json")]) == 0
    out = capsys.readouterr().out
    assert "| `pharmacy_meds` | test, 1 | 1 |" in out  # one step of the default run, one test row
    result = json.loads((tmp_path / "gain.json").read_text())[0]
    for side in ("base", "tuned"):  # both sides answered and were scored by the Lab 4 scorer
        assert set(result[side]) == {"json_valid", "field_accuracy", "exact_match"}
        assert all(v is not None for v in result[side].values())
    assert result["config"]["learning_rate"] == gain.default_config("pharmacy_meds").learning_rate


def test_neardup_bench_compares_the_critic_with_exact_all_pairs(capsys):
    rows = neardup.run(quick_mode=True)  # 200 generated rows
    recall = _by_metric(rows, "near duplicates, 200 rows: critic recall vs exact all-pairs")
    assert recall.ours == "100.0%" and recall.met and "(MinHash LSH)" in recall.baseline
    assert _by_metric(rows, "near duplicates, 200 rows: leakage check recall").met
    assert _by_metric(rows, "near duplicates, 200 rows: critic_findings wall time").ours.endswith(" ms)")
    assert neardup.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for method in ("MinHash LSH (before)", "prefix filter (now)", "exact all-pairs", "critic_findings",
                   "check_splits"):
        assert f"| 200 | {method}" in out
    assert "reported pairs under the threshold: 0" in out
