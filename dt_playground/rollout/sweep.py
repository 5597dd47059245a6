"""Sweeps and comparisons: one checkpoint over targets x seeds (the DT paper's
return-conditioning figure) beside the BC and %BC references at the same seeds, and
every shipped checkpoint of an env on the same seeds.

Requests are checked by `rollout.requests`; a refusal is a `PlaygroundError`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.checkpoints.layout import (
    ALGO_LABELS,
    label_of,
    list_checkpoints,
    parse_env,
    peek_checkpoint,
)
from dt_playground.errors import PlaygroundError
from dt_playground.rollout.evaluate import summarise, sweep
from dt_playground.rollout.metrics import spearman
from dt_playground.rollout.playable import get_playable
from dt_playground.rollout.requests import (
    MAX_EPISODE_STEPS,
    MAX_SWEEP_EPISODES,
    parse_count,
    parse_seed,
    parse_target,
)


def sweep_targets(ck: Checkpoint, n_targets: float, lo=None, hi=None) -> list[float]:
    """``n_targets`` (2 to 20, a whole number) targets evenly from the dataset's p10 to its
    max, or from ``lo`` to ``hi``."""
    d = ck.dataset.as_dict()
    lo = float(d.get("return_p10", d.get("return_min", 0.0))) if lo is None else lo
    hi = float(d.get("return_max", 1.0)) if hi is None else hi
    n = parse_count(n_targets, "Number of targets", 2, 20)
    return np.linspace(lo, hi, n).round(1).tolist()


def references(
    env_id: str, seeds: list[int], max_steps: int, notes: list[str] | None = None
) -> dict[str, float]:
    """Mean return of the env's pretrained BC, %BC and IQL checkpoints at the same seeds
    (a broken one is skipped, with a line in ``notes``). IQL's line is flat like BC's: its
    objective is fixed, whatever the target."""
    out = {}
    for path in list_checkpoints(None, parse_env(env_id), offline=True):
        try:
            ck = get_playable(path)
        except PlaygroundError as exc:
            _note(notes, exc)
            continue
        if ck.algo in ("bc", "pbc", "iql") and ALGO_LABELS[ck.algo] not in out:
            tr = sweep(ck, [0.0], len(seeds), seeds[0], max_steps=max_steps)  # target unused
            out[ALGO_LABELS[ck.algo]] = float(np.mean([t.ret for t in tr]))
    return out


def _note(notes: list[str] | None, exc: Exception) -> None:
    if notes is not None:
        notes.append(f"skipped: {exc}")


def run_sweep(
    ck: Checkpoint,
    targets: list[float],
    n_seeds: int,
    seed: int = 0,
    max_steps: int = MAX_EPISODE_STEPS,
    progress=None,
    check: bool = False,
) -> dict:
    """Targets x seeds in one batched run; the DT paper's return-conditioning figure.
    ``check``: acted by the DT's critic (`rollout.checked`)."""
    n_seeds = parse_count(n_seeds, "Seeds per target", 1, MAX_SWEEP_EPISODES)
    if n_seeds * len(targets) > MAX_SWEEP_EPISODES:
        raise PlaygroundError(
            f"A sweep is at most {MAX_SWEEP_EPISODES} episodes (targets x seeds); "
            f"got {len(targets)} x {n_seeds}"
        )
    targets = [parse_target(t, ck) for t in targets]
    seed = parse_seed(seed)
    t0 = time.perf_counter()
    traces = sweep(ck, targets, n_seeds, seed, max_steps=max_steps, progress=progress, check=check)
    s = summarise(traces)
    d = ck.dataset.as_dict()
    lo, hi = d.get("return_min", -math.inf), d.get("return_max", math.inf)
    in_band = [r for r in s["per_target"] if lo <= r["target"] <= hi]  # the data's range
    return {
        "rows": [t.to_dict() for t in traces],
        "per_target": s["per_target"],
        "spearman": s["spearman"],
        "spearman_in_data_range": spearman(
            [r["target"] for r in in_band], [r["mean"] for r in in_band]
        ),
        "seconds": round(time.perf_counter() - t0, 2),
        **({"checked": True} if check else {}),
    }


def compare_models(
    env_id: str,
    n_seeds: int,
    seed: int = 0,
    target=None,
    max_steps: int = MAX_EPISODE_STEPS,
    notes: list[str] | None = None,
    progress=None,
) -> dict[str, list[float]]:
    """Every pretrained checkpoint of an env on the same seeds (DT at ``target``,
    default its dataset's max). Returns label -> list of returns; a checkpoint that
    can't be loaded is skipped with a line in ``notes``."""
    env_id = parse_env(env_id)
    n = parse_count(n_seeds, "Seeds", 1, 50)
    first = parse_seed(seed)
    results = {}
    paths = list_checkpoints(None, env_id, offline=True)  # IQL: one more row
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i, len(paths))  # per checkpoint: a sweep of one is quick
        try:
            ck = get_playable(path, env_id)
        except PlaygroundError as exc:
            _note(notes, exc)
            continue
        t = ck.dataset.return_max or 0.0 if target is None else target
        traces = sweep(ck, [parse_target(t, ck)], n, first, max_steps=max_steps)
        results[label_of(peek_checkpoint(path), path.name)] = [tr.ret for tr in traces]
    if not results:
        raise PlaygroundError(f"No usable pretrained checkpoints for {env_id} yet.")
    return results


def sweep_with_references(
    ck: Checkpoint, targets: list[float], n_seeds, seed, progress=None, check: bool = False
) -> tuple[dict, dict[str, float]]:
    """`run_sweep` and the BC / %BC / IQL `references` at the same seeds: the Sweep tab's
    run (``check``: the DT acted by its critic)."""
    res = run_sweep(ck, targets, n_seeds, seed, progress=progress, check=check)
    seeds = sweep_seeds(seed, n_seeds)
    return res, references(ck.spec.env_id, seeds, MAX_EPISODE_STEPS)


def compare_report(
    env_id: str, n_seeds, seed, progress=None
) -> tuple[dict[str, list[float]], list[str]]:
    """`compare_models` with its notes returned (for a call in another process)."""
    notes: list[str] = []
    return compare_models(env_id, n_seeds, seed, notes=notes, progress=progress), notes


def sweep_seeds(seed, n_seeds) -> list[int]:
    """The seeds a sweep of ``n_seeds`` from ``seed`` plays (shared with its baselines)."""
    return [parse_seed(seed) + i for i in range(parse_count(n_seeds, "Seeds", 1, 50))]
