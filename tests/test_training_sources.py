"""training/data/sources.py: where a run's data comes from, without Gradio (the tab's radio sends keys)."""
from __future__ import annotations

from training.data import sources
from training.data.loading import load_builtin


def test_the_radio_shows_the_same_labels_and_sends_stable_keys():
    assert [label for label, _ in sources.SOURCES] == ["Built-in", "Upload JSONL", "Hub dataset"]
    assert [key for _, key in sources.SOURCES] == [sources.BUILTIN, sources.UPLOAD, sources.HUB]


def test_the_radio_of_the_tab_is_built_from_the_sources():
    import gradio as gr

    from training.views import tab

    with gr.Blocks():
        parts = tab.build_training_tab()
    radio = parts["source"]
    assert [tuple(c) for c in radio.choices] == list(sources.SOURCES) and radio.value == sources.BUILTIN


def test_load_by_key_keeps_the_current_dataset_on_any_problem(ftlab_data_dir):
    d, md = sources.load(sources.BUILTIN, "clinical_soap", None, "", "sft", None)
    assert md.startswith("**Loaded") and d["method"] == "sft" and len(d["train"]) > 100
    assert sources.load(sources.BUILTIN, "nope", None, "", "sft", d) == (d, "Pick one of the built-in datasets.")
    assert sources.load(sources.HUB, None, None, "owner/name", "sft", d, online=lambda: False) == (
        d, sources.HUB_UNREACHABLE)
    assert sources.load("Built-in", "clinical_soap", None, "", "sft", d) == (d, "Pick where the data comes from.")


def test_state_and_summary_line_from_splits():
    s = load_builtin("clinical_soap")
    d = sources.as_state(s)
    assert set(d) >= {"name", "method", "source", "train", "validation", "test"}
    assert sources.loaded_md(d, "About it.").endswith("test examples.\n\nAbout it.")


def test_text_goes_through_the_upload_parse():
    rows = "".join('{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a%d"}]}\n'
                   % (i, i) for i in range(30))
    d, md = sources.from_text(rows, "sft", None, heading="**From Lab 2.** ")
    assert d and md.startswith("**From Lab 2.** ") and "**Loaded" in md
    keep = {"name": "kept"}
    assert sources.from_text("not json\n", "sft", keep)[0] is keep
