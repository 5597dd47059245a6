"""Per-op profile of one training step at the DT paper's config (B=64, K=20, h=128,
3 layers), plain path against fast, one thread: ms per step by ATen op, from the
torch profiler (self CPU time), the two paths interleaved, medians over rounds.

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py --precision bf16 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from dt_playground.cli import bench_cases
from dt_playground.dt import runtime
from dt_playground.training.step import TrainStep, make_optimizer


def _step(fast: bool, bf16: bool):
    device = torch.device("cpu")
    model = bench_cases.ours_model().train()
    opt = make_optimizer(model, 1e-4, 1e-4, device, graph=False)
    step = TrainStep(model, opt, device=device, bf16=bf16, grad_clip=0.25, fast=fast)
    batch = bench_cases.random_batch(bench_cases.PAPER["batch"], device)
    for _ in range(2):
        step(batch, 1e-4)
    return step, batch


def profile_ops(step, batch, steps: int) -> tuple[dict[str, float], float, int]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(batch, 1e-4)
    ops, calls = defaultdict(float), 0
    for e in prof.key_averages():
        if e.key.startswith("aten::"):
            ops[e.key] += e.self_cpu_time_total / 1000 / steps
            calls += e.count
    total = sum(ops.values())
    return dict(ops), total, calls // steps


def _median(runs: list) -> tuple[dict[str, float], float, int]:
    keys = set().union(*(r[0] for r in runs))
    ops = {k: statistics.median(r[0].get(k, 0.0) for r in runs) for k in keys}
    return ops, statistics.median(r[1] for r in runs), runs[0][2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median per op)")
    ap.add_argument("--top", type=int, default=22)
    args = ap.parse_args()
    runtime.setup_process(threads=1)  # as `bench` runs: freed activations are reused in place
    bf16 = args.precision == "bf16"
    sides = {fast: _step(fast, bf16) for fast in (False, True)}
    runs: dict[bool, list] = {False: [], True: []}
    for r in range(args.rounds):  # A B / B A / ...: drift lands on both sides
        for fast in (False, True) if r % 2 == 0 else (True, False):
            runs[fast].append(profile_ops(*sides[fast], args.steps))
    plain, fast = (_median(runs[False]), _median(runs[True]))
    keys = sorted(
        set(plain[0]) | set(fast[0]), key=lambda k: -max(plain[0].get(k, 0), fast[0].get(k, 0))
    )
    print(
        f"{args.precision}, ms per step (self CPU time; median of {args.rounds} interleaved "
        f"rounds of {args.steps} steps)"
    )
    print("| op | plain | fast |\n|---|---:|---:|")
    for k in keys[: args.top]:
        print(f"| {k} | {plain[0].get(k, 0):.2f} | {fast[0].get(k, 0):.2f} |")
    print(f"| all aten ops ({plain[2]} / {fast[2]} calls) | {plain[1]:.1f} | {fast[1]:.1f} |")


if __name__ == "__main__":
    main()
