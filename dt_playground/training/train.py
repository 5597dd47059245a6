"""Training: a function, not a script.

``train(TrainConfig(...))`` loads (or takes) an offline dataset, trains a DT,
BC or %BC model with AdamW, linear warmup (then cosine decay) and gradient
clipping at 0.25 (as the official DT), evaluates at a few target returns every
``eval_every`` steps, and writes a checkpoint folder, resumable from its last
save.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from dt_playground.checkpoints.layout import ALGOS
from dt_playground.data.storage import load_episodes
from dt_playground.data.windows import OfflineDataset
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.dt.return_head import DEFAULT_BINS, dataset_head_config
from dt_playground.dt.runtime import resolve_device, torch_threads
from dt_playground.envs.registry import env_dims, get_spec
from dt_playground.envs.seeds import (
    TRAIN_EVAL_SEED,  # model selection's seeds, never the cards' (seeds.py)
)
from dt_playground.rollout.policy import DTPolicy, run_grid
from dt_playground.training.run_state import (
    LOG_EVERY,
    Checkpointer,
    LossLog,
    RunState,
    clock,
    restore,
)
from dt_playground.training.step import (
    DeviceWindows,
    TrainStep,
    choose_mode,
    join_world,
    make_optimizer,
    rank_seed,
)

# Keys that say how and where a run goes, not what it trains: two configs that
# differ only here train the same model (`TrainConfig.identity`).
RUN_ONLY = frozenset(
    {
        "dataset",
        "out",
        "resume",
        "save_every",
        "keep_train_state",
        "threads",
        "device",
        "step_mode",
        "fast_step",
        "eval_every",
        "eval_episodes",
        "eval_targets",
    }
)


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    dataset: str = _f("", "Minari dataset id or folder (default: dtp/<env>/mixed-v0)")
    env_id: str = _f("", "environment id; read from the dataset's metadata when empty")
    out: str = _f("runs/checkpoint", "checkpoint folder to write")
    algo: str = _f(
        "dt",
        "dt (Decision Transformer), bc (behaviour cloning), pbc (%BC) or iql "
        "(offline RL; takes --steps and --seed, the rest of IQL's recipe is its own)",
    )
    pbc_fraction: float = _f(0.1, "for pbc: fraction of best episodes to clone")
    steps: int = _f(2000, "gradient steps")
    batch_size: int = _f(64, "windows per batch")
    context_len: int = _f(20, "K, timesteps per window")
    hidden: int = _f(128, "embedding width")
    n_layers: int = _f(3, "transformer blocks")
    n_heads: int = _f(1, "attention heads")
    dropout: float = _f(0.1, "dropout rate")
    lr: float = _f(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = _f(1e-4, "AdamW weight decay")
    warmup_steps: int = _f(200, "linear warmup steps")
    cosine_decay: bool = _f(True, "cosine-decay the learning rate to 10% after warmup")
    grad_clip: float = _f(0.25, "gradient norm clip")
    bf16: bool = _f(True, "bf16 matmuls (native on CUDA and AVX-512/AMX CPUs, else emulated)")
    eval_every: int = _f(0, "evaluate every N steps (0: only at the end)")
    eval_episodes: int = _f(2, "episodes per target in periodic evaluation")
    eval_targets: str = _f(
        "", "comma-separated targets for periodic evaluation (default: dataset p10, median, max)"
    )
    save_every: int = _f(500, "write a resumable checkpoint every N steps")
    resume: bool = _f(True, "resume from the checkpoint folder's saved state if present")
    keep_train_state: bool = _f(False, "keep optimizer state in the final checkpoint")
    seed: int = _f(0, "seed for initialisation and batch sampling")
    threads: int = _f(0, "torch threads while training (0: leave as is)")
    device: str = _f("auto", "auto (cuda when available), cpu or cuda")
    step_mode: str = _f(
        "auto", "auto, eager, compile or graph (auto: one CUDA graph on a single GPU, else eager)"
    )
    fast_step: bool = _f(True, "the fast training step (same maths; --no-fast-step: the plain)")
    return_bins: int = _f(
        0,
        f"bins of a return-distribution head for target 'best' (e.g. {DEFAULT_BINS}); 0: "
        "none. On a dt it is MGDT's head, whose (s, R, a) order can cost action quality; on a "
        "bc it makes a return model to put in a DT's returns/ folder (see `returns`)",
    )

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def identity(self, steps: bool = True) -> dict:
        """The recipe: every key but the run-only ones (`RUN_ONLY`). Resuming compares
        it without ``steps`` (a run may be extended); keeping a finished checkpoint
        compares it whole."""
        return self.identity_of(asdict(self), steps)

    @staticmethod
    def identity_of(saved: dict, steps: bool = True) -> dict:
        """`identity` of a config saved as JSON (keys it lacks stay absent: a recipe
        key added since makes an old run differ, as it should)."""
        drop = RUN_ONLY if steps else RUN_ONLY | {"steps"}
        return {k: v for k, v in saved.items() if k not in drop}


@dataclass
class TrainResult:
    checkpoint: Path
    curve: list[dict]
    evals: list[dict]
    seconds: float
    final_loss: float
    rank: int = 0  # this process's rank under torchrun (0 writes and logs)


def _lr_factor(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if not cfg.cosine_decay:
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def evaluate_targets(
    model, norm, spec, targets, episodes: int, seed: int, max_steps: int | None = None
) -> list[dict]:
    """Mean achieved return per target over ``episodes`` seeds (for model selection)."""
    policy = DTPolicy(model, norm, spec)
    traces = run_grid(policy, targets, range(seed, seed + episodes), max_steps=max_steps)
    out = []
    for t in targets:
        rets = [tr.ret for tr in traces if tr.target == t]
        out.append({"target": float(t), "return": float(np.mean(rets))})
    return out


def build_dataset(cfg: TrainConfig) -> tuple[OfflineDataset, dict, str]:
    """Load the dataset named by the config; returns (dataset, summary of ALL data, env_id)."""
    from dt_playground.data.storage import default_dataset_id

    name = cfg.dataset or default_dataset_id(cfg.env_id)
    episodes, env_id, meta = load_episodes(name)
    if cfg.env_id and get_spec(cfg.env_id).env_id != get_spec(env_id).env_id:
        raise ValueError(f"Dataset {name} was recorded on {env_id}, not {cfg.env_id}")
    spec = get_spec(env_id)
    _, act_dim = env_dims(spec.env_id)
    full = OfflineDataset(episodes, spec, act_dim)
    summary = full.summary()
    summary["dataset_id"] = str(meta.get("dataset_id", name))
    summary["ref_min_score"] = meta.get("ref_min_score")
    summary["ref_max_score"] = meta.get("ref_max_score")
    ds = full.top_fraction(cfg.pbc_fraction) if cfg.algo == "pbc" else full
    return ds, summary, spec.env_id


def gathers_on_device(device: torch.device) -> bool:
    """Whether batches are gathered on the device (`DeviceWindows`, CUDA) rather than
    in numpy (the CPU). A function so the tests can run the device path on the CPU."""
    return device.type == "cuda"


def train(
    cfg: TrainConfig, on_step=None, progress: bool = False, dataset=None, should_stop=None
) -> TrainResult:
    """Train a model as configured and write its checkpoint folder to ``cfg.out``.

    ``on_step(step, loss, lr)`` is called after every step (the app's live
    curve; on CUDA in bursts of `LOG_EVERY`, when losses are read back);
    ``should_stop()`` returning True cancels cleanly (a checkpoint of the steps
    done so far is still written). ``dataset`` may be a prebuilt
    ``(OfflineDataset, summary, env_id)``. Under ``torchrun`` every rank calls
    this; rank 0 alone writes the checkpoint, logs and evaluates.

    Process-wide settings are the caller's (`runtime.setup_process`); ``cfg.threads``
    applies only while this runs.
    """
    if cfg.algo not in ALGOS:
        raise ValueError(f"algo must be dt, bc or pbc, got {cfg.algo!r}")
    device = resolve_device(cfg.device)
    world = join_world(device)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    try:
        with torch_threads(cfg.threads):
            return _train(cfg, device, world, on_step, progress, dataset, should_stop)
    finally:
        world.close()


def _model_config(cfg: TrainConfig, ds: OfflineDataset, spec) -> DTConfig:
    return DTConfig(
        state_dim=ds.state_dim,
        act_dim=ds.act_dim,
        discrete=spec.discrete,
        hidden=cfg.hidden,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        context_len=cfg.context_len,
        max_ep_len=spec.max_ep_len,
        dropout=cfg.dropout,
        use_returns=cfg.algo == "dt",
        **dataset_head_config(ds, cfg.return_bins if cfg.algo in ("dt", "bc") else 0),
    )


def _eval_targets(cfg: TrainConfig, summary: dict) -> list[float]:
    if cfg.eval_targets:
        return [float(x) for x in cfg.eval_targets.split(",") if x.strip()]
    return [summary["return_p10"], summary["return_median"], summary["return_max"]]


def _evaluate(model, ds, spec, cfg: TrainConfig, targets, world, run: RunState) -> None:
    """Rank 0 plays each target on the model-selection seeds; every rank waits."""
    if world.main:
        model.eval()
        model.weights_changed()  # the acting engine copies these weights anew
        for e in evaluate_targets(
            model, ds.norm, spec, targets, cfg.eval_episodes, TRAIN_EVAL_SEED
        ):
            run.evals.append({"step": run.step, **e})
        model.train()
    world.barrier()


def _progress_bar(cfg: TrainConfig, spec, step: int):
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.algo} {spec.env_id}", unit="step")


def _batch(ds, run: RunState, share: int, K: int) -> dict[str, torch.Tensor]:
    """Batches: numpy on the CPU (as every earlier run), gathered on the GPU on CUDA."""
    if run.windows is not None and run.gen is not None:
        return run.windows.sample(share, K, run.gen)
    return {k: torch.from_numpy(v) for k, v in ds.sample(share, K, run.rng).items()}


def _train(cfg, device, world, on_step, progress, dataset, should_stop) -> TrainResult:
    ds, summary, env_id = dataset or build_dataset(cfg)
    spec = get_spec(env_id)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = DecisionTransformer(_model_config(cfg, ds, spec)).to(device)
    mode = choose_mode(cfg.step_mode, device, world)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, device, graph=mode == "graph")
    windows = DeviceWindows(ds, device) if gathers_on_device(device) else None
    run = restore(cfg, model, opt, summary, world, device, windows)
    if world.size > 1:  # dropout masks differ per rank (weights are already made)
        torch.manual_seed(rank_seed(cfg.seed, world.rank, run.step + 1))
    share = world.batch_share(cfg.batch_size)
    train_step = TrainStep(
        model,
        opt,
        device=device,
        bf16=cfg.bf16,
        grad_clip=cfg.grad_clip,
        mode=mode,
        world=world,
        fast=cfg.fast_step,
    )
    targets = _eval_targets(cfg, summary)
    saver = Checkpointer(cfg, model, opt, spec, ds.norm, summary, world, device, run)
    bar = _progress_bar(cfg, spec, run.step) if progress and world.main else None
    log = LossLog(run, cfg.steps, on_step, bar, world.main)
    model.train()
    t0 = clock(run)
    while run.step < cfg.steps:
        if should_stop is not None and should_stop():
            break
        lr = cfg.lr * _lr_factor(cfg, run.step)
        loss = train_step(_batch(ds, run, share, cfg.context_len), lr)
        run.step += 1
        # On the device, losses are read back in bursts.
        log.add(run.step, loss, lr, read_now=windows is None or run.step % LOG_EVERY == 0)
        before_end = run.step < cfg.steps
        if cfg.eval_every and run.step % cfg.eval_every == 0 and before_end:
            log.flush()
            _evaluate(model, ds, spec, cfg, targets, world, run)
        run.elapsed = time.perf_counter() - t0
        if cfg.save_every and run.step % cfg.save_every == 0 and before_end:
            log.flush()
            saver.save(final=False)
    log.close()
    model.eval()
    model.weights_changed()
    if cfg.eval_episodes > 0 and run.step > 0:
        _evaluate(model, ds, spec, cfg, targets, world, run)
    run.elapsed = time.perf_counter() - t0
    saver.save(final=run.step >= cfg.steps)
    world.barrier()
    return TrainResult(Path(cfg.out), run.curve, run.evals, run.elapsed, log.last, world.rank)
