"""Near-duplicate search (issue 26): does the critic find every pair it promises?

The critic reports every pair of rows whose character-5-gram Jaccard is at least the
threshold (0.8). This generates chat JSONL with planted near copies whose true Jaccard
spans 0.80-1.0 (short rows of 20-60 characters included, shared instruction templates
so unrelated rows overlap too), takes the exact all-pairs Jaccard as the truth, and
measures side by side, on the same shingle sets:

- "MinHash LSH" (the critic before issue 26): datasketch, 64 permutations, LSH at the
  threshold itself (5 bands of 11), candidates confirmed by the exact Jaccard;
- "MinHash LSH, 25 bands of 5": the tuned alternative (128 permutations; miss chance at
  0.8 of (1 - 0.8^5)^25 = 5e-5 per pair), same confirmation;
- "prefix filter" (the critic now, `dataset_critic.similar_pairs`): exact and complete;
- "exact all-pairs": every pair's Jaccard (the truth).

Then the critic itself (`critic_findings`, whole report) and the Training tab's leakage
check (`checks.check_splits`) on the generated file. Times are medians of wall time on a
shared machine (the load average is printed next to them).

    python -m bench.neardup                 # 500 and 5,000 rows (~6 min: the 5,000-row all-pairs is most of it)
    python -m bench.neardup --rows 500      # one size
    python -m bench.neardup --smoke         # seconds (tests/test_bench_smoke.py)
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time

from bench.common import Row, median, quick

THRESHOLD = 0.8
BINS = ((0.80, 0.85), (0.85, 0.90), (0.90, 0.95), (0.95, 1.0), (1.0, 1.01))

_WORDS = (
    "patient reports mild pain since yesterday after taking the tablet twice with food order number "
    "invoice customer refund account login payment shipping delayed parcel address changed blood "
    "pressure dose morning evening allergy rash itch fever cough cold headache nausea clinic visit "
    "follow up week month appointment cancel upgrade plan discount return label warehouse stock item "
    "colour size small large medium replace broken screen battery charger cable phone laptop router "
    "reset password email verify code expired card declined bank transfer receipt tax total amount "
    "note summary field value name date time status open closed pending urgent normal high low "
    "please thanks kindly quickly again still never always usually often sometimes today tomorrow "
    "nurse doctor pharmacy prescription refill insulin inhaler ibuprofen paracetamol antibiotic "
    "walking sleeping eating drinking working travel flight hotel booking seat window aisle luggage"
).split()
_ASKS = ("Summarise this note: {}", "Extract the fields as JSON: {}", "Answer briefly: {}",
         "Rewrite in plain English: {}", "{}", "Classify the ticket: {}")


def _say(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _row_texts(rng: random.Random, short: bool) -> tuple[str, str]:
    """(user, assistant) of one row: short (the whole row 20-60 characters) or a usual one."""
    if short:
        while True:
            user, answer = _say(rng, rng.randint(1, 4)), _say(rng, rng.randint(1, 4))
            if 20 <= len(user) + 1 + len(answer) <= 60:
                return user, answer
    user = rng.choice(_ASKS).format(_say(rng, rng.randint(8, 60)))
    if rng.random() < 0.4:
        fields = rng.sample(["name", "date", "status", "dose", "total", "item", "topic"], 3)
        answer = json.dumps({f: _say(rng, rng.randint(1, 3)) for f in fields})
    else:
        answer = _say(rng, rng.randint(4, 40)) + "."
    return user, answer


def shingles(text: str) -> set[str]:
    """The critic's definition, written out on its own: character 5-grams of the lowercased
    text with whitespace squeezed (a text under 5 characters is one shingle)."""
    norm = " ".join(text.lower().split())
    return {norm[i:i + 5] for i in range(len(norm) - 4)} if len(norm) >= 5 else ({norm} if norm else set())


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def _edit(rng: random.Random, text: str) -> str:
    """One small edit: a letter changed, dropped or added, a word replaced, added or swapped."""
    kind = rng.randrange(6)
    if kind < 3 and text:
        i = rng.randrange(len(text))
        c = rng.choice("abcdefghijklmnopqrstuvwxyz")
        return (text[:i] + c + text[i + 1:], text[:i] + text[i + 1:], text[:i] + c + text[i:])[kind]
    words = text.split(" ")
    i = rng.randrange(len(words))
    if kind == 3:
        words[i] = rng.choice(_WORDS)
    elif kind == 4:
        words.insert(i, rng.choice(_WORDS))
    elif len(words) > 1:
        j = min(i + 1, len(words) - 1)
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def near_copy(rng: random.Random, user: str, answer: str, lo: float = THRESHOLD,
              hi: float = 1.0) -> tuple[str, str, float]:
    """A copy of the row, edited until its 5-gram Jaccard with the row lands in a band of
    0.02 at a target drawn from [lo, hi); with hi = 1.0, now and then the same text with
    other capitals and spacing (Jaccard 1.0, yet not an exact duplicate)."""
    full = f"{user}\n{answer}"
    if hi >= 1.0 and rng.random() < 0.08:
        return user.upper(), "  " + answer, 1.0
    top = min(hi, 0.99)
    for _ in range(50):
        target = rng.uniform(lo, top - 0.02)
        cur = (user, answer)
        for _ in range(400):
            field = rng.randrange(2)
            cand = list(cur)
            cand[field] = _edit(rng, cand[field])
            if not cand[field].strip():
                continue
            j = jaccard(full, "\n".join(cand))
            if j >= target:
                cur = tuple(cand)
                if j < target + 0.02:
                    return cur[0], cur[1], j
    raise ValueError(f"no copy of {full!r} with a Jaccard in [{lo}, {hi})")


def row_texts(rng: random.Random, short: bool = False) -> tuple[str, str]:
    """(user, assistant) of one generated row: short (the whole row 20-60 characters) or a usual one."""
    return _row_texts(rng, short)


def make_rows(n: int, seed: int = 26, pair_share: float = 0.4, short_share: float = 0.3) -> tuple[list[str], list[tuple]]:
    """`n` chat JSONL lines (deterministic for a seed) and the planted pairs
    [(line a, line b, Jaccard)] (file lines, 1-based). About `pair_share` of the rows are
    a member of a planted pair; `short_share` of the rows are 20-60 characters."""
    rng = random.Random(seed)
    pairs = int(n * pair_share) // 2
    rows: list[tuple[str, str, int | None]] = []  # user, answer, pair id
    for k in range(pairs):
        user, answer = _row_texts(rng, rng.random() < short_share)
        u2, a2, _ = near_copy(rng, user, answer)
        rows += [(user, answer, k), (u2, a2, k)]
    while len(rows) < n:
        rows.append((*_row_texts(rng, rng.random() < short_share), None))
    rng.shuffle(rows)
    where: dict[int, list[int]] = {}
    lines = []
    for line, (user, answer, k) in enumerate(rows, 1):
        lines.append(json.dumps({"messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": answer}]}))
        if k is not None:
            where.setdefault(k, []).append(line)
    planted = []
    for a, b in where.values():
        ra, rb = json.loads(lines[a - 1])["messages"], json.loads(lines[b - 1])["messages"]
        planted.append((a, b, jaccard(*("\n".join(m["content"] for m in r) for r in (ra, rb)))))
    return lines, sorted(planted)


# ----------------------------------------------------------------------------- methods

def _examples(lines: list[str]):
    """The critic's own view of the file: each example's shingles and exact-duplicate key."""
    from collections import defaultdict

    from labs.tools import dataset_critic as dc
    examples, _, _ = dc.read_examples(lines, [], defaultdict(list))
    keys, _ = dc.exact_duplicates(examples, defaultdict(list))
    return [e.line for e in examples], [dc.shingles(e.full) for e in examples], [keys[e.line] for e in examples]


def exact_all_pairs(sets: list[set], threshold: float) -> tuple[list[tuple[int, int, float]], int]:
    """Every pair's Jaccard: the truth."""
    out = []
    sizes = [len(s) for s in sets]
    for i, j in itertools.combinations(range(len(sets)), 2):
        inter = len(sets[i] & sets[j])
        union = sizes[i] + sizes[j] - inter
        if union and inter / union >= threshold:
            out.append((i, j, inter / union))
    return out, len(sets) * (len(sets) - 1) // 2


