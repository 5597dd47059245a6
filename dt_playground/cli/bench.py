"""Benchmarks: training step and action latency at the DT paper's config, against
Hugging Face's `DecisionTransformerModel` when `transformers` is installed, on
the CPU or a GPU (`speed.py` holds the timed cases).

Both sides run at the same precision, interleaved in one run; figures are
medians over rounds with their min-max spread, so ratios are fair and their
noise is visible.
"""

from __future__ import annotations

import statistics
import time

import torch

from dt_playground.cli import bench_cases as speed
from dt_playground.cli.bench_cases import PAPER
from dt_playground.dt import runtime as cpu
from dt_playground.envs.seeds import CARD_SEED

# (key, label, kind, batch, precision, target ratio or None). Keys of earlier
# versions keep their meaning where it was sound ("train_ms": B=64 as the trainer
# runs it, bf16); every ratio now compares the same precision on both sides.
CASES = (
    ("train_ms", "train step, B=64, bf16", "train", 64, "bf16", 0.5),
    ("train_fp32_ms", "train step, B=64, fp32", "train", 64, "fp32", 0.5),
    ("train_b1024_ms", "train step, B=1024, bf16", "train", 1024, "bf16", None),
    ("train_b1024_fp32_ms", "train step, B=1024, fp32", "train", 1024, "fp32", None),
    ("act_b1_ms", "action, batch 1, fp32", "act", 1, "fp32", 0.5),
    ("act_b32_ms", "step, batch 32, fp32", "act", 32, "fp32", 0.3),
    ("act_b1024_ms", "step, batch 1024, fp32", "act", 1024, "fp32", None),
    ("act_b1_bf16_ms", "action, batch 1, bf16", "act", 1, "bf16", 0.5),
    ("act_b32_bf16_ms", "step, batch 32, bf16", "act", 32, "bf16", 0.3),
    ("act_b1024_bf16_ms", "step, batch 1024, bf16", "act", 1024, "bf16", None),
)
PAPER_STEPS = 100_000  # a paper-scale DT run (Chen et al. train 100k steps)


