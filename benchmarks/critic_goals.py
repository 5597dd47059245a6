"""The checked DT's goals, measured: unchecked vs checked DT and IQL on the same seeds.

    python benchmarks/critic_goals.py --env Hopper-v5              # card seeds: the table
    python benchmarks/critic_goals.py --env Hopper-v5 --trial --grid 5:0.05,9:0.1
                                                                   # trial seeds: choose n, spread
    python benchmarks/critic_goals.py --env Hopper-v5 --write      # + <dt>/critic/card.json

Each run plays 8 targets from the data's p10 to its max and `best` (DTs with a return
model), ``--seeds`` seeds each (default 10), unchecked and checked in their own lock-step
runs, and IQL at one target (it ignores targets). It prints, per setting: Spearman rho,
the mean |achieved - requested| over the targets up to the data's p90, `best`, and the
goals' ratios. ``--trial`` uses the trial seeds (envs/seeds.py), never the cards'.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dt_playground.atomic import write_json_atomic
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.checkpoints.hub_card import write as write_hub_card
from dt_playground.dt.return_head import BEST
from dt_playground.envs.registry import get_spec
from dt_playground.envs.seeds import CARD_SEED, TRIAL_SEED
from dt_playground.offline.critic import CheckSettings, critic_dir, load_critic
from dt_playground.offline.store import load_iql
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.rollout.checked import CheckedPolicy
from dt_playground.rollout.evaluate import summarise
from dt_playground.rollout.iql_policy import IQLPolicy
from dt_playground.rollout.metrics import spearman
from dt_playground.rollout.policy import DTPolicy, run_grid


def default_of(card: dict) -> str:
    """ "checked" where checking kept rho (within 0.01) and lowered the mean error to the
    asked return, else "unchecked": the better of the two is each env's default."""
    if card.get("abs_err_plain") is None:
        return "checked"
    better = card["abs_err_checked"] < card["abs_err_plain"]
    kept = (card["spearman_checked"] or 0) >= (card["spearman_plain"] or 0) - 0.01
    return "checked" if better and kept else "unchecked"


def metrics(traces, d: dict) -> dict:
    s = summarise(traces)
    rows = s["per_target"]
    best = next((r for r in rows if r["target"] == BEST), None)
    num = [r for r in rows if r["target"] != BEST]
    inside = [r for r in num if r["target"] <= d["return_p90"] + 1e-6]
    return {
        "rows": [
            {"target": r["target"], "mean": round(r["mean"], 2), "std": round(r["std"], 2)}
            for r in rows
        ],
        "spearman": spearman([r["target"] for r in num], [r["mean"] for r in num]),
        "abs_err_p10_p90": float(np.mean([abs(r["mean"] - r["target"]) for r in inside])),
        "best": None if best is None else best["mean"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True)
    p.add_argument("--root", default=str(PRETRAINED_DIR))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--trial", action="store_true", help="trial seeds (choosing n, spread)")
    p.add_argument(
        "--grid",
        default="",
        help="n:spread[:actor],... settings to compare (default: the critic's own)",
    )
    p.add_argument("--no-plain", action="store_true", help="skip the unchecked DT")
    p.add_argument("--no-iql", action="store_true")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--write", action="store_true", help="write <dt>/critic/card.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    spec = get_spec(args.env)
    root = Path(args.root)
    dt_dir = root / f"{spec.short_name}-dt"
    ck = load_checkpoint(dt_dir)
    d = ck.config["dataset"]
    critic, own = load_critic(dt_dir, ck.config)
    first = TRIAL_SEED if args.trial else CARD_SEED
    seeds = range(first, first + args.seeds)
    targets = np.linspace(d["return_p10"], d["return_max"], 8).round(2).tolist()
    targets += [BEST] if ck.offers_best else []
    out = {
        "env_id": spec.env_id,
        "seeds": [first, first + args.seeds - 1],
        "trial": args.trial,
        "dataset_top10_mean": d["return_top10_mean"],
        "dataset_min": d["return_min"],
        "pbc": (
            json.loads((root / f"{spec.short_name}-pbc" / "card.json").read_text())[
                "top_target_mean"
            ]
            if (root / f"{spec.short_name}-pbc" / "card.json").is_file()
            else None
        ),
    }
    kw = dict(max_steps=args.max_steps)
    if not args.no_plain:
        t0 = time.perf_counter()
        out["plain"] = metrics(run_grid(DTPolicy.for_checkpoint(ck), targets, seeds, **kw), d)
        out["plain"]["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({"plain": out["plain"]}), flush=True)
    if not args.no_iql and (root / f"{spec.short_name}-iql").is_dir():
        iql = load_iql(root / f"{spec.short_name}-iql")
        tr = run_grid(IQLPolicy(iql), [d["return_max"]], seeds, **kw)
        rets = [t.ret for t in tr]
        out["iql"] = {"mean": float(np.mean(rets)), "std": float(np.std(rets))}
        print(json.dumps({"iql": out["iql"]}), flush=True)
    settings = (
        [own]
        if not args.grid
        else [
            CheckSettings(
                int(x.split(":")[0]),
                float(x.split(":")[1]),
                len(x.split(":")) > 2 and x.split(":")[2] == "actor",
            )
            for x in args.grid.split(",")
        ]
    )
    out["checked"] = []
    for st in settings:
        t0 = time.perf_counter()
        pol = CheckedPolicy.for_checkpoint(ck, critic=critic, settings=st)
        m = metrics(run_grid(pol, targets, seeds, **kw), d)
        m["settings"] = st.to_dict()
        m["seconds"] = round(time.perf_counter() - t0, 1)
        out["checked"].append(m)
        print(json.dumps({"checked": m}), flush=True)
    if args.write and not args.trial:
        m, plain = out["checked"][0], out.get("plain")
        card = {
            "env_id": spec.env_id,
            "seeds": list(seeds),
            **m["settings"],
            "rows": [
                {"target": a["target"], "plain": a["mean"], "checked": b["mean"]}
                for a, b in zip(plain["rows"], m["rows"])
            ]
            if plain
            else [],
            "spearman_plain": plain and plain["spearman"],
            "spearman_checked": m["spearman"],
            "abs_err_plain": plain and plain["abs_err_p10_p90"],
            "abs_err_checked": m["abs_err_p10_p90"],
            "best_plain": plain and plain["best"],
            "best_checked": m["best"],
            "iql": out.get("iql"),
        }
        card["default"] = default_of(card)
        write_json_atomic(critic_dir(dt_dir) / "card.json", card)
        write_hub_card(dt_dir)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
