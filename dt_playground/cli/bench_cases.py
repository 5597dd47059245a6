"""Timed cases for `bench`: ours against Hugging Face's `DecisionTransformerModel`,
at the DT paper's config, the same precision on both sides, interleaved.

A case is a pair of "blocks" (ours, HF): callables that run a few steps and
return ms per step. `interleave` runs them alternately, A B / B A / A B ...,
so drift on a shared machine (other processes, thermal state) lands on both
sides; each side's figure is the median over rounds, with its min-max spread.
On CUDA a block is timed between two synchronisations (launch-bound work is
measured as the card finishes it, not as Python queues it).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dt_playground.data.windows import Normaliser, gather_windows
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.envs.registry import get_spec
from dt_playground.rollout.policy import DTPolicy
from dt_playground.training.step import TrainStep, make_optimizer

PAPER = dict(batch=64, K=20, hidden=128, n_layers=3, n_heads=1, state_dim=11, act_dim=3)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
Block = Callable[[], float]  # runs some steps, returns ms per step


@dataclass
class Timing:
    """Per-round figures (ms) of one side of a case."""

    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.rounds), max(self.rounds)


def interleave(a: Block, b: Block | None, rounds: int) -> tuple[Timing, Timing | None]:
    """Run ``a`` and ``b`` alternately (the first of each round alternates too)."""
    ta, tb = interleave_all([a, b], rounds)
    return ta, tb  # pyright: ignore[reportReturnType]


def interleave_all(blocks: list[Block | None], rounds: int) -> list[Timing | None]:
    """Run the blocks in turn, ``rounds`` times; round r starts r places further on
    (A B / B A for two; A B C / B C A / C A B for three). None: not run."""
    times: list[list[float]] = [[] for _ in blocks]
    n = len(blocks)
    for r in range(rounds):
        for i in range(n):
            j = (i + r) % n
            if blocks[j] is not None:
                times[j].append(blocks[j]())  # pyright: ignore[reportOptionalCall]
    return [Timing(t) if blk is not None else None for t, blk in zip(times, blocks)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mean_ms(one, steps: int, device: torch.device) -> Block:
    """A `Block`: the mean milliseconds of ``one()`` over ``steps`` calls, synced on
    ``device`` before and after (GPU work is asynchronous)."""

    def block() -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            one()
        _sync(device)
        return (time.perf_counter() - t0) * 1000 / steps

    return block


def ours_model() -> DecisionTransformer:
    p = PAPER
    return DecisionTransformer(
        DTConfig(
            state_dim=p["state_dim"],
            act_dim=p["act_dim"],
            hidden=p["hidden"],
            n_layers=p["n_layers"],
            n_heads=p["n_heads"],
            context_len=p["K"],
        )
    )


def hf_model():
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    p = PAPER
    cfg = DecisionTransformerConfig(
        state_dim=p["state_dim"],
        act_dim=p["act_dim"],
        hidden_size=p["hidden"],
        n_layer=p["n_layers"],
        n_head=p["n_heads"],
        max_ep_len=1000,
        n_positions=1024,
    )
    return DecisionTransformerModel(cfg)


def random_batch(B: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch of the shapes the trainer makes (float32, every step real)."""
    p = PAPER
    rng = np.random.default_rng(seed)
    K, S, A = p["K"], p["state_dim"], p["act_dim"]
    raw = {
        "states": rng.normal(size=(B, K, S)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(B, K, A)).astype(np.float32),
        "rtg": rng.normal(size=(B, K, 1)).astype(np.float32),
        "timesteps": np.tile(np.arange(K), (B, 1)) + rng.integers(0, 900, size=(B, 1)),
        "mask": np.ones((B, K), np.float32),
    }
    return {k: torch.from_numpy(v).to(device) for k, v in raw.items()}


