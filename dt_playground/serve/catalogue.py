"""Loading the checkpoint a request names, and admitting uploaded ones.

`folders.locate` decides *which* folder a value may name (pretrained names and
the calling session's own opaque ids only); this module loads it, through a
small cache shared by all sessions, and turns every refusal into a
`PlaygroundError` with no server path in it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from dt_playground.atomic import atomic_dir
from dt_playground.checkpoints.checkpoint import Checkpoint, load_checkpoint
from dt_playground.checkpoints.hf import import_transformers_folder
from dt_playground.checkpoints.hf_validate import is_transformers_folder
from dt_playground.checkpoints.layout import locate, parse_env
from dt_playground.checkpoints.uploads import extract_upload
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.offline.critic import validate_folder
from dt_playground.serve.sessions import SessionStore

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


def resolve(value, env_id, owned: dict[str, Path] | None = None) -> Checkpoint:
    """The loaded checkpoint ``value`` names (see `folders.locate`) for env ``env_id``."""
    path = locate(value, env_id, owned)
    ck = load_cached(path)
    if ck.spec.env_id != parse_env(env_id):
        raise PlaygroundError(
            f"Checkpoint {value} was trained on {ck.spec.env_id}, not {env_id}. "
            "Pick one of this environment's checkpoints."
        )
    return ck


def import_upload(
    store: SessionStore, sid, file_path, env_id: str | None = None
) -> tuple[str, str, Checkpoint]:
    """Validate an uploaded zip into the caller's session: (session id, checkpoint id,
    checkpoint). The zip holds one of our checkpoint folders or a `transformers` DT folder
    (converted here; ``env_id``, the page's env, is its env when its sidecar names none).
    A refused upload leaves no folder behind."""
    if not file_path:
        raise PlaygroundError("No file uploaded.")
    s = store.get_or_new(sid)
    cid, dest = store.reserve(s, "upload")
    try:
        with atomic_dir(dest) as stage:
            extract_upload(file_path, stage)
            if is_transformers_folder(stage):
                import_transformers_folder(stage, stage, fallback_env=env_id)
            validate_folder(stage, allow_iql=False)  # with its return model and its critic
    except CheckpointError as exc:
        raise PlaygroundError(f"That upload is not a valid checkpoint: {exc}") from None
    except (OSError, ValueError, RecursionError, MemoryError) as exc:
        raise PlaygroundError(f"That upload could not be read ({type(exc).__name__}).") from None
    finally:
        store.tidy(s)
    store.adopt(s, cid, dest)
    return s.id, cid, load_cached(dest)
