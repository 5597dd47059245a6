"""One-off zoo migration: record `dataset.sha256` in shipped checkpoints whose data the
current code reproduces exactly, so they need not be retrained.

    python scripts/restamp_zoo.py [--env E ...] [--dry-run]

For each env, the dataset is (re)collected by the current code (`collect.ensure_dataset`,
the recipe's seed). A shipped checkpoint is *reproduced* when every per-episode return its
config.json recorded (`dataset.returns`, 3 decimals), in order, and its state mean/std
(float32, to 1e-6 relative) equal the fresh data's. Only then its config.json gets the
fresh `dataset` summary (with `sha256`) and repo-relative `train.dataset`/`train.out`;
its weights, card and training record are untouched. Anything else is listed as needing
`pretrain` (retraining), and left alone. Checkpoints already carrying a hash are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dt_playground.atomic import write_json_atomic  # noqa: E402
from dt_playground.paths import pretrained_dir, relative_to_repo  # noqa: E402
from dt_playground.training.train import TrainConfig, build_dataset  # noqa: E402
from dt_playground.zoo.pretrain import RECIPES, ensure_dataset  # noqa: E402


def fresh_data(env_id: str):
    """The dataset as the current code collects it, summarised as `train` records it, and
    the normalisers of the full data (DT, BC) and of its top fraction (%BC)."""
    dataset = ensure_dataset(env_id, RECIPES[env_id], log=print)
    ds, summary, _ = build_dataset(TrainConfig(env_id=env_id, dataset=dataset))
    top = ds.top_fraction(TrainConfig.pbc_fraction)
    return dataset, summary, {"dt": ds.norm, "bc": ds.norm, "pbc": top.norm}


def reproduced(config: dict, summary: dict, norm) -> tuple[bool, str]:
    old = config.get("dataset") or {}
    old_r, new_r = old.get("returns") or [], summary.get("returns") or []
    if len(old_r) != len(new_r) or any(round(a, 3) != round(b, 3) for a, b in zip(old_r, new_r)):
        same = sum(round(a, 3) == round(b, 3) for a, b in zip(old_r, new_r))
        return False, f"returns equal in {same}/{len(old_r)}"
    for key, new in (("state_mean", norm.state_mean), ("state_std", norm.state_std)):
        if not np.allclose(np.asarray(config[key], np.float64), new, rtol=1e-6, atol=1e-7):
            return False, f"{key} differs"
    return True, "reproduced"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", help="env id (repeatable; default: all)")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    status = 0
    for env_id in args.env or list(RECIPES):
        dataset, summary, norms = fresh_data(env_id)
        for cfg_path in sorted(pretrained_dir().glob("*/config.json")):
            config = json.loads(cfg_path.read_text())
            if config.get("env_id") != env_id:
                continue
            name = cfg_path.parent.name
            if (config.get("dataset") or {}).get("sha256"):
                print(f"{name}: has a hash already")
                continue
            ok, why = reproduced(config, summary, norms[config["algo"]])
            if not ok:
                print(f"{name}: NOT reproduced ({why}): retrain with pretrain")
                status = 1
                continue
            config["dataset"] = summary
            train = config.get("train") or {}
            train["dataset"] = relative_to_repo(dataset)
            train["out"] = relative_to_repo(cfg_path.parent)
            config["train"] = train
            if not args.dry_run:
                write_json_atomic(cfg_path, config)
            print(f"{name}: reproduced: sha256 {summary['sha256'][:12]} recorded")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
