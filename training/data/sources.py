"""Where a run's data comes from: the three sources, loading one into the tab's dataset state.

No Gradio. The Training tab's "Data from" radio shows each source's label and sends its
key (`SOURCES`: (label, key) pairs, the shape a radio's choices take), so nothing here or
in the tab depends on the wording a learner sees. Lab 1's and Lab 2's hand-offs load
through the same functions (`training/views/handoff_ui.py`).

    >>> state, md = load("builtin", "clinical_soap", None, "", "sft", None)
    >>> md.startswith("**Loaded") and sorted(state)[:3]
    ['method', 'name', 'source']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from training.data import loading as data

BUILTIN, UPLOAD, HUB = "builtin", "upload", "hub"
SOURCES = (("Built-in", BUILTIN), ("Upload JSONL", UPLOAD), ("Hub dataset", HUB))  # (label shown, key)

HUB_UNREACHABLE = "The Hugging Face Hub can't be reached from here: use a built-in set or an upload."


def builtin_choices() -> list[tuple[str, str]]:
    """The built-in sets as (label, key), the dropdown's choices."""
    return [(f"{i.title} ({i.method.upper()})", k) for k, i in data.BUILTIN.items()]


def first_builtin() -> str | None:
    choices = builtin_choices()
    return choices[0][1] if choices else None


def as_state(splits: data.Splits) -> dict:
    """The tab's dataset state (a JSON-able dict) from loaded splits."""
    d = {"name": splits.name, "method": splits.method, "source": splits.source,
         "train": splits.train, "validation": splits.validation, "test": splits.test}
    if getattr(splits, "lines", None):
        d["lines"] = splits.lines  # file line numbers for the data check; training never reads them
    return d


def loaded_md(d: dict, description: str = "") -> str:
    """The status line under "Load dataset": the set's name, method and split sizes."""
    head = (f"**Loaded {d['name']}** ({d['method'].upper()}): {len(d['train'])} train, "
            f"{len(d['validation'])} validation, {len(d['test'])} test examples.")
    return head + (f"\n\n{description}" if description else "")


def _builtin(name: str, method: str, keep: dict | None) -> tuple[dict | None, str]:
    if name not in data.BUILTIN:
        return keep, "Pick one of the built-in datasets."
    info = data.BUILTIN[name]
    if info.method != method:
        return keep, (f"**{info.title}** is a {info.method.upper()} dataset; switch the method to "
                      f"{info.method.upper()} or pick another set.")
    d = as_state(data.load_builtin(name))
    return d, loaded_md(d, info.description)


def _upload(upload: Any, method: str, keep: dict | None) -> tuple[dict | None, str]:
    if upload is None:
        return keep, "Choose a `.jsonl` file to upload first."
    path = upload if isinstance(upload, str) else getattr(upload, "name", None)
    size = Path(path).stat().st_size
    if size > data.MAX_UPLOAD_MB * 1024 * 1024:
        return keep, (f"That file is {size / 1e6:.1f} MB; the limit is {data.MAX_UPLOAD_MB} MB. "
                      "Upload a smaller sample.")
    splits, result = data.from_upload(Path(path).read_bytes(), method)
    if splits is None:
        return keep, result.markdown() + "\n\nNothing was loaded; your previous dataset is kept."
    d = as_state(splits)
    return d, result.markdown() + "\n\n" + loaded_md(d)


def _hub(hub_id: str, method: str, keep: dict | None, online: Callable[[], bool]) -> tuple[dict | None, str]:
    if not online():
        return keep, HUB_UNREACHABLE
    d = as_state(data.load_hub_dataset(hub_id, method))
    return d, loaded_md(d)


def load(source: str, builtin_name: str | None, upload: Any, hub_id: str | None, method: str,
         current: dict | None, online: Callable[[], bool] = lambda: True) -> tuple[dict | None, str]:
    """-> (dataset state, status Markdown) for the chosen source's key. On any problem the
    current dataset is returned unchanged with the reason. `online` says whether the Hub answers."""
    try:
        if source == BUILTIN:
            return _builtin(builtin_name or "", method, current)
        if source == UPLOAD:
            return _upload(upload, method, current)
        if source == HUB:
            return _hub(hub_id or "", method, current, online)
    except data.DataError as exc:
        return current, f"❌ {exc}"
    except OSError as exc:
        return current, f"❌ The file could not be read ({type(exc).__name__})."
    return current, "Pick where the data comes from."


def from_text(text: str, method: str, current: dict | None, heading: str = "") -> tuple[dict | None, str]:
    """JSONL text (Lab 2's dataset) through the same parse and split as an upload."""
    try:
        splits, result = data.from_upload(text.encode("utf-8"), method)
    except data.DataError as exc:
        return current, str(exc)
    if splits is None:
        return current, result.markdown()
    d = as_state(splits)
    return d, f"{heading}{result.markdown()}\n\n{loaded_md(d)}"
