"""The Training tab's data check names the uploaded file's lines and finds leakage across the
splits (training/data/checks.py, training/views/tab.py); Lab 2's mechanical fixes (training/data/fixes.py)."""
from __future__ import annotations

import json
import random
import time

from core import chat_rows
from training.data import checks
from training.data import loading as data
from training.views import tab as ui
from training.data.fixes import fix_jsonl, sendable

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
_RNG = random.Random(7)
_WORDS = [f"w{i}k{_RNG.randint(100, 999)}" for i in range(400)]


def _row(n_q: int = 6, n_a: int = 5, rng: random.Random = _RNG) -> dict:
    say = lambda n: " ".join(rng.choice(_WORDS) for _ in range(n))  # noqa: E731
    return {"messages": [{"role": "user", "content": say(n_q)}, {"role": "assistant", "content": say(n_a)}]}


def _hp(**over):
    from training.run import config
    return dict(config.defaults("cpu"), **over)


def _load(tmp_path, lines: list[str]) -> dict:
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds, msg = ui.load_dataset_handler("upload", None, str(path), "", "sft", None)
    assert ds is not None, msg
    return ds


def test_check_names_the_uploaded_files_lines_not_positions_in_the_train_split(ftlab_data_dir, tmp_path):
    lines = [""] + [json.dumps(_row()) for _ in range(40)]   # line 1 is blank
    lines.insert(30, lines[3])                                 # line 31 repeats line 4
    long_lines = [12, 20, 27, 36]
    for ln in long_lines:                                      # answers cut off at max length 256
        lines[ln - 1] = json.dumps(_row(n_q=4, n_a=80))
    ds = _load(tmp_path, lines)
    critic, check, *_ = ui.check_handler(ds, MODEL, "sft", _hp(max_length=256))
    assert "line 31: same as line 4" in critic
    in_train = [ln for ln in ds["lines"]["train"] if ln in long_lines]
    cut = next(x for x in check.split("\n") if "cut off" in x)
    assert in_train and all(f"line {ln}" in cut for ln in in_train), cut
    # Positions in the train split differ from the file's lines once held-out rows are gone.
    assert any(ds["lines"]["train"].index(ln) + 1 != ln for ln in in_train) and "train example" not in check


def _split_pair(base: dict, near: dict) -> list[str] | None:
    """Rows of a file where `base` and its near twin land in train and test (or None)."""
    lines = [json.dumps(_row(rng=random.Random(i))) for i in range(30)] + [json.dumps(base), json.dumps(near)]
    splits, _ = data.from_upload("\n".join(lines), "sft")
    where = {ln: s for s, lns in splits.lines.items() for ln in lns}
    return lines if {where[31], where[32]} == {"train", "test"} else None


def test_near_duplicate_across_train_and_test_is_leakage_and_the_fix_removes_it(ftlab_data_dir, tmp_path):
    for seed in range(200):
        base = _row(n_q=14, n_a=8, rng=random.Random(1000 + seed))
        near = json.loads(json.dumps(base))
        near["messages"][0]["content"] += " please"
        lines = _split_pair(base, near)
        if lines:
            break
    assert lines, "no file put the pair in train and test"
    ds = _load(tmp_path, lines)
    test_line = 31 if 31 in ds["lines"]["test"] else 32
    critic, *_ = ui.check_handler(ds, MODEL, "sft", _hp())
    assert "evaluation leakage" in critic
    assert f"line 31 ({'test' if test_line == 31 else 'train'}) and line 32 " in critic
    fixed, msg = ui.fix_leakage_handler(ds)
    assert test_line not in fixed["lines"]["test"] and fixed["train"] == ds["train"]
    n = {s: len(ds[s]) for s in checks.SPLITS}
    assert f"before: train {n['train']} · validation {n['validation']} · test {n['test']}" in msg
    assert f"after: train {n['train']} · validation {n['validation']} · test {n['test'] - 1}" in msg
    assert f"dropped line {test_line} (test)" in msg
    critic, *_ = ui.check_handler(fixed, MODEL, "sft", _hp())
    assert "evaluation leakage" not in critic and "no row of validation or test repeats" in critic
    same, msg = ui.fix_leakage_handler(fixed)
    assert same is fixed and "No leakage" in msg
    # No dataset, or a broken one: a message, and nothing the learner had is lost.
    assert ui.fix_leakage_handler(None) == (None, "Load a dataset first (step 1); there is nothing to fix yet.")
    broken = {"train": "not rows"}
    kept, msg = ui.fix_leakage_handler(broken)
    assert kept is broken and "Load a dataset" in msg


