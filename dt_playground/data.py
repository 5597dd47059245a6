"""Offline data: collection, Minari storage, returns-to-go, stats and windows.

Episodes live on disk in Minari format (hdf5). Minari stores one more
observation than actions: ``observations[T]`` is the state after the last
action. We keep that layout in `Episode` and drop the final observation when
building training windows.

`gather_windows` is the single function that turns per-episode buffers into
(B, K) model windows; the trainer's sampler and the rollout policy both call it,
so inference sees exactly what training saw (DESIGN.md, decision 2).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .envs import EnvSpec, action_scale, get_spec, make_env

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = Path(os.environ.get("DTP_DATA_ROOT", REPO_ROOT / "data" / "datasets"))


class DatasetError(ValueError):
    """A dataset that can't be used: missing, corrupt, empty or inconsistent."""


@dataclass
class Episode:
    """One episode. ``observations`` has ``len(actions) + 1`` rows (Minari layout)."""

    observations: np.ndarray  # (T+1, S)
    actions: np.ndarray  # (T,) int for discrete, (T, A) float otherwise
    rewards: np.ndarray  # (T,)
    terminated: bool
    truncated: bool
    seed: int | None = None
    behaviour: float = float("nan")  # which behaviour policy made it (grid index), if known

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted returns-to-go: ``rtg[t] = sum(rewards[t:])``."""
    return np.cumsum(np.asarray(rewards, dtype=np.float64)[::-1])[::-1].copy()


# ---------------------------------------------------------------- collection


def run_episode(
    env, policy, seed: int, rng: np.random.Generator, behaviour: float = float("nan")
) -> Episode:
    """Play one episode of ``policy`` from ``env.reset(seed=seed)`` and record it."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs, rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return Episode(
        np.asarray(observations, dtype=np.float32),
        np.asarray(actions),
        np.asarray(rewards, dtype=np.float32),
        bool(terminated),
        bool(truncated),
        seed,
        behaviour,
    )


def collect_episodes(env_id: str, n_episodes: int, seed: int = 0, progress=None) -> list[Episode]:
    """Mixed-quality behaviour data: episode ``i`` is played by behaviour
    ``i % len(grid)`` of the env's grid (`experts.BEHAVIOURS`) from reset seed
    ``seed + i``. Same arguments, same data."""
    from .experts import BEHAVIOURS

    spec = get_spec(env_id)
    if spec.env_id not in BEHAVIOURS:
        from .ars import mujoco_behaviours

        return mujoco_behaviours(spec, n_episodes, seed, progress)
    grid = BEHAVIOURS[spec.env_id]
    env = make_env(spec)
    episodes = []
    for i in range(n_episodes):
        b = i % len(grid)
        rng = np.random.default_rng([seed, i])
        episodes.append(run_episode(env, grid[b].make(env), seed + i, rng, behaviour=b))
        if progress:
            progress(i + 1, n_episodes)
    env.close()
    return episodes


def behaviour_labels(env_id: str) -> dict[int, str]:
    """Readable names of an env's behaviour policies, by grid index."""
    from .experts import BEHAVIOURS

    grid = BEHAVIOURS.get(get_spec(env_id).env_id)
    if grid is None:
        from .ars import behaviour_labels as mujoco_labels

        return mujoco_labels(env_id)
    return {i: b.label() for i, b in enumerate(grid)}


# ---------------------------------------------------------------- Minari I/O

_MINARI_LOCK = threading.Lock()  # minari reads its root from an env variable


def default_dataset_id(env_id: str) -> str:
    return f"dtp/{get_spec(env_id).short_name}/mixed-v0"


