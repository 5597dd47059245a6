"""Atomic writes: a file or folder is either absent, the old one, or the complete new one.

Every writer in the library goes through these (checkpoints, datasets, ARS
snapshots, videos, cards), so a crash or a kill never leaves half a file where
a reader will look.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = "", mode: int = 0o644) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed over ``path``.

    ``suffix`` keeps the extension for writers that look at it (ffmpeg, safetensors).
    ``mode`` replaces mkstemp's 0600 so a separate web server can read the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj, indent: int | None = 1) -> None:
    """Write JSON to ``path`` via a temp file + rename."""
    write_text_atomic(path, json.dumps(obj, indent=indent))


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it replaces ``path``
    (the old folder, if any, is moved aside first and then removed). On failure the
    staging folder is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.stage-", dir=path.parent))
    try:
        yield stage
        replace_dir(stage, path)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing any folder already there."""
    trash = None
    if dst.exists():
        trash = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(dst, trash)
    os.replace(src, dst)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def remove_stale(root: str | Path, prefix: str, keep: Callable[[Path], bool] = lambda p: False):
    """Remove leftovers (``prefix*`` entries) a killed writer left under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in root.glob(f"{prefix}*"):
        if keep(p):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
