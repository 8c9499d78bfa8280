"""Course lessons: one Markdown file per lesson, read into `Lesson` objects.

Each file starts with a front-matter block of ``key: value`` lines between
``---`` fences (id, number, title, subtitle, question), followed by the
Markdown body whose ``## `` headings are the lesson's sections.

    >>> from lessons import load_lessons, get_lesson
    >>> [l.id for l in load_lessons()]
    ['lesson1', 'lesson2', 'lesson3', 'lesson4']

Stdlib only, so importing it never drags in Gradio, torch or transformers.
"""
from __future__ import annotations

import functools
import pathlib
import re
from dataclasses import dataclass

LESSON_DIR = pathlib.Path(__file__).resolve().parent
REQUIRED_FIELDS = ("id", "number", "title", "subtitle", "question")

# A fence line opens or closes a code block; only ```python blocks count as
# snippets, but headings inside *any* fence are code, not sections.
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Lesson:
    id: str
    number: int
    title: str
    subtitle: str
    question: str
    body: str                      # Markdown without the front matter
    sections: tuple[str, ...]      # texts of the "## " headings, in order
    code_blocks: tuple[str, ...]   # contents of the ```python blocks, in order


def _split_front_matter(text: str, name: str) -> tuple[dict[str, str], str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"{name}: the file must start with a '---' front-matter line")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ValueError(f"{name}: the front matter has no closing '---' line") from None
    meta: dict[str, str] = {}
    for line in lines[1:end]:
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{name}: front-matter line {line!r} is not 'key: value'")
        meta[key.strip()] = value.strip()
    missing = [f for f in REQUIRED_FIELDS if not meta.get(f)]
    if missing:
        raise ValueError(f"{name}: front matter lacks {', '.join(missing)}")
    return meta, "\n".join(lines[end + 1:]).strip() + "\n"


def _scan_body(body: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    sections: list[str] = []
    blocks: list[str] = []
    in_fence = False
    lang = ""
    current: list[str] = []
    for line in body.splitlines():
        m = _FENCE.match(line.strip())
        if m and (not in_fence or m.group(1) == ""):
            if in_fence:
                if lang == "python":
                    blocks.append("\n".join(current) + "\n")
                in_fence, current = False, []
            else:
                in_fence, lang = True, m.group(1).lower()
            continue
        if in_fence:
            current.append(line)
        elif line.startswith("## "):
            sections.append(line[3:].strip())
    if in_fence:
        raise ValueError("a ``` code block is never closed")
    return tuple(sections), tuple(blocks)


def parse_lesson(text: str, name: str = "<lesson>") -> Lesson:
    """Parse one lesson file's text; raises ValueError naming what is wrong."""
    meta, body = _split_front_matter(text, name)
    try:
        number = int(meta["number"])
    except ValueError:
        raise ValueError(f"{name}: 'number' must be an integer, got {meta['number']!r}") from None
    try:
        sections, blocks = _scan_body(body)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return Lesson(
        id=meta["id"],
        number=number,
        title=meta["title"],
        subtitle=meta["subtitle"],
        question=meta["question"],
        body=body,
        sections=sections,
        code_blocks=blocks,
    )


# Content is the same for every learner, so caching it in the process is safe
# (no per-user data) and saves re-reading files on every page view.
@functools.lru_cache(maxsize=1)
def _load_all() -> tuple[Lesson, ...]:
    lessons = [
        parse_lesson(p.read_text(encoding="utf-8"), p.name)
        for p in sorted(LESSON_DIR.glob("lesson*.md"))
    ]
    return tuple(sorted(lessons, key=lambda l: l.number))


def load_lessons() -> list[Lesson]:
    """All lessons, sorted by number."""
    return list(_load_all())


def get_lesson(lesson_id: str) -> Lesson:
    """The lesson with this id; KeyError naming the known ids if there is none."""
    for lesson in _load_all():
        if lesson.id == lesson_id:
            return lesson
    known = ", ".join(l.id for l in _load_all())
    raise KeyError(f"no lesson with id {lesson_id!r}; known lessons: {known}")
