"""training.data.loading and the built-in sets: what a learner sees when they pick or upload data.

Fast (a few seconds): no torch, no network. The Hub loader is only checked for
its refusals (bad id, offline), in a subprocess with HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import chat_rows
from training.data import loading as data
from training.data.loading import (BUILTIN, DataError, completion_pairs, fingerprint, from_upload, load_builtin,
                           load_hub_dataset, parse_jsonl, split_rows, to_jsonl)

ROOT = Path(__file__).resolve().parent.parent


def chat(user="What is 2+2?", answer='{"answer":4}', system=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": msgs}


def lines(*objs) -> str:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n"


def targets(row) -> list[str]:
    if "messages" in row:
        return [row["messages"][-1]["content"]]
    return [row["chosen"][-1]["content"]]


def note(row) -> str:
    msgs = row["messages"] if "messages" in row else row["prompt"]
    return next(m["content"] for m in msgs if m["role"] == "user")


# ------------------------------------------------------------------ built-in sets

@pytest.fixture(scope="module")
def builtins():
    return {name: load_builtin(name) for name in BUILTIN}


def test_builtin_sets_load_with_documented_counts_and_method(builtins):
    for name, info in BUILTIN.items():
        s = builtins[name]
        assert (len(s.train), len(s.validation), len(s.test)) == info.sizes
        assert s.method == info.method and s.source == f"builtin:{name}"
    assert len(builtins["preference"].all_rows) >= 120
    assert min(len(builtins[n].all_rows) for n in ("clinical_soap", "pharmacy_meds")) >= 300


def test_builtin_splits_do_not_share_notes(builtins):
    for name, s in builtins.items():
        parts = [{note(r) for r in part} for part in (s.train, s.validation, s.test)]
        assert sum(map(len, parts)) == len(s.all_rows), f"{name}: a note repeats"
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]), name


def test_builtin_targets_are_strict_json_in_fixed_key_order(builtins):
    soap_keys = ["subjective", "objective", "assessment", "plan"]
    med_keys = ["name", "dose", "unit", "route", "frequency", "duration_days", "as_needed"]
    for name, s in builtins.items():
        for row in s.all_rows:
            for text in targets(row):
                obj = json.loads(text)  # double quotes, valid JSON
                # compact, key order as written: re-serialising gives the same bytes
                assert text == json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
                if "subjective" in obj:
                    assert list(obj) == soap_keys
                    assert list(obj["objective"]) == ["temp_c", "heart_rate", "bp", "spo2", "exam"]
                else:
                    assert list(obj) == ["medications"]
                    assert all(list(m) == med_keys for m in obj["medications"])
    some_empty = [r for r in builtins["pharmacy_meds"].all_rows if json.loads(targets(r)[0]) == {"medications": []}]
    assert len(some_empty) >= 10  # "no medication" notes are part of the task


def test_dates_in_targets_are_iso(builtins):
    seen = 0
    for name in ("clinical_soap", "preference"):
        for row in builtins[name].all_rows:
            text = targets(row)[0]
            assert not re.search(r"\d{1,2}/\d{1,2}/\d{2,4}|\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d", text)
            for iso in re.findall(r"\d{4}-\d{2}-\d{2}", text):
                dt.date.fromisoformat(iso)
                seen += 1
    assert seen > 50


def test_builtin_rows_pass_the_upload_checks(builtins):
    for name, s in builtins.items():
        result = parse_jsonl(to_jsonl(s.all_rows), s.method)
        assert result.errors == [] and result.rows == s.all_rows, name


def test_no_exact_or_near_duplicates(builtins):
    import numpy as np
    from datasketch import MinHash

    for name, s in builtins.items():
        texts = [note(r) + "\n" + targets(r)[0] for r in s.all_rows]
        assert len(set(texts)) == len(texts), f"{name}: exact duplicates"
        sigs = []
        for text in texts:
            words = re.findall(r"[a-z0-9]+", text.lower())
            m = MinHash(num_perm=128, seed=1)
            m.update_batch([" ".join(words[j:j + 3]).encode() for j in range(len(words) - 2)])
            sigs.append(m.hashvalues)
        # All pairs (a few hundred rows): estimated Jaccard of word trigrams, no
        # LSH banding, so a near duplicate cannot slip through a missed bucket.
        h = np.stack(sigs)
        for i in range(1, len(h)):
            sim = (h[:i] == h[i]).mean(axis=1)
            j = int(sim.argmax())
            assert sim[j] < 0.8, f"{name}: rows {j} and {i} are near duplicates ({sim[j]:.2f})"


def test_preference_pairs_differ_and_rejected_is_a_real_failure(builtins):
    kinds = set()
    for row in builtins["preference"].all_rows:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert row["prompt"][-1]["role"] == "user"
        assert chosen != rejected
        try:
            bad = json.loads(rejected)
        except json.JSONDecodeError:
            kinds.add("fence" if rejected.startswith("```") else "quotes" if rejected.startswith("{'") else
                      "cut" if rejected.startswith("{") else "chatter")
        else:
            assert bad != json.loads(chosen)
            kinds.add("wrong content")
    assert kinds == {"fence", "quotes", "cut", "chatter", "wrong content"}


def test_generator_is_deterministic(tmp_path):
    from training.data.datasets import generate

    generate.write(tmp_path)
    for name in BUILTIN:
        for split in ("train", "validation", "test"):
            fresh = (tmp_path / name / f"{split}.jsonl").read_bytes()
            committed = (data.DATASETS_DIR / name / f"{split}.jsonl").read_bytes()
            assert fresh == committed, f"{name}/{split}: regenerate and commit the data files"


def test_unknown_builtin_name_is_refused_with_the_choices():
    with pytest.raises(DataError, match="clinical_soap"):
        load_builtin("../etc")


# ------------------------------------------------------------------ parsing: good input

def test_formats_detected_and_normalised():
    r = parse_jsonl(lines(chat(system="Be brief."), chat("hi", "hello")), "sft")
    assert r.ok and r.detected_format == "messages" and r.rows[0]["messages"][0]["role"] == "system"

    r = parse_jsonl(lines({"prompt": "Capital of France?", "completion": "Paris"},
                          {"prompt": [{"role": "user", "content": "Q"}],
                           "completion": [{"role": "assistant", "content": "A"}]}), "sft")
    assert r.ok and r.detected_format == "prompt_completion"
    assert r.rows[0] == {"messages": [{"role": "user", "content": "Capital of France?"},
                                      {"role": "assistant", "content": "Paris"}]}

    r = parse_jsonl(lines({"prompt": "Q", "chosen": "good", "rejected": "bad"}), "dpo")
    assert r.ok and r.detected_format == "preference"
    assert r.rows[0] == {"prompt": [{"role": "user", "content": "Q"}],
                         "chosen": [{"role": "assistant", "content": "good"}],
                         "rejected": [{"role": "assistant", "content": "bad"}]}

    # TRL's implicit-prompt form: the shared opening becomes the prompt
    user = {"role": "user", "content": "Q"}
    r = parse_jsonl(lines({"chosen": [user, {"role": "assistant", "content": "good"}],
                           "rejected": [user, {"role": "assistant", "content": "bad"}]}), "dpo")
    assert r.ok and r.rows[0]["prompt"] == [user] and any("taken from" in w for w in r.warnings)

    r = parse_jsonl(lines(chat(), {"prompt": "p", "completion": "c"}), "sft")
    assert r.ok and r.detected_format.startswith("mixed")


def test_blank_lines_are_skipped_and_numbering_follows_the_file():
    text = lines(chat(), "", "   ", '{"messages": [{"role": "user", "content": "x"}]}')
    r = parse_jsonl(text, "sft")
    assert len(r.rows) == 1 and r.lines_read == 2
    assert r.errors[0].startswith("line 4:")


def test_extra_fields_and_duplicates_are_warnings_not_errors():
    row = {**chat(), "id": 7}
    r = parse_jsonl(lines(row, row), "sft")
    assert r.ok and len(r.rows) == 2
    assert any("'id'" in w for w in r.warnings) and any("line 2 repeats line 1" in w for w in r.warnings)


def test_utf8_bom_and_crlf_are_accepted():
    r = parse_jsonl(b"\xef\xbb\xbf" + lines(chat("caf\u00e9"), chat()).replace("\n", "\r\n").encode(), "sft")
    assert r.ok and r.rows[0]["messages"][0]["content"] == "caf\u00e9"


# ------------------------------------------------------------------ parsing: bad input

BAD = [
    # (file text, method, expected line, words the message must contain)
    (lines(chat(), '{"messages": [}'), "sft", 2, ["not valid JSON"]),
    (lines("{'messages': []}"), "sft", 1, ["double quotes"]),
    (lines("[1, 2]"), "sft", 1, ["expected a JSON object"]),
    (lines('"just text"'), "sft", 1, ["expected a JSON object", "a string"]),
    (lines({"messages": [{"content": "hi"}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["messages[0]", "no 'role'"]),
    (lines({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "a"}]}), "sft", 1,
     ["messages[1].role", "'bot'", "rename it to 'assistant'"]),
    (lines({"messages": [{"role": "narrator", "content": "hi"}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["messages[0].role", "system/user/assistant", "'narrator'"]),
    (lines({"messages": [{"role": "User", "content": "hi"}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["lower case"]),
    (lines({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["messages[0].content", "empty"]),
    (lines({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["messages[0]", "no 'content'"]),
    (lines({"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["messages[0].content", "must be a string", "a number"]),
    (lines({"messages": [{"role": "user", "content": [{"type": "image", "url": "x.png"}]},
                         {"role": "assistant", "content": "a"}]}), "sft", 1, ["messages[0].content", "text parts only"]),
    (lines({"messages": "hello"}), "sft", 1, ["'messages' must be a list"]),
    (lines({"messages": []}), "sft", 1, ["'messages' is empty"]),
    (lines({"messages": [{"role": "user", "content": "hi"}]}), "sft", 1, ["no 'assistant' turn"]),
    (lines({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"},
                         {"role": "user", "content": "more?"}]}), "sft", 1, ["last turn", "'user'", "not 'assistant'"]),
    (lines({"messages": [{"role": "assistant", "content": "a"}]}), "sft", 1, ["no 'user' turn"]),
    (lines({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                         {"role": "assistant", "content": "a"}]}), "sft", 1, ["messages[1]", "'system'"]),
    (lines({"prompt": "p"}), "sft", 1, ["'prompt' but no 'completion'"]),
    (lines({"text": "a whole document"}), "sft", 1, ["'text'", "prompt' + 'completion'"]),
    (lines({"conversations": [{"from": "human", "value": "hi"}]}), "sft", 1, ["ShareGPT", "rename"]),
    (lines({"instruction": "i", "output": "o"}), "sft", 1, ["Alpaca", "'completion'"]),
    (lines({"foo": 1}), "sft", 1, ["no recognised fields", "'foo'"]),
    (lines(chat(), {"prompt": "Q", "chosen": "same", "rejected": " same "}), "dpo", 2,
     ["'chosen' and 'rejected' are the same"]),
    (lines(chat()), "dpo", 1, ["SFT data", "method is DPO"]),
    (lines({"prompt": "Q", "chosen": "a", "rejected": "b"}), "sft", 1, ["preference data", "method is SFT"]),
    (lines({"prompt": "Q", "chosen": "a"}), "dpo", 1, ["missing 'rejected'"]),
    (lines({"prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
            "chosen": "a", "rejected": "b"}), "dpo", 1, ["'prompt' must end with a 'user' turn"]),
    (lines({"prompt": "Q", "chosen": "a", "rejected": [{"role": "user", "content": "b"}]}), "dpo", 1,
     ["rejected[0].role must be 'assistant'"]),
    (lines({"prompt": "Q", "chosen": None, "rejected": "b"}), "dpo", 1, ["chosen", "null"]),
    (lines({"prompt": "", "chosen": "a", "rejected": "b"}), "dpo", 1, ["'prompt'", "empty"]),
    (lines('{"messages": ' + "[" * 50_000 + "]" * 50_000 + "}"), "sft", 1, ["nested too deeply"]),
    (lines({"messages": [{"role": "user", "content": "\ud800"}, {"role": "assistant", "content": "a"}]}), "sft", 1,
     ["messages[0].content", "surrogate"]),
    (lines(chat(answer="x" * 20_001)), "sft", 1, ["messages[1].content", "20,001", "FTLAB_MAX_MESSAGE_CHARS"]),
    (lines('[{"messages": []},'), "sft", 1, ["JSON array"]),
    (lines('{"prompt": "a", "completion": "b"} {"prompt": "c", "completion": "d"}'), "sft", 1, ["own line"]),
]


@pytest.mark.parametrize("text,method,lineno,words", BAD, ids=[" ".join(c[3])[:40] for c in BAD])
def test_each_bad_row_is_refused_with_its_line_field_and_fix(text, method, lineno, words):
    result = parse_jsonl(text, method)
    assert result.errors, "should be refused"
    message = next((e for e in result.errors if e.startswith(f"line {lineno}")), None)
    assert message, result.errors
    for word in words:
        assert word in message, (word, message)
    assert " — " in message or "rename" in message  # every message ends with what to do
    splits, again = from_upload(text, method)
    assert splits is None and again.errors == result.errors


def test_good_rows_survive_next_to_bad_ones():
    r = parse_jsonl(lines(chat("a"), '{"messages": oops}', chat("b")), "sft")
    assert [row["messages"][0]["content"] for row in r.rows] == ["a", "b"]
    assert len(r.errors) == 1 and not r.ok
    assert "line 2" in r.markdown() and "2 valid row(s)" in r.markdown()


def test_non_utf8_bytes_name_the_line_and_offset():
    good = (json.dumps(chat()) + "\n").encode()
    r = parse_jsonl(good + b'{"messages": "caf\xe9"}\n', "sft")
    assert any(e.startswith("line 2:") and "0xE9" in e and f"byte offset {len(good) + 17}" in e and "UTF-8" in e
               for e in r.errors), r.errors
    r = parse_jsonl("x".encode("utf-16"), "sft")
    assert "UTF-16" in r.errors[0]
    r = parse_jsonl(b"\x00\x01\x02binary", "sft")
    assert not r.rows and "NUL bytes" in r.errors[0]


@pytest.mark.parametrize("text", [b"", "", "\n\n  \n"])
def test_empty_file(text):
    r = parse_jsonl(text, "dpo")
    assert r.errors == ["the file is empty — it needs one JSON object per line"]


def test_many_errors_are_capped_with_a_count():
    r = parse_jsonl("[]\n" * 100, "sft")
    assert len(r.errors) == data.MAX_ERRORS_SHOWN + 1
    assert "60 more problems" in r.errors[-1]


def test_method_mismatch_is_one_message_for_the_whole_file():
    r = parse_jsonl(lines(*[chat(str(i)) for i in range(30)]), "dpo")
    assert r.errors == [r.errors[0]] and "line 1 (and 29 more)" in r.errors[0]


# ------------------------------------------------------------------ limits

def test_size_cap_refuses_before_parsing(monkeypatch):
    monkeypatch.setattr(chat_rows, "MAX_UPLOAD_MB", 1)
    big = lines(*[chat("x" * 1000) for _ in range(1100)])
    assert len(big) > 2**20
    for payload in (big, big.encode()):
        r = parse_jsonl(payload, "sft")
        assert not r.rows and "the limit is 1 MB (FTLAB_MAX_UPLOAD_MB)" in r.errors[0]
    assert parse_jsonl(lines(chat()), "sft", max_bytes=10).errors[0].startswith("the file is")


def test_row_cap(monkeypatch):
    monkeypatch.setattr(chat_rows, "MAX_ROWS", 3)
    r = parse_jsonl(lines(*[chat(str(i)) for i in range(4)]), "sft")
    assert not r.rows and r.errors == ["the file has 4 rows; the limit is 3 (FTLAB_MAX_ROWS) — keep the first 3 "
                                       "or split the file"]
    assert parse_jsonl(lines(*[chat(str(i)) for i in range(3)]), "sft").ok


def test_hostile_files_are_refused_whole_and_quickly():
    # one huge line: refused before json.loads sees it
    r = parse_jsonl('{"messages": "' + "x" * (data.MAX_LINE_CHARS + 1) + '"}', "sft")
    assert r.errors[0].startswith("line 1: the line is 200,") and "shorten" in r.errors[0]
    # hundreds of thousands of tiny rows: counted, not built, then refused by the row cap
    r = parse_jsonl(b"{}\n" * 300_000, "sft")
    assert r.errors[0].startswith("the file has 300,000 rows")
    # nothing but newlines is an empty file
    assert "empty" in parse_jsonl(b"\n" * 1_000_000, "sft").errors[0]


def test_limits_come_from_the_environment():
    env = {**os.environ, "FTLAB_MAX_ROWS": "7", "FTLAB_MAX_UPLOAD_MB": "2", "FTLAB_MAX_MESSAGE_CHARS": "not a number"}
    out = subprocess.run([sys.executable, "-c", "from training.data import loading as data; import sys; "
                          "print(data.MAX_ROWS, data.MAX_UPLOAD_MB, data.MAX_MESSAGE_CHARS, 'torch' in sys.modules)"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["7", "2", "20000", "False"]


# ------------------------------------------------------------------ splits and fingerprints

def test_from_upload_splits_deterministically_whatever_the_order():
    rows = [chat(f"question {i}", f'{{"n":{i}}}') for i in range(50)]
    s1, r1 = from_upload(lines(*rows), "sft")
    s2, _ = from_upload(lines(*rows), "sft")
    s3, _ = from_upload(lines(*reversed(rows)), "sft")
    assert r1.ok and (len(s1.train), len(s1.validation), len(s1.test)) == (40, 5, 5)
    assert s1.test == s2.test and s1.validation == s2.validation
    # a reordered file puts the same rows in each split (each split keeps the file's order)
    as_set = lambda part: sorted(json.dumps(r) for r in part)  # noqa: E731
    assert as_set(s3.test) == as_set(s1.test) and as_set(s3.validation) == as_set(s1.validation)
    assert s1.source == f"upload:{fingerprint(r1.rows)['sha256'][:8]}"
    keys = [{json.dumps(r) for r in part} for part in (s1.train, s1.validation, s1.test)]
    assert sum(map(len, keys)) == 50 and not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    s4, _ = from_upload(lines(*rows), "sft", seed=1)
    assert s4.test != s1.test


def test_small_uploads_train_on_everything_and_say_so():
    s, r = from_upload(lines(chat("a"), chat("b")), "sft")
    assert s.train == r.rows and s.validation == s.test == []
    assert any("nothing is held out" in w for w in r.warnings)


def test_split_rows_rejects_impossible_fractions():
    with pytest.raises(ValueError):
        split_rows([chat()] * 20, val_frac=0.6, test_frac=0.5)


def test_fingerprint_is_stable_and_ignores_key_order():
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}]
    fp = fingerprint(rows)
    # Pinned: a change here changes every recorded run's dataset identity.
    # (= sha256 of the sorted-key compact line plus "\n", checked with sha256sum)
    assert fp == {"sha256": "11c93142db0737bfd173e23f2952e1d07c21c15dba73c22bae62b2bcd96a0e5f", "rows": 1, "bytes": 82}
    reordered = [{"messages": [{"content": "hi", "role": "user"}, {"content": "ok", "role": "assistant"}]}]
    assert fingerprint(reordered) == fp
    assert fingerprint([chat("hi!", "ok")])["sha256"] != fp["sha256"]


def test_to_jsonl_round_trips_through_the_parser():
    rows = [chat("caf\u00e9 \u2014 note", '{"a":"\u00b5g"}'), chat("b")]
    text = to_jsonl(rows)
    assert "\u00e9" in text and text.count("\n") == 2
    assert parse_jsonl(text, "sft").rows == rows


def test_completion_pairs():
    prompt, answer = completion_pairs(chat("Q", "A", system="S"))
    assert prompt == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}] and answer == "A"
    row = {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "good"}],
           "rejected": [{"role": "assistant", "content": "bad"}]}
    assert completion_pairs(row) == ([{"role": "user", "content": "Q"}], "good")
    with pytest.raises(DataError):
        completion_pairs({"messages": [{"role": "user", "content": "Q"}]})


# ------------------------------------------------------------------ Hub

@pytest.mark.parametrize("bad_id", ["", "../etc/passwd", "a b", "--help", "https://huggingface.co/datasets/x",
                                    "owner/name/extra", "owner/..", "x" * 200])
def test_hub_id_is_checked_before_anything_is_fetched(bad_id):
    with pytest.raises(DataError, match="owner/name"):
        load_hub_dataset(bad_id, "sft")


def test_hub_split_name_is_checked():
    with pytest.raises(DataError, match="split"):
        load_hub_dataset("owner/name", "sft", split="train; rm -rf /")


def test_hub_offline_gives_a_clear_message(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = ("from training.data.loading import load_hub_dataset, DataError\n"
            "try:\n    load_hub_dataset('someone/some_set', 'sft')\n"
            "except DataError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "offline" in out.stdout and "built-in set" in out.stdout, out.stdout + out.stderr


# ------------------------------------------------- upload messages, through the launched tab

@pytest.fixture(scope="module")
def training_app(tmp_path_factory):
    import gradio as gr
    from gradio_client import Client

    from training.views.tab import build_training_tab

    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    with gr.Blocks() as demo:
        build_training_tab()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()
        mp.undo()


def _upload(client, path) -> str:
    from gradio_client import handle_file

    message = client.predict("upload", "clinical_soap", handle_file(str(path)), "", "sft",
                             api_name="/load_dataset_handler")  # the State output is not part of the API
    return message


ROW = '{"messages": [{"role": "user", "content": "Caf\u00e9 order?"}, {"role": "assistant", "content": "ok"}]}\n'


@pytest.mark.parametrize("name, content, says", [
    ("latin1.jsonl", ROW.encode("latin-1"), "not UTF-8 text"),
    ("utf16.jsonl", ROW.encode("utf-16"), "UTF-16"),
    ("utf16-no-bom.jsonl", ROW.encode("utf-16-le"), "UTF-16"),
    ("binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    ("too-many.jsonl", ROW.encode() * 5001, "5,001 rows; the limit is 5,000"),
    ("empty.jsonl", b"\n\n", "empty"),
])
def test_upload_headline_says_what_is_wrong_with_the_file(training_app, tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    message = _upload(training_app, path)
    headline = message.splitlines()[0]
    assert headline.startswith("**The file could not be read:") and says in headline, message
    assert "0 valid row(s)" not in message and "format: `empty`" not in message
    assert "previous dataset is kept" in message


def test_cut_off_line_gets_the_cut_off_hint_through_the_tab(training_app, tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text(ROW + '{"messages": [{"role": "user", "content": "Pt\'s dose is 5 mg"}, {"role": "assis\n',
                    encoding="utf-8")
    message = _upload(training_app, path)
    assert "line 2" in message and "cut off" in message and "single quotes" not in message