def train_block(
    which: str, B: int, precision: str, device: torch.device, steps: int, mode: str = "eager"
) -> Block:
    """One AdamW step (forward, backward, clip at 0.25, update) at batch ``B``; ours
    through the trainer's `TrainStep` (``mode`` on CUDA: eager, compile or graph),
    "ours" its fast step, "plain" its plain one (autocast); HF's as shipped with an
    MSE loss under autocast; bf16 on every side or fp32 on every side, all with the
    same (fused) AdamW."""
    bf16 = precision == "bf16"
    batch = random_batch(B, device)
    if which in ("ours", "plain"):
        model = ours_model().to(device).train()
        opt = make_optimizer(model, 1e-4, 1e-4, device, graph=mode == "graph")
        step = TrainStep(
            model, opt, device=device, bf16=bf16, grad_clip=0.25, mode=mode, fast=which == "ours"
        )

        def one():
            step(batch, 1e-4)
    else:
        model = hf_model().to(device).train()  # pyright: ignore[reportArgumentType]
        opt = make_optimizer(model, 1e-4, 1e-4, device, graph=False)  # the same AdamW
        b = batch

        def one():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(
                    states=b["states"],
                    actions=b["actions"],
                    returns_to_go=b["rtg"],
                    timesteps=b["timesteps"],
                    attention_mask=b["mask"].long(),
                )
                loss = ((out.action_preds.float() - b["actions"]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()

    for _ in range(5):  # warm-up (and, for a graph, capture)
        one()
    _sync(device)

    return _mean_ms(one, steps, device)


def act_block(
    which: str,
    n_episodes: int,
    precision: str,
    device: torch.device,
    steps: int,
    engine: str = "fast",
) -> Block:
    """Median per-step latency of choosing ``n_episodes`` actions in lock-step over a
    ``steps``-long episode (no env; the window is full after step K). Ours is
    `DTPolicy.act`; HF's is one forward of its model on the same windows (built with
    our gather), in the same precision (weights cast, as our bf16 engine does)."""
    p = PAPER
    S, A, K = p["state_dim"], p["act_dim"], p["K"]
    obs = np.random.default_rng(0).normal(size=(steps, n_episodes, S)).astype(np.float32)
    rows = np.arange(n_episodes)
    if which == "ours":
        spec = get_spec("Hopper-v5")  # the paper's sizes: state 11, action 3
        norm = Normaliser(np.zeros(S), np.ones(S), 1000.0)
        policy = DTPolicy(
            ours_model().eval(), norm, spec, precision=precision, engine=engine, device=device
        )

        def block() -> float:
            policy.reset([3000.0] * n_episodes, list(range(n_episodes)), steps)
            times = []
            for t in range(steps):
                t0 = time.perf_counter()
                policy.act(rows, t, obs[t])
                policy.observe(rows, np.ones(n_episodes))
                times.append((time.perf_counter() - t0) * 1000)
            return statistics.median(times[K:] or times)

        return block
    dtype = DTYPES[precision]
    model = hf_model().eval().to(device=device, dtype=dtype)  # pyright: ignore[reportCallIssue]

    @torch.inference_mode()
    def hf_block() -> float:
        states = np.zeros((n_episodes, steps, S), np.float32)
        actions = np.zeros((n_episodes, steps, A), np.float32)
        rtg = np.zeros((n_episodes, steps), np.float32)
        times = []
        for t in range(steps):
            t0 = time.perf_counter()
            states[:, t] = obs[t]
            rtg[:, t] = 3.0
            w = gather_windows(states, actions, rtg, rows, np.full(n_episodes, t), K, 1000)
            w = {k: torch.from_numpy(v).to(device) for k, v in w.items()}
            out = model(
                states=w["states"].to(dtype),
                actions=w["actions"].to(dtype),
                returns_to_go=w["rtg"].to(dtype),
                timesteps=w["timesteps"],
                attention_mask=w["mask"].long(),
            )
            actions[:, t] = out.action_preds[:, -1].float().cpu().numpy()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times[K:] or times)

    return hf_block


class _SyntheticData:
    """An `OfflineDataset`-shaped buffer of Hopper's sizes (E episodes of T steps)."""

    def __init__(self, episodes: int = 200, T: int = 1000, seed: int = 0):
        p, rng = PAPER, np.random.default_rng(seed)
        self.states = rng.normal(size=(episodes, T, p["state_dim"])).astype(np.float32)
        self.actions = rng.uniform(-1, 1, size=(episodes, T, p["act_dim"])).astype(np.float32)
        self.rtg = rng.normal(size=(episodes, T)).astype(np.float32)
        self.window_rows = np.repeat(np.arange(episodes), T)
        self.window_ends = np.tile(np.arange(T), episodes)
        self.spec = get_spec("Hopper-v5")


def sample_block(B: int, device: torch.device, steps: int) -> Block:
    """Drawing one training batch of windows as the trainer does on ``device``: numpy
    gather and a host-to-tensor copy on the CPU, a gather on the GPU on CUDA."""
    from dt_playground.training.step import DeviceWindows

    data, K = _SyntheticData(), PAPER["K"]
    if device.type == "cuda":
        windows, gen = DeviceWindows(data, device), torch.Generator(device=device)

        def one():
            windows.sample(B, K, gen)
    else:
        rng = np.random.default_rng(0)

        def one():
            pick = rng.integers(len(data.window_rows), size=B)
            w = gather_windows(
                data.states,
                data.actions,
                data.rtg,
                data.window_rows[pick],
                data.window_ends[pick],
                K,
                1000,
            )
            {k: torch.from_numpy(v) for k, v in w.items()}

    return _mean_ms(one, steps, device)


def matmul_shapes(cfg: DTConfig, B: int) -> list[tuple[int, int, int, int]]:
    """The forward matmuls of a training step as (batch, M, K, N): (M, K) @ (K, N),
    ``batch`` times. Linears are (rows, in, out); attention is the scores (Tq, hs) @
    (hs, T) and the weighted values (Tq, T) @ (T, hs), per window and head. The last
    block computes queries, projection and MLP only for the slots the loss reads
    (`fast_step.read_slots`), as the fast step does; the embeddings come first."""
    n = 3 if cfg.use_returns else 2
    read = 2 if cfg.return_bins and n == 3 else 1  # the action head's slot (and s_t's)
    rows, T, h = B * cfg.context_len, n * cfg.context_len, cfg.hidden
    hs = h // cfg.n_heads
    shapes = [(1, rows, cfg.state_dim, h), (1, rows, cfg.act_dim, h)]  # embeddings
    if cfg.use_returns:
        shapes.append((1, rows, 1, h))
    for layer in range(cfg.n_layers):
        q = read * cfg.context_len if layer == cfg.n_layers - 1 else T  # query tokens
        shapes += [
            (1, B * q, h, h),
            (1, n * rows, h, 2 * h),
            (B * cfg.n_heads, q, hs, T),
            (B * cfg.n_heads, q, T, hs),
            (1, B * q, h, h),
            (1, B * q, h, 4 * h),
            (1, B * q, 4 * h, h),
        ]
    shapes.append((1, read * rows, h, cfg.act_dim))  # the heads (the return head's ~ same)
    return shapes


def train_flops(cfg: DTConfig, B: int) -> float:
    """Matmul FLOPs of one training step at batch ``B``, counted from the model's
    shapes (`matmul_shapes`): 2 M K N per forward matmul, twice that for its backward
    (the gradients of both operands), except the embeddings, whose inputs need no
    gradient. The work the loss needs, whichever path computes it: the plain step
    does 23% more at the paper config (the last block on every token)."""
    total = 0.0
    for i, (b, M, K, N) in enumerate(matmul_shapes(cfg, B)):
        embedding = i < (3 if cfg.use_returns else 2)
        total += 2 * b * M * K * N * (2 if embedding else 3)
    return total


def matmul_block(
    cfg: DTConfig, B: int, precision: str, device: torch.device, repeats: int = 1
) -> Block:
    """A `Block` timing the step's own matmuls (`matmul_shapes`; forward, and both
    backward products) in ``precision`` with nothing else: ms for all of them, which
    with `train_flops` gives the machine's matmul throughput at the model's shapes."""
    dtype = DTYPES[precision]
    g = torch.Generator(device="cpu").manual_seed(0)
    ops = []
    for b, M, K, N in matmul_shapes(cfg, B):
        x = torch.randn(b, M, K, generator=g).to(device=device, dtype=dtype)
        w = torch.randn(b, K, N, generator=g).to(device=device, dtype=dtype)
        dy = torch.randn(b, M, N, generator=g).to(device=device, dtype=dtype)
        ops.append((x, w, dy))

    def one():
        for i, (x, w, dy) in enumerate(ops):
            torch.bmm(x, w)
            torch.bmm(x.transpose(1, 2), dy)  # the weight's (second operand's) gradient
            if i >= (3 if cfg.use_returns else 2):  # embeddings: no input gradient
                torch.bmm(dy, w.transpose(1, 2))

    one()  # warm-up
    return _mean_ms(one, repeats, device)
