"""Rebuild part of the zoo with the current code: train the named runs, then re-evaluate
every checkpoint of the env (cards, Hub READMEs).

    python scripts/rebuild_zoo.py --env Hopper-v5 --runs all
    python scripts/rebuild_zoo.py --env HalfCheetah-v5 --runs dt:20

`pretrain --env E` rebuilds an env's whole zoo; this trains only ``--runs`` (``algo:K``,
or ``all`` for the recipe's full list), on data the current code reproduces
(`pretrain --verify` checks it). Cards use the card seeds (`seeds.CARD_SEED` on), never
used in training or model selection.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dt_playground.atomic import write_json_atomic  # noqa: E402
from dt_playground.checkpoints import hub_card  # noqa: E402
from dt_playground.data.storage import (  # noqa: E402
    DEFAULT_DATA_ROOT,  # noqa: E402
    read_collection,
    resolve_dataset,
)
from dt_playground.dt.runtime import setup_process  # noqa: E402
from dt_playground.paths import pretrained_dir  # noqa: E402
from dt_playground.zoo.cards import CARD_SEEDS, card_evaluation  # noqa: E402
from dt_playground.zoo.pretrain import RECIPES, _train_one, checkpoint_name, ensure_dataset  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", required=True)
    ap.add_argument(
        "--runs",
        default="dt:20",
        help="comma list of algo:K, 'all' (the recipe's), or 'none' (cards only)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-cards", action="store_true")
    args = ap.parse_args()
    setup_process(args.threads)
    recipe = RECIPES[args.env]
    everything = [("bc", 20), ("pbc", 20), ("dt", 20)] + [("dt", k) for k in recipe.ablation_ks]
    runs = (
        everything
        if args.runs == "all"
        else []
        if args.runs == "none"
        else [(a, int(k)) for a, k in (r.split(":") for r in args.runs.split(","))]
    )
    t0 = time.perf_counter()
    dataset = ensure_dataset(args.env, recipe)
    sha256 = read_collection(resolve_dataset(dataset, DEFAULT_DATA_ROOT)).get("sha256")
    for algo, k in runs:
        t1 = time.perf_counter()
        _train_one(args.env, algo, k, recipe, dataset, sha256, pretrained_dir(), None, print)
        print(f"[{args.env}] trained {algo} K={k} in {time.perf_counter() - t1:.0f} s", flush=True)
    if args.no_cards:
        return 0
    refs: dict = {}
    for algo, k in everything:  # BC and %BC first: the DT cards quote them
        d = pretrained_dir() / checkpoint_name(args.env, algo, k)
        if not d.is_dir():
            continue
        card = card_evaluation(d, refs if algo == "dt" else None, CARD_SEEDS)
        if algo != "dt":
            refs[algo] = card["top_target_mean"]
        write_json_atomic(d / "card.json", card)
        hub_card.write(d)
        best = card.get("best_mean")
        print(
            f"  {d.name}: rho={card['spearman']} top={card['top_target_mean']:.1f}"
            + (f" best={best:.1f}" if best is not None else ""),
            flush=True,
        )
    print(f"[{args.env}] done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
