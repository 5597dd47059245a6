"""Checkpoint folders on disk, read without loading a model (torch-free).

What the page needs before anyone clicks: which envs have checkpoints, the
dropdown's (label, value) pairs, and which folder a request's checkpoint value
names. A value is a *pretrained name* (``hopper-dt``, a folder of
`pretrained/`) or an *opaque id* a session got when it uploaded or trained a
checkpoint (``upload-3f9a…``); ids resolve only through the calling session's
own registry (``owned``), so no session can reach another's checkpoints and no
server path is ever accepted or echoed. Unreadable folders are skipped, never
fatal.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from dt_playground.envs.registry import env_ids, get_spec
from dt_playground.errors import CheckpointError, PlaygroundError, UnknownEnvError
from dt_playground.paths import pretrained_dir

MAX_JSON_BYTES = 8 * 1024 * 1024  # a shipped config.json is ~35 KB
ALGOS = ("dt", "bc", "pbc")  # the one list: configs, training and the app read it here
ALGO_LABELS = {"dt": "DT", "bc": "BC", "pbc": "%BC", "iql": "IQL"}
OFFLINE_ALGOS = ("iql",)  # listed for playing (offline/store.py loads them), never trained here
RETURNS_DIR = "returns"  # a DT's return model, a checkpoint folder inside its own
CRITIC_DIR = "critic"  # a DT's critic (offline/critic.py), a folder inside its own
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``, refusing huge, deeply nested or non-object content."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{what} is missing: {path.name} not found") from None
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path.name} is {size} bytes; the limit is {MAX_JSON_BYTES}")
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path.name} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name} must hold a JSON object")
    return obj


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint folder says about itself, read without loading it (for lists)."""

    path: Path
    env_id: str
    algo: str
    context_len: int | None
    offers_best: bool = False  # a DT with a return head or a return model: target "best"
    stopped_at: int | None = None  # training was cancelled after this many steps
    has_critic: bool = False  # a DT with a critic (``critic/``): value-checked acting

    @property
    def name(self) -> str:
        return self.path.name


def peek_checkpoint(path: Path | str) -> CheckpointInfo | None:
    """The folder's env, algo and K from its config.json, or None if it is unreadable.
    Cached per config.json as it is on disk (its inode, size and mtime: files are written
    by rename, so a rewrite is a new key): lists are drawn often, configs are ~80 KB."""
    path = Path(path)
    try:
        st = (path / "config.json").stat()
        returns = (path / RETURNS_DIR / "config.json").is_file()
        critic = (path / CRITIC_DIR / "config.json").is_file()
    except OSError:
        return None
    return _peek(path, (st.st_ino, st.st_size, st.st_mtime_ns), returns, critic)


@functools.lru_cache(maxsize=1024)
def _peek(path: Path, _stat: tuple, returns: bool, critic: bool = False) -> CheckpointInfo | None:
    try:
        config = read_json(path / "config.json", "config")
    except CheckpointError:
        return None
    env, algo, k = config.get("env_id"), config.get("algo"), config.get("context_len")
    if not isinstance(env, str) or algo not in ALGOS + OFFLINE_ALGOS:
        return None
    # The same test as `Checkpoint.offers_best`, from the files (the loader checks both).
    bins = (
        (config.get("model") or {}).get("return_bins")
        if isinstance(config.get("model"), dict)
        else None
    )
    own_head = isinstance(bins, int) and bins > 0
    best = algo == "dt" and (own_head or returns)
    done = config.get("steps_done")
    stopped = done if config.get("complete") is False and isinstance(done, int) else None
    return CheckpointInfo(
        path, env, algo, k if isinstance(k, int) else None, best, stopped, algo == "dt" and critic
    )


def list_checkpoints(
    root: Path | str | None = None, env_id: str | None = None, offline: bool = False
) -> list[Path]:
    """Checkpoint folders under ``root`` (default: the pretrained folder) whose config.json
    is readable, optionally for one env; with ``offline`` the IQL ones too (they load
    through offline/store.py, not `checkpoint.load_checkpoint`)."""
    root = Path(root) if root is not None else pretrained_dir()
    if not root.is_dir():
        return []
    out = []
    for cfg_path in sorted(root.glob("*/config.json")):
        info = peek_checkpoint(cfg_path.parent)
        if (
            info is not None
            and (env_id is None or info.env_id == env_id)
            and (offline or info.algo in ALGOS)
        ):
            out.append(cfg_path.parent)
    return out


def parse_env(env_id) -> str:
    """A registered env id, or a `PlaygroundError` listing them."""
    if not isinstance(env_id, str) or not env_id:
        raise PlaygroundError(f"Pick an environment: one of {', '.join(env_ids())}")
    try:
        return get_spec(env_id).env_id
    except UnknownEnvError as exc:
        raise PlaygroundError(str(exc)) from None


def label_of(info: CheckpointInfo | None, name: str) -> str:
    if info is None:
        return name
    stopped = f", stopped at step {info.stopped_at}" if info.stopped_at is not None else ""
    k = f", K={info.context_len}" if info.context_len is not None else ""  # IQL has no K
    return f"{name} ({ALGO_LABELS.get(info.algo, info.algo)}{k}{stopped})"


def _order(info: CheckpointInfo):  # DT first (K=20 before its ablations), BC, %BC, then IQL
    return (info.algo in OFFLINE_ALGOS, "-dt" not in info.name, "-k" in info.name, info.name)


def pretrained_of_env(env_id: str) -> list[CheckpointInfo]:
    """The env's readable pretrained checkpoints, IQL included, in dropdown order."""
    infos = [peek_checkpoint(p) for p in list_checkpoints(None, env_id, offline=True)]
    return sorted(filter(None, infos), key=_order)


def choices(env_id, owned: dict[str, Path] | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for a dropdown: the env's pretrained checkpoints (value: the
    name), then the session's own (value: its opaque id)."""
    env_id = parse_env(env_id)
    out = [(label_of(i, i.name), i.name) for i in pretrained_of_env(env_id)]
    for key, path in (owned or {}).items():
        info = peek_checkpoint(path)
        if info is not None and info.env_id == env_id:
            out.append((label_of(info, key), key))
    return out


def envs_with_checkpoints() -> list[str]:
    """Registered envs that have at least one pretrained checkpoint (all, if none has)."""
    have = {i.env_id for i in map(peek_checkpoint, list_checkpoints()) if i is not None}
    return [e for e in env_ids() if e in have] or env_ids()


ARRIVAL_ENV = "LunarLander-v3"  # what the page shows first, when it has checkpoints


def arrival_choices() -> tuple[str, list[tuple[str, str]]]:
    """The env a page arrives on and its checkpoint choices (the first is shown)."""
    envs = envs_with_checkpoints()
    env = ARRIVAL_ENV if ARRIVAL_ENV in envs else envs[0]
    return env, choices(env)


def locate(value, env_id, owned: dict[str, Path] | None = None) -> Path:
    """The folder that checkpoint ``value`` names for env ``env_id``: a pretrained name,
    or an id in ``owned`` (the calling session's). Anything else is refused."""
    env_id = parse_env(env_id)
    if not value or not isinstance(value, str):
        raise PlaygroundError("Pick a checkpoint first.")
    owned = owned or {}
    if value in owned:
        return owned[value]
    if _NAME.fullmatch(value) and (pretrained_dir() / value / "config.json").is_file():
        return pretrained_dir() / value
    names = ", ".join(v for _, v in choices(env_id, owned)) or "none"
    raise PlaygroundError(f"Unknown checkpoint {value[:60]!r}. {env_id}'s checkpoints: {names}")
