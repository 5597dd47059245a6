"""What checking costs: per-step acting at batch 1 and a whole Hopper play, unchecked
(the plain DT, fast engine) against checked (n candidates in one batched forward plus the
critic), interleaved A/B rounds, median and min-max.

    python benchmarks/critic_cost.py --env Hopper-v5 --rounds 5 [--n 5]

One thread, as the cards. Prints the CPU's flags that matter (AVX-512 bf16, AMX).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.envs.registry import get_spec, make_env
from dt_playground.offline.critic import load_critic
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.rollout.checked import CheckedPolicy
from dt_playground.rollout.policy import DTPolicy, run_episodes


def cpu_flags() -> str:
    try:
        flags = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ).split()
        model = (
            next(
                line
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            )
            .split(":", 1)[1]
            .strip()
        )
    except (OSError, StopIteration):
        return "unknown CPU"
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{model}; {' '.join(have)}"


def per_step_ms(policy, spec, steps: int) -> float:
    """Mean ms per `act` at batch 1 over ``steps`` steps of one real episode."""
    env = make_env(spec)
    obs, _ = env.reset(seed=0)
    policy.reset([float(spec.target_presets[-1])], [0], steps)
    rows, total = np.array([0]), 0.0
    for t in range(steps):
        t0 = time.perf_counter()
        a = policy.act(rows, t, obs[None])
        total += time.perf_counter() - t0
        obs, r, term, trunc, _ = env.step(a[0])
        policy.observe(rows, np.array([r]))
        if term or trunc:
            obs, _ = env.reset(seed=t)
    env.close()
    return 1000 * total / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=300, help="steps timed per per-step round")
    p.add_argument(
        "--target", type=float, default=None, help="the play's target (default: the data's p90)"
    )
    p.add_argument("--n", type=int, default=None, help="candidates (default: the critic's own)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    spec = get_spec(args.env)
    dt_dir = PRETRAINED_DIR / f"{spec.short_name}-dt"
    ck = load_checkpoint(dt_dir)
    critic, settings = load_critic(dt_dir, ck.config)
    if args.n:
        settings = replace(settings, n=args.n)
    target = args.target or ck.config["dataset"]["return_p90"]
    make = {
        "plain": lambda: DTPolicy.for_checkpoint(ck),
        "checked": lambda: CheckedPolicy.for_checkpoint(ck, critic=critic, settings=settings),
    }
    step = {k: [] for k in make}
    play = {k: [] for k in make}
    lengths = {k: [] for k in make}
    for _ in range(args.rounds):
        for k, f in make.items():  # interleaved: A, B, A, B, ...
            step[k].append(per_step_ms(f(), spec, args.steps))
            t0 = time.perf_counter()
            (trace,) = run_episodes(f(), [target], [0])
            # Per 1000 steps: a checked play may last longer (or shorter) than its twin.
            play[k].append((time.perf_counter() - t0) * 1000 / max(1, len(trace.rewards)))
            lengths[k].append(len(trace.rewards))
    out = {
        "cpu": cpu_flags(),
        "env": spec.env_id,
        "settings": settings.to_dict(),
        "threads": torch.get_num_threads(),
    }
    out["play_steps"] = lengths
    for name, d in (("step_ms", step), ("play_s_per_1000_steps", play)):
        out[name] = {
            k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in d.items()
        }
        out[name]["ratio"] = out[name]["checked"]["median"] / out[name]["plain"]["median"]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
