"""The offline RL baseline: conservative dynamic programming on the data's empirical MDP.

The dataset defines a table: every state it visits (the maze's observation is
an exact cell) and, for each, only the actions it tried, with their mean reward
and observed next states. Value iteration over that table backs values up
through *any* transition in the data, wherever it came from: the value of
"goal reached from M" flows back along the astray episodes' "S -> M" steps.
That Bellman backup is what stitches; return-conditioning has nothing like it.

Conservative, as IQL/CQL are in spirit: a pair (s, a) the data never tried
gets no value and is never chosen, and a state never acted from is worth the
pessimistic ``unknown_value``. The backup is undiscounted over a finite horizon
(the env's episode cap), so values are returns-to-go, in the units QDT relabels
with (qdt.py).

The table ships as a checkpoint-like folder: ``config.json`` + ``model.safetensors``
(the state index, the Q table and the mask of tried pairs); no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from dt_playground.atomic import atomic_dir
from dt_playground.checkpoints.layout import read_json
from dt_playground.envs.episodes import Episode, Trace
from dt_playground.errors import CheckpointError

ALGO = "offline_rl"


def _key(obs: np.ndarray) -> bytes:
    return np.ascontiguousarray(obs, dtype=np.float32).tobytes()


@dataclass
class QTable:
    """Q values of the empirical MDP: ``q[i, a]`` for state ``states[i]``, valid where
    ``seen[i, a]`` (elsewhere NaN)."""

    states: np.ndarray  # (N, S) float32
    q: np.ndarray  # (N, A) float64, NaN where unseen
    horizon: int
    unknown_value: float

    def __post_init__(self):
        self.index = {_key(s): i for i, s in enumerate(self.states)}

    @property
    def seen(self) -> np.ndarray:
        return ~np.isnan(self.q)

    def row(self, obs: np.ndarray) -> int | None:
        return self.index.get(_key(obs))

    def value(self, obs: np.ndarray) -> float | None:
        """max over tried actions of Q(obs, a); None for a state never acted from."""
        i = self.row(obs)
        if i is None or not self.seen[i].any():
            return None
        return float(np.nanmax(self.q[i]))

    def act(self, obs: np.ndarray) -> int:
        """The best tried action (lowest index on ties). A state the data never acted
        from has no values: the table moves up (action 0), as good as any guess."""
        i = self.row(obs)
        if i is None or not self.seen[i].any():
            return 0
        return int(np.nanargmax(self.q[i]))


def fit(
    episodes: list[Episode], act_dim: int, horizon: int, unknown_value: float | None = None
) -> QTable:
    """Finite-horizon value iteration on the empirical MDP of ``episodes``.

    ``Q_k(s, a) = r(s, a) + E[V_{k-1}(s')]`` over the observed next states
    (``V = 0`` after a terminal step; ``unknown_value`` for a state never acted
    from, default the worst return in the data), ``V_k(s) = max`` over tried
    actions, ``V_0 = 0``, ``horizon`` backups.
    """
    keys: dict[bytes, int] = {}
    states: list[np.ndarray] = []

    def index(obs):
        k = _key(obs)
        if k not in keys:
            keys[k] = len(states)
            states.append(np.asarray(obs, np.float32))
        return keys[k]

    trans = []  # (s, a, r, s', terminal)
    for ep in episodes:
        for t in range(len(ep)):
            last = t == len(ep) - 1
            trans.append(
                (
                    index(ep.observations[t]),
                    int(ep.actions[t]),
                    float(ep.rewards[t]),
                    index(ep.observations[t + 1]),
                    last and ep.terminated,
                )
            )
    if unknown_value is None:
        unknown_value = min(ep.ret for ep in episodes)
    n = len(states)
    s, a, r, s2, term = (np.array(x) for x in zip(*trans))
    count = np.zeros((n, act_dim))
    np.add.at(count, (s, a), 1.0)
    seen = count > 0
    reward = np.zeros((n, act_dim))
    np.add.at(reward, (s, a), r)
    reward = np.where(seen, reward / np.maximum(count, 1), 0.0)
    acted = seen.any(1)
    q = np.full((n, act_dim), np.nan)
    v = np.zeros(n)
    for _ in range(horizon):
        v_next = np.where(term, 0.0, np.where(acted[s2], v[s2], unknown_value))  # pyright: ignore[reportIndexIssue]
        backup = np.zeros((n, act_dim))
        np.add.at(backup, (s, a), v_next)
        q = np.where(seen, reward + backup / np.maximum(count, 1), np.nan)
        v = np.where(acted, np.nanmax(np.where(seen, q, -np.inf), axis=1), 0.0)
    return QTable(np.stack(states), q, horizon, float(unknown_value))


def play(table: QTable, env_id: str, seeds, max_steps: int | None = None) -> list[Trace]:
    """Greedy episodes of the table from reset seeds ``seeds``, as `Trace`s (target 0:
    the table is asked for nothing)."""
    from dt_playground.envs.registry import get_spec, make_env

    spec = get_spec(env_id)
    env = make_env(spec)
    out = []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        actions, rewards, term = [], [], False
        for _ in range(max_steps or spec.max_ep_len):
            a = table.act(obs)
            obs, rew, term, trunc, _ = env.step(a)
            actions.append(a)
            rewards.append(rew)
            if term or trunc:
                break
        out.append(
            Trace(
                spec.env_id,
                int(seed),
                0.0,
                np.asarray(actions),
                np.asarray(rewards, np.float64),
                np.zeros(len(rewards)),
                bool(term),
            )
        )
    env.close()
    return out


def save(table: QTable, path: Path | str, config: dict, card: dict | None = None) -> Path:
    """Write the table as a folder: ``model.safetensors`` (``states``, ``q`` with unseen
    pairs as 0, ``seen`` as uint8) + ``config.json`` (+ ``card.json``), atomically."""
    import json

    path = Path(path)
    with atomic_dir(path) as stage:
        save_file(
            {
                "states": table.states.astype(np.float32),
                "q": np.nan_to_num(table.q, nan=0.0).astype(np.float32),
                "seen": table.seen.astype(np.uint8),
            },
            str(stage / "model.safetensors"),
        )
        cfg = {
            **config,
            "algo": ALGO,
            "horizon": table.horizon,
            "unknown_value": table.unknown_value,
        }
        (stage / "config.json").write_text(json.dumps(cfg, indent=1))
        if card is not None:
            (stage / "card.json").write_text(json.dumps(card, indent=1))
    return path


def load(path: Path | str) -> tuple[QTable, dict]:
    """A table folder written by `save`: (table, config). Every inconsistency is a
    `CheckpointError` that names it."""
    path = Path(path)
    config = read_json(path / "config.json", "The table's config")
    if config.get("algo") != ALGO:
        raise CheckpointError(f"{path.name} is not an offline RL table (algo {ALGO!r})")
    try:
        t = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{path.name}/model.safetensors is missing or corrupt") from None
    states, q, seen = t.get("states"), t.get("q"), t.get("seen")
    if (
        states is None
        or q is None
        or seen is None
        or states.ndim != 2
        or q.ndim != 2
        or q.shape != seen.shape
        or len(states) != len(q)
    ):
        raise CheckpointError("model.safetensors must hold states (N, S), q and seen (N, A)")
    if not (np.isfinite(states).all() and np.isfinite(q).all()):
        raise CheckpointError("The table holds NaN or infinite values")
    horizon, unknown = config.get("horizon"), config.get("unknown_value")
    if type(horizon) is not int or not isinstance(unknown, (int, float)):
        raise CheckpointError("config.json needs an integer horizon and a numeric unknown_value")
    qq = np.where(seen.astype(bool), q.astype(np.float64), np.nan)
    return QTable(states.astype(np.float32), qq, horizon, float(unknown)), config