def write_minari(
    episodes: list[Episode],
    dataset_id: str,
    env_id: str,
    root: Path | str = DEFAULT_DATA_ROOT,
    description: str = "",
) -> Path:
    """Write episodes as a Minari dataset under ``root/dataset_id``, atomically:
    it is built in a staging folder beside it and renamed into place."""
    import minari
    from minari.data_collector import EpisodeBuffer

    spec = get_spec(env_id)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    buffers = []
    for i, ep in enumerate(episodes):
        steps = len(ep) + 1
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                observations=ep.observations,
                actions=ep.actions,
                rewards=list(ep.rewards),
                terminations=[False] * (len(ep) - 1) + [ep.terminated],
                truncations=[False] * (len(ep) - 1) + [ep.truncated],
                infos={"behaviour": np.full(steps, ep.behaviour, dtype=np.float32)},
            )
        )
    final = root / dataset_id
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
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        if final.exists():
            trash = final.with_name(final.name + ".old")
            os.replace(final, trash)
        os.replace(staging / dataset_id, final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
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


def load_episodes(name: str | Path, root: Path | str = DEFAULT_DATA_ROOT):
    """Read a Minari dataset: ``(episodes, env_id, metadata)``.

    Empty episodes are skipped (and counted in ``metadata["skipped_empty"]``);
    inconsistent array lengths raise `DatasetError` naming the episode.
    """
    import minari

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
        episodes.append(
            Episode(
                obs.reshape(n + 1, -1),
                actions,
                rewards,
                bool(ep.terminations[-1]),
                bool(ep.truncations[-1]),
                None,
                float(tag[0]) if tag is not None and len(tag) else float("nan"),
            )
        )
    if not episodes:
        raise DatasetError(f"Dataset {path} has no non-empty episodes.")
    meta["skipped_empty"] = skipped
    meta["path"] = str(path)
    return episodes, env_id, meta


# ---------------------------------------------------------------- statistics


def dataset_summary(episodes: list[Episode], env_id: str | None = None, bins: int = 20) -> dict:
    """Return distribution of a dataset; travels inside every checkpoint.
    With ``env_id``, behaviour policies are named (`experts.BEHAVIOURS`)."""
    rets = np.array([e.ret for e in episodes])
    lens = np.array([len(e) for e in episodes])
    counts, edges = np.histogram(rets, bins=bins)
    top = np.sort(rets)[-max(1, len(rets) // 10) :]
    q = np.quantile(rets, [0.1, 0.25, 0.5, 0.75, 0.9])
    tags = np.array([e.behaviour for e in episodes])
    behaviours = {}
    for tag in sorted(set(tags[~np.isnan(tags)].tolist())):
        sel = rets[tags == tag]
        behaviours[f"{tag:g}"] = {"episodes": int(len(sel)), "return_mean": float(sel.mean())}
    if env_id is not None and behaviours:
        labels = behaviour_labels(env_id)
        for tag, b in behaviours.items():
            b["label"] = labels.get(int(float(tag)), tag)
    return {
        "episodes": int(len(rets)),
        "steps": int(lens.sum()),
        "return_min": float(rets.min()),
        "return_max": float(rets.max()),
        "return_mean": float(rets.mean()),
        "return_std": float(rets.std()),
        "return_p10": float(q[0]),
        "return_p25": float(q[1]),
        "return_median": float(q[2]),
        "return_p75": float(q[3]),
        "return_p90": float(q[4]),
        "return_deciles": np.quantile(rets, np.linspace(0, 1, 11)).tolist(),
        "return_top10_mean": float(top.mean()),
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "length_min": int(lens.min()),
        "length_mean": float(lens.mean()),
        "length_max": int(lens.max()),
        "lengths": lens.tolist(),
        "returns": rets.round(3).tolist(),
        "behaviours": behaviours,
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or xs[end] != xs[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation (ties get average ranks).

    NaN when either side is constant or has fewer than 2 points: no ordering to agree with.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values against {len(b)}")
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


@dataclass
class Normaliser:
    """How raw states and returns become model inputs (stored in checkpoints)."""

    state_mean: np.ndarray
    state_std: np.ndarray
    return_scale: float

    def states(self, s: np.ndarray) -> np.ndarray:
        return ((s - self.state_mean) / self.state_std).astype(np.float32)

    def returns(self, r: np.ndarray | float) -> np.ndarray:
        return (np.asarray(r, dtype=np.float64) / self.return_scale).astype(np.float32)


def encode_actions(actions: np.ndarray, act_dim: int, discrete: bool,
                   scale: np.ndarray | None = None) -> np.ndarray:
    """Actions as model inputs/targets: one-hot (T, A) for discrete, (T, A) floats
    divided by the action half-range ``scale`` (so they lie in [-1, 1]) otherwise."""
    if discrete:
        return np.eye(act_dim, dtype=np.float32)[np.asarray(actions, dtype=np.int64).reshape(-1)]
    a = np.asarray(actions, dtype=np.float32).reshape(len(actions), act_dim)
    return a / scale if scale is not None else a


def gather_windows(
    states: np.ndarray,
    actions: np.ndarray,
    rtg: np.ndarray,
    rows: np.ndarray,
    ends: np.ndarray,
    K: int,
    max_ep_len: int,
) -> dict:
    """The last ``K`` steps ending at ``ends`` (inclusive) of episodes ``rows``.

    Buffers are (E, T, ...) with step ``t`` of episode ``e`` at ``[e, t]``.
    Windows shorter than ``K`` (early in an episode) are left-padded with zeros
    and ``mask == 0``. Timesteps are absolute positions in the episode.
    Returns float32/int64 arrays: states (B,K,S), actions (B,K,A), rtg (B,K,1),
    timesteps (B,K), mask (B,K).
    """
    idx = ends[:, None] - K + 1 + np.arange(K)[None, :]  # (B, K)
    mask = idx >= 0
    idx = np.where(mask, idx, 0)
    r = rows[:, None]
    m = mask[..., None]
    return {
        "states": np.where(m, states[r, idx], 0.0).astype(np.float32),
        "actions": np.where(m, actions[r, idx], 0.0).astype(np.float32),
        "rtg": np.where(m, rtg[r, idx][..., None], 0.0).astype(np.float32),
        "timesteps": np.minimum(idx, max_ep_len - 1).astype(np.int64),
        "mask": mask.astype(np.float32),
    }


@dataclass
class OfflineDataset:
    """Episodes packed into padded buffers for window sampling."""

    episodes: list[Episode]
    spec: EnvSpec
    act_dim: int
    norm: Normaliser = field(init=False)

    def __post_init__(self):
        if not self.episodes:
            raise DatasetError("No episodes to train on.")
        eps = self.episodes
        self.lengths = np.array([len(e) for e in eps])
        all_obs = np.concatenate([e.observations[:-1] for e in eps])
        self.state_dim = all_obs.shape[1]
        self.norm = Normaliser(all_obs.mean(0), all_obs.std(0) + 1e-6, self.spec.return_scale)
        E, T = len(eps), int(self.lengths.max())
        scale = action_scale(self.spec.env_id)
        self.states = np.zeros((E, T, self.state_dim), np.float32)
        self.actions = np.zeros((E, T, self.act_dim), np.float32)
        self.rtg = np.zeros((E, T), np.float32)
        for i, e in enumerate(eps):
            n = len(e)
            self.states[i, :n] = self.norm.states(e.observations[:-1])
            self.actions[i, :n] = encode_actions(e.actions, self.act_dim, self.spec.discrete, scale)
            self.rtg[i, :n] = self.norm.returns(returns_to_go(e.rewards))
        # Sampling an end step uniformly over all steps = episodes weighted by length.
        self._rows = np.repeat(np.arange(E), self.lengths)
        self._ends = np.concatenate([np.arange(n) for n in self.lengths])

    def summary(self) -> dict:
        return dataset_summary(self.episodes, self.spec.env_id)

    def sample(self, batch_size: int, K: int, rng: np.random.Generator) -> dict:
        """A training batch of windows; ``targets`` are the actions to predict."""
        pick = rng.integers(len(self._rows), size=batch_size)
        return gather_windows(
            self.states,
            self.actions,
            self.rtg,
            self._rows[pick],
            self._ends[pick],
            K,
            self.spec.max_ep_len,
        )

    def top_fraction(self, fraction: float) -> OfflineDataset:
        """The best ``fraction`` of episodes by return (the data %BC trains on)."""
        order = np.argsort([-e.ret for e in self.episodes], kind="stable")
        keep = max(1, int(round(len(order) * fraction)))
        return OfflineDataset([self.episodes[i] for i in order[:keep]], self.spec, self.act_dim)
