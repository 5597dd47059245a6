"""Datasets on disk: Minari folders (read any, write ours) and how ours were made.

Episodes live on disk in Minari format (hdf5). Minari stores one more
observation than actions: ``observations[T]`` is the state after the last
action, as in `episodes.Episode`. Beside Minari's ``data/`` folder a dataset
we wrote holds ``collection.json``: the env, collection seed and episode
count, the behaviours' names and the content hash (`episodes.dataset_sha256`).

This is the storage layer: it knows nothing of the policies that made the data
(`collect.py` does) nor of models (`data/windows.py` builds their inputs).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from dt_playground.atomic import remove_stale, replace_dir, write_json_atomic
from dt_playground.envs.episodes import Episode, behaviour_names, dataset_sha256
from dt_playground.envs.registry import get_spec, make_env
from dt_playground.errors import DatasetError
from dt_playground.paths import DATA_DIR

DEFAULT_DATA_ROOT = Path(os.environ.get("DTP_DATA_ROOT", DATA_DIR / "datasets"))
COLLECTION_FILE = "collection.json"  # beside Minari's data/: how the dataset was made


_MINARI_LOCK = threading.Lock()  # minari reads its root from an env variable


def default_dataset_id(env_id: str) -> str:
    return f"dtp/{get_spec(env_id).short_name}/mixed-v0"


def write_minari(
    episodes: list[Episode],
    dataset_id: str,
    env_id: str,
    root: Path | str = DEFAULT_DATA_ROOT,
    description: str = "",
    seed: int | None = None,
) -> Path:
    """Write episodes as a Minari dataset under ``root/dataset_id``, plus its
    ``collection.json`` (env, ``seed``, episode count, behaviour names, content
    hash), atomically: it is built in a staging folder and renamed into place."""
    import minari  # here, not at the top: importing it takes ~0.3 s, only file I/O needs it
    from minari.data_collector import EpisodeBuffer

    spec = get_spec(env_id)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale(root, ".staging-")
    buffers = []
    for i, ep in enumerate(episodes):
        steps = len(ep) + 1
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                observations=ep.observations,  # pyright: ignore[reportArgumentType]
                actions=ep.actions,  # pyright: ignore[reportArgumentType]
                rewards=list(ep.rewards),
                terminations=[False] * (len(ep) - 1) + [ep.terminated],
                truncations=[False] * (len(ep) - 1) + [ep.truncated],
                infos={"behaviour": np.full(steps, ep.behaviour, dtype=np.float32)},
            )
        )
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        with _MINARI_LOCK:
            old = os.environ.get("MINARI_DATASETS_PATH")
            os.environ["MINARI_DATASETS_PATH"] = str(staging)
            try:
                minari.create_dataset_from_buffers(
                    dataset_id,
                    buffers,
                    env=make_env(spec),
                    eval_env=make_env(spec),
                    algorithm_name="dt_playground experts (mixed quality)",
                    author="DT Playground",
                    author_email="n/a",
                    code_permalink="dt_playground",
                    description=description or f"Mixed-quality behaviour data for {env_id}.",
                    ref_min_score=spec.random_return,
                    ref_max_score=spec.expert_return,
                    data_format="hdf5",
                )
            finally:
                if old is None:
                    os.environ.pop("MINARI_DATASETS_PATH", None)
                else:
                    os.environ["MINARI_DATASETS_PATH"] = old
        built = staging / dataset_id
        write_json_atomic(
            built / COLLECTION_FILE,
            {
                "env_id": spec.env_id,
                "episodes": len(episodes),
                "seed": seed,
                "sha256": dataset_sha256(episodes),
                "behaviour_labels": behaviour_names(episodes),
            },
        )
        final = root / dataset_id
        final.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(built, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def resolve_dataset(name: str | Path, root: Path | str = DEFAULT_DATA_ROOT) -> Path:
    """A dataset folder from a path, or an id looked up under our data root, then
    ``$MINARI_DATASETS_PATH``, then ``~/.minari/datasets`` (never downloads)."""
    p = Path(name).expanduser()
    candidates = [p]
    if not p.is_absolute():
        candidates += [Path(root) / str(name)]
        if os.environ.get("MINARI_DATASETS_PATH"):
            candidates.append(Path(os.environ["MINARI_DATASETS_PATH"]) / str(name))
        candidates.append(Path.home() / ".minari" / "datasets" / str(name))
    for c in candidates:
        if (c / "data" / "main_data.hdf5").is_file() or (c / "data" / "metadata.json").is_file():
            return c
    raise DatasetError(
        f"No Minari dataset {str(name)!r}: looked in {', '.join(str(c) for c in candidates)}. "
        "Create one with `python -m dt_playground collect` (nothing is downloaded)."
    )


def dataset_env_id(meta: dict) -> str:
    """The gymnasium id recorded in a Minari dataset's metadata."""
    env_spec = meta.get("env_spec")
    if isinstance(env_spec, str):
        try:
            return json.loads(env_spec)["id"]
        except (ValueError, KeyError, TypeError):
            pass
    raise DatasetError("The dataset's metadata names no environment (env_spec missing).")


