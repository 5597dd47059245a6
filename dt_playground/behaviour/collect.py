"""Behaviour data: the graded behaviour grids and the datasets played with them.

A dataset of an env cycles through its behaviour grid: episode ``i`` is played
by behaviour ``i % len(grid)`` from ``env.reset(seed=seed + i)`` with
``rng = default_rng([seed, i])``, and records the behaviour's index and name.
Same env, episode count and seed: the same episodes, byte for byte
(`episodes.dataset_sha256`), on any machine: the policies use no BLAS and no
threads, and each episode's randomness comes from its own generator.

Grids: hand-written controllers with knobs and sticky random actions for the
classic envs (`BEHAVIOURS`); for MuJoCo, the shipped ARS snapshots plus noisy
versions of the best one (`snapshot_behaviours`), sorted worst to best.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dt_playground.behaviour.experts import (
    GaussianNoise,
    StickyRandom,
    expert_policy,
    load_snapshot,
    read_snapshots_json,
)
from dt_playground.data.storage import (
    DEFAULT_DATA_ROOT,
    default_dataset_id,
    read_collection,
    write_minari,
)
from dt_playground.envs.episodes import Episode, Policy, run_episode
from dt_playground.envs.registry import EnvSpec, get_spec, make_env
from dt_playground.envs.seeds import DATASET_SEED
from dt_playground.errors import DatasetError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Behaviour:
    """One behaviour policy of a classic env's dataset: the expert with ``knobs``, plus
    sticky epsilon-random actions (probability ``eps``, held 1..``hold`` steps)."""

    eps: float = 0.0
    hold: int = 1
    knobs: tuple = ()  # (name, value) pairs passed to the expert

    def label(self) -> str:
        parts = [f"{k}={v:g}" for k, v in self.knobs] + ([f"eps={self.eps:g}"] if self.eps else [])
        return ", ".join(parts) or "expert"

    def make(self, env) -> Policy:
        # Even at eps 0 the wrapper draws from rng every step: the shipped data relies on it.
        base = expert_policy(env.spec.id, **dict(self.knobs))
        return StickyRandom(base, env.action_space, eps=self.eps, hold=self.hold)  # pyright: ignore[reportReturnType]


def _knob(name: str, values, **kw) -> list[Behaviour]:
    return [Behaviour(knobs=((name, v),), **kw) for v in values]


def _eps(values, hold: int) -> list[Behaviour]:
    return [Behaviour(eps=e, hold=hold) for e in values]


# Behaviour grids for the mixed-quality datasets, chosen by trial on seeds 0-9
# so returns spread from near-random to expert. Most low-return episodes come
# from *coherent* worse controllers (a drifting cart, a weak motor, a pilot who
# lands too hard) rather than random actions: a DT can imitate a coherent
# policy when asked for its return, whereas random actions are not
# reproducible by a greedy policy (and barely hurt BC, which learns the mode).
# Episodes cycle through the grid.
BEHAVIOURS: dict[str, list[Behaviour]] = {
    "CartPole-v1": [
        Behaviour(),
        *_knob("bias", (0.2, 0.25, 0.3, 0.4, 0.5, 0.8, 1.2, 2.0, 2.3, 2.6, 3.0)),
        *_eps((0.5, 1.0), hold=1),
    ],
    "Pendulum-v1": [
        Behaviour(),
        *_knob("max_torque", (1.5, 1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)),
        *_eps((0.05, 0.2), hold=8),
    ],
    "LunarLander-v3": [
        Behaviour(),
        Behaviour(),
        *_knob("hover_bias", (-0.05, -0.07, -0.09, -0.1, -0.15, -0.2, -0.3)),
        *_knob("angle_gain", (0.3, 0.5)),
        *_eps((0.02, 0.05, 0.1, 0.3, 0.8), hold=8),
    ],
}


@dataclass(frozen=True)
class SnapshotBehaviour:
    """One behaviour of a MuJoCo dataset: an ARS snapshot (``sigma`` 0) or the best
    snapshot plus Gaussian action noise ``sigma`` (`experts.GaussianNoise`).

    ``expected_return`` is its recorded evaluation mean; ``shortfall = 1 -
    (expected - worst) / (best - worst)`` rates it from 0 (the best snapshot)
    to 1 (the worst behaviour).
    """

    file: str
    iteration: int
    sigma: float
    expected_return: float
    shortfall: float = 0.0
    root: Path | None = None  # snapshot folder; None = pretrained/experts/<EnvId>

    def label(self) -> str:
        noise = f" + noise {self.sigma:g}" if self.sigma else ""
        return f"ARS iter {self.iteration}{noise} (eval {self.expected_return:.0f})"

    def make(self, env) -> Policy:
        base = load_snapshot(env.spec.id, self.file, self.root)
        return base if self.sigma == 0 else GaussianNoise(base, env.action_space, self.sigma)


def snapshot_behaviours(
    env_id: str | EnvSpec, root: Path | str | None = None
) -> list[SnapshotBehaviour]:
    """A MuJoCo env's grid from its ``snapshots.json``: every kept snapshot plus the
    kept noisy versions of the best, sorted worst to best expected return."""
    meta = read_snapshots_json(env_id, root)
    snaps = meta["snapshots"]
    best = max(snaps, key=lambda e: e["eval_return_mean"])
    items = [(e["file"], e["iteration"], 0.0, e["eval_return_mean"]) for e in snaps]
    items += [
        (best["file"], best["iteration"], n["sigma"], n["eval_return_mean"])
        for n in meta.get("noisy", [])
    ]
    lo, hi = min(i[3] for i in items), best["eval_return_mean"]
    root = Path(root) if root is not None else None
    grid = [
        SnapshotBehaviour(
            f,
            it,
            s,
            r,
            round(float(np.clip(1.0 - (r - lo) / max(hi - lo, 1e-9), 0.0, 1.0)), 4),
            root,
        )
        for f, it, s, r in items
    ]
    return sorted(grid, key=lambda b: (b.expected_return, b.file, b.sigma))


def behaviour_grid(env_id: str | EnvSpec) -> list[Behaviour] | list[SnapshotBehaviour]:
    """The behaviours an env's datasets cycle through; an episode's
    `Episode.behaviour` is its index here."""
    spec = get_spec(env_id)
    return BEHAVIOURS[spec.env_id] if spec.env_id in BEHAVIOURS else snapshot_behaviours(spec)


def behaviour_labels(env_id: str | EnvSpec) -> dict[int, str]:
    """Readable names of an env's behaviours, by grid index."""
    return {i: b.label() for i, b in enumerate(behaviour_grid(env_id))}


