"""Training: a function, not a script.

``train(TrainConfig(...))`` loads (or takes) an offline dataset, trains a DT,
BC or %BC model with AdamW, linear warmup (then cosine decay) and gradient
clipping at 0.25 (as the official DT), evaluates at a few target returns every
``eval_every`` steps, and writes a checkpoint folder, resumable from its last
save.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from . import cpu
from .checkpoints import save_checkpoint
from .data import OfflineDataset, load_episodes
from .envs import get_spec, make_env, space_dims
from .model import DecisionTransformer, DTConfig
from .returns import DEFAULT_BINS, dataset_head_config
from .rollout import DTPolicy, run_grid

# Seeds for evaluation during training (model selection); card evaluations use
# `EVAL_SEED_BASE` in evaluate.py, which neither training nor selection touches.
TRAIN_EVAL_SEED = 500_000


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    dataset: str = _f("", "Minari dataset id or folder (default: dtp/<env>/mixed-v0)")
    env_id: str = _f("", "environment id; read from the dataset's metadata when empty")
    out: str = _f("runs/checkpoint", "checkpoint folder to write")
    algo: str = _f("dt", "dt (Decision Transformer), bc (behaviour cloning) or pbc (%BC)")
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
    bf16: bool = _f(True, "bfloat16 autocast for the forward pass (fast on AVX-512 BF16 CPUs)")
    eval_every: int = _f(0, "evaluate every N steps (0: only at the end)")
    eval_episodes: int = _f(2, "episodes per target in periodic evaluation")
    eval_targets: str = _f(
        "", "comma-separated targets for periodic evaluation (default: dataset p10, median, max)"
    )
    save_every: int = _f(500, "write a resumable checkpoint every N steps")
    resume: bool = _f(True, "resume from the checkpoint folder's saved state if present")
    keep_train_state: bool = _f(False, "keep optimizer state in the final checkpoint")
    seed: int = _f(0, "seed for initialisation and batch sampling")
    threads: int = _f(0, "torch threads (0: torch's default)")
    return_bins: int = _f(
        DEFAULT_BINS, "dt only: bins of the return-distribution head (target 'best'); 0: none"
    )

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


@dataclass
class TrainResult:
    checkpoint: Path
    curve: list[dict]
    evals: list[dict]
    seconds: float
    final_loss: float


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


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Optimizer state as (tensors, json) so it can live in safetensors."""
    tensors, meta = {}, {}
    for i, (_, st) in enumerate(sorted(opt.state_dict()["state"].items())):
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0:
                tensors[f"{i}.{k}"] = v.contiguous()
            else:
                meta[f"{i}.{k}"] = float(v)
    return tensors, meta


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    n = len(sd["param_groups"][0]["params"])
    state = {}
    for i in range(n):
        st = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)}
        st.update(
            {
                k.split(".", 1)[1]: torch.tensor(v)
                for k, v in meta.items()
                if k.split(".", 1)[0] == str(i)
            }
        )
        if st:
            state[i] = st
    sd["state"] = state
    opt.load_state_dict(sd)


def build_dataset(cfg: TrainConfig) -> tuple[OfflineDataset, dict, str]:
    """Load the dataset named by the config; returns (dataset, summary of ALL data, env_id)."""
    from .data import default_dataset_id

    name = cfg.dataset or default_dataset_id(cfg.env_id)
    episodes, env_id, meta = load_episodes(name)
    if cfg.env_id and get_spec(cfg.env_id).env_id != get_spec(env_id).env_id:
        raise ValueError(f"Dataset {name} was recorded on {env_id}, not {cfg.env_id}")
    spec = get_spec(env_id)
    env = make_env(spec)
    _, act_dim = space_dims(env)
    env.close()
    full = OfflineDataset(episodes, spec, act_dim)
    summary = full.summary()
    summary["dataset_id"] = str(meta.get("dataset_id", name))
    summary["ref_min_score"] = meta.get("ref_min_score")
    summary["ref_max_score"] = meta.get("ref_max_score")
    ds = full.top_fraction(cfg.pbc_fraction) if cfg.algo == "pbc" else full
    return ds, summary, spec.env_id


