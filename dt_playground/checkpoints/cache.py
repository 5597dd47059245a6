"""Loaded checkpoints, kept: a small cache shared by every caller in a process, and
`get_checkpoint`, the library's way to load a checkpoint by trusted path or shipped name.

Which folder a *user's* value may name is decided above this layer
(`checkpoints.layout.locate`, `serve.catalogue.resolve`); this module only loads.
Every refusal is a `PlaygroundError` with no server path in it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from dt_playground.checkpoints.checkpoint import Checkpoint, load_checkpoint
from dt_playground.checkpoints.layout import parse_env
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.paths import pretrained_dir

CACHE_SIZE = 32
_CACHE: OrderedDict[Path, Checkpoint] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def load_cached(path: Path) -> Checkpoint:
    """Load (and keep the last `CACHE_SIZE`) checkpoints; errors become `PlaygroundError`s."""
    path = Path(path)
    with _CACHE_LOCK:
        ck = _CACHE.get(path)
        if ck is not None:
            _CACHE.move_to_end(path)
            return ck
    try:
        ck = load_checkpoint(path)
    except CheckpointError as exc:
        raise PlaygroundError(f"Can't use checkpoint {path.name}: {exc}") from None
    with _CACHE_LOCK:
        _CACHE[path] = ck
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return ck


def get_checkpoint(path: str | Path, env_id: str | None = None) -> Checkpoint:
    """Load (and cache) a checkpoint by trusted path or pretrained name, refusing one that
    doesn't match ``env_id``. For the library and tests: user input goes through
    `serve.catalogue.resolve`, which accepts names and owned ids only."""
    if not path:
        raise PlaygroundError("Pick a checkpoint first.")
    if env_id is not None:
        env_id = parse_env(env_id)
    path = Path(path)
    if not path.is_absolute():  # a pretrained checkpoint's name
        path = pretrained_dir() / path
    if not path.is_dir():
        raise PlaygroundError(f"Checkpoint {path.name} does not exist")
    ck = load_cached(path)
    if env_id is not None and ck.spec.env_id != env_id:
        raise PlaygroundError(
            f"Checkpoint {ck.name} was trained on {ck.spec.env_id}, not {env_id}. "
            "Pick one of this environment's checkpoints."
        )
    return ck
