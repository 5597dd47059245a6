"""The target grid: one seed played at several targets in one batched rollout
(`rollout.policy.run_episodes`), so the tiles differ only in what the model was asked
for; `media.tiles.grid_video` replays them into one synchronised video.

Requests are checked by `rollout.requests` (the same `PlaygroundError`s as a play).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.envs.episodes import Progress, Trace
from dt_playground.errors import PlaygroundError
from dt_playground.rollout.episode import normalised_score
from dt_playground.rollout.evaluate import policy_for
from dt_playground.rollout.policy import run_episodes
from dt_playground.rollout.requests import MAX_EPISODE_STEPS, parse_seed, play_target

MAX_TILES = 9  # a 3 x 3 video, one colour each in `media.plots.glance.TILE_COLORS`
# "Ask for more than the data": the grid's last default tile asks for the
# dataset's best return plus half of max(|best|, the data's range): 1.5x max
# where returns are positive and large (Hopper, CartPole); for Pendulum, whose
# best is ~0, half the range above it.
BEYOND_DATA = 0.5


@dataclass
class GridResult:
    """One seed played at several targets (tile i: ``targets[i]``, ``traces[i]``)."""

    env_id: str
    checkpoint: str
    seed: int
    targets: list[float | str]  # "best": the checkpoint picks its own (dt.return_head)
    labels: list[str]
    traces: list[Trace]
    seconds: float

    @property
    def tiles(self) -> list[dict]:
        return [
            {
                "target": t if isinstance(t, str) else float(t),
                "achieved": round(tr.ret, 3),
                "length": tr.length,
                "terminated": tr.terminated,
            }
            for t, tr in zip(self.targets, self.traces)
        ]

    def summary(self, ck: Checkpoint) -> dict:
        """The JSON the app shows and `/play_grid` returns."""
        tiles = self.tiles
        for tile, label in zip(tiles, self.labels):
            tile["label"] = label
            tile["normalised_score"] = round(normalised_score(tile["achieved"], ck), 1)
        return {
            "env_id": self.env_id,
            "checkpoint": self.checkpoint,
            "seed": self.seed,
            "tiles": tiles,
            **({"checked": True} if any(t.checked for t in self.traces) else {}),
            "sim_seconds": round(self.seconds, 3),
        }


def default_grid_targets(ck: Checkpoint) -> tuple[list[float | str], list[str]]:
    """The dataset's p10, median and max returns, and one beyond its max: targets
    and their tile labels."""
    d = ck.dataset.as_dict()
    if "return_max" not in d:
        lo, hi = min(ck.spec.target_presets), max(ck.spec.target_presets)
        return [round(float(lo), 1), round(float(hi), 1)], ["low preset", "high preset"]
    hi = float(d["return_max"])
    span = hi - float(d.get("return_min", hi))
    beyond = hi + BEYOND_DATA * (max(abs(hi), span) or 1.0)
    values = [d.get("return_p10", d.get("return_min", hi)), d.get("return_median", hi), hi, beyond]
    names = ["data p10", "data median", "data max", "beyond the data"]
    return [round(float(v), 1) for v in values], names


def parse_grid_targets(targets, ck: Checkpoint) -> tuple[list[float | str], list[str]]:
    """``"a,b,c"``, a list of numbers, or ``""``/None for `default_grid_targets`;
    "best" is a target too for checkpoints with a return head."""
    if targets is None or (isinstance(targets, str) and not targets.strip()):
        return default_grid_targets(ck)
    parts = re.split(r"[,\s;]+", targets.strip()) if isinstance(targets, str) else list(targets)
    parts = [p for p in parts if p != ""]
    if not 1 <= len(parts) <= MAX_TILES:
        raise PlaygroundError(f"A grid has 1 to {MAX_TILES} targets, got {len(parts)}")
    values = [play_target(p, ck) for p in parts]  # numbers, or "best" with a head
    return values, ["" for _ in values]


def play_grid(
    ck: Checkpoint,
    targets,
    seed,
    sample: bool = False,
    progress: Progress | None = None,
    check: bool = False,
) -> GridResult:
    """The same seed at every target, in one batched lock-step rollout.

    Each tile's episode is the one a single play at its target and seed gives
    (batching changes results only by float rounding: `rollout.policy.run_episodes`).
    """
    values, names = parse_grid_targets(targets, ck)
    seed = parse_seed(seed)
    # ``check``: every tile acted by the DT's critic (`rollout.checked`); IQL plays its own.
    policy = policy_for(ck, check, sample=bool(sample) and ck.spec.discrete)
    t0 = time.perf_counter()
    traces = run_episodes(policy, values, [seed] * len(values), MAX_EPISODE_STEPS, progress)
    seconds = time.perf_counter() - t0
    labels = [
        f"{name}: {_short(v)}" if name else f"target {_short(v)}" for v, name in zip(values, names)
    ]
    return GridResult(ck.spec.env_id, ck.name, seed, values, labels, traces, seconds)


def _short(x: float | str) -> str:
    if isinstance(x, str):
        return x
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:g}"
