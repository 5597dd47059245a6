"""Target schedules: re-prompting a model mid-episode.

A schedule such as ``"0:3000,300:500"`` prompts the model anew: at step 300 its
return-to-go is reset to 500, whatever it has collected so far. `segments` splits the
episode's return at the switches.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.dt.return_head import BEST, is_best
from dt_playground.envs.episodes import Progress, Trace
from dt_playground.errors import PlaygroundError
from dt_playground.rollout.delivery import judge
from dt_playground.rollout.episode import episode_summary
from dt_playground.rollout.evaluate import policy_for
from dt_playground.rollout.policy import run_episodes
from dt_playground.rollout.requests import MAX_EPISODE_STEPS, parse_count, parse_seed, play_target

MAX_SCHEDULE_ENTRIES = 20


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
    policy = policy_for(ck, sample=bool(sample) and ck.spec.discrete)  # IQL too
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
            {
                "start": start,
                "target": schedule[start],
                "steps": len(part),
                "return": round(float(part.sum()), 3),
            }
        )
    return out


def schedule_summary(trace: Trace, ck: Checkpoint, schedule) -> dict:
    """`rollout.episode.episode_summary` plus the schedule and its segments."""
    schedule = parse_schedule(schedule)
    summary = (
        episode_summary(trace, ck)
        if not is_best(trace.target)
        else {
            # A "best" start has no number to place in the dataset's returns.
            **episode_summary(dataclasses.replace(trace, target=0.0), ck),
            "requested": BEST,
            "target_percentile_in_dataset": None,
        }
    )
    segs = segments(trace, schedule)
    return {
        **summary,
        "schedule": [{"step": s, "target": v} for s, v in schedule.items()],
        "segments": segs,
        "delivery": judge(segs, trace.length),  # each stretch over, under or on target
    }
