"""Training datasets: the built-in sample sets, JSONL upload parsing and validation, splits.

Pure Python on purpose (json, hashlib, dataclasses): the Training tab checks a
learner's file before any GPU time is spent, and importing this module must stay
cheap -- no torch, transformers or datasets at import (`load_hub_dataset` imports
`datasets` lazily).

Reading and checking rows (formats, roles, limits, ``parse_jsonl``) lives in
``core/chat_rows.py``, shared with the Lab 2 dataset critic so the two never
disagree about a row; the names are re-exported here.

Try it::

    python -c "from training.data.loading import load_builtin; s = load_builtin('clinical_soap'); print(len(s.train), s.train[0])"
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from core import chat_rows
from core.chat_rows import (MAX_ERRORS_SHOWN, MAX_LINE_CHARS, MAX_TURNS, METHODS,  # noqa: F401
                             ROLE_RENAMES, ROLES, ParseResult, canonical, parse_jsonl)
from training.hub import timeouts as hub_timeouts

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"

# The upload limits live in core/chat_rows.py and may be changed there at run
# time (tests, the UI); read through, never copied, so there is one value.
_LIMITS = ("MAX_UPLOAD_MB", "MAX_ROWS", "MAX_MESSAGE_CHARS")


def __getattr__(name: str):
    if name in _LIMITS:
        return getattr(chat_rows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

HUB_ID_RE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
SPLIT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


# Under this many rows nothing is held out for validation or test (split_rows),
# so a run could not be evaluated; Lab 2 refuses to send fewer to the Training tab.
MIN_SPLIT_ROWS = 10


class DataError(ValueError):
    """A dataset problem to show the learner as-is (the message names the fix)."""


@dataclass(frozen=True)
class BuiltinInfo:
    name: str
    title: str
    description: str
    method: str            # "sft" | "dpo"
    task: str              # "soap" | "medications" | "preference"
    json_target: bool      # every target is strict JSON (enables the JSON metrics)
    sizes: tuple[int, int, int]  # (train, validation, test) -- checked by the tests


BUILTIN: dict[str, BuiltinInfo] = {
    "clinical_soap": BuiltinInfo(
        name="clinical_soap",
        title="Clinical note → SOAP JSON",
        description=("Short synthetic clinic dictations (terse, narrative or bulleted) turned into one "
                     "strict JSON object with subjective, objective, assessment and plan. Written by "
                     "this project; no real patient data."),
        method="sft", task="soap", json_target=True, sizes=(288, 36, 36),
    ),
    "pharmacy_meds": BuiltinInfo(
        name="pharmacy_meds",
        title="Pharmacy note → medication JSON",
        description=("Synthetic pharmacy notes with zero to three medication orders, written with the "
                     "usual abbreviations (PO, BID, q8h, x7d); the target lists each medication's name, "
                     "dose, unit, route, frequency, duration and as-needed flag as strict JSON."),
        method="sft", task="medications", json_target=True, sizes=(288, 36, 36),
    ),
    "preference": BuiltinInfo(
        name="preference",
        title="Strict JSON preference pairs (DPO)",
        description=("Prompts from both clinical tasks, each with a correct strict-JSON answer (chosen) "
                     "and a realistic failure (rejected): single quotes, a missing field, a wrong dose, "
                     "chatter around the JSON, or a Markdown fence."),
        method="dpo", task="preference", json_target=True, sizes=(128, 16, 16),
    ),
}


@dataclass
class Splits:
    name: str
    method: str
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    source: str  # "builtin:clinical_soap" | "upload:<sha8>" | "hub:<id>"
    # The uploaded file's line (or the Hub split's row) of each row, per split, so checks
    # name the line the learner can find; None for built-ins. Never given to training.
    lines: dict[str, list[int]] | None = None

    @property
    def all_rows(self) -> list[dict]:
        return [*self.train, *self.validation, *self.test]

    def counts(self) -> dict:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}



# --------------------------------------------------------------------------- built-ins

def load_builtin(name: str) -> Splits:
    """Read one built-in set (committed JSONL written by training/data/datasets/generate.py)."""
    info = BUILTIN.get(name)
    if info is None:
        raise DataError(f"unknown built-in dataset {name!r} — choose one of: {', '.join(BUILTIN)}")
    parts = []
    for split in ("train", "validation", "test"):
        path = DATASETS_DIR / name / f"{split}.jsonl"
        with open(path, encoding="utf-8") as fh:
            parts.append([json.loads(line) for line in fh if line.strip()])
    return Splits(name=name, method=info.method, train=parts[0], validation=parts[1], test=parts[2],
                  source=f"builtin:{name}")


# --------------------------------------------------------------------------- serialisation

def to_jsonl(rows) -> str:
    """One compact JSON object per line, key order kept, non-ASCII kept readable."""
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)



def fingerprint(rows: list[dict]) -> dict:
    """Identity of a dataset for run.json and model cards: independent of key order."""
    blob = "".join(canonical(r) + "\n" for r in rows).encode("utf-8")
    return {"sha256": hashlib.sha256(blob).hexdigest(), "rows": len(rows), "bytes": len(blob)}


def completion_pairs(row) -> tuple[list[dict], str]:
    """(prompt messages, final assistant text) for an SFT row -- the part the loss is on.

    A DPO row gives (prompt, chosen answer), which is what evaluation compares against.
    """
    if "messages" in row:
        msgs = row["messages"]
        if not msgs or msgs[-1].get("role") != "assistant":
            raise DataError("the last turn must be the assistant's reply")
        return [dict(m) for m in msgs[:-1]], msgs[-1]["content"]
    if "prompt" in row and "chosen" in row:
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        chosen = row["chosen"]
        text = chosen if isinstance(chosen, str) else chosen[-1]["content"]
        return [dict(m) for m in prompt], text
    raise DataError("row has neither 'messages' nor 'prompt'/'chosen'")


# --------------------------------------------------------------------------- splits

def split_rows(rows: list[dict], seed: int = 0, val_frac: float = 0.1,
               test_frac: float = 0.1) -> tuple[list, list, list]:
    """Deterministic train/validation/test split (see `split_indices`)."""
    return tuple([rows[i] for i in idx] for idx in split_indices(rows, seed, val_frac, test_frac))


def split_indices(rows: list[dict], seed: int = 0, val_frac: float = 0.1,
                  test_frac: float = 0.1) -> tuple[list[int], list[int], list[int]]:
    """Deterministic train/validation/test split, as positions in `rows` (file order kept).

    Rows are ordered by a hash of (seed, content) rather than shuffled by position,
    so the same rows land in the same split whatever order the file had, and exact
    duplicates stay together instead of leaking across splits. Under 10 rows there
    is nothing sensible to hold out, so everything trains.
    """
    if not 0 <= val_frac < 1 or not 0 <= test_frac < 1 or val_frac + test_frac >= 1:
        raise ValueError("val_frac and test_frac must be in [0, 1) and sum to less than 1")
    n = len(rows)
    if n < MIN_SPLIT_ROWS:
        return list(range(n)), [], []
    n_val = max(1, round(n * val_frac)) if val_frac > 0 else 0
    n_test = max(1, round(n * test_frac)) if test_frac > 0 else 0
    keyed = sorted(range(n), key=lambda i: (hashlib.sha256(f"{seed}\n{canonical(rows[i])}".encode("utf-8")).digest(), i))
    test_idx = sorted(keyed[:n_test])
    val_idx = sorted(keyed[n_test:n_test + n_val])
    train_idx = sorted(keyed[n_test + n_val:])
    return train_idx, val_idx, test_idx


def _split_with_lines(rows: list[dict], lines: list[int], seed: int) -> tuple[list, list, list, dict]:
    """split_rows, plus each split's file line numbers (a parallel list per split)."""
    parts = split_indices(rows, seed=seed)
    names = ("train", "validation", "test")
    return (*([rows[i] for i in idx] for idx in parts),
            {name: [lines[i] for i in idx] for name, idx in zip(names, parts)})