def collect_episodes(
    env_id: str | EnvSpec,
    n_episodes: int,
    seed: int = DATASET_SEED,
    progress: Progress | None = None,
    grid: list | None = None,
) -> list[Episode]:
    """Mixed-quality behaviour data: episode ``i`` is played by behaviour
    ``i % len(grid)`` from reset seed ``seed + i`` with ``rng =
    default_rng([seed, i])``. Same arguments, same data (module docstring)."""
    spec = get_spec(env_id)
    grid = grid if grid is not None else behaviour_grid(spec)
    env = make_env(spec)
    labels = [b.label() for b in grid]
    episodes = []
    for i in range(n_episodes):
        b = i % len(grid)
        # A fresh policy per episode: `StickyRandom` holds state that must not leak across.
        policy = grid[b].make(env)
        ep = run_episode(env, policy, seed + i, np.random.default_rng([seed, i]), b)
        ep.label = labels[b]
        episodes.append(ep)
        if progress:
            progress(i + 1, n_episodes)
    env.close()
    return episodes


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetRecipe:
    """How an env's standard dataset (``dtp/<env>/mixed-v0``) is collected."""

    episodes: int
    seed: int = DATASET_SEED


DATASETS: dict[str, DatasetRecipe] = {
    "CartPole-v1": DatasetRecipe(300),
    "Pendulum-v1": DatasetRecipe(600),
    "LunarLander-v3": DatasetRecipe(600),
    "Hopper-v5": DatasetRecipe(300),
    "HalfCheetah-v5": DatasetRecipe(300),
    "Walker2d-v5": DatasetRecipe(300),
}


def collect_dataset(
    env_id: str,
    episodes: int,
    seed: int = DATASET_SEED,
    dataset_id: str | None = None,
    root: Path | str | None = None,
    progress: Progress | None = None,
) -> tuple[Path, list[Episode]]:
    """Collect ``episodes`` episodes and write them as a Minari dataset (default id
    ``dtp/<env>/mixed-v0`` under the data root); returns (folder, episodes)."""
    eps = collect_episodes(env_id, episodes, seed, progress)
    path = write_minari(
        eps,
        dataset_id or default_dataset_id(env_id),
        env_id,
        root if root is not None else DEFAULT_DATA_ROOT,
        seed=seed,
    )
    return path, eps


def ensure_dataset(
    env_id: str,
    episodes: int | None = None,
    seed: int | None = None,
    recollect: bool = False,
    root: Path | str | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """The env's standard dataset, collected first unless one made with the same
    env, episode count and seed (its ``collection.json``) is already there.

    ``episodes``/``seed`` default to `DATASETS`. Returns the dataset id when it
    lives under the default data root (what a checkpoint records: no machine
    paths), else its folder.
    """
    spec = get_spec(env_id)
    recipe = DATASETS[spec.env_id]
    n = episodes or recipe.episodes
    seed = recipe.seed if seed is None else seed
    dataset_id = default_dataset_id(spec.env_id)
    base = Path(root) if root is not None else DEFAULT_DATA_ROOT
    path = base / dataset_id
    try:
        have = read_collection(path) if (path / "data").is_dir() else {}
    except DatasetError:  # an unreadable collection.json: collect afresh
        have = {}
    wanted = {"env_id": spec.env_id, "episodes": n, "seed": seed}
    if recollect or any(have.get(k) != v for k, v in wanted.items()):
        t0 = time.perf_counter()
        path, eps = collect_dataset(spec.env_id, n, seed, dataset_id, base)
        log(f"  collected {len(eps)} episodes in {time.perf_counter() - t0:.1f} s -> {path}")
    return dataset_id if root is None else str(path)