def _lsh(sets: list[set], threshold: float, num_perm: int, params: tuple[int, int] | None,
         min_size: int = 1) -> tuple[list[tuple[int, int, float]], int]:
    import zlib

    from datasketch import MinHash, MinHashLSH
    keep = [i for i, s in enumerate(sets) if len(s) >= min_size]
    hashes = MinHash.bulk([[t.encode() for t in sets[i]] for i in keep], num_perm=num_perm, hashfunc=zlib.crc32)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
    out, checked = [], 0
    for slot, (i, mh) in enumerate(zip(keep, hashes)):
        for other in lsh.query(mh):
            j = keep[other]
            checked += 1
            jac = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            if jac >= threshold:
                out.append((j, i, jac))
        lsh.insert(slot, mh)
    return out, checked


def minhash_lsh(sets: list[set], threshold: float) -> tuple[list[tuple[int, int, float]], int]:
    """The critic's search before issue 26 (datasketch, 64 permutations, LSH at the threshold:
    5 bands of 11, so a pair at Jaccard s is proposed with chance 1 - (1 - s^11)^5, 0.5 at 0.85)."""
    return _lsh(sets, threshold, 64, None, min_size=5)


def minhash_lsh_wide(sets: list[set], threshold: float) -> tuple[list[tuple[int, int, float]], int]:
    """The alternative not taken: 128 permutations, 25 bands of 5, so a pair at 0.8 is missed
    with chance (1 - 0.8^5)^25 = 5e-5 (still a chance, not a guarantee), at the cost of
    proposing many more unrelated pairs (0.3: 6%, 0.5: 55%)."""
    return _lsh(sets, threshold, 128, (25, 5))


