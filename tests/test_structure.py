"""Which package may import which (issue 10): checked on the imports themselves."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from quizzes.grading import QUIZ_IDS, load_quiz

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ("quizzes", "labs", "training", "lessons", "app")


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_core_imports_no_feature_package():
    out = _py("import sys, core.config, core.course, core.progress; "
              f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FEATURES!r})))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_progress_counts_come_from_the_quiz_data():
    from core import progress

    assert progress.QUESTION_COUNTS == {q: len(load_quiz(q)["questions"]) for q in QUIZ_IDS}
    assert progress.LESSON_IDS == tuple(q for q in QUIZ_IDS if q != "module_test")


def test_bench_imports_nothing_from_tests():
    for path in (ROOT / "bench").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in ("tests", "fakes", "conftest"), f"{path.name} imports {name}"


@pytest.mark.parametrize("module", ["training.views.tab", "labs.ui", "training.views.publish_ui"])
def test_app_fails_loudly_when_a_tab_builder_cannot_be_imported(monkeypatch, module):
    import app

    # sys.modules[name] = None makes `import name` raise ImportError, as a broken install would.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(RuntimeError, match="builder could not be imported") as err:
        app.build_app()
    assert module in str(err.value)
