"""Where things live: the repo root and the folders under it, computed once.

Every default location is relative to the repo, so nothing machine-specific
ends up in a shipped file (store `relative_to_repo(path)` instead of a path).

Installed as a library (``pip install .``), the package lives in site-packages and has no
checkout around it: `pretrained_dir()` then wants ``$DTP_PRETRAINED_DIR``, and data goes
under the working folder instead of beside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

from dt_playground.errors import PretrainedMissingError

REPO_ROOT = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = REPO_ROOT / "pretrained"
# A checkout (or a staged Space) has app.py beside the package; site-packages has not.
IN_CHECKOUT = (REPO_ROOT / "app.py").is_file()
DATA_DIR = (REPO_ROOT if IN_CHECKOUT else Path.cwd()) / "data"
PRETRAINED_ENV = "DTP_PRETRAINED_DIR"


def pretrained_dir() -> Path:
    """Where shipped checkpoints live: ``$DTP_PRETRAINED_DIR`` when it names a folder (tests;
    an installed package), else the checkout's ``pretrained/``. Raises
    `PretrainedMissingError`, naming both, when neither exists."""
    chosen = os.environ.get(PRETRAINED_ENV)
    for path in ([Path(chosen)] if chosen else []) + [PRETRAINED_DIR]:
        if path.is_dir():
            return path
    given = f"${PRETRAINED_ENV} ({chosen})" if chosen else f"${PRETRAINED_ENV} (not set)"
    where = "the checkout's folder" if IN_CHECKOUT else "a checkout's folder beside the package"
    raise PretrainedMissingError(
        f"No pretrained checkpoints: neither {given} nor {where} ({PRETRAINED_DIR}) "
        f"exists; set {PRETRAINED_ENV} to a folder of checkpoints."
    )


def relative_to_repo(path: str | Path) -> str:
    """``path`` relative to the repo root when it lies inside it, else its name only:
    a shipped file must never carry an absolute path of the machine that wrote it."""
    p = Path(path)
    try:
        return p.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return p.name
