"""Which checkpoints a request may name, and loading them.

A request names a checkpoint by a *pretrained name* (``hopper-dt``, a folder
of `pretrained/`) or by an *opaque id* that a session was given when it
uploaded or trained one (``upload-3f9a…``). Ids resolve only through their own
session's registry (`sessions.Session.checkpoints`), so one session can never
reach another's checkpoints, and no server path is ever accepted or echoed.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path

from .checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointInfo,
    list_checkpoints,
    load_checkpoint,
    peek_checkpoint,
)
from .envs import UnknownEnvError, env_ids, get_spec
from .errors import PlaygroundError
from .paths import pretrained_dir

ALGO_LABELS = {"dt": "DT", "bc": "BC", "pbc": "%BC"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_CACHE: OrderedDict[Path, Checkpoint] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 32


def parse_env(env_id) -> str:
    """A registered env id, or a `PlaygroundError` listing them."""
    if not isinstance(env_id, str) or not env_id:
        raise PlaygroundError(f"Pick an environment: one of {', '.join(env_ids())}")
    try:
        return get_spec(env_id).env_id
    except UnknownEnvError as exc:
        raise PlaygroundError(str(exc)) from None


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


def forget(path: Path) -> None:
    """Drop a checkpoint from the cache (its folder is being deleted)."""
    with _CACHE_LOCK:
        _CACHE.pop(Path(path), None)


def resolve(value, env_id, owned: dict[str, Path] | None = None) -> Checkpoint:
    """The checkpoint ``value`` names for env ``env_id``: a pretrained name, or an id in
    ``owned`` (the calling session's checkpoints). Anything else is refused."""
    env_id = parse_env(env_id)
    if not value or not isinstance(value, str):
        raise PlaygroundError("Pick a checkpoint first.")
    owned = owned or {}
    if value in owned:
        path = owned[value]
    elif _NAME.fullmatch(value) and (pretrained_dir() / value / "config.json").is_file():
        path = pretrained_dir() / value
    else:
        names = [v for _, v in choices(env_id, owned)]
        raise PlaygroundError(
            f"Unknown checkpoint {value[:60]!r}. {env_id}'s checkpoints: "
            + (", ".join(names) or "none")
        )
    ck = load_cached(path)
    if ck.spec.env_id != env_id:
        raise PlaygroundError(
            f"Checkpoint {label_of(peek_checkpoint(path), value)} was trained on "
            f"{ck.spec.env_id}, not {env_id}. Pick one of this environment's checkpoints."
        )
    return ck


def label_of(info: CheckpointInfo | None, name: str) -> str:
    if info is None:
        return name
    return f"{name} ({ALGO_LABELS.get(info.algo, info.algo)}, K={info.context_len})"


def _order(info: CheckpointInfo):  # DT first (K=20 before its ablations), then BC, %BC
    return ("-dt" not in info.name, "-k" in info.name, info.name)


def choices(env_id: str, owned: dict[str, Path] | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for a dropdown: the env's pretrained checkpoints (value: the
    name), then the session's own (value: its opaque id). Unreadable folders are skipped."""
    infos = [peek_checkpoint(p) for p in list_checkpoints(None, env_id)]
    out = [(label_of(i, i.name), i.name) for i in sorted(filter(None, infos), key=_order)]
    for key, path in (owned or {}).items():
        info = peek_checkpoint(path)
        if info is not None and info.env_id == env_id:
            out.append((label_of(info, key), key))
    return out


def envs_with_checkpoints() -> list[str]:
    """Registered envs that have at least one pretrained checkpoint (all, if none has)."""
    have = {i.env_id for i in map(peek_checkpoint, list_checkpoints()) if i is not None}
    return [e for e in env_ids() if e in have] or env_ids()


def pretrained_of_env(env_id: str) -> list[CheckpointInfo]:
    """The env's readable pretrained checkpoints, in dropdown order."""
    infos = [peek_checkpoint(p) for p in list_checkpoints(None, env_id)]
    return sorted(filter(None, infos), key=_order)
