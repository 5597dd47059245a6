"""Return conditioning at a glance: the target grid and mid-episode re-prompting.

* The **target grid** plays one seed at several targets in one batched
  rollout (`rollout.run_episodes`), so the tiles differ only in what the model
  was asked for; `tiles.render_grid` replays them into one synchronised video.
* A **target schedule** such as ``"0:3000,300:500"`` prompts the model anew
  mid-episode: at step 300 its return-to-go is reset to 500, whatever it has
  collected so far. `segments` splits the episode's return at the switches.

Requests are checked here as in `playground` (the same `PlaygroundError`s), so
the app's handlers stay one library call each.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.dt.return_head import BEST, is_best
from dt_playground.envs.episodes import Trace
from dt_playground.errors import PlaygroundError
from dt_playground.media.replay import Progress, VideoInfo
from dt_playground.media.tiles import MAX_TILES, render_grid
from dt_playground.rollout.policy import DTPolicy, run_episodes
from dt_playground.serve.play import (
    MAX_EPISODE_STEPS,
    MAX_VIDEO_FRAMES,
    episode_summary,
    normalised_score,
    parse_count,
    parse_seed,
    play_target,
)

MAX_SCHEDULE_ENTRIES = 20
# "Ask for more than the data": the grid's last default tile asks for the
# dataset's best return plus half of max(|best|, the data's range): 1.5x max
# where returns are positive and large (Hopper, CartPole); for Pendulum, whose
# best is ~0, half the range above it.
BEYOND_DATA = 0.5


# ---------------------------------------------------------------- target grid


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
            "sim_seconds": round(self.seconds, 3),
        }


def default_grid_targets(ck: Checkpoint) -> tuple[list[float], list[str]]:
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


def parse_grid_targets(targets, ck: Checkpoint) -> tuple[list[float], list[str]]:
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
    ck: Checkpoint, targets, seed, sample: bool = False, progress: Progress | None = None
) -> GridResult:
    """The same seed at every target, in one batched lock-step rollout.

    Each tile's episode is the one a single play at its target and seed gives
    (batching changes results only by float rounding: `rollout.run_episodes`).
    """
    values, names = parse_grid_targets(targets, ck)
    seed = parse_seed(seed)
    policy = DTPolicy.for_checkpoint(ck, sample=bool(sample) and ck.spec.discrete)
    t0 = time.perf_counter()
    traces = run_episodes(policy, values, [seed] * len(values), MAX_EPISODE_STEPS, progress)
    seconds = time.perf_counter() - t0
    labels = [
        f"{name}: {_short(v)}" if name else f"target {_short(v)}" for v, name in zip(values, names)
    ]
    return GridResult(ck.spec.env_id, ck.name, seed, values, labels, traces, seconds)


def grid_video(
    result: GridResult, out_path: str | Path, progress: Progress | None = None
) -> VideoInfo:
    """The grid's tiled video (`tiles.render_grid`), labelled as its tiles."""
    return render_grid(result.traces, out_path, result.labels, max_frames=MAX_VIDEO_FRAMES,
                       progress=progress)


def _short(x: float | str) -> str:
    if isinstance(x, str):
        return x
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:g}"


# ---------------------------------------------------------------- schedules


def parse_schedule(text) -> dict[int, float | str]:
    """``"0:3000,300:500"`` -> ``{0: 3000.0, 300: 500.0}`` (step: target).

    Steps are whole numbers in [0, MAX_EPISODE_STEPS), each at most once; the
    schedule starts at step 0. Values are numbers or "best" (checked against the
    checkpoint by `play_schedule`).
    """
    if isinstance(text, dict):
        items = list(text.items())
    else:
        chunks = [c for c in re.split(r"[,;\n]+", str(text or "")) if c.strip()]
        items = []
        for chunk in chunks:
            step, sep, value = chunk.partition(":")
            if not sep:
                raise PlaygroundError(
                    f"Schedule entries are step:target pairs such as 300:500, got {chunk.strip()!r}"
                )
            items.append((step.strip(), value.strip()))
    if not items:
        raise PlaygroundError("The schedule is empty: give step:target pairs, e.g. 0:3000,300:500")
    if len(items) > MAX_SCHEDULE_ENTRIES:
        raise PlaygroundError(f"A schedule has at most {MAX_SCHEDULE_ENTRIES} entries")
    schedule: dict[int, float | str] = {}
    for step, value in items:
        s = parse_count(step, "Schedule step", 0, MAX_EPISODE_STEPS - 1)
        if s in schedule:
            raise PlaygroundError(f"Step {s} appears twice in the schedule")
        if is_best(value):
            schedule[s] = BEST
            continue
        try:
            schedule[s] = float(value)
        except (TypeError, ValueError):
            raise PlaygroundError(f"Schedule target must be a number, got {value!r}") from None
    if 0 not in schedule:
        raise PlaygroundError("The schedule must start at step 0 (e.g. 0:3000,300:500)")
    return dict(sorted(schedule.items()))


def play_schedule(
    ck: Checkpoint, schedule, seed, sample: bool = False, progress: Progress | None = None
) -> Trace:
    """One episode whose return-to-go is reset to ``schedule[step]`` at each step of
    the schedule (a string for `parse_schedule`, or a dict). With the single entry
    ``{0: R}`` it is the plain play at target R."""
    schedule = {s: play_target(v, ck) for s, v in parse_schedule(schedule).items()}
    seed = parse_seed(seed)
    policy = DTPolicy.for_checkpoint(ck, sample=bool(sample) and ck.spec.discrete)
    return run_episodes(
        policy, [schedule[0]], [seed], MAX_EPISODE_STEPS, progress, schedules=[schedule]
    )[0]


def segments(trace: Trace, schedule) -> list[dict]:
    """The return gained in each stretch of the schedule: ``[{start, target, steps,
    return}]``; a stretch the episode never reached has 0 steps."""
    schedule = parse_schedule(schedule)
    rewards = np.asarray(trace.rewards, dtype=np.float64)
    starts = list(schedule)
    out = []
    for i, start in enumerate(starts):
        end = min(starts[i + 1] if i + 1 < len(starts) else trace.length, trace.length)
        part = rewards[start:end] if start < end else rewards[:0]
        out.append(
            {"start": start, "target": schedule[start], "steps": len(part),
             "return": round(float(part.sum()), 3)}
        )
    return out


def schedule_summary(trace: Trace, ck: Checkpoint, schedule) -> dict:
    """`playground.episode_summary` plus the schedule and its segments."""
    schedule = parse_schedule(schedule)
    summary = episode_summary(trace, ck) if not is_best(trace.target) else {
        # A "best" start has no number to place in the dataset's returns.
        **episode_summary(dataclasses.replace(trace, target=0.0), ck),
        "requested": BEST,
        "target_percentile_in_dataset": None,
    }
    from dt_playground.rollout.delivery import judge

    segs = segments(trace, schedule)
    return {
        **summary,
        "schedule": [{"step": s, "target": v} for s, v in schedule.items()],
        "segments": segs,
        "delivery": judge(segs, trace.length),  # each stretch over, under or on target
    }

