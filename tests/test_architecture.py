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


def imports_of(path: Path, name: str | None = None) -> set[str]:
    """The package modules a file imports anywhere in its source (relative imports
    resolved), as dotted names. ``name``: the file's module name, if not its path's."""
    me = (name or module_name(path)).split(".")
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
    return {m for m in found if m in known} - {".".join(me)}


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
                return stack[stack.index(d) :] + [d]
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
    """An import that runs up the stack is caught (data importing serve). The probe is
    written outside the package, so no other run can import it."""
    fake = tmp_path / "probe.py"
    fake.write_text("from dt_playground.serve import sessions\nfrom ..serve import jobs\n")
    deps = imports_of(fake, "dt_playground.data.probe")
    assert {"dt_playground.serve.sessions", "dt_playground.serve.jobs"} <= deps
    assert LAYERS.index(layer_of("dt_playground.serve.sessions")) > LAYERS.index(
        layer_of("dt_playground.data.probe")
    )


def _imports_gradio(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        if any(n.split(".")[0] == "gradio" for n in names):
            return True
    return False


def test_only_the_app_layer_imports_gradio(tmp_path):
    outside = [
        module_name(p)
        for p in sources()
        if _imports_gradio(p) and layer_of(module_name(p)) != "app"
    ]
    assert not outside, f"gradio imported outside dt_playground/app: {outside}"
    probe = tmp_path / "probe.py"  # the check itself can fail
    probe.write_text("import os\nif os:\n    from gradio import Blocks\n")
    assert _imports_gradio(probe)


def test_no_two_modules_share_a_name():
    """A module's own name says which one it is (`grid`, not one of two `glance`s)."""
    names = [p.stem for p in sources() if p.stem not in ENTRY]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


@pytest.mark.parametrize("path", sources(), ids=module_name)
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_leaf_layers_import_without_torch():
    code = (
        "import sys; import dt_playground.envs.episodes, dt_playground.data.storage, "
        "dt_playground.behaviour.collect, dt_playground.behaviour.ars, "
        "dt_playground.checkpoints.layout, dt_playground.app.card_views; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_app_is_layout_and_wiring_only():
    """app.py is at most APP_MAX_LINES lines; it imports no file-format or numeric
    library and has no loops: every handler is a call into `dt_playground.app.ui`."""
    text = (REPO / "app.py").read_text()
    assert len(text.splitlines()) <= APP_MAX_LINES
    tree = ast.parse(text)
    banned = {"uuid", "json", "numpy", "shutil", "tempfile", "zipfile", "torch", "pathlib"}
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    assert not (imported & banned), imported & banned
    loops = [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]
    assert len(loops) <= 2, "app.py builds tabs in loops at most; logic goes to app/ui.py"


# ---------------------------------------------------------------- docs and tests that can't drift

ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
TESTS = REPO / "tests"


def layer_rows(text: str) -> dict[str, str]:
    """The architecture table: layer (without backticks) -> its row's text."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and cells[0] not in ("layer", "---"):
            rows[cells[0].strip("`")] = line
    return rows


def modules_by_layer() -> dict[str, set[str]]:
    """Every module's own name (sub-package modules too), by layer."""
    out: dict[str, set[str]] = {}
    for path in sources():
        if path.stem in ENTRY:
            continue
        out.setdefault(layer_of(module_name(path)), set()).add(path.stem)
    return out


def test_the_architecture_doc_names_every_module_in_its_layer():
    rows = layer_rows(ARCHITECTURE.read_text())
    assert set(rows) == set(LAYERS), set(rows) ^ set(LAYERS)
    missing = {
        layer: sorted(m for m in mods if f"`{m}`" not in rows[layer])
        for layer, mods in modules_by_layer().items()
    }
    assert not any(missing.values()), f"docs/ARCHITECTURE.md does not name: {missing}"


def test_the_doc_check_can_fail():
    rows = layer_rows("| layer | owns | modules |\n|---|---|---|\n| `dt` | x | `model` |\n")
    assert rows == {"dt": "| `dt` | x | `model` |"}
    assert "`acting`" not in rows["dt"]


def module_named_by(test: Path) -> str | None:
    """The module ``tests/<layer>/test_<name>.py`` is named after: ``<layer>.<name>``, a
    sub-package's module (``test_plots_glance``: ``media.plots.glance``), the layer itself
    (``test_envs``: a layer-wide test), or a module with an aspect after it
    (``test_replay_threads``: ``media.replay``). None: no such module."""
    layer = test.parent.name
    parts = test.stem.removeprefix("test_").split("_")
    for k in range(len(parts), 0, -1):
        head = "_".join(parts[:k])
        if head == layer:
            return f"dt_playground.{layer}"
        for i in range(k):  # a sub-package's module: plots_glance -> plots.glance
            sub = ".".join(filter(None, ["_".join(parts[:i]), "_".join(parts[i:k])]))
            name = f"dt_playground.{layer}.{sub}"
            if name in {module_name(p) for p in sources()}:
                return name
    return None


LAYER_TESTS = sorted(p for p in TESTS.glob("*/test_*.py") if p.parent.name != "app")


@pytest.mark.parametrize("test", LAYER_TESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_test_file_tests_the_module_it_is_named_after(test):
    """tests/<layer>/ mirrors dt_playground/<layer>/: test_<module>.py imports the module
    it is named after. (tests/app/ drives app.py through a client and a browser;
    cross-cutting tests live in tests/ itself.)"""
    assert test.parent.name in LAYERS, f"{test.parent.name} is not a layer"
    target = module_named_by(test)
    assert target, f"{test.name} is named after no module of {test.parent.name}"
    imported = imports_of(test, f"tests.{test.parent.name}.{test.stem}")
    assert any(m == target or m.startswith(target + ".") for m in imported), (
        f"{test.name} does not import {target}"
    )


def test_the_naming_check_can_fail():
    media = TESTS / "media"
    assert module_named_by(media / "test_plots_glance.py") == "dt_playground.media.plots.glance"
    assert module_named_by(media / "test_replay_threads.py") == "dt_playground.media.replay"
    assert module_named_by(TESTS / "envs" / "test_envs.py") == "dt_playground.envs"
    assert module_named_by(media / "test_grid.py") is None  # the grid is rollout's
