"""``python -m dt_playground stitch``: every method of the lab on the same seeds.

Loads the shipped folders of one dataset (`lab.folder`), plays each method
from reset seeds ``S .. S+N-1`` (the DTs at the target their card chose on
trial seeds) and reports success (the fraction of episodes that reach the goal)
and mean return.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.envs import maze
from dt_playground.stitch import datasets, dp
from dt_playground.stitch.lab import LABELS, METHODS, folder, play_checkpoint, success

MAX_EPISODES = 10_000


def _card(path: Path) -> dict:
    f = path / "card.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def play_methods(
    data: str, episodes: int, seed: int, history: int | None = None, root: Path | None = None
) -> dict:
    """``{"data": data, "methods": {method: {"success": f, "return": f}}}`` over reset
    seeds ``seed .. seed + episodes - 1``; ``history`` shortens the DT's context."""
    datasets.check_data(data)
    if type(episodes) is not int or not 1 <= episodes <= MAX_EPISODES:
        raise ValueError(f"episodes must be a whole number from 1 to {MAX_EPISODES}")
    if type(seed) is not int or not 0 <= seed <= 2**31 - 1 - episodes:
        raise ValueError("seed must be a whole number from 0 to 2^31 - 1 - episodes")
    seeds = list(range(seed, seed + episodes))
    if history is not None:
        K = load_checkpoint(folder(data, "dt", root)).model.cfg.context_len
        if type(history) is not int or not 1 <= history <= K:
            raise ValueError(f"history must be a whole number from 1 to {K} (the DT's K)")
    out = {}
    for m in METHODS:
        path = folder(data, m, root)
        if not (path / "config.json").is_file():
            raise ValueError(
                f"The lab's {data} {LABELS[m]} is not built: run "
                "`python -m dt_playground pretrain --stitch`"
            )
        if m == "offline_rl":
            traces = dp.play(dp.load(path)[0], maze.ENV_ID, seeds)
        else:
            ck = load_checkpoint(path)
            traces = play_checkpoint(
                ck, _card(path).get("target", 0.0), seeds, history if m == "dt" else None
            )
        out[m] = {"success": success(traces), "return": float(np.mean([t.ret for t in traces]))}
    return {"data": data, "methods": out}


def table(result: dict) -> str:
    """The plain-text table the CLI prints without ``--json``."""
    lines = [f"{result['data']}: {'method':<30}{'success':>9}{'return':>9}"]
    for m, r in result["methods"].items():
        lines.append(
            f"{'':{len(result['data']) + 2}}{LABELS[m]:<30}{r['success']:>9.2f}{r['return']:>9.2f}"
        )
    return "\n".join(lines)
