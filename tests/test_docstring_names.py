"""Docstrings name things that exist: every `single-backticked` dotted name in a
docstring of the package (``module.function``, ``pkg.module.Class.attr``, ``file.py``)
resolves, so a move or a rename cannot leave a docstring pointing at a module that is
gone. ``Double backticks`` are literal code (a variable's attribute, a state-dict key)
and are not checked."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "dt_playground"
# `a.b`, `a.b.c()`; not inside ``double`` backticks.
REFERENCE = re.compile(r"(?<![`\w])`([A-Za-z_]\w*(?:\.\w+)+)(?:\(\))?`(?!`)")
DATA_SUFFIXES = {"json", "md", "bin", "safetensors", "mp4", "txt"}  # file names, not code
PY_FILES = {p.name for p in REPO.rglob("*.py") if ".git" not in p.parts}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


MODULES = sorted(module_name(p) for p in PKG.rglob("*.py"))
BY_SHORT_NAME: dict[str, list[str]] = {}
for _m in MODULES:
    BY_SHORT_NAME.setdefault(_m.split(".")[-1], []).append(_m)


def references(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every single-backticked dotted name in the file's docstrings."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node, clean=False)
        if doc:
            line = node.body[0].lineno
            found += [(line, m) for m in REFERENCE.findall(doc)]
    return found


def _has(obj, name: str) -> tuple[bool, object]:
    if hasattr(obj, name):
        return True, getattr(obj, name)
    if isinstance(obj, type):  # a dataclass field or an annotated attribute without a default
        if name in {k for c in obj.__mro__ for k in getattr(c, "__annotations__", {})}:
            return True, None
    return False, None


def _attrs(obj, names: list[str]) -> bool:
    for name in names:
        if obj is None:  # an annotated attribute: its own attributes are not checked
            return True
        ok, found = _has(obj, name)
        if not ok and hasattr(obj, "__path__"):  # a package's submodule not imported yet
            ok = importlib.util.find_spec(f"{obj.__name__}.{name}") is not None
            found = importlib.import_module(f"{obj.__name__}.{name}") if ok else None
        if not ok:
            return False
        obj = found
    return True


def _in_package(parts: list[str]) -> bool:
    """``parts`` is a module of the package (longest match) followed by its attributes."""
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        if name in MODULES:
            return _attrs(importlib.import_module(name), parts[k:])
    return False


def resolves(token: str, home) -> bool:
    """Does ``token``, written in the docstrings of module ``home``, name something?"""
    parts = token.split(".")
    if parts[-1] == "py":
        return token in PY_FILES
    if parts[-1] in DATA_SUFFIXES:
        return True
    if parts[0] in vars(home):  # a name the module defines or imports
        return _attrs(vars(home)[parts[0]], parts[1:])
    if _in_package(["dt_playground", *parts]):  # `rollout.policy.DTPolicy`
        return True
    if any(_in_package(m.split(".") + parts[1:]) for m in BY_SHORT_NAME.get(parts[0], [])):
        return True  # `policy.DTPolicy`: a module by its own name
    if parts[0] in BY_SHORT_NAME or parts[0] == "dt_playground":
        return False
    if importlib.util.find_spec(parts[0]) is not None:  # `gymnasium.make`
        return _attrs(importlib.import_module(parts[0]), parts[1:])
    return False


@pytest.mark.parametrize(
    "path", sorted(p for p in PKG.rglob("*.py") if p.stem != "__main__"), ids=module_name
)
def test_docstrings_name_what_exists(path):
    home = importlib.import_module(module_name(path))
    stale = [
        f"line {line}: `{token}`" for line, token in references(path) if not resolves(token, home)
    ]
    assert not stale, f"{module_name(path)} docstrings name what does not exist: {stale}"


def test_a_stale_name_is_caught():
    """Names of modules that were moved or renamed do not resolve; real ones do."""
    from dt_playground.rollout import episode

    for gone in (
        "folders.locate",
        "render.render_trace",
        "cpu.setup_process",
        "io.atomic_dir",
        "playground.attention_at",
        "rollout.DTPolicy",
    ):
        assert not resolves(gone, episode), gone
    for real in (
        "checkpoints.layout.locate",
        "replay.render_trace",
        "runtime.setup_process",
        "atomic.atomic_dir",
        "episode.attention_at",
        "rollout.policy.DTPolicy",
        "DTPolicy.act",
        "acting.py",
        "Trace.length",
        "gymnasium.make",
    ):
        assert resolves(real, episode), real
    assert references(Path(episode.__file__))  # the reader finds references at all