def test_built_in_sets_have_no_leakage():
    for name, info in data.BUILTIN.items():
        ds, _ = ui.load_dataset_handler("builtin", name, None, "", info.method, None)
        chk = checks.check_splits(ds)
        assert chk.leaks == [] and "✅ no row of validation or test" in chk.markdown(), name


def _planted() -> str:
    rows = [json.dumps(_row(n_q=12, n_a=10, rng=random.Random(50 + i))) for i in range(14)]
    lines = list(rows)
    lines.insert(3, rows[0])                                   # line 4 = line 1
    lines.insert(8, rows[1])                                   # line 9 = line 2
    near = json.loads(rows[5])
    near["messages"][0]["content"] += " please"
    lines.append(json.dumps(near))                             # line 17 ≈ line 7
    lines.append(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": ""}]}))   # line 18
    lines.append('{"messages": [oops')                         # line 19
    return "\n".join(lines) + "\n"


def test_fix_jsonl_drops_exactly_the_planted_rows_and_counts_them():
    text = _planted()
    r = fix_jsonl(text, "sft")
    assert (r.before, r.after, r.blocking) == (19, 14, [])
    assert [(n, why.split(" (")[0].split(":")[0]) for n, why in r.dropped] == [
        (4, "exact duplicate of line 1"), (9, "exact duplicate of line 2"), (17, "near-duplicate of line 7"),
        (18, "cannot train"), (19, "cannot train")]
    assert "empty" in r.dropped[3][1] and "not valid JSON" in r.dropped[4][1]
    assert "19 rows → 14 rows" in r.markdown() and "line 17: near-duplicate of line 7" in r.markdown()
    splits, parsed = data.from_upload(r.text, "sft")          # the Training tab takes the result as it is
    assert splits is not None and len(parsed.rows) == 14
    ok, msg = sendable(text, "sft")
    assert not ok and "line 18" in msg and "Apply the fixes" in msg
    assert sendable(r.text, "sft")[0]


# Issue 26's Lab 2 case: 37 distinct rows, two exact duplicates, one row one character
# away from another (Jaccard about 0.90). MinHash LSH at the threshold missed this copy
# (seed chosen so it did, as in the issue: "40 → 38 rows").
_ONE_CHAR_SEED = 11


def _one_char_paste(seed: int = _ONE_CHAR_SEED) -> tuple[str, int, int, float]:
    """The 40-line paste, the near copy's line and its original's line, and their Jaccard."""
    from bench.neardup import jaccard
    rows = [_row(n_q=8, n_a=6, rng=random.Random(seed * 100 + i)) for i in range(37)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(12, lines[2])                                 # line 13 = line 3
    lines.insert(25, lines[9])                                 # line 26 = line 10
    copy = json.loads(lines[19])                               # line 20, one character changed
    text = copy["messages"][0]["content"]
    mid = len(text) // 2 + (0 if text[len(text) // 2] != " " else 1)
    copy["messages"][0]["content"] = text[:mid] + ("x" if text[mid] != "x" else "y") + text[mid + 1:]
    lines.append(json.dumps(copy))                             # line 40 ≈ line 20
    full = lambda r: "\n".join(m["content"] for m in r["messages"])  # noqa: E731
    return "\n".join(lines) + "\n", 40, 20, jaccard(full(json.loads(lines[19])), full(copy))


def test_fix_jsonl_drops_a_one_character_copy_as_well_as_exact_duplicates():
    text, copy_line, original, jac = _one_char_paste()
    assert 0.88 <= jac <= 0.92, jac
    r = fix_jsonl(text, "sft")
    assert (r.before, r.after, r.blocking) == (40, 37, [])
    assert [(n, why.split(" (")[0]) for n, why in r.dropped] == [
        (13, "exact duplicate of line 3"), (26, "exact duplicate of line 10"),
        (copy_line, f"near-duplicate of line {original}")]
    assert "40 rows → 37 rows" in r.markdown()


def _leaky_dataset(pairs: int = 16, lo: float = 0.81, hi: float = 0.85) -> tuple[dict, list[float]]:
    """40 train rows, 8 validation rows and `pairs` test rows, each test row a near copy of
    train row k (Jaccard in [lo, hi)): the copies that a search at the threshold misses."""
    from bench.neardup import near_copy, row_texts
    rng = random.Random(2026)
    msgs = lambda u, a: {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}  # noqa: E731
    train = [row_texts(rng) for _ in range(40)]
    validation = [msgs(*row_texts(rng)) for _ in range(8)]
    copies = [near_copy(rng, *train[k], lo=lo, hi=hi) for k in range(pairs)]
    return ({"name": "leaky", "method": "sft", "train": [msgs(*r) for r in train], "validation": validation,
             "test": [msgs(u, a) for u, a, _ in copies]}, [j for *_, j in copies])


def test_leakage_check_finds_every_test_row_that_nearly_copies_a_train_row():
    """Issue 26: near the threshold (Jaccard 0.81-0.85) MinHash LSH let about one such copy
    in two through; the leakage check must name all of them, and the fix drop all of them."""
    ds, jacs = _leaky_dataset()
    assert all(0.81 <= j < 0.85 for j in jacs)
    chk = checks.check_splits(ds)
    # Rows are counted over train (1-40), then validation (41-48), then test (49-).
    assert sorted((p.a, p.b) for p in chk.leaks) == [
        (("train", k + 1), ("test", 49 + k)) for k in range(len(jacs))]
    assert all(p.kind == "near" and p.similarity >= 0.8 for p in chk.pairs)
    fixed, msg = checks.fix_leakage(ds)
    assert fixed["test"] == [] and fixed["train"] == ds["train"] and f"{len(jacs)} held-out row(s) dropped" in msg


def test_blocking_problems_stop_a_send_with_the_problem_named():
    few = "".join(json.dumps(_row()) + "\n" for _ in range(5))
    cases = [("hello\nworld\n", "sft", "not JSON Lines"),
             (_planted(), "dpo", "SFT data but the method is DPO"),
             (few, "sft", "at least 10"),
             ("  \n", "sft", "no dataset")]
    for text, method, needle in cases:
        r = fix_jsonl(text, method)
        ok, msg = sendable(text, method)
        assert needle in " ".join(r.blocking) and "Can't be sent" in r.markdown(), (needle, r.blocking)
        assert not ok and needle in msg, (needle, msg)
        if "JSON Lines" in needle or "DPO" in needle:  # nothing to drop that would help: nothing dropped
            assert (r.text, r.dropped) == (text, [])


def test_a_row_over_the_limit_is_fixed_fast_and_then_sendable():
    rows = [json.dumps(_row(rng=random.Random(i))) for i in range(chat_rows.MAX_ROWS)]
    text = "\n".join(rows + [rows[10]])
    start = time.perf_counter()
    r = fix_jsonl(text, "sft")
    took = time.perf_counter() - start
    assert (r.before, r.after, r.dropped) == (chat_rows.MAX_ROWS + 1, chat_rows.MAX_ROWS,
                                              [(chat_rows.MAX_ROWS + 1, "exact duplicate of line 11")])
    assert took < 6, took
    ok, msg = sendable(text, "sft")
    assert not ok and f"{chat_rows.MAX_ROWS + 1:,} rows" in msg
    assert sendable(r.text, "sft")[0]