def read_collection(path: Path | str) -> dict:
    """A dataset folder's ``collection.json`` (``{}`` if it has none, e.g. a Minari
    download). Only well-typed fields are kept: the file may come from anyone."""
    f = Path(path) / COLLECTION_FILE
    try:
        raw = json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Unreadable {f}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{f} must hold a JSON object")
    out = {k: raw[k] for k in ("env_id", "sha256") if isinstance(raw.get(k), str)}
    out.update({k: raw[k] for k in ("episodes", "seed") if type(raw.get(k)) is int})
    labels = raw.get("behaviour_labels")
    if isinstance(labels, dict):
        out["behaviour_labels"] = {
            str(k)[:20]: v[:200] for k, v in labels.items() if isinstance(v, str)
        }
    return out


def load_episodes(name: str | Path, root: Path | str = DEFAULT_DATA_ROOT):
    """Read a Minari dataset: ``(episodes, env_id, metadata)``.

    Empty episodes are skipped (and counted in ``metadata["skipped_empty"]``);
    inconsistent array lengths raise `DatasetError` naming the episode. The
    dataset's ``collection.json``, if any, is ``metadata["collection"]`` and
    names the episodes' behaviours (`Episode.label`).
    """
    import minari  # see write_minari

    path = resolve_dataset(name, root)
    try:
        ds = minari.MinariDataset(path / "data")
        meta = dict(ds.storage.metadata)
        raw = list(ds.iterate_episodes())
    except DatasetError:
        raise
    except Exception as exc:  # h5py/minari raise many kinds of errors on bad files
        raise DatasetError(f"Could not read Minari dataset at {path}: {exc}") from exc
    env_id = dataset_env_id(meta)
    collection = read_collection(path)
    labels = collection.get("behaviour_labels", {})
    episodes, skipped = [], 0
    for ep in raw:
        obs = np.asarray(ep.observations, dtype=np.float32)
        actions, rewards = np.asarray(ep.actions), np.asarray(ep.rewards, dtype=np.float32)
        n = len(rewards)
        if n == 0:
            skipped += 1
            continue
        if len(actions) != n or len(obs) != n + 1:
            raise DatasetError(
                f"Episode {ep.id} of {path} is truncated or inconsistent: {len(obs)} "
                f"observations, {len(actions)} actions, {n} rewards (need T+1, T, T)."
            )
        tag = ep.infos.get("behaviour") if isinstance(ep.infos, dict) else None
        behaviour = float(tag[0]) if tag is not None and len(tag) else float("nan")
        episodes.append(
            Episode(
                obs.reshape(n + 1, -1),
                actions,
                rewards,
                bool(ep.terminations[-1]),
                bool(ep.truncations[-1]),
                None,
                behaviour,
                labels.get(f"{behaviour:g}", ""),
            )
        )
    if not episodes:
        raise DatasetError(f"Dataset {path} has no non-empty episodes.")
    meta["skipped_empty"] = skipped
    meta["path"] = str(path)
    meta["collection"] = collection
    return episodes, env_id, meta
