"""A play's request, checked: targets, seeds and counts from a form field or an API
argument, and the limits every request keeps to.

Each refusal is a `PlaygroundError` (a ValueError) whose message can be shown as is,
so the app checks a request before it queues any work.
"""

from __future__ import annotations

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.dt.return_head import BEST, is_best
from dt_playground.errors import PlaygroundError
from dt_playground.offline.store import IQLCheckpoint
from dt_playground.rollout.evaluate import check_target

MAX_EPISODE_STEPS = 1000  # every registered env ends by then
MAX_SWEEP_EPISODES = 100


def parse_count(value, what: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] from a form field or API argument."""
    try:
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise PlaygroundError(f"{what} must be a whole number, got {str(value)[:30]!r}") from None
    if not lo <= n <= hi:
        raise PlaygroundError(f"{what} must be between {lo} and {hi}, got {n}")
    return n


def parse_seed(value) -> int:
    """A reset seed: a whole number in [0, 2**31)."""
    return parse_count(value, "Seed", 0, 2**31 - 1)


def parse_target(value, ck: Checkpoint | IQLCheckpoint) -> float:
    """A numeric target return within the checkpoint's env's bounds."""
    try:
        return check_target(value, ck.spec)
    except ValueError as exc:
        raise PlaygroundError(str(exc)) from None


def play_target(value, ck: Checkpoint | IQLCheckpoint) -> float | str:
    """A checked target: a number, or "best" for a DT with a return model
    (`dt.return_head`)."""
    if not is_best(value):
        return parse_target(value, ck)
    if not getattr(ck, "offers_best", False):  # IQL: no return model either
        raise PlaygroundError(
            f"{ck.name} has no return model, so it can't pick its own 'best' "
            "target: ask for a number"
        )
    return BEST
