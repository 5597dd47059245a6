"""The package's import graph, read from the source (function-level imports included):
no cycles, storage below behaviour code, and the leaf modules free of torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "dt_playground"


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source."""
    mods = {p.stem for p in PKG.glob("*.py")}
    graph = {}
    for path in PKG.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    names = [node.module] if node.module else [a.name for a in node.names]
                elif (node.module or "").startswith("dt_playground"):
                    parts = node.module.split(".")
                    names = parts[1:2] or [a.name for a in node.names]
                else:
                    names = []
                deps |= {n.split(".")[0] for n in names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names
                         if a.name.startswith("dt_playground.")}
        graph[path.stem] = (deps & mods) - {path.stem}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_has_no_import_cycle():
    graph = import_graph()
    assert {"data", "storage", "episodes", "collect", "experts", "ars"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in graph[todo.pop()] - seen:
            seen.add(d)
            todo.append(d)
    return seen


def test_storage_layer_does_not_reach_behaviour_code():
    graph = import_graph()
    behaviour = {"collect", "experts", "ars", "pretrain", "verify"}
    for layer in ("episodes", "storage", "data", "metrics", "seeds"):
        assert not _reaches(graph, layer) & behaviour, layer
    assert graph["episodes"] <= {"envs"}


def test_leaf_modules_import_without_torch():
    code = ("import sys; import dt_playground.episodes, dt_playground.storage, "
            "dt_playground.collect, dt_playground.ars; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
