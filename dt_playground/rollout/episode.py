"""One return-conditioned episode, as the app plays it: the play itself (no
rendering), what the model attended to at a step, and the episode's summary against
its checkpoint's dataset and card.

Requests are checked by `rollout.requests`; a refusal is a `PlaygroundError`.
"""

from __future__ import annotations

import math

import numpy as np

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.checkpoints.layout import read_json
from dt_playground.dt.return_head import is_best
from dt_playground.envs.episodes import Trace
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.rollout.evaluate import sweep
from dt_playground.rollout.requests import (
    MAX_EPISODE_STEPS,
    parse_count,
    parse_seed,
    parse_target,
    play_target,
)


def play_episode(
    ck: Checkpoint,
    target,
    seed,
    sample: bool = False,
    max_steps: int = MAX_EPISODE_STEPS,
    progress=None,
    check: bool = False,
) -> Trace:
    """One return-conditioned episode (no rendering). ``target`` may be "best" for a
    DT with a return head, whose predicted return-to-go band the trace then carries
    whatever the target (the RTG plot draws it). ``check``: acted by the DT's critic
    (`rollout.checked`), whose value of each chosen action the trace carries."""
    target = play_target(target, ck)
    seed = parse_seed(seed)
    steps = int(min(max(1, max_steps), MAX_EPISODE_STEPS))
    sample = bool(sample) and ck.spec.discrete
    return sweep(
        ck,
        [target],
        1,
        seed,
        sample=sample,
        max_steps=steps,
        progress=progress,
        track_returns=getattr(ck, "offers_best", False),
        check=check,
    )[0]


def attention_at(ck: Checkpoint, target, seed, step, sample: bool = False) -> dict:
    """What the action at ``step`` of this episode attended to.

    Replays the (deterministic) episode up to ``step`` (or its end, if sooner)
    and returns, per block and head, the attention of the state token that chose
    that action over the tokens of its window, oldest first, with labels such as
    ``"R t-3"``, ``"s t"``, ``"a t-1"``.
    """
    import torch

    from dt_playground.rollout.policy import DTPolicy, run_episodes

    if not hasattr(ck, "model") or not hasattr(ck.model, "attention_maps"):
        raise PlaygroundError(f"{ck.name} is not a transformer: it has no attention to show.")
    target = parse_target(target, ck)
    seed = parse_seed(seed)
    step = parse_count(step, "Step", 0, MAX_EPISODE_STEPS - 1)
    policy = DTPolicy.for_checkpoint(ck, sample=bool(sample) and ck.spec.discrete)
    trace = run_episodes(policy, [target], [seed], max_steps=step + 1)[0]
    t = trace.length - 1
    win = policy.window(np.array([0]), t)
    real = int(win["mask"][0].sum())  # steps in the window (fewer than K early on)
    x = {k: torch.from_numpy(v[:, -real:]) for k, v in win.items()}
    maps = ck.model.attention_maps(x["rtg"], x["states"], x["actions"], x["timesteps"])
    n = ck.model.n_tokens
    kinds = ck.model.token_kinds  # (R, s, a), (s, a) for BC, (s, R, a) with a return head
    labels = [
        f"{kind} t-{real - 1 - i}" if i < real - 1 else f"{kind} t"
        for i in range(real)
        for kind in kinds
    ]
    query = n * (real - 1) + n - 2  # the token the action is read from (before a_t)
    weights = [[m[0, h, query, : query + 1].tolist() for h in range(m.shape[1])] for m in maps]
    return {
        "step": t,
        "requested_step": step,
        "return_to_go": float(trace.rtg[t]),
        "tokens": labels[: query + 1],
        "weights": weights,  # [block][head][token]
    }


def episode_summary(trace: Trace, ck: Checkpoint) -> dict:
    """Requested vs achieved, normalised score, where the request sits in the data."""
    d = ck.dataset.as_dict()
    rets = np.asarray(d.get("returns", []), dtype=float)
    asked = not is_best(trace.target) and len(rets)  # "best": the model picks its own
    pct = float((rets < trace.target).mean() * 100) if asked else float("nan")
    return {
        "env_id": ck.spec.env_id,
        "checkpoint": ck.name,
        "algo": ck.algo,
        "seed": trace.seed,
        "requested": trace.target,
        "achieved": round(trace.ret, 3),
        "length": trace.length,
        "terminated": trace.terminated,
        "normalised_score": round(normalised_score(trace.ret, ck), 1),
        "target_percentile_in_dataset": round(pct, 1),
        "dataset_max": d.get("return_max"),
        "sim_seconds": round(trace.wall_time, 3),
        **({"best_on_card": best_on_card(ck)} if is_best(trace.target) else {}),
        **critic_summary(trace),
    }


def critic_summary(trace: Trace) -> dict:
    """A checked episode's line of evidence: what the critic expected at the start (the
    undiscounted return its chosen action promised) beside what was asked and achieved."""
    values = trace.critic_value
    if not trace.checked or values is None or not len(values):
        return {}
    first = float(values[0])
    return {
        "checked": True,
        "critic_expected_at_start": round(first, 1) if math.isfinite(first) else None,
    }


def best_on_card(ck: Checkpoint) -> dict | None:
    """How target best scores on the checkpoint's card (held-out seeds): one episode is
    one draw from this."""
    try:  # an upload's card is the uploader's: size-capped, every value checked
        card = read_json(ck.path / "card.json", "card") if ck.path else {}
        mean, std = float(card["best_mean"]), float(card.get("best_std") or 0.0)
        seeds = card.get("seeds") or []
        if not (math.isfinite(mean) and math.isfinite(std) and isinstance(seeds, list)):
            return None
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None
    return {"mean": round(mean, 1), "std": round(std, 1), "seeds": len(seeds)}


def normalised_score(ret: float, ck: Checkpoint) -> float:
    """0 = random, 100 = expert: the dataset's own ``ref_min_score``/``ref_max_score``
    when it has them (Minari's datasets do), else the env's reference returns."""
    d = ck.dataset.as_dict()
    lo, hi = d.get("ref_min_score"), d.get("ref_max_score")
    if lo is None or hi is None or hi == lo:
        return ck.spec.normalised_score(ret)
    return 100.0 * (ret - lo) / (hi - lo)
