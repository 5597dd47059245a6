"""The library's shape (issue 14): no module over 400 lines, and app.py holds layout,
wiring and error translation only. (The import graph is `test_imports.py`'s.)"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 400


@pytest.mark.parametrize("path", sorted((REPO / "dt_playground").rglob("*.py")),
                         ids=lambda p: p.name)
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_app_is_wiring_only():
    """app.py's handlers call the library: no loops over results, no paths built, no
    file formats handled in the UI layer."""
    tree = ast.parse((REPO / "app.py").read_text())
    banned = {"uuid", "json", "numpy", "shutil", "tempfile", "zipfile", "torch"}
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    assert not (imported & banned)
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        loops = [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While, ast.comprehension))]
        allowed = {"build_demo"} | ({"train_model"} if len(loops) == 1 else set())
        assert fn.name in allowed or not loops, fn.name  # train_model polls its job
