"""Evaluation of checkpoints: single targets, sweeps over targets x seeds, cards."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dt_playground.checkpoints.checkpoint import Checkpoint, load_checkpoint
from dt_playground.checkpoints.layout import read_json
from dt_playground.dt.return_head import BEST, NO_BEST, is_best
from dt_playground.envs.episodes import Trace
from dt_playground.envs.seeds import CARD_SEED
from dt_playground.errors import CheckpointError, NoReturnHeadError
from dt_playground.offline.critic import load_critic
from dt_playground.offline.store import IQLCheckpoint, load_iql
from dt_playground.rollout.checked import CheckedPolicy
from dt_playground.rollout.iql_policy import IQLPolicy
from dt_playground.rollout.metrics import spearman
from dt_playground.rollout.policy import DTPolicy, run_grid

EVAL_SEED_BASE = CARD_SEED  # the default first seed: the cards' range (seeds.py)
MAX_ABS_TARGET = 1e6


def check_target(target, spec=None) -> float:
    """A target return as a finite float, or a ValueError saying what is wrong."""
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise ValueError(f"Target return must be a number, got {target!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"Target return must be finite, got {target!r}")
    limit = MAX_ABS_TARGET
    if spec is not None:
        limit = min(limit, 100 * max(abs(spec.expert_return), abs(spec.random_return), 1.0))
    if abs(value) > limit:
        raise ValueError(f"Target return {value:g} is out of range (|target| <= {limit:g})")
    return value


def as_checkpoint(ckpt: Checkpoint | str) -> Checkpoint:
    return ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)


def algo_of(path: Path | str) -> str | None:
    """The ``algo`` a checkpoint folder's config.json names (None if unreadable)."""
    try:
        algo = read_json(Path(path) / "config.json", "config").get("algo")
    except CheckpointError:
        return None
    return algo if isinstance(algo, str) else None


def load_any(ckpt: Checkpoint | IQLCheckpoint | str | Path) -> Checkpoint | IQLCheckpoint:
    """A DT/BC/%BC checkpoint, or an IQL one, by what its folder says it is."""
    if isinstance(ckpt, (Checkpoint, IQLCheckpoint)):
        return ckpt
    return load_iql(ckpt) if algo_of(ckpt) == "iql" else load_checkpoint(ckpt)


def policy_for(ckpt: Checkpoint | IQLCheckpoint, check: bool = False, **kwargs):
    """The policy that plays ``ckpt``: a `DTPolicy`, with ``check`` a `CheckedPolicy` with
    the DT's critic (refused, with how to make one, when it has none; refused for BC and
    %BC, which have no return input to propose with), or an `IQLPolicy`. ``kwargs``: the
    `DTPolicy` options (ignored by IQL)."""
    if isinstance(ckpt, IQLCheckpoint):
        if check:
            raise CheckpointError(
                "IQL is not checked: it has no return input to propose candidates with; check a DT"
            )
        return IQLPolicy(ckpt)
    if not check:
        return DTPolicy.for_checkpoint(ckpt, **kwargs)
    critic, settings = load_critic(ckpt.path, ckpt.config)
    return CheckedPolicy.for_checkpoint(ckpt, critic=critic, settings=settings, **kwargs)


def sweep(
    ckpt: Checkpoint | IQLCheckpoint | str,
    targets,
    n_seeds: int,
    seed: int = EVAL_SEED_BASE,
    sample: bool = False,
    max_steps: int | None = None,
    progress=None,
    precision: str = "fp32",
    kappa: float | None = None,
    track_returns: bool = False,
    engine: str = "fast",
    device: str = "cpu",
    check: bool = False,
) -> list[Trace]:
    """Every target x seeds ``seed .. seed + n_seeds - 1``, batched in one lock-step run.
    A target may be "best" (checkpoints with a return model; ``kappa`` (None: the
    checkpoint's, `Checkpoint.best_kappa`), ``track_returns``:
    see `rollout.policy.DTPolicy` and dt.return_head).

    BC checkpoints ignore the target (they have no return input), but are run
    at the same seeds so their numbers line up with the DT's. ``precision="bf16"``
    is faster for large batches; the cards are fp32. ``engine`` "reference" acts
    through the model's plain forward; ``device`` "cuda" pays for hundreds of episodes.
    ``check``: value-checked acting with the DT's critic (`rollout.checked`). An IQL
    checkpoint plays its fixed objective whatever the targets (`rollout.iql_policy`).
    """
    ckpt = load_any(ckpt)
    targets = [BEST if is_best(t) else check_target(t, ckpt.spec) for t in targets]
    is_iql = isinstance(ckpt, IQLCheckpoint)
    if BEST in targets and not is_iql and not ckpt.offers_best:
        raise NoReturnHeadError(NO_BEST)
    policy = policy_for(
        ckpt,
        check,
        sample=sample,
        precision=precision,
        kappa=kappa,
        track_returns=track_returns,
        engine=engine,
        device=device,
    )
    seeds = range(seed, seed + n_seeds)
    return run_grid(policy, targets, seeds, max_steps=max_steps, progress=progress)


def summarise(traces: list[Trace]) -> dict:
    """Per-target mean/std of achieved return and Spearman rho of target vs mean
    (numeric targets; a "best" row comes last)."""
    found = {t.target for t in traces}
    targets = sorted(t for t in found if not is_best(t)) + [t for t in found if is_best(t)]
    rows = []
    for t in targets:
        rets = np.array([tr.ret for tr in traces if tr.target == t])
        rows.append(
            {"target": t, "mean": float(rets.mean()), "std": float(rets.std()), "n": int(len(rets))}
        )
    num = [r for r in rows if not is_best(r["target"])]
    return {
        "per_target": rows,
        "spearman": spearman([r["target"] for r in num], [r["mean"] for r in num]),
    }
