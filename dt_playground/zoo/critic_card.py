"""A K=20 DT's critic card (``<dt>/critic/card.json``): the DT unchecked and checked by
its critic, each in its own lock-step run, on the same card seeds (never used for
training or selection), 8 targets from the data's p10 to its max and `best`.

The card holds Spearman rho over the numeric targets, the mean |achieved - asked| over
the targets up to the data's p90, `best`, and each env's default (`offline.critic.
default_of`: checked only where it measured at least as good everywhere and better
once). `pretrain` writes it after the critic; ``benchmarks/critic_goals.py`` compares
other settings with the same measures.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dt_playground.atomic import write_json_atomic
from dt_playground.checkpoints import hub_card
from dt_playground.dt.return_head import BEST
from dt_playground.envs.seeds import CARD_SEED
from dt_playground.offline.critic import critic_dir, default_of, load_critic
from dt_playground.rollout.evaluate import summarise
from dt_playground.rollout.metrics import spearman
from dt_playground.training.critic_refit import grid_targets, is_refit

CRITIC_CARD_SEEDS = 10  # seeds a target: the protocol for the critic's goals


def goal_metrics(traces, dataset: dict) -> dict:
    """rho, the mean |achieved - asked| up to the data's p90 and `best`, of a grid run."""
    s = summarise(traces)
    rows = s["per_target"]
    best = next((r for r in rows if r["target"] == BEST), None)
    num = [r for r in rows if r["target"] != BEST]
    inside = [r for r in num if r["target"] <= dataset["return_p90"] + 1e-6]
    return {
        "rows": [
            {"target": r["target"], "mean": round(r["mean"], 2), "std": round(r["std"], 2)}
            for r in rows
        ],
        "spearman": spearman([r["target"] for r in num], [r["mean"] for r in num]),
        "abs_err_p10_p90": float(np.mean([abs(r["mean"] - r["target"]) for r in inside])),
        "best": None if best is None else best["mean"],
    }


def card_targets(ck) -> list:
    """The targets a DT's critic card plays: 8 from the data's p10 to its max, and `best`
    where the DT has a return model."""
    return grid_targets(ck.config["dataset"]) + ([BEST] if ck.offers_best else [])


def card_of(
    env_id: str,
    seeds,
    checked: dict,
    plain: dict | None,
    iql: dict | None = None,
    refit: bool = False,
) -> dict:
    """The card of one checked run (its ``settings`` included) beside the plain one."""
    card = {
        "env_id": env_id,
        "seeds": list(seeds),
        **checked["settings"],
        "rows": [
            {"target": a["target"], "plain": a["mean"], "checked": b["mean"]}
            for a, b in zip(plain["rows"], checked["rows"])
        ]
        if plain
        else [],
        "spearman_plain": plain and plain["spearman"],
        "spearman_checked": checked["spearman"],
        "abs_err_plain": plain and plain["abs_err_p10_p90"],
        "abs_err_checked": checked["abs_err_p10_p90"],
        "best_plain": plain and plain["best"],
        "best_checked": checked["best"],
        "iql": iql,
        "refit": refit,
    }
    card["default"] = default_of(card)
    return card


def critic_card(
    dt_dir: Path | str, n_seeds: int | None = None, max_steps: int | None = None
) -> dict:
    """The critic card of the DT in ``dt_dir``, measured with the critic's own settings."""
    from dt_playground.checkpoints.checkpoint import load_checkpoint
    from dt_playground.rollout.checked import CheckedPolicy
    from dt_playground.rollout.policy import DTPolicy, run_grid

    ck = load_checkpoint(dt_dir)
    d = ck.config["dataset"]
    critic, own = load_critic(dt_dir, ck.config)
    seeds = range(CARD_SEED, CARD_SEED + (n_seeds or CRITIC_CARD_SEEDS))
    targets = card_targets(ck)
    t0 = time.perf_counter()
    plain = goal_metrics(run_grid(DTPolicy.for_checkpoint(ck), targets, seeds, max_steps), d)
    plain["seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    policy = CheckedPolicy.for_checkpoint(ck, critic=critic, settings=own)
    checked = goal_metrics(run_grid(policy, targets, seeds, max_steps), d)
    checked["settings"] = own.to_dict()
    checked["seconds"] = round(time.perf_counter() - t0, 1)
    return card_of(ck.spec.env_id, seeds, checked, plain, refit=is_refit(critic.config))


def write_critic_card(dt_dir: Path | str, card: dict) -> None:
    """``card`` as ``<dt>/critic/card.json``, and the DT's Hub README with its rows."""
    write_json_atomic(critic_dir(dt_dir) / "card.json", card)
    hub_card.write(dt_dir)
