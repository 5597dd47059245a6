"""Why the stitching lab's DT fails on `random-walks`: the data, and bigger budgets.

    python benchmarks/stitch_walks.py [--variants W:S:H:B,...] [--extra 2,4,6,7,8,10,12]

Not a speed benchmark: the evidence behind the README's random-walks table. A variant
``W:S:H:B`` collects W random walks by the lab's recipe (more walks continue the same seeds)
and trains a DT as the lab trains its own (`stitch.lab.NetRecipe`, one thread) for S steps,
H wide with B blocks; it then plays greedily on the lab's 60 *trial* seeds (never the card
seeds) at the lab's candidate targets and at ``--extra``. Prints one JSON line per variant:
how many walks reach the goal, how many with a return above the prize's best (the whole
good trajectories a DT could copy from S), the training CPU-seconds, and the success rate
and mean return per target. The default variants are the README's rows (~10 min of one
core; split ``--variants`` over processes to use more). ``--anywhere`` starts each walk on
a random open cell instead (the DT is still played from the start cells).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dt_playground.checkpoints.checkpoint import load_checkpoint  # noqa: E402
from dt_playground.data.windows import OfflineDataset, dataset_summary  # noqa: E402
from dt_playground.envs import maze  # noqa: E402
from dt_playground.envs.episodes import Episode  # noqa: E402
from dt_playground.envs.registry import get_spec, make_env  # noqa: E402
from dt_playground.envs.seeds import DATASET_SEED, seed_range  # noqa: E402
from dt_playground.stitch import datasets, lab  # noqa: E402

# The README's rows: the lab's DT, more walks, then wider and deeper DTs.
VARIANTS = (
    "3000:1500:32:1",
    "10000:1500:32:1",
    "3000:1500:32:2",
    "3000:3000:32:2",
    "3000:1500:64:1",
    "3000:1500:64:2",
    "3000:3000:64:2",
)


def walks_from_anywhere(n: int) -> list[Episode]:
    """``n`` uniformly random walks, each from a random open cell (not the goal, pit or
    prize) instead of a start cell: the data the DT paper's graph toy may have meant."""
    cells = [
        (r, c)
        for r in range(maze.HEIGHT)
        for c in range(maze.WIDTH)
        if not maze.WALLS[r, c] and (r, c) not in (maze.GOAL, maze.PIT, maze.PRIZE)
    ]
    env, out = make_env(maze.ENV_ID), []
    for i in range(n):
        rng = np.random.default_rng([DATASET_SEED, i])
        start = cells[int(rng.integers(len(cells)))]
        out.append(
            datasets.play_episode(
                env, DATASET_SEED + i, rng, lambda cell, mid, rng: int(rng.integers(4)), start
            )
        )
    env.close()
    return out


def variant(
    walks: int, steps: int, hidden: int, blocks: int, extra: list[float], anywhere: bool = False
) -> dict:
    episodes = (
        walks_from_anywhere(walks) if anywhere else datasets.collect("random-walks", episodes=walks)
    )
    goal = [e for e in episodes if maze.reached_goal(e.rewards, e.terminated)]
    prize_best = max(
        e.ret for e in episodes if e.terminated and float(e.rewards[-1]) == maze.PRIZE_REWARD
    )
    ds = OfflineDataset(episodes, get_spec(maze.ENV_ID), 4)
    summary = {**dataset_summary(episodes), "dataset_id": "dtp/stitchmaze/random-walks-v0"}
    recipe = lab.NetRecipe(steps=steps, hidden=hidden, n_layers=blocks)
    with tempfile.TemporaryDirectory(prefix="dtp-walks-") as tmp:
        c0 = time.process_time()
        lab.train_net(ds, summary, "dt", Path(tmp) / "dt", recipe)
        cpu = time.process_time() - c0
        ck = load_checkpoint(Path(tmp) / "dt")
    targets = sorted(set(lab.candidate_targets(np.array([e.ret for e in episodes]))) | set(extra))
    seeds = seed_range("trial", lab.TRIAL_EPISODES)
    played = {}
    for t in targets:
        tr = lab.play_checkpoint(ck, t, seeds)
        played[f"{t:g}"] = {
            "success": round(lab.success(tr), 3),
            "return": round(float(np.mean([x.ret for x in tr])), 1),
        }
    return {
        "walks": walks,
        "from": "anywhere" if anywhere else "start cells",
        "steps": steps,
        "hidden": hidden,
        "blocks": blocks,
        "reach_goal": len(goal),
        "prize_best": prize_best,
        "goal_above_prize": sum(e.ret > prize_best for e in goal),
        "train_cpu_s": round(cpu, 1),
        "targets": played,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated walks:steps:hidden:blocks (default: %(default)s)",
    )
    p.add_argument(
        "--extra",
        default="2,4,6,7,8,10,12",
        help="targets tried besides the lab's candidates (default: %(default)s)",
    )
    p.add_argument(
        "--anywhere",
        action="store_true",
        help="walks start on any open cell instead of the start cells",
    )
    args = p.parse_args(argv)
    extra = [float(x) for x in args.extra.split(",")]
    import torch

    torch.set_num_threads(1)
    for v in args.variants.split(","):
        row = variant(*(int(x) for x in v.split(":")), extra, args.anywhere)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
