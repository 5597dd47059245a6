"""Did each stretch of a re-prompted episode deliver what it was asked for?

A schedule ("0:3000,300:500") re-prompts the model: from each switch on, its
return-to-go is the new target. A stretch that runs to the episode's end can be held to
that target; one cut short by the next switch can only be caught overshooting (it had
already collected more than it was asked for). Pure arithmetic over `segments` rows
(``{start, target, steps, return}``), no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MET_FRACTION = 0.10  # within 10% of the target (and of MET_MIN) counts as delivered
MET_MIN = 1.0


@dataclass(frozen=True)
class Delivery:
    """One stretch's verdict: ``met``, ``over``, ``under``, ``cut short`` (re-prompted
    before it could finish, not over yet), ``not reached`` or ``best`` (the model picked its
    own target: nothing to hold it to). ``miss``: collected minus asked (None without a
    verdict on a number)."""

    start: int
    target: float | str
    collected: float
    steps: int
    verdict: str
    miss: float | None


def tolerance(target: float) -> float:
    """How far from ``target`` a stretch may end and still count as delivered."""
    return max(MET_FRACTION * abs(target), MET_MIN)


def judge(segments: list[dict], length: int) -> list[dict]:
    """A `Delivery` (as a dict) per segment of an episode of ``length`` steps."""
    out = []
    for seg in segments:
        start, target, steps = seg["start"], seg["target"], seg["steps"]
        got = float(seg["return"])
        ends_episode = steps > 0 and start + steps >= length
        miss = None
        if steps == 0:
            verdict = "not reached"
        elif not isinstance(target, (int, float)):
            verdict = "best"
        else:
            miss = got - float(target)
            if abs(miss) <= tolerance(float(target)):
                verdict = "met" if ends_episode else "cut short"
            elif miss > 0:
                verdict = "over"
            else:
                verdict = "under" if ends_episode else "cut short"
            if verdict == "cut short":
                miss = None  # it had not finished: no shortfall to speak of
        out.append(
            asdict(
                Delivery(
                    start,
                    target,
                    round(got, 3),
                    steps,
                    verdict,
                    None if miss is None else round(miss, 3),
                )
            )
        )
    return out