def train(
    cfg: TrainConfig, on_step=None, progress: bool = False, dataset=None, should_stop=None
) -> TrainResult:
    """Train a model as configured and write its checkpoint folder to ``cfg.out``.

    ``on_step(step, loss, lr)`` is called after every step (the app's live
    curve); ``should_stop()`` returning True cancels cleanly (a checkpoint of
    the steps done so far is still written). ``dataset`` may be a prebuilt
    ``(OfflineDataset, summary, env_id)``.
    """
    if cfg.algo not in ("dt", "bc", "pbc"):
        raise ValueError(f"algo must be dt, bc or pbc, got {cfg.algo!r}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cpu.retain_freed_memory()
    ds, summary, env_id = dataset or build_dataset(cfg)
    spec = get_spec(env_id)
    torch.manual_seed(cfg.seed)
    mcfg = DTConfig(
        ds.state_dim,
        ds.act_dim,
        spec.discrete,
        cfg.hidden,
        cfg.n_layers,
        cfg.n_heads,
        cfg.context_len,
        spec.max_ep_len,
        cfg.dropout,
        use_returns=cfg.algo == "dt",
        **dataset_head_config(ds, cfg.return_bins if cfg.algo == "dt" else 0),
    )
    model = DecisionTransformer(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    step, curve, evals, elapsed = 0, [], [], 0.0

    state_json = out / "train_state.json"
    if cfg.resume and state_json.is_file():
        st = json.loads(state_json.read_text())
        loose = {
            "resume",
            "steps",
            "eval_every",
            "eval_episodes",
            "save_every",
            "keep_train_state",
            "threads",
        }
        saved = {k: v for k, v in st.get("config", {}).items() if k not in loose}
        if saved != {k: v for k, v in asdict(cfg).items() if k not in loose}:
            raise ValueError(
                f"{out} holds a run with a different configuration; choose "
                "another output folder or pass --no-resume"
            )
        model.load_state_dict(load_file(str(out / "model.safetensors")))
        tensors = load_file(str(out / "train_state.safetensors"))
        torch.set_rng_state(tensors.pop("__torch_rng"))
        _restore_optimizer(opt, tensors, st["optimizer"])
        rng.bit_generator.state = st["numpy_rng"]
        step, curve, evals, elapsed = st["step"], st["curve"], st["evals"], st["seconds"]

    targets = (
        [float(x) for x in cfg.eval_targets.split(",") if x.strip()]
        if cfg.eval_targets
        else [summary["return_p10"], summary["return_median"], summary["return_max"]]
    )

    def config_json(final: bool) -> dict:
        return {
            "env_id": spec.env_id,
            "algo": cfg.algo,
            "context_len": cfg.context_len,
            "state_mean": ds.norm.state_mean.tolist(),
            "state_std": ds.norm.state_std.tolist(),
            "return_scale": spec.return_scale,
            "dataset": summary,
            "train": asdict(cfg),
            "curve": curve,
            "evals": evals,
            "steps_done": step,
            "complete": final,
            "train_seconds": round(elapsed, 2),
        }

    def save(final: bool):
        extra = {}
        if not final or cfg.keep_train_state:
            tensors, meta = _optimizer_state(opt)
            tensors["__torch_rng"] = torch.get_rng_state()
            extra["train_state.safetensors"] = tensors
            extra["train_state.json"] = {
                "config": asdict(cfg),
                "optimizer": meta,
                "numpy_rng": rng.bit_generator.state,
                "step": step,
                "curve": curve,
                "evals": evals,
                "seconds": elapsed,
            }
        save_checkpoint(out, model, config_json(final), extra_files=extra)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.steps, initial=step, desc=f"train {cfg.algo} {spec.env_id}", unit="step"
        )
    model.train()
    t0 = time.perf_counter() - elapsed
    loss_val = float("nan")
    while step < cfg.steps:
        if should_stop is not None and should_stop():
            break
        batch = {
            k: torch.from_numpy(v)
            for k, v in ds.sample(cfg.batch_size, cfg.context_len, rng).items()
        }
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = model.loss(batch)
        lr = cfg.lr * _lr_factor(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        loss_val = float(loss.detach())
        if step % 10 == 0 or step == cfg.steps:
            curve.append({"step": step, "loss": round(loss_val, 5), "lr": lr})
        if on_step is not None:
            on_step(step, loss_val, lr)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.4f}")
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            model.eval()
            for e in evaluate_targets(
                model, ds.norm, spec, targets, cfg.eval_episodes, TRAIN_EVAL_SEED
            ):
                evals.append({"step": step, **e})
            model.train()
        elapsed = time.perf_counter() - t0
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
            save(final=False)
    if bar is not None:
        bar.close()
    model.eval()
    if cfg.eval_episodes > 0 and step > 0:
        for e in evaluate_targets(
            model, ds.norm, spec, targets, cfg.eval_episodes, TRAIN_EVAL_SEED
        ):
            evals.append({"step": step, **e})
    elapsed = time.perf_counter() - t0
    save(final=step >= cfg.steps)
    return TrainResult(out, curve, evals, elapsed, loss_val)