def from_upload(data: bytes | str, method: str, seed: int = 0) -> tuple[Splits | None, ParseResult]:
    """Parse an upload and split it; Splits is None when anything must be fixed first."""
    result = parse_jsonl(data, method)
    if not result.ok:
        return None, result
    train, val, test, lines = _split_with_lines(result.rows, result.lines, seed)
    sha8 = fingerprint(result.rows)["sha256"][:8]
    return Splits(name=f"upload {sha8}", method=method, train=train, validation=val, test=test,
                  source=f"upload:{sha8}", lines=lines), result


# --------------------------------------------------------------------------- Hub

def load_hub_dataset(dataset_id: str, method: str, split: str = "train", limit: int | None = None,
                     seed: int = 0) -> Splits:
    """Fetch a Hub dataset (online only) and run it through the same checks as an upload.

    Raises DataError with a message for the learner: bad id, offline, not found,
    or rows in an unsupported format.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dataset_id = (dataset_id or "").strip() if isinstance(dataset_id, str) else ""
    # The id goes to the Hub client only, but refusing anything that is not an
    # owner/name pattern keeps paths, URLs and option-like text out entirely.
    if not HUB_ID_RE.fullmatch(dataset_id) or ".." in dataset_id or "--" in dataset_id:
        raise DataError(f"{dataset_id[:80]!r} is not a Hub dataset id — write it as owner/name, "
                        f"e.g. trl-lib/ultrafeedback_binarized")
    if not isinstance(split, str) or not SPLIT_RE.fullmatch(split):
        raise DataError("the split name may use only letters, digits, '_', '-' and '.' — e.g. train")
    cap = chat_rows.MAX_ROWS if limit is None else max(1, min(int(limit), chat_rows.MAX_ROWS))
    try:
        import itertools

        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is in requirements.txt
        raise DataError("the 'datasets' library is not installed, so Hub datasets can't be loaded") from exc
    budget = hub_timeouts.dataset_budget_s()
    try:
        # Streaming reads only the first `cap` rows instead of downloading everything;
        # the whole load gets one deadline, so a Hub that never answers can't hold the tab.
        finished, records, _watch = hub_timeouts.run_with_deadline(
            lambda: list(itertools.islice(datasets.load_dataset(dataset_id, split=split, streaming=True), cap)),
            budget)
    except hub_timeouts.HubTimeout:
        finished = False
    except Exception as exc:  # every failure becomes a message; the app stays up
        text = f"{type(exc).__name__}: {exc}"
        low = text.lower()
        if "offline" in low or "connect" in low or "resolve" in low or "timed out" in low or "network" in low:
            raise DataError(f"couldn't reach the Hugging Face Hub to load {dataset_id!r} — you seem to be offline; "
                            f"use a built-in set or upload a JSONL file instead") from exc
        if "not found" in low or "doesn't exist" in low or "404" in low or "gated" in low:
            raise DataError(f"no dataset {dataset_id!r} with split {split!r} could be opened (it may not exist, "
                            f"be private or gated) — check the id and split on the Hub") from exc
        raise DataError(f"loading {dataset_id!r} failed ({text[:200]}) — try a built-in set or an upload") from exc
    if not finished:
        raise DataError(f"the Hugging Face Hub did not answer in time while loading {dataset_id!r} (this tab waits "
                        f"at most {budget:.0f} s) — try again in a minute, or use a built-in set or upload a JSONL "
                        f"file instead")
    if not records:
        raise DataError(f"{dataset_id!r} split {split!r} has no rows")
    text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    parsed = parse_jsonl(text, method, max_bytes=max(len(text.encode("utf-8")), 1))
    if not parsed.ok:
        shown = "; ".join(e.replace("line ", "row ", 1) for e in parsed.errors[:3])
        raise DataError(f"{dataset_id!r} isn't in a format this tab trains on: {shown}")
    train, val, test, lines = _split_with_lines(parsed.rows, parsed.lines, seed)
    return Splits(name=dataset_id, method=method, train=train, validation=val, test=test,
                  source=f"hub:{dataset_id}", lines=lines)
