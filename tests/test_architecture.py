"""The library's shape (issue 14): no import cycle, function-level imports included; no
module over 400 lines; the storage layer doesn't depend on behaviour code; app.py holds
layout, wiring and error translation only."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "dt_playground"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every dt_playground module ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            candidates = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        out |= {c for c in candidates if c in known and c != name}
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_cycle_finder_can_fail():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    graph = _graph()
    assert len(graph) > 20  # the walker found the package
    assert "dt_playground.model" in graph["dt_playground.checkpoints"]
    assert _find_cycle(graph) is None, f"import cycle: {' -> '.join(_find_cycle(graph))}"


def _reaches(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


@pytest.mark.parametrize("layer", ["dt_playground.data", "dt_playground.episodes"])
def test_storage_does_not_depend_on_behaviour_code(layer):
    graph = _graph()
    behaviour = {m for m in graph if m.rpartition(".")[2] in ("experts", "ars", "collect")}
    assert not (_reaches(graph, layer) & behaviour)


def test_leaf_modules_do_not_pull_in_torch():
    """A `Trace` or an episode must not cost a torch import (render, plots use them)."""
    for name in ("episodes", "errors", "io", "paths"):
        tree = ast.parse((PKG / f"{name}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "torch" not in imported, name


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: p.name)
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_app_is_wiring_only():
    """app.py's handlers call the library; they don't loop over results, build paths or
    time things themselves."""
    tree = ast.parse((PKG.parent / "app.py").read_text())
    banned = {"uuid", "json", "numpy", "shutil", "tempfile", "zipfile"}
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    assert not (imported & banned)
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        loops = [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.comprehension))]
        assert fn.name == "build_demo" or not loops, fn.name
