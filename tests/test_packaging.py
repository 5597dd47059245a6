"""The library installs like a library: one version, one list of pins, the package found
explicitly, a `dtp` script; `pretrained/` is found from anywhere or the error says where."""

import importlib
import importlib.metadata
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

import dt_playground
from dt_playground import paths
from dt_playground.errors import PretrainedMissingError

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(name: str) -> list[str]:
    return [
        line.strip()
        for line in (REPO / name).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_pyproject_keeps_each_fact_in_one_place():
    project, setup = PYPROJECT["project"], PYPROJECT["tool"]["setuptools"]
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    assert "version" not in project and "dependencies" not in project
    assert set(project["dynamic"]) == {"version", "dependencies", "optional-dependencies"}
    assert setup["dynamic"]["version"] == {"attr": "dt_playground.__version__"}
    assert setup["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert setup["dynamic"]["optional-dependencies"]["dev"] == {"file": ["requirements-dev.txt"]}
    assert setup["packages"]["find"]["include"] == ["dt_playground", "dt_playground.*"]
    assert all(re.fullmatch(r"[\w.\[\],-]+==[\w.+]+", p) for p in _pins("requirements.txt"))
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]
    assert project["license"] == "Apache-2.0"


def test_dtp_is_python_m_dt_playground():
    module, func = PYPROJECT["project"]["scripts"]["dtp"].split(":")
    main = getattr(importlib.import_module(module), func)
    assert main is importlib.import_module("dt_playground.cli.main").main
    assert (
        "from dt_playground.cli.main import main"
        in (REPO / "dt_playground" / "__main__.py").read_text()
    )


def test_installed_metadata_matches_the_source():
    """Where the package is installed (`pip install -e .`), its metadata is the source's."""
    try:
        meta = importlib.metadata.metadata("dt-playground")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("dt-playground is not installed (pip install -e .)")
    assert meta["Version"] == dt_playground.__version__
    from packaging.requirements import Requirement

    def norm(reqs):
        return sorted(str(Requirement(r)) for r in reqs)

    requires = [r for r in importlib.metadata.requires("dt-playground") if "extra ==" not in r]
    assert norm(requires) == norm(_pins("requirements.txt"))


@pytest.mark.skipif(shutil.which("dtp") is None, reason="dtp not installed (pip install .)")
def test_dtp_runs_from_any_folder(tmp_path):
    r = subprocess.run(
        ["dtp", "space", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout.startswith("usage: dtp space"), r.stderr


def test_pretrained_dir_env_then_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tmp_path))
    assert paths.pretrained_dir() == tmp_path
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tmp_path / "missing"))
    assert paths.pretrained_dir() == paths.PRETRAINED_DIR  # the checkout's folder
    monkeypatch.delenv("DTP_PRETRAINED_DIR")
    assert paths.pretrained_dir() == REPO / "pretrained"


def test_no_pretrained_anywhere_names_both(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PRETRAINED_DIR", tmp_path / "checkout-pretrained")
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tmp_path / "env-pretrained"))
    with pytest.raises(PretrainedMissingError) as err:
        paths.pretrained_dir()
    assert "env-pretrained" in str(err.value) and "checkout-pretrained" in str(err.value)
    assert "DTP_PRETRAINED_DIR" in str(err.value)
    monkeypatch.delenv("DTP_PRETRAINED_DIR")
    with pytest.raises(PretrainedMissingError, match="not set"):
        paths.pretrained_dir()
