"""The checked DT's goals, measured: unchecked vs checked DT and IQL on the same seeds.

    python benchmarks/critic_goals.py --env Hopper-v5              # card seeds: the table
    python benchmarks/critic_goals.py --env Hopper-v5 --trial --grid 5:0.05,9:0.1
                                                                   # trial seeds: choose n, spread
    python benchmarks/critic_goals.py --env Hopper-v5 --write      # + <dt>/critic/card.json
    python benchmarks/critic_goals.py --tables                     # docs/critic.md's tables

Each run plays 8 targets from the data's p10 to its max and `best` (DTs with a return
model), ``--seeds`` seeds each (default 10), unchecked and checked in their own lock-step
runs, and IQL at one target (it ignores targets). It prints, per setting: Spearman rho,
the mean |achieved - requested| over the targets up to the data's p90, `best`, and the
goals' ratios. ``--trial`` uses the trial seeds (envs/seeds.py), never the cards'.
A ``--grid`` setting is ``n:spread`` followed by any of ``:actor`` (IQL's action is a
candidate for `best`), ``:asks`` (for numeric asks too), ``:noq`` (`best` plays the
DT's own action). ``--tables`` writes docs/critic.md's tables from the shipped cards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dt_playground.atomic import write_text_atomic
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.envs.registry import get_spec
from dt_playground.envs.seeds import CARD_SEED, TRIAL_SEED
from dt_playground.offline.critic import CheckSettings, load_critic
from dt_playground.offline.store import load_iql
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.rollout.checked import CheckedPolicy
from dt_playground.rollout.iql_policy import IQLPolicy
from dt_playground.rollout.policy import DTPolicy, run_grid
from dt_playground.training.critic_refit import is_refit
from dt_playground.zoo.critic_card import card_of, card_targets, goal_metrics, write_critic_card
from dt_playground.zoo.offline_zoo import IQL_RECIPES, SELECT_SEEDS, SNAPSHOT_EVERY


def parse_setting(token: str) -> CheckSettings:
    """``n:spread[:actor][:asks][:noq]`` as `CheckSettings`."""
    n, spread, *flags = token.split(":")
    unknown = set(flags) - {"actor", "asks", "noq"}
    if unknown:
        raise SystemExit(f"unknown --grid flags {sorted(unknown)}: use actor, asks, noq")
    return CheckSettings(
        int(n),
        float(spread),
        actor="actor" in flags,
        actor_asks="asks" in flags,
        q_for_best="noq" not in flags,
    )


TABLES_START, TABLES_END = "<!-- tables:start -->", "<!-- tables:end -->"
ENVS = tuple(IQL_RECIPES)  # the six envs with IQL and a critic, in the zoo's order


def _flags(card: dict) -> str:
    out = [f"{card['n']}, {card['spread']:g}"]
    out += ["actor"] * bool(card.get("actor")) + ["asks"] * bool(card.get("actor_asks"))
    out += ["DT's best"] * (card.get("q_for_best") is False)
    return ", ".join(out)


def tables(root: Path) -> str:
    """docs/critic.md's tables: IQL against %BC, and checked against unchecked, from the
    shipped cards (card seeds only)."""
    iql_rows, dt_rows = [], []
    for env in ENVS:
        short = get_spec(env).short_name
        dt = json.loads((root / f"{short}-dt" / "config.json").read_text())
        d = dt["dataset"]
        top, lo = d["return_top10_mean"], d["return_min"]
        iql = json.loads((root / f"{short}-iql" / "card.json").read_text())
        cfg = json.loads((root / f"{short}-iql" / "config.json").read_text())
        pbc = json.loads((root / f"{short}-pbc" / "card.json").read_text())["top_target_mean"]
        m, sd = iql["top_target_mean"], iql["returns_std"]
        short_of = (top - m) / max(top - lo, 1e-9)
        iql_rows.append(
            f"| {env.split('-')[0]} | {top:.0f} | {pbc:.0f} | {m:.0f} ± {sd:.0f} | "
            f"{(cfg.get('selected') or {}).get('step', cfg['steps_done'])}/{cfg['iql']['steps']}"
            f" | {'yes' if m >= pbc else 'no'} | "
            f"{'yes' if short_of <= 0.05 else 'no'} ({100 * short_of:.1f}%) |"
        )
        c = json.loads((root / f"{short}-dt" / "critic" / "card.json").read_text())
        ratio = c["abs_err_checked"] / c["abs_err_plain"]
        best = (
            "— | —"
            if c["best_plain"] is None
            else f"{c['best_plain']:.0f} | {c['best_checked']:.0f}"
        )
        dt_rows.append(
            f"| {env.split('-')[0]} | {_flags(c)} | {c['spearman_plain']:.3f} | "
            f"{c['spearman_checked']:.3f} | {c['abs_err_plain']:.1f} | "
            f"{c['abs_err_checked']:.1f} | {ratio:.2f} | {best} | {c['default']} |"
        )
    return "\n".join(
        [
            "IQL plays the data's max (it ignores targets) on 30 card seeds; its actor is the "
            f"snapshot of its run (every {SNAPSHOT_EVERY} steps) that played best on "
            f"{SELECT_SEEDS} trial seeds, at the step shown. %BC is its card (30 seeds). The "
            "checked and unchecked DT play the same 10 card seeds a target, in their own "
            "lock-step runs. Written by "
            "`benchmarks/critic_goals.py --tables`.",
            "",
            "| env | data top-10% | %BC | IQL (30 seeds) | IQL snapshot/run | IQL >= %BC | "
            "IQL within 5% |",
            "|---|---:|---:|---:|---:|---|---|",
            *iql_rows,
            "",
            "| env | check (n, spread, switches) | rho unchecked | rho checked | mean abs err "
            "p10..p90 unchecked | checked | ratio | best unchecked | best checked | default |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
            *dt_rows,
            "",
        ]
    )


def readme_table(root: Path) -> str:
    """The README's short table: per env, what checking does on the card seeds."""
    rows = []
    for env in ENVS:
        c = json.loads(
            (root / f"{get_spec(env).short_name}-dt" / "critic" / "card.json").read_text()
        )
        best = (
            "—" if c["best_plain"] is None else f"{c['best_plain']:.0f} → {c['best_checked']:.0f}"
        )
        rows.append(
            f"| {env.split('-')[0]} | {c['abs_err_plain']:.1f} → {c['abs_err_checked']:.1f} "
            f"({c['abs_err_checked'] / c['abs_err_plain']:.2f}x) | "
            f"{c['spearman_plain']:.3f} → {c['spearman_checked']:.3f} | {best} | "
            f"{c['default']} |"
        )
    return "\n".join(
        [
            "| env | mean \\|achieved − asked\\| (p10..p90), unchecked → checked | rho | "
            "`best` | default |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", help="the env (every run but --tables)")
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
    p.add_argument(
        "--tables", action="store_true", help="rewrite docs/critic.md's tables from the cards"
    )
    args = p.parse_args(argv)
    if args.tables:
        repo = Path(__file__).resolve().parents[1]
        for doc, text in (
            (repo / "docs" / "critic.md", tables(Path(args.root))),
            (repo / "README.md", readme_table(Path(args.root))),
        ):
            old = doc.read_text()
            a, b = old.index(TABLES_START) + len(TABLES_START), old.index(TABLES_END)
            write_text_atomic(doc, old[:a] + "\n" + text + old[b:])
            print(text)
        return 0
    if not args.env:
        p.error("--env is required (except with --tables)")
    torch.set_num_threads(1)
    spec = get_spec(args.env)
    root = Path(args.root)
    dt_dir = root / f"{spec.short_name}-dt"
    ck = load_checkpoint(dt_dir)
    d = ck.config["dataset"]
    critic, own = load_critic(dt_dir, ck.config)
    first = TRIAL_SEED if args.trial else CARD_SEED
    seeds = range(first, first + args.seeds)
    targets = card_targets(ck)
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
        out["plain"] = goal_metrics(run_grid(DTPolicy.for_checkpoint(ck), targets, seeds, **kw), d)
        out["plain"]["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({"plain": out["plain"]}), flush=True)
    if not args.no_iql and (root / f"{spec.short_name}-iql").is_dir():
        iql = load_iql(root / f"{spec.short_name}-iql")
        tr = run_grid(IQLPolicy(iql), [d["return_max"]], seeds, **kw)
        rets = [t.ret for t in tr]
        out["iql"] = {"mean": float(np.mean(rets)), "std": float(np.std(rets))}
        print(json.dumps({"iql": out["iql"]}), flush=True)
    settings = [own] if not args.grid else [parse_setting(x) for x in args.grid.split(",")]
    out["checked"] = []
    for st in settings:
        t0 = time.perf_counter()
        pol = CheckedPolicy.for_checkpoint(ck, critic=critic, settings=st)
        m = goal_metrics(run_grid(pol, targets, seeds, **kw), d)
        m["settings"] = st.to_dict()
        m["seconds"] = round(time.perf_counter() - t0, 1)
        out["checked"].append(m)
        print(json.dumps({"checked": m}), flush=True)
    if args.write and not args.trial:
        card = card_of(
            spec.env_id,
            seeds,
            out["checked"][0],
            out.get("plain"),
            iql=out.get("iql"),
            refit=is_refit(critic.config),
        )
        write_critic_card(dt_dir, card)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