def prefix_filter(sets: list[set], threshold: float) -> tuple[list[tuple[int, int, float]], int]:
    from labs.tools.dataset_critic import similar_pairs
    return similar_pairs(sets, threshold)


METHODS = {"MinHash LSH (before)": minhash_lsh, "MinHash LSH, 25 bands of 5": minhash_lsh_wide,
           "prefix filter (now)": prefix_filter, "exact all-pairs": exact_all_pairs}


def _timed(fn, *args, repeats: int = 1):
    """-> (result, median wall seconds, median CPU seconds of this process)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return out, median(walls), median(cpus)


def _recall(found: set, truth: set) -> float:
    return len(found & truth) / len(truth) if truth else 1.0


def measure(n: int, seed: int = 26, repeats: int = 3) -> dict:
    """Every method on one generated file of `n` rows; the critic and the leakage check on it."""
    from labs.tools.dataset_critic import critic_findings
    from training.data import checks
    from training.data import loading as data

    lines, planted = make_rows(n, seed)
    line_of, sets, keys = _examples(lines)
    result = {"rows": n, "planted": len(planted), "methods": {}}
    for name, fn in METHODS.items():
        (pairs, checked), secs, cpu = _timed(fn, sets, THRESHOLD, repeats=1 if name == "exact all-pairs" else repeats)
        found = {(line_of[i], line_of[j]): jac for i, j, jac in pairs if keys[i] != keys[j]}
        result["methods"][name] = {"pairs": found, "checked": checked, "s": secs, "cpu": cpu}
    truth = result["methods"]["exact all-pairs"]["pairs"]
    result["truth"] = truth
    text = "\n".join(lines) + "\n"
    found, secs, cpu = _timed(critic_findings, text, repeats=repeats)
    critic = {tuple(p["lines"]): p["jaccard"] for p in found["near"]}
    result["critic"] = {"pairs": critic, "s": secs, "cpu": cpu}
    # The Training tab's leakage check on the same rows, split as an upload is.
    splits, parsed = data.from_upload(text, "sft")
    dataset = {"name": "bench", "method": "sft", "source": "upload:bench", "train": splits.train,
               "validation": splits.validation, "test": splits.test, "lines": splits.lines}
    split_of = {ln: s for s, lns in splits.lines.items() for ln in lns}
    chk, secs, cpu = _timed(checks.check_splits, dataset, repeats=repeats)
    leaks = {(p.a[1], p.b[1]) for p in chk.leaks if p.kind == "near"}
    result["leakage"] = {"found": leaks, "truth": {k for k in truth if split_of[k[0]] != split_of[k[1]]},
                         "s": secs, "cpu": cpu}
    return result


def _bin_recall(found: set, truth: dict, lo: float, hi: float) -> str:
    in_bin = {k for k, j in truth.items() if lo <= j < hi}
    if not in_bin:
        return "—"
    return f"{len(found & in_bin) / len(in_bin):.1%} ({len(found & in_bin)}/{len(in_bin)})"


def _ms(m: dict) -> str:
    return f"{m['s'] * 1000:,.0f} ms ({m['cpu'] * 1000:,.0f} ms)"


def report(results: list[dict]) -> str:
    head = ["rows", "method", "pairs found / true", "recall", *[
        f"recall {lo:.2f}-{hi:.2f}" if hi <= 1.0 else "recall 1.0" for lo, hi in BINS],
        "candidates confirmed (exact Jaccard)", "time: wall (CPU)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        truth = r["truth"]
        entries = [(name, set(m["pairs"]), f"{m['checked']:,}", m) for name, m in r["methods"].items()]
        entries.append(("critic_findings (whole report)", set(r["critic"]["pairs"]), "—", r["critic"]))
        for name, found, checked, m in entries:
            out.append("| " + " | ".join([
                f"{r['rows']:,}", name, f"{len(found & set(truth)):,} / {len(truth):,}",
                f"{_recall(found, set(truth)):.1%}", *[_bin_recall(found, truth, lo, hi) for lo, hi in BINS],
                checked, _ms(m)]) + " |")
        lk = r["leakage"]
        out.append("| " + " | ".join([
            f"{r['rows']:,}", "check_splits (leakage across splits)",
            f"{len(lk['found'] & lk['truth']):,} / {len(lk['truth']):,}", f"{_recall(lk['found'], lk['truth']):.1%}",
            *["—"] * len(BINS), "—", _ms(lk)]) + " |")
    return "\n".join(out)


def false_pairs(r: dict) -> int:
    """Reported pairs whose exact Jaccard is under the threshold (or that are not true pairs)."""
    truth = r["truth"]
    return sum(1 for k in r["critic"]["pairs"] if k not in truth) + sum(
        1 for k in r["leakage"]["found"] if k not in truth)


def run(quick_mode: bool | None = None) -> list[Row]:
    """Rows for `python -m bench`: the critic's recall and time, against the search before."""
    q = quick() if quick_mode is None else quick_mode
    rows = []
    for n in ((200,) if q else (500, 5000)):
        r = measure(n, repeats=1 if q else 3)
        truth = set(r["truth"])
        now, before = set(r["critic"]["pairs"]), set(r["methods"]["MinHash LSH (before)"]["pairs"])
        lk = r["leakage"]
        rows.append(Row(f"near duplicates, {n:,} rows: critic recall vs exact all-pairs",
                        f"{_recall(now, truth):.1%}", f"{_recall(before, truth):.1%} (MinHash LSH)", "—",
                        ">= 99%", met=_recall(now, truth) >= 0.99))
        rows.append(Row(f"near duplicates, {n:,} rows: leakage check recall",
                        f"{_recall(lk['found'], lk['truth']):.1%}", "—", "—", ">= 99%",
                        met=_recall(lk["found"], lk["truth"]) >= 0.99))
        rows.append(Row(f"near duplicates, {n:,} rows: critic_findings wall time",
                        _ms(r["critic"]), "—", "—",
                        "< 1 s" if n <= 500 else "—", met=r["critic"]["s"] < 1.0 if n <= 500 else None))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[500, 5000])
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="200 rows, one repeat (seconds)")
    args = ap.parse_args(argv)
    sizes, repeats = ([200], 1) if args.smoke else (args.rows, args.repeats)
    results = []
    for n in sizes:
        load0 = os.getloadavg()[0]
        results.append(measure(n, args.seed, repeats))
        print(f"{n} rows: load average {load0:.1f} -> {os.getloadavg()[0]:.1f}, "
              f"{results[-1]['planted']} planted pairs", file=sys.stderr, flush=True)
    print(report(results))
    bad = sum(false_pairs(r) for r in results)
    print(f"\nreported pairs under the threshold: {bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
