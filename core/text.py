"""Small wording helpers shared by every part of the app (no feature imports).

    >>> plural(1, "step"), plural(3, "step"), plural(2, "query", "queries")
    ('1 step', '3 steps', '2 queries')
"""
from __future__ import annotations


def plural(n: int | float, singular: str, plural_form: str | None = None) -> str:
    """'1 step', '2 steps': the count with its noun in the right number."""
    word = singular if n == 1 else (plural_form or singular + "s")
    count = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{count} {word}"
