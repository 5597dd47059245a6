"""Where things live: the repo root and the folders under it, computed once.

Every default location is relative to the repo, so nothing machine-specific
ends up in a shipped file (store `relative_to_repo(path)` instead of a path).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = REPO_ROOT / "pretrained"
DATA_DIR = REPO_ROOT / "data"


def pretrained_dir() -> Path:
    """Where shipped checkpoints live (``$DTP_PRETRAINED_DIR`` overrides, e.g. in tests)."""
    return Path(os.environ.get("DTP_PRETRAINED_DIR", PRETRAINED_DIR))


def relative_to_repo(path: str | Path) -> str:
    """``path`` relative to the repo root when it lies inside it, else its name only:
    a shipped file must never carry an absolute path of the machine that wrote it."""
    p = Path(path)
    try:
        return p.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return p.name
