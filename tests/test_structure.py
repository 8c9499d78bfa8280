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


# ------------------------------------------------------------------ seams (issue 22)

# The project's own code. Tests are left out on purpose: a test is white-box and may reach a
# module's private helper (or monkeypatch it) to pin down one behaviour; that is a test's
# business, while product code that needs another module's helper needs a public name.
PROJECT = ("app.py", "core", "labs", "lessons", "quizzes", "training", "bench", "devtools")
PACKAGES = {p.removesuffix(".py") for p in PROJECT}


def _project_files() -> list[Path]:
    files: list[Path] = []
    for entry in PROJECT:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_crossings(path: Path) -> list[str]:
    """`from m import _x`, and `m._x` where `m` names another project module, in one file."""
    me = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: dict[str, str] = {}  # local name -> project module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(path, node)
            for alias in node.names:
                modules[alias.asname or alias.name] = f"{source}.{alias.name}"
                if _private(alias.name) and source.split(".")[0] in PACKAGES and source != me:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name} from {source}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname \
                    else alias.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in modules:
                source = ".".join([modules[value.id], *chain])
                if source.split(".")[0] in PACKAGES and source != me:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr} from {source}")
    return sorted(found, key=lambda hit: int(hit.split(":")[1].split()[0]))


def test_no_private_name_is_imported_across_modules():
    """A name with a leading underscore belongs to its module. Code that another module needs
    gets a public name (or moves where both can reach it), so a refactor of one module's
    private helpers cannot break another. Only the project's own modules are checked."""
    found = [hit for path in _project_files() for hit in _private_crossings(path)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_private_name_check_finds_both_forms(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "labs").mkdir()
    path = tmp_path / "labs" / "x.py"
    path.write_text("from core.scoring import _hidden\nfrom training.evaluation import evaluate as ev\n"
                    "ev._helper()\nimport core.chat_rows\ncore.chat_rows._canon\nself._own = 1\n")
    assert _private_crossings(path) == [
        "labs/x.py:1 _hidden from core.scoring",
        "labs/x.py:3 _helper from training.evaluation.evaluate",
        "labs/x.py:5 _canon from core.chat_rows"]


def test_training_top_level_holds_only_its_rooms():
    """training/ is split into rooms (its __init__ lists them); a module does not land at the top."""
    files = sorted(p.name for p in (ROOT / "training").iterdir() if p.is_file())
    assert len(files) <= 5, f"training/ top level has {len(files)} files (at most 5): {files}"


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # each name as module.name: a submodule or a name in it
            out += [(node.lineno, f"{_absolute(path, node)}.{a.name}") for a in node.names]
    return out


def test_only_training_views_import_gradio():
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted((ROOT / "training").rglob("*.py"))
             if "views" not in path.relative_to(ROOT / "training").parts
             for line, name in _imports(path) if name.split(".")[0] in ("gradio", "gradio_client")]
    assert not found, "only training/views/ may import gradio:\n" + "\n".join(found)


ROOMS = ("data", "run", "evaluation", "gpu", "hub", "workflow", "views")  # training/__init__.py's order


def _room_may_import(room: str, module: str) -> bool:
    top = module.split(".")
    if top[0] not in PACKAGES or top[0] == "core" or module.startswith("labs.tools."):
        return True
    if top[0] == "training":
        if len(top) == 1:
            return False
        if room == "data" and module.startswith("training.hub.timeouts"):  # the one exception (bounded downloads)
            return True
        return top[1] in ROOMS and ROOMS.index(top[1]) <= ROOMS.index(room)
    if room == "gpu" and module == "devtools.zerogpu":  # the ZeroGPU stand-in, only with FTLAB_ZEROGPU_STANDIN=1
        return True
    if room in ("workflow", "views"):
        return top[0] == "labs" or module.startswith("quizzes.grading.")
    return False


def test_training_rooms_import_only_the_rooms_above_them():
    """The rule in training/__init__.py: a room imports the rooms above it, core/ and labs/tools/;
    workflow/ and views/ also the labs and the quiz grading."""
    found = []
    for path in sorted((ROOT / "training").rglob("*.py")):
        rel = path.relative_to(ROOT / "training").parts
        if len(rel) < 2 or rel[0] not in ROOMS:
            continue
        found += [f"training/{'/'.join(rel)}:{line} ({rel[0]}/) imports {name}"
                  for line, name in _imports(path) if not _room_may_import(rel[0], name)]
    assert not found, "imports against the rooms' order:\n" + "\n".join(found)
