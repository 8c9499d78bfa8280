"""A small, bounded cache of loaded (model, tokenizer) pairs for chat and evaluation.

Loading a run's model per chat turn cost seconds before every reply; this keeps
at most `max_models` loaded (least recently used goes first) and releases each
one after `idle_s` seconds without use. It is the only per-learner data the app
keeps in a module global (see docs/architecture.md): entries are keyed by
run id + adapter path, the run ids are unguessable, and nothing here is ever
shown to anyone.

The key also carries the adapter's file stamp (mtime and size), so a run that
trained further (a resumed run rewrites `adapter/`) is reloaded, not served stale.

Thread-safe: one lock guards the table; loading happens outside it (one loader
per key at a time), so a slow load never blocks other learners' cached models.
An entry in use is never released by the idle sweep; an entry evicted for room
while in use lives on until its user is done (the bound is on what the cache
holds, plus at most the in-flight ones).

`clock` is injectable so a test can make an entry idle without sleeping.
"""
from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator


@dataclass
class Entry:
    key: Hashable
    stamp: Any
    model: Any
    tokenizer: Any
    last_used: float
    in_use: int = 0
    # Generation holds this: `disable_adapter()` switches the adapter off for the whole
    # model, so two generations on one model must not overlap.
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelCache:
    def __init__(self, loader: Callable[[Hashable], tuple[Any, Any]], *, max_models: int = 2,
                 idle_s: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 janitor: bool = True):
        self._loader = loader
        self.max_models = max(1, int(max_models))
        self.idle_s = float(idle_s)
        self._clock = clock
        self._janitor_on = janitor
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._janitor: threading.Thread | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @contextlib.contextmanager
    def use(self, key: Hashable, stamp: Any = None) -> Iterator[Entry]:
        """The loaded entry for `key` (loaded now if absent or if its stamp changed)."""
        entry = self._acquire(key, stamp)
        try:
            yield entry
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_used = self._clock()

    def _acquire(self, key: Hashable, stamp: Any) -> Entry:
        with self._lock:
            self._sweep_locked()
            entry = self._fresh_locked(key, stamp)
            if entry:
                return entry
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # a second learner asking for the same model waits for the first load
            with self._lock:
                entry = self._fresh_locked(key, stamp)
                if entry:
                    return entry
            try:
                model, tokenizer = self._loader(key)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                entry = Entry(key, stamp, model, tokenizer, self._clock(), in_use=1)
                self._entries[key] = entry
                self._entries.move_to_end(key)
                self._evict_locked()
        self._start_janitor()
        return entry

    def _fresh_locked(self, key: Hashable, stamp: Any) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.stamp != stamp:
            return None
        entry.in_use += 1
        entry.last_used = self._clock()
        self._entries.move_to_end(key)
        return entry

    def _evict_locked(self) -> None:
        for key in list(self._entries):
            if len(self._entries) <= self.max_models:
                break
            self._entries.pop(key)  # oldest first; a user still holding it keeps its reference

    def _sweep_locked(self) -> int:
        now = self._clock()
        idle = [k for k, e in self._entries.items() if not e.in_use and now - e.last_used >= self.idle_s]
        for key in idle:
            self._entries.pop(key)
        return len(idle)

    def sweep(self) -> int:
        """Release the entries idle for `idle_s` or more; returns how many were released."""
        with self._lock:
            n = self._sweep_locked()
        if n:
            _free_memory()
        return n

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        _free_memory()

    def _start_janitor(self) -> None:
        """A daemon thread that sweeps while anything is cached, so an idle model is
        released even when nobody calls again; it exits once the cache is empty."""
        if not self._janitor_on:
            return
        with self._lock:
            if self._janitor is not None and self._janitor.is_alive():
                return
            self._janitor = threading.Thread(target=self._janitor_loop, name="model-cache-janitor", daemon=True)
            self._janitor.start()

    def _janitor_loop(self) -> None:
        while True:
            self._wake.wait(timeout=max(1.0, self.idle_s / 4))
            self.sweep()
            with self._lock:
                if not self._entries:
                    self._janitor = None
                    return


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