def _blocks(kind: str, B: int, precision: str, device, steps: int, repeats: int,
            step_mode: str, with_hf: bool):
    if kind == "train":
        n = repeats if B <= 64 else max(2, repeats // 8)
        mode = step_mode if step_mode != "auto" else ("graph" if device.type == "cuda"
                                                      else "eager")
        ours = speed.train_block("ours", B, precision, device, n, mode)
        hf = speed.train_block("hf", B, precision, device, n) if with_hf else None
        return ours, hf
    # Batch 1024 on a CPU: a shorter episode (the window is full after K steps anyway).
    n = steps if B < 1024 or device.type == "cuda" else min(steps, PAPER["K"] + 30)
    ours = speed.act_block("ours", B, precision, device, n)
    return ours, (speed.act_block("hf", B, precision, device, n) if with_hf else None)


def run_model_bench(steps: int = 1000, repeats: int = 20, with_hf: bool = True,
                    echo=print, device: str = "cpu", rounds: int = 5,
                    precisions: tuple[str, ...] = ("fp32", "bf16"), large: bool = True,
                    step_mode: str = "auto") -> dict:
    """Print and return the model benchmark: per case, ours and HF's median ms over
    ``rounds`` interleaved rounds, with min-max spreads and the ratio of medians
    (lower is better); and the projected wall time of a 100k-step Hopper DT."""
    p = PAPER
    dev = cpu.resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    echo(f"torch {torch.__version__} on {name}, {torch.get_num_threads()} threads; paper "
         f"config: K={p['K']} hidden={p['hidden']} layers={p['n_layers']} heads={p['n_heads']} "
         f"state={p['state_dim']} action={p['act_dim']}; {rounds} interleaved rounds; "
         f"actions over a {steps}-step episode")
    try:
        import transformers  # noqa: F401
    except ImportError:
        with_hf = False
        echo("transformers not installed: skipping the Hugging Face comparison "
             "(pip install transformers)")
    res: dict = {"device": str(dev), "rounds": rounds, "ours": {}, "spread": {"ours": {}}}
    if with_hf:
        res.update(hf={}, ratio={}, ratio_spread={})
        res["spread"]["hf"] = {}
    echo(f"{'median ms [min-max]':<26}{'ours':>22}" + (f"{'HF':>22}{'ratio':>16}{'target':>8}"
                                                        if with_hf else ""))
    for key, label, kind, B, precision, target in CASES:
        if precision not in precisions or (B == 1024 and not large):
            continue
        a, b = _blocks(kind, B, precision, dev, steps, repeats, step_mode, with_hf)
        ta, tb = speed.interleave(a, b, rounds)
        res["ours"][key] = ta.median
        res["spread"]["ours"][key] = list(ta.spread)
        line = f"{label:<26}{_fmt(ta):>22}"
        if tb is not None:
            ratios = [x / y for x, y in zip(ta.rounds, tb.rounds)]
            res["hf"][key] = tb.median
            res["spread"]["hf"][key] = list(tb.spread)
            res["ratio"][key] = ta.median / tb.median
            res["ratio_spread"][key] = [min(ratios), max(ratios)]
            verdict = "" if target is None else (
                f"{'<=' + str(target):>8} {'ok' if res['ratio'][key] <= target else 'MISS'}")
            line += (f"{_fmt(tb):>22}{res['ratio'][key]:>6.2f} [{min(ratios):.2f}-"
                     f"{max(ratios):.2f}]{verdict}")
        echo(line)
    train_key = "train_ms" if "train_ms" in res["ours"] else "train_fp32_ms"
    if train_key in res["ours"]:
        sample = speed.interleave(speed.sample_block(p["batch"], dev, repeats), None, rounds)[0]
        per_step = res["ours"][train_key] + sample.median
        res["sample_ms"] = sample.median
        res["paper_run_minutes"] = PAPER_STEPS * per_step / 60_000
        prec = "fp32" if train_key == "train_fp32_ms" else "bf16"
        echo(f"projected {PAPER_STEPS // 1000}k-step Hopper DT (B={p['batch']}, {prec}): "
             f"{res['ours'][train_key]:.3f} ms step + {sample.median:.3f} ms sampling -> "
             f"{res['paper_run_minutes']:.1f} min (no evaluation)")
    return res


def _fmt(t: speed.Timing) -> str:
    lo, hi = t.spread
    return f"{t.median:.3f} [{lo:.3f}-{hi:.3f}]"


def _bench_checkpoint(env_id: str):
    """The env's shipped DT (K=20), or None."""
    from dt_playground.checkpoints.checkpoint import load_checkpoint
    from dt_playground.checkpoints.layout import list_checkpoints

    for path in list_checkpoints(env_id=env_id):
        ck = load_checkpoint(path)
        if ck.algo == "dt" and ck.config["context_len"] == 20:
            return ck
    return None


def run_episode_bench(envs: list[str] | None = None, repeats: int = 3, echo=print) -> dict:
    """Per env: seconds until the plots are ready (rollout + figures), until the
    MP4 is ready (plus rendering), the video's length; and a 10-target x 5-seed
    sweep. Uses the shipped DT checkpoints; envs without one are skipped."""
    import tempfile
    from pathlib import Path

    from dt_playground.envs.registry import env_ids
    from dt_playground.media.plots import figures as plots
    from dt_playground.media.replay import render_trace
    from dt_playground.serve.play import episode_summary, play_episode, run_sweep, sweep_targets

    results = {}
    echo(
        f"{'env':<16}{'steps':>6}{'plots s':>9}{'video s':>9}{'video len s':>12}"
        f"{'sweep 10x5 s':>14}{'sweep steps':>12}"
    )
    for env_id in envs or env_ids():
        ck = _bench_checkpoint(env_id)
        if ck is None:
            echo(f"{env_id:<16}  (no shipped DT checkpoint: skipped)")
            continue
        target = ck.config["dataset"]["return_max"]
        plot_s, video_s = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):
                t0 = time.perf_counter()
                trace = play_episode(ck, target, CARD_SEED + i)
                plots.rtg_figure(trace), plots.reward_figure(trace), episode_summary(trace, ck)
                t1 = time.perf_counter()
                info = render_trace(trace, Path(tmp) / f"{i}.mp4")
                t2 = time.perf_counter()
                plot_s.append(t1 - t0)
                video_s.append(t2 - t0)
            t0 = time.perf_counter()
            sw = run_sweep(ck, sweep_targets(ck, 10), 5, seed=CARD_SEED)
            sweep_s = time.perf_counter() - t0
        steps = sum(r["length"] for r in sw["rows"])
        results[env_id] = {
            "steps": trace.length,
            "plots_s": statistics.median(plot_s),
            "video_s": statistics.median(video_s),
            "video_len_s": info.duration_s,
            "sweep_s": sweep_s,
            "sweep_steps": steps,
        }
        r = results[env_id]
        echo(
            f"{env_id:<16}{r['steps']:>6}{r['plots_s']:>9.2f}{r['video_s']:>9.2f}"
            f"{r['video_len_s']:>12.1f}{r['sweep_s']:>14.2f}{steps:>12}"
        )
    echo(
        "targets: 1000-step episode -> plots <= 1.5 s, video <= 3 s; 10x5 sweep of 1000-step "
        "episodes <= 20 s"
    )
    return results
