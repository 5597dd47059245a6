"""Target grid vs single play: seconds until the plots, and until the video.

Interleaved repeats (single, grid, single, grid, ...) on the same seeds, so both
see the same machine load; reports the median and the min-max spread. The
issue's goal for 4 Hopper tiles of 1000 steps: plots <= 2 s, video <= 6 s
(single play: 0.9 s and 2.2 s when it was set).

    python benchmarks/grid_bench.py [--env Hopper-v5] [--repeats 5] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dt_playground.checkpoints import cache
from dt_playground.dt.runtime import setup_process  # noqa: E402
from dt_playground.media import replay, tiles
from dt_playground.media.gl import ensure_gl_backend  # noqa: E402
from dt_playground.media.plots import figures, glance
from dt_playground.media.replay import keep_surfaces, render_trace  # noqa: E402
from dt_playground.rollout import episode, grid

CHECKPOINTS = {
    "Hopper-v5": "hopper-dt",
    "CartPole-v1": "cartpole-dt",
    "HalfCheetah-v5": "halfcheetah-dt",
    "LunarLander-v3": "lunarlander-dt",
}


def single(ck, target: float, seed: int, out: Path) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    trace = episode.play_episode(ck, target, seed)
    figures.rtg_figure(trace), figures.reward_figure(trace), episode.episode_summary(trace, ck)
    t1 = time.perf_counter()
    render_trace(trace, out, max_frames=replay.MAX_VIDEO_FRAMES)
    return t1 - t0, time.perf_counter() - t0, trace.length


def time_grid(ck, seed: int, out: Path) -> tuple[float, float, list[int]]:
    t0 = time.perf_counter()
    res = grid.play_grid(ck, "", seed)
    glance.grid_reward_figure(res.traces, res.labels), res.summary(ck)
    t1 = time.perf_counter()
    tiles.grid_video(res, out)
    return t1 - t0, time.perf_counter() - t0, [t.length for t in res.traces]


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Hopper-v5", choices=sorted(CHECKPOINTS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    setup_process(args.threads)  # as the app's workers do
    keep_surfaces(2)  # likewise: a worker keeps its GL surfaces between replays
    ck = cache.get_checkpoint(CHECKPOINTS[args.env])
    if ck.spec.family == "mujoco":
        ensure_gl_backend()  # probed once per process: not part of a video's time
    target = ck.dataset.as_dict()["return_max"]
    res = {"single_plots": [], "single_video": [], "grid_plots": [], "grid_video": []}
    with tempfile.TemporaryDirectory() as tmp:
        single(ck, target, args.seed, Path(tmp) / "warm.mp4")  # engine build, imports
        for i in range(args.repeats):
            p, v, n1 = single(ck, target, args.seed, Path(tmp) / f"s{i}.mp4")
            res["single_plots"].append(p)
            res["single_video"].append(v)
            p, v, lengths = time_grid(ck, args.seed, Path(tmp) / f"g{i}.mp4")
            res["grid_plots"].append(p)
            res["grid_video"].append(v)
    print(
        f"{args.env}, seed {args.seed}, {args.repeats} interleaved repeats, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"single play ({n1} steps):        plots {spread(res['single_plots'])}, "
        f"video {spread(res['single_video'])}"
    )
    print(
        f"grid of {len(lengths)} tiles ({lengths} steps): plots {spread(res['grid_plots'])}, "
        f"video {spread(res['grid_video'])}"
    )
    print(json.dumps({k: [round(x, 3) for x in v] for k, v in res.items()}))


if __name__ == "__main__":
    main()
