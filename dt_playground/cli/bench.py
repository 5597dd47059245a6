"""Benchmarks: training step and action latency at the DT paper's config, against
Hugging Face's `DecisionTransformerModel` when `transformers` is installed, on
the CPU or a GPU (`bench_cases.py` holds the timed cases).

Both sides run at the same precision, interleaved in one run; figures are
medians over rounds with their min-max spread, so ratios are fair and their
noise is visible.
"""

from __future__ import annotations

import statistics
import time

import torch

from dt_playground.cli import bench_cases
from dt_playground.cli.bench_cases import PAPER
from dt_playground.dt import runtime
from dt_playground.envs.seeds import CARD_SEED
from dt_playground.training import fast_step

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


def _blocks(
    kind: str,
    B: int,
    precision: str,
    device,
    steps: int,
    repeats: int,
    step_mode: str,
    with_hf: bool,
    plain: bool,
) -> dict:
    """The timed sides of a case by name: "ours", "hf"; for training also "plain"
    (our plain step) and "mm:<precision>" (the step's matmuls alone)."""
    if kind == "train":
        n = repeats if B <= 64 else max(2, repeats // 8)
        mode = step_mode if step_mode != "auto" else ("graph" if device.type == "cuda" else "eager")
        blocks = {"ours": bench_cases.train_block("ours", B, precision, device, n, mode)}
        if with_hf:
            blocks["hf"] = bench_cases.train_block("hf", B, precision, device, n)
        if plain and B <= 64:
            blocks["plain"] = bench_cases.train_block("plain", B, precision, device, n, mode)
        cfg = bench_cases.ours_model().cfg
        for mm in _limit_precisions(precision, device):
            blocks[f"mm:{mm}"] = bench_cases.matmul_block(cfg, B, mm, device)
        return blocks
    # Batch 1024 on a CPU: a shorter episode (the window is full after K steps anyway).
    n = steps if B < 1024 or device.type == "cuda" else min(steps, PAPER["K"] + 30)
    blocks = {"ours": bench_cases.act_block("ours", B, precision, device, n)}
    if with_hf:
        blocks["hf"] = bench_cases.act_block("hf", B, precision, device, n)
    return blocks


def _limit_precisions(precision: str, device) -> list[str]:
    """The matmul precisions to measure for a training case: its own, and fp32 too
    where our bf16 step emulates bf16 with fp32 matmuls (no native bf16)."""
    if precision == "bf16" and fast_step.matmul_precision(device, True) == "bf16-emulated":
        return ["bf16", "fp32"]
    return [precision]


def run_model_bench(
    steps: int = 1000,
    repeats: int = 20,
    with_hf: bool = True,
    echo=print,
    device: str = "cpu",
    rounds: int = 5,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    large: bool = True,
    step_mode: str = "auto",
    plain: bool = True,
) -> dict:
    """Print and return the model benchmark: per case, ours and HF's median ms over
    ``rounds`` interleaved rounds, with min-max spreads and the ratio of medians
    (lower is better); for training steps also our plain step (``plain``), the
    achieved GFLOP/s (`bench_cases.train_flops`) and its share of the matmul throughput
    measured at the step's own shapes in the same rounds; and the projected wall
    time of a 100k-step Hopper DT."""
    p = PAPER
    dev = runtime.resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    echo(
        f"torch {torch.__version__} on {name}, {torch.get_num_threads()} threads; paper "
        f"config: K={p['K']} hidden={p['hidden']} layers={p['n_layers']} heads={p['n_heads']} "
        f"state={p['state_dim']} action={p['act_dim']}; {rounds} interleaved rounds; "
        f"actions over a {steps}-step episode"
    )
    try:
        import transformers  # noqa: F401
    except ImportError:
        with_hf = False
        echo(
            "transformers not installed: skipping the Hugging Face comparison "
            "(pip install transformers)"
        )
    res: dict = {
        "device": str(dev),
        "rounds": rounds,
        "ours": {},
        "spread": {"ours": {}},
        "native_bf16": fast_step.native_bf16(dev),
    }
    if with_hf:
        res.update(hf={}, ratio={}, ratio_spread={})
        res["spread"]["hf"] = {}
    echo(
        "bf16 matmuls: native"
        if res["native_bf16"]
        else "bf16 matmuls: no native kernels "
        "here, so our fast step emulates bf16 with fp32 matmuls (fast_step.py)"
    )
    echo(
        f"{'median ms [min-max]':<26}{'ours':>26}"
        + (f"{'HF':>26}{'ratio':>16}{'target':>8}" if with_hf else "")
    )
    cfg = bench_cases.ours_model().cfg
    for key, label, kind, B, precision, target in CASES:
        if precision not in precisions or (B == 1024 and not large):
            continue
        blocks = _blocks(kind, B, precision, dev, steps, repeats, step_mode, with_hf, plain)
        timed = dict(zip(blocks, bench_cases.interleave_all(list(blocks.values()), rounds)))
        ta, tb = timed["ours"], timed.get("hf")
        res["ours"][key] = ta.median  # pyright: ignore[reportOptionalMemberAccess]
        res["spread"]["ours"][key] = list(ta.spread)  # pyright: ignore[reportOptionalMemberAccess]
        line = f"{label:<26}{_fmt(ta):>26}"  # pyright: ignore[reportArgumentType]
        if tb is not None:
            line += _ratio_cells(res, key, ta, tb, target)  # pyright: ignore[reportArgumentType]
        echo(line)
        if kind == "train":
            _report_train(res, key, precision, B, cfg, timed, dev, echo)
    train_key = "train_ms" if "train_ms" in res["ours"] else "train_fp32_ms"
    if train_key in res["ours"]:
        block = bench_cases.sample_block(p["batch"], dev, repeats)
        sample = bench_cases.interleave(block, None, rounds)[0]
        per_step = res["ours"][train_key] + sample.median
        res["sample_ms"] = sample.median
        res["paper_run_minutes"] = PAPER_STEPS * per_step / 60_000
        prec = "fp32" if train_key == "train_fp32_ms" else "bf16"
        echo(
            f"projected {PAPER_STEPS // 1000}k-step Hopper DT (B={p['batch']}, {prec}): "
            f"{res['ours'][train_key]:.3f} ms step + {sample.median:.3f} ms sampling -> "
            f"{res['paper_run_minutes']:.1f} min (no evaluation)"
        )
    return res


def _ratio_cells(
    res: dict, key: str, ta: bench_cases.Timing, tb: bench_cases.Timing, target, table: str = ""
) -> str:
    """Record HF's side and the ratio of medians (with the per-round range) under
    ``key``; the table's cells for them."""
    ratios = [x / y for x, y in zip(ta.rounds, tb.rounds)]
    res["hf"][key] = tb.median
    res["spread"]["hf"][key] = list(tb.spread)
    res["ratio"][key] = ta.median / tb.median
    res["ratio_spread"][key] = [min(ratios), max(ratios)]
    verdict = (
        ""
        if target is None
        else (f"{'<=' + str(target):>8} {'ok' if res['ratio'][key] <= target else 'MISS'}")
    )
    return f"{_fmt(tb):>26}{res['ratio'][key]:>6.2f} [{min(ratios):.2f}-{max(ratios):.2f}]{verdict}"


def _report_train(res: dict, key: str, precision: str, B: int, cfg, timed: dict, dev, echo) -> None:
    """A training case's extra lines: our plain step, and GFLOP/s against the matmul
    throughput measured at the step's shapes in the same rounds."""
    flops = bench_cases.train_flops(cfg, B)
    plain = timed.get("plain")
    if plain is not None:
        res.setdefault("ours_plain", {})[key] = plain.median
        res["spread"].setdefault("ours_plain", {})[key] = list(plain.spread)
        line = f"{'  our plain step':<26}{_fmt(plain):>26}"
        if "hf" in timed:
            r = plain.median / timed["hf"].median
            res.setdefault("ratio_plain", {})[key] = r
            line += f"{'':>26}{r:>6.2f}"
        speedup = plain.median / timed["ours"].median
        res.setdefault("fast_speedup", {})[key] = speedup
        echo(f"{line}   (fast step {speedup:.2f}x faster)")
    gflops = flops / timed["ours"].median / 1e6
    runs_at = fast_step.matmul_precision(dev, precision == "bf16")
    limits = {
        mm.split(":")[1]: flops / t.median / 1e6 for mm, t in timed.items() if mm.startswith("mm:")
    }
    limit = limits["fp32" if runs_at == "fp32" or runs_at == "bf16-emulated" else "bf16"]
    res.setdefault("gflop_per_step", {})[key] = flops / 1e9
    res.setdefault("gflops", {})[key] = gflops
    res.setdefault("matmul_gflops", {})[key] = limits
    res.setdefault("matmul_precision", {})[key] = runs_at
    res.setdefault("matmul_fraction", {})[key] = gflops / limit
    extra = "".join(f", {k} {v:.0f}" for k, v in limits.items())
    echo(
        f"{'  achieved':<26}{gflops:>18.1f} GFLOP/s = {100 * gflops / limit:.0f}% of the "
        f"{runs_at} step's matmul limit ({flops / 1e9:.1f} GFLOP/step; matmuls alone at "
        f"these shapes, GFLOP/s{extra})"
    )


def _fmt(t: bench_cases.Timing) -> str:
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
    from dt_playground.media.plots import figures
    from dt_playground.media.replay import render_trace
    from dt_playground.rollout.episode import episode_summary, play_episode
    from dt_playground.rollout.sweep import run_sweep, sweep_targets

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
                figures.rtg_figure(trace)  # the figures the page shows
                figures.reward_figure(trace)
                episode_summary(trace, ck)
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
