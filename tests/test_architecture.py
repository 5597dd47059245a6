"""The package's shape (docs/ARCHITECTURE.md): sub-packages in declared layers, each
importing only those below it (function-level imports included), no module or package
cycles, a sanity cap on module size, torch-free leaves, and app.py as layout and wiring."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "dt_playground"
MAX_LINES = 450
APP_MAX_LINES = 200
# Bottom to top. A module may import its own layer and the layers below it, never above.
LAYERS = [
    "base",  # errors, atomic, paths: the package's top-level modules
    "envs",
    "data",
    "behaviour",
    "dt",
    "checkpoints",
    "offline",
    "rollout",
    "training",
    "media",
    "zoo",
    "stitch",
    "serve",
    "cli",
    "app",  # the only package that imports gradio
]
ENTRY = {"__init__", "__main__"}  # the package's front door: may import anything


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and (PKG / f"{parts[1]}.py").exists():
        return "entry" if parts[1] in ENTRY else "base"
    return parts[1] if len(parts) > 1 else "entry"


def imports_of(path: Path) -> set[str]:
    """The package modules a file imports anywhere in its source (relative imports
    resolved), as dotted names."""
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "dt_playground":
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dt_playground"}
    known = {module_name(p) for p in PKG.rglob("*.py")}
    return {m for m in found if m in known} - {module_name(path)}


def sources() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_every_sub_package_has_a_declared_layer():
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), packages - set(LAYERS)
    assert packages >= {"envs", "data", "dt", "checkpoints", "rollout", "serve", "cli"}


@pytest.mark.parametrize("path", sources(), ids=module_name)
def test_imports_only_go_down(path):
    mine = layer_of(module_name(path))
    if mine == "entry":
        return
    for dep in imports_of(path):
        theirs = layer_of(dep)
        assert theirs != "entry", f"{module_name(path)} imports the package's entry {dep}"
        assert LAYERS.index(theirs) <= LAYERS.index(mine), (
            f"{module_name(path)} ({mine}) imports {dep} ({theirs}), a layer above it"
        )


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
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


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_cycle_and_no_package_cycle():
    graph = {module_name(p): imports_of(p) for p in sources() if p.stem not in ENTRY}
    graph = {m: {d for d in deps if d.split(".")[-1] not in ENTRY} for m, deps in graph.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    packages: dict[str, set[str]] = {}
    for m, deps in graph.items():
        packages.setdefault(layer_of(m), set()).update(layer_of(d) for d in deps)
    packages = {k: v - {k} for k, v in packages.items()}
    assert _cycle(packages) is None, " -> ".join(_cycle(packages))


def test_the_layer_test_can_fail(tmp_path):
    """An import that runs up the stack is caught (data importing serve)."""
    fake = PKG / "data" / "_probe_upward.py"
    fake.write_text("from dt_playground.serve import sessions\n")
    try:
        deps = imports_of(fake)
        assert "dt_playground.serve.sessions" in deps
        assert LAYERS.index(layer_of("dt_playground.serve.sessions")) > LAYERS.index(
            layer_of(module_name(fake)))
    finally:
        fake.unlink()


def _imports_gradio(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] == "gradio" for n in names):
            return True
    return False


def test_only_the_app_layer_imports_gradio(tmp_path):
    outside = [module_name(p) for p in sources()
               if _imports_gradio(p) and layer_of(module_name(p)) != "app"]
    assert not outside, f"gradio imported outside dt_playground/app: {outside}"
    probe = tmp_path / "probe.py"  # the check itself can fail
    probe.write_text("import os\nif os:\n    from gradio import Blocks\n")
    assert _imports_gradio(probe)


@pytest.mark.parametrize("path", sources(), ids=module_name)
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_leaf_layers_import_without_torch():
    code = ("import sys; import dt_playground.envs.episodes, dt_playground.data.storage, "
            "dt_playground.behaviour.collect, dt_playground.behaviour.ars, "
            "dt_playground.checkpoints.layout, dt_playground.app.card_views; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_app_is_layout_and_wiring_only():
    """app.py is at most APP_MAX_LINES lines; it imports no file-format or numeric
    library and has no loops: every handler is a call into `dt_playground.serve`."""
    text = (REPO / "app.py").read_text()
    assert len(text.splitlines()) <= APP_MAX_LINES
    tree = ast.parse(text)
    banned = {"uuid", "json", "numpy", "shutil", "tempfile", "zipfile", "torch", "pathlib"}
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom)}
    assert not (imported & banned), imported & banned
    loops = [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]
    assert len(loops) <= 2, "app.py builds tabs in loops at most; logic goes to serve/"
