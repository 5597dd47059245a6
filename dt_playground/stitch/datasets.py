"""The lab's two datasets, collected from seeds and written in Minari format.

``halves``: three behaviour families. *Astray* episodes start where every
real episode starts (S), walk to the middle cell M and then turn west over the
one-way ledge into the pit (return about -8). *Northern* episodes start in the
B room, pass M and reach the goal (return 9..11). *Cautious* episodes start in
S and walk to the prize (return 4..7). No episode goes from S to the goal, yet
the halves "S -> M" and "M -> G" make a path worth 13..15, better than
anything in the data. This is the QDT paper's toy (Yamagata et al. 2023) in
maze form, with Brandfonbrener et al.'s (2022) condition built in:
return-conditioning can only choose among returns *observed from the state it
is in*, and the best observed from S is the prize's. Asked for more, a DT at S
has only the cautious episodes to go by: a higher return at S has always meant
the prize, never the middle; asked for the astray return, it walks to M still
asking for what astray episodes got there, and follows them into the pit.

``random-walks``: uniformly random moves from S (the DT paper's graph toy).
Some walks reach the goal before the prize, the pit or the time limit (about
4%): whole good trajectories exist, and return-conditioning may pick them out.

Episode ``i`` of a dataset uses reset seed ``seed + i`` and ``rng =
default_rng([seed, i])``: same recipe, same bytes, same sha256
(`episodes.dataset_sha256`), as every other dataset of the playground.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dt_playground.data.storage import DEFAULT_DATA_ROOT, read_collection, write_minari
from dt_playground.envs import maze
from dt_playground.envs.episodes import Episode
from dt_playground.envs.registry import make_env
from dt_playground.envs.seeds import DATASET_SEED
from dt_playground.errors import DatasetError

DATA_NAMES = ("halves", "random-walks")
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3  # action indices (maze.ACTION_NAMES)
_BESIDE_PRIZE = (maze.PRIZE[0], maze.PRIZE[1] + 1)

_TO_MIDDLE = maze.distances(maze.MIDDLE)
_TO_GOAL = maze.distances(maze.GOAL)
_TO_PIT = maze.distances(maze.PIT)
_TO_PRIZE = maze.distances(maze.PRIZE)


@dataclass(frozen=True)
class DataRecipe:
    """How one lab dataset is collected (fixed: the shipped checkpoints record its hash)."""

    episodes: int
    eps: float  # behaviour noise: probability of a uniformly random allowed move
    seed: int = DATASET_SEED

    def dataset_id(self, name: str) -> str:
        return f"dtp/stitchmaze/{name}-v0"


RECIPES: dict[str, DataRecipe] = {
    "halves": DataRecipe(episodes=300, eps=0.1),
    "random-walks": DataRecipe(episodes=3000, eps=1.0),
}
LABELS = {
    0: "astray: S -> middle -> pit",
    1: "northern: B room -> middle -> goal",
    2: "cautious: S -> prize",
    3: "random walk from S",
}


def check_data(name) -> str:
    """``name`` if it is a lab dataset, else a ValueError listing them."""
    if name not in DATA_NAMES:
        raise ValueError(
            f"Unknown stitching dataset {str(name)[:40]!r}: use one of {', '.join(DATA_NAMES)}."
        )
    return name


def _greedy(cell, dist: np.ndarray, rng: np.random.Generator, allowed: list[int]) -> int:
    """A move among ``allowed`` that brings ``cell`` closest to the target of ``dist``
    (ties broken by ``rng``)."""
    nxt = [dist[maze.step_cell(cell, a)] for a in allowed]
    nxt = [d if d >= 0 else 10**6 for d in nxt]  # a cell that can't reach the target
    best = [a for a, d in zip(allowed, nxt) if d == min(nxt)]
    return best[int(rng.integers(len(best)))]


def _move(cell, dist, rng, eps: float, forbid: tuple[int, ...] = ()) -> int:
    allowed = [a for a in range(4) if a not in forbid]
    if rng.random() < eps:
        return allowed[int(rng.integers(len(allowed)))]
    return _greedy(cell, dist, rng, allowed)


def play_episode(env, seed: int, rng, choose: Callable, start=None) -> Episode:
    """One episode: ``choose(cell, visited_middle, rng) -> action`` until it ends."""
    obs, _ = env.reset(seed=int(seed), options=None if start is None else {"start": start})
    observations, actions, rewards = [obs], [], []
    seen_middle, done = False, False
    while not done:
        cell = (int(obs[0]), int(obs[1]))
        seen_middle = seen_middle or cell == maze.MIDDLE
        a = choose(cell, seen_middle, rng)
        obs, r, term, trunc, _ = env.step(a)
        observations.append(obs)
        actions.append(a)
        rewards.append(r)
        done = term or trunc
    return Episode(
        np.asarray(observations, np.float32),
        np.asarray(actions),
        np.asarray(rewards, np.float32),
        bool(term),
        bool(trunc),
        int(seed),
    )


def collect(name: str, episodes: int | None = None, seed: int | None = None) -> list[Episode]:
    """The episodes of lab dataset ``name`` (module docstring); ``episodes``/``seed``
    override its recipe (tests)."""
    recipe = RECIPES[check_data(name)]
    n = recipe.episodes if episodes is None else episodes
    seed = recipe.seed if seed is None else seed
    env = make_env(maze.ENV_ID)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        if name == "random-walks":
            family, start = 3, None
            choose = lambda cell, mid, rng: int(rng.integers(4))  # noqa: E731
        elif i % 3 == 0:  # astray: to the middle, then west to the pit (never the prize)
            family, start = 0, None

            def choose(cell, mid, rng):
                if not mid:
                    forbid = (LEFT,) if cell == _BESIDE_PRIZE else ()
                    return _move(cell, _TO_MIDDLE, rng, recipe.eps, forbid)
                if cell == maze.MIDDLE:  # the one place where the halves part: always west
                    return LEFT
                return _move(cell, _TO_PIT, rng, recipe.eps)
        elif i % 3 == 2:  # cautious: to the prize (never north of the start room)
            family, start = 2, None

            def choose(cell, mid, rng):
                return _move(cell, _TO_PRIZE, rng, recipe.eps, (UP,))
        else:  # northern: from the B room to the goal (never south or west of the middle)
            family = 1
            start = maze.B_CELLS[int(rng.integers(len(maze.B_CELLS)))]

            def choose(cell, mid, rng):
                forbid = (DOWN, LEFT) if cell == maze.MIDDLE else ()
                return _move(cell, _TO_GOAL, rng, recipe.eps, forbid)

        ep = play_episode(env, seed + i, rng, choose, start)
        ep.behaviour, ep.label = float(family), LABELS[family]
        out.append(ep)
    env.close()
    return out


def starts_to_goal(episodes: list[Episode]) -> int:
    """How many episodes begin on a start cell and reach the goal (0 for `halves`)."""
    return sum(
        tuple(int(x) for x in e.observations[0]) in maze.START_CELLS
        and maze.reached_goal(e.rewards, e.terminated)
        for e in episodes
    )


def ensure(
    name: str,
    root: Path | str | None = None,
    recollect: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """The folder of lab dataset ``name``, collected and written first unless one made
    by the same recipe is there (its ``collection.json``)."""
    recipe = RECIPES[check_data(name)]
    base = Path(root) if root is not None else DEFAULT_DATA_ROOT
    path = base / recipe.dataset_id(name)
    try:
        have = read_collection(path) if (path / "data").is_dir() else {}
    except DatasetError:
        have = {}
    wanted = {"env_id": maze.ENV_ID, "episodes": recipe.episodes, "seed": recipe.seed}
    if recollect or any(have.get(k) != v for k, v in wanted.items()):
        eps = collect(name)
        desc = f"StitchMaze-v0 '{name}' data of the stitching lab (dt_playground.stitch)."
        path = write_minari(eps, recipe.dataset_id(name), maze.ENV_ID, base, desc, recipe.seed)
        log(f"  collected {name}: {len(eps)} episodes -> {recipe.dataset_id(name)}")
    return path
