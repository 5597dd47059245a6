"""Loading the checkpoint a request names, and admitting uploaded ones.

`checkpoints.layout.locate` decides *which* folder a value may name (pretrained names
and the calling session's own opaque ids only); this module loads it, through the
cache shared by all sessions (`checkpoints.cache`), and turns every refusal into a
`PlaygroundError` with no server path in it.
"""

from __future__ import annotations

from pathlib import Path

from dt_playground.atomic import atomic_dir
from dt_playground.checkpoints.cache import load_cached
from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.checkpoints.hf import import_transformers_folder
from dt_playground.checkpoints.hf_validate import is_transformers_folder
from dt_playground.checkpoints.layout import locate, parse_env
from dt_playground.checkpoints.uploads import extract_upload
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.offline.critic import validate_folder
from dt_playground.rollout.playable import Playable, load_playable
from dt_playground.serve.sessions import SessionStore


def resolve(value, env_id, owned: dict[str, Path] | None = None) -> Playable:
    """The loaded checkpoint ``value`` names (see `checkpoints.layout.locate`) for
    env ``env_id``: a DT, BC, %BC or IQL one (`rollout.playable`)."""
    path = locate(value, env_id, owned)
    ck = load_playable(path)
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
