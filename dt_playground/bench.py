"""Benchmarks: training step and action latency at the DT paper's config, against
Hugging Face's `DecisionTransformerModel` when `transformers` is installed.

Figures are medians over repeats, measured in one run so ratios are fair.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from . import cpu
from .data import Normaliser, gather_windows
from .envs import get_spec
from .model import DecisionTransformer, DTConfig
from .rollout import DTPolicy
from .seeds import CARD_SEED

PAPER = dict(batch=64, K=20, hidden=128, n_layers=3, n_heads=1, state_dim=11, act_dim=3)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _batch(B: int, K: int, S: int, A: int, rng) -> dict:
    """A random training batch (float32 numpy), the shapes the trainer makes."""
    return {
        "states": rng.normal(size=(B, K, S)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(B, K, A)).astype(np.float32),
        "rtg": rng.normal(size=(B, K, 1)).astype(np.float32),
        "timesteps": np.tile(np.arange(K), (B, 1)) + rng.integers(0, 900, size=(B, 1)),
        "mask": np.ones((B, K), np.float32),
    }


def _ours() -> DecisionTransformer:
    p = PAPER
    return DecisionTransformer(DTConfig(p["state_dim"], p["act_dim"], hidden=p["hidden"],
                                        n_layers=p["n_layers"], n_heads=p["n_heads"],
                                        context_len=p["K"]))


def _hf_model():
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    p = PAPER
    cfg = DecisionTransformerConfig(state_dim=p["state_dim"], act_dim=p["act_dim"],
                                    hidden_size=p["hidden"], n_layer=p["n_layers"],
                                    n_head=p["n_heads"], max_ep_len=1000, n_positions=1024)
    return DecisionTransformerModel(cfg)


def train_step_ms(which: str, repeats: int = 20) -> float:
    """Median ms of one AdamW step (forward, backward, clip, update) at the paper's
    config: ours as the trainer runs it (bf16 autocast), HF's as shipped (fp32)."""
    p = PAPER
    model = (_ours() if which == "ours" else _hf_model()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    raw = _batch(p["batch"], p["K"], p["state_dim"], p["act_dim"], np.random.default_rng(0))
    b = {k: torch.from_numpy(v) for k, v in raw.items()}

    def loss() -> torch.Tensor:
        if which == "ours":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.loss(b)
        out = model(states=b["states"], actions=b["actions"], returns_to_go=b["rtg"],
                    timesteps=b["timesteps"], attention_mask=b["mask"].long())
        return ((out.action_preds - b["actions"]) ** 2).mean()

    def step():
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()

    for _ in range(3):
        step()
    return _median_ms(step, repeats)


def ours_action_ms(n_episodes: int, steps: int = 1000, precision: str = "fp32") -> float:
    """Median per-step latency of `DTPolicy.act` for ``n_episodes`` in lock-step over a
    ``steps``-long episode (window full after step K; no env)."""
    p = PAPER
    spec = get_spec("Hopper-v5")  # the paper's sizes: state 11, action 3, 1000 steps
    norm = Normaliser(np.zeros(p["state_dim"]), np.ones(p["state_dim"]), 1000.0)
    policy = DTPolicy(_ours(), norm, spec, precision=precision)
    policy.reset([3000.0] * n_episodes, list(range(n_episodes)), steps)
    rows = np.arange(n_episodes)
    obs = np.random.default_rng(0).normal(size=(steps, n_episodes, p["state_dim"]))
    times = []
    for t in range(steps):
        t0 = time.perf_counter()
        policy.act(rows, t, obs[t].astype(np.float32))
        policy.observe(rows, np.ones(n_episodes))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@torch.inference_mode()
def hf_action_ms(n_episodes: int, steps: int = 1000) -> float:
    """HF model on the same windows (built with our gather), one forward per step."""
    p = PAPER
    model = _hf_model().eval()
    S, A, K = p["state_dim"], p["act_dim"], p["K"]
    states = np.zeros((n_episodes, steps, S), np.float32)
    actions = np.zeros((n_episodes, steps, A), np.float32)
    rtg = np.zeros((n_episodes, steps), np.float32)
    rows = np.arange(n_episodes)
    rng = np.random.default_rng(0)
    times = []
    for t in range(steps):
        t0 = time.perf_counter()
        states[:, t] = rng.normal(size=(n_episodes, S))
        rtg[:, t] = 3.0
        ends = np.full(n_episodes, t)
        w = {k: torch.from_numpy(v)
             for k, v in gather_windows(states, actions, rtg, rows, ends, K, 1000).items()}
        out = model(states=w["states"], actions=w["actions"], returns_to_go=w["rtg"],
                    timesteps=w["timesteps"], attention_mask=w["mask"].long())
        actions[:, t] = out.action_preds[:, -1].numpy()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# (key, label, ours, HF reference key, target ratio)
ROWS = (
    ("train_ms", "training step, B=64", lambda steps, reps: train_step_ms("ours", reps),
     "train_ms", 0.5),
    ("act_b1_ms", "action, batch 1", lambda steps, reps: ours_action_ms(1, steps), "act_b1_ms",
     0.5),
    ("act_b32_ms", "step, batch 32", lambda steps, reps: ours_action_ms(32, steps), "act_b32_ms",
     0.3),
    ("act_b1_bf16_ms", "action, batch 1, bf16",
     lambda steps, reps: ours_action_ms(1, steps, "bf16"), "act_b1_ms", 0.5),
    ("act_b32_bf16_ms", "step, batch 32, bf16",
     lambda steps, reps: ours_action_ms(32, steps, "bf16"), "act_b32_ms", 0.3),
)


def run_model_bench(steps: int = 1000, repeats: int = 20, with_hf: bool = True,
                    echo=print) -> dict:
    """Print and return the model benchmark figures (medians in ms; lower is better)."""
    p = PAPER
    # Ours turns this on anyway (DTPolicy, train); set it first so that HF's model
    # runs under the same allocator.
    retained = cpu.retain_freed_memory()
    echo(f"torch {torch.__version__}, {torch.get_num_threads()} threads; paper config: "
         f"B={p['batch']} K={p['K']} hidden={p['hidden']} layers={p['n_layers']} "
         f"heads={p['n_heads']} state={p['state_dim']} action={p['act_dim']}; "
         f"actions over a {steps}-step episode; freed memory retained: {retained}")
    try:
        import transformers  # noqa: F401
    except ImportError:
        with_hf = False
        echo("transformers not installed: skipping the Hugging Face comparison "
             "(pip install transformers)")
    res = {"ours": {key: fn(steps, repeats) for key, _, fn, _, _ in ROWS}}
    if with_hf:
        res["hf"] = {"train_ms": train_step_ms("hf", repeats),
                     "act_b1_ms": hf_action_ms(1, steps), "act_b32_ms": hf_action_ms(32, steps)}
    head = f"{'median ms':<26}{'ours':>9}"
    echo(head + (f"{'HF':>9}{'ratio':>8}{'target':>8}" if with_hf else ""))
    for key, label, _, ref, target in ROWS:
        line = f"{label:<26}{res['ours'][key]:>9.3f}"
        if with_hf:
            ratio = res["ours"][key] / res["hf"][ref]
            res.setdefault("ratio", {})[key] = ratio
            verdict = "ok" if ratio <= target else "MISS"
            line += f"{res['hf'][ref]:>9.3f}{ratio:>8.2f}{'<=' + str(target):>8} {verdict}"
        echo(line)
    return res


def _bench_checkpoint(env_id: str):
    """The env's shipped DT (K=20), or None."""
    from .checkpoints import list_checkpoints, load_checkpoint

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

    from . import plots
    from .envs import env_ids
    from .playground import episode_summary, play_episode, run_sweep, sweep_targets
    from .render import render_trace

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
