"""Training IQL on a DT's dataset: a function, not a script.

``train_iql(dataset, env_id, IQLConfig(...))`` reads the Minari dataset, turns it into
transitions normalised as the DT's windows (`offline/transitions.py`), and runs IQL's
three updates (and the return net's) for ``cfg.steps`` steps with Adam; the actor's
learning rate follows a cosine to zero, as the paper's. ``write_iql`` saves the result
as ``pretrained/<env>-iql``; `offline/critic.py` saves the same nets as a DT's critic.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dt_playground.data.storage import DEFAULT_DATA_ROOT, load_episodes
from dt_playground.data.windows import dataset_summary
from dt_playground.envs.registry import env_dims, get_spec
from dt_playground.errors import DatasetError
from dt_playground.offline.iql import IQL, IQLConfig
from dt_playground.offline.store import load_iql, save_iql
from dt_playground.offline.transitions import Transitions, transitions

LOG_EVERY = 100  # steps between loss-curve points


@dataclass
class IQLResult:
    model: IQL
    data: Transitions
    summary: dict  # the dataset summary (`data.windows.dataset_summary`)
    curve: list[dict]
    seconds: float
    env_id: str
    steps_done: int = 0


def load_transitions(
    dataset: str | Path, env_id: str | None = None, root: Path | str = DEFAULT_DATA_ROOT
) -> tuple[Transitions, dict, str]:
    """A Minari dataset as transitions, its summary and its env id."""
    episodes, data_env, meta = load_episodes(dataset, root)
    if env_id is not None and get_spec(env_id).env_id != data_env:
        raise DatasetError(f"The dataset holds {data_env} episodes, not {env_id}")
    spec = get_spec(data_env)
    _, act_dim = env_dims(spec.env_id)
    summary = dataset_summary(episodes)
    # As the DT trainer's: the id, never a machine path, and the reference scores.
    summary["dataset_id"] = str(meta.get("dataset_id", dataset))
    summary["ref_min_score"] = meta.get("ref_min_score")
    summary["ref_max_score"] = meta.get("ref_max_score")
    return transitions(episodes, spec, act_dim), summary, spec.env_id


def train_iql(
    dataset: str | Path,
    env_id: str | None,
    cfg: IQLConfig,
    progress: bool = False,
    root: Path | str = DEFAULT_DATA_ROOT,
    snapshot_every: int = 0,
    on_snapshot=None,
) -> IQLResult:
    """IQL (and its return net) trained on ``dataset``; ``cfg``'s sizes are filled in from
    the env, its reward scale from the data when left at 1. Every ``snapshot_every`` steps
    ``on_snapshot(result)`` gets the run so far (``steps_done`` < ``cfg.steps``), so a run
    stopped early leaves a usable, honestly labelled checkpoint."""
    t0 = time.perf_counter()
    data, summary, env_id = load_transitions(dataset, env_id, root)
    spec = get_spec(env_id)
    s_dim, a_dim = env_dims(env_id)
    scale = cfg.reward_scale if cfg.reward_scale != 1.0 else data.reward_scale()
    cfg = replace(
        cfg, state_dim=s_dim, act_dim=a_dim, discrete=spec.discrete, reward_scale=round(scale, 6)
    )
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = IQL(cfg)
    batch_all = data.tensors(cfg.reward_scale)
    # One fused Adam over every net (the losses touch disjoint parameters, so this is four
    # optimizers' maths at about half the CPU time); the actor and the return net are
    # groups of their own, for the actor's schedule and the return net's budget.
    groups = [
        {"params": [*model.q.parameters(), *model.v.parameters()]},
        {"params": [*model.actor.parameters(), model.log_std]},
        {"params": list(model.ret.parameters())},
    ]
    opt = torch.optim.Adam(groups, lr=cfg.lr, fused=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"iql {spec.short_name}")
    curve, acc = [], {}
    for step in range(cfg.steps):
        idx = torch.from_numpy(rng.integers(len(data), size=cfg.batch_size))
        b = {k: v[idx] for k, v in batch_all.items()}
        with_return = step < cfg.return_steps
        losses = model.losses(b, with_return=with_return)
        # The actor's learning rate: cosine to zero over the run (the paper's schedule).
        progress_ = step / max(1, cfg.steps)
        opt.param_groups[1]["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * progress_))
        opt.param_groups[2]["lr"] = cfg.lr if with_return else 0.0
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()  # pyright: ignore[reportAttributeAccessIssue] (a tensor)
        opt.step()
        model.update_target()
        for k, v in losses.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        if (step + 1) % LOG_EVERY == 0 or step + 1 == cfg.steps:
            n = (step % LOG_EVERY) + 1
            curve.append({"step": step + 1, **{k: round(v / n, 6) for k, v in acc.items()}})
            acc = {}
        if bar is not None and (step + 1) % LOG_EVERY == 0:
            bar.update(LOG_EVERY)
        if (
            on_snapshot
            and snapshot_every
            and (step + 1) % snapshot_every == 0
            and step + 1 < cfg.steps
        ):
            snap = IQLResult(
                model, data, summary, list(curve), time.perf_counter() - t0, env_id, step + 1
            )
            model.eval()
            on_snapshot(snap)
            model.train()
    if bar is not None:
        bar.close()
    model.eval().requires_grad_(False)
    return IQLResult(model, data, summary, curve, time.perf_counter() - t0, env_id, cfg.steps)


def base_config(res: IQLResult, env_id: str, algo: str) -> dict:
    """config.json's keys a loader and the keep-check need (no machine paths)."""
    norm = res.data.norm
    return {
        "env_id": env_id,
        "algo": algo,
        "state_mean": norm.state_mean.tolist(),
        "state_std": norm.state_std.tolist(),
        "return_scale": float(norm.return_scale),
        "dataset": res.summary,
        "train": {"dataset": res.summary.get("dataset_id", ""), **res.model.cfg.to_dict()},
        "curve": res.curve,
        "steps_done": res.steps_done,
        "complete": res.steps_done >= res.model.cfg.steps,
        "train_seconds": round(res.seconds, 1),
    }


def write_iql(out: Path | str, res: IQLResult, env_id: str) -> Path:
    """``res`` as an IQL checkpoint folder at ``out``."""
    return save_iql(out, res.model, base_config(res, env_id, "iql"))


def already_trained(
    folder: Path | str, cfg: IQLConfig, sha256: str | None, kind: str = "iql"
) -> bool:
    """A complete IQL/critic folder of this recipe, on data of this hash, is there
    (`pretrain`'s keep-check). The sizes and reward scale come from the data, so they are
    not compared."""
    try:
        done = load_iql(folder, kind=kind).config
    except Exception:  # noqa: BLE001  (missing or broken: train it again)
        return False
    derived = {"state_dim", "act_dim", "discrete", "reward_scale"}
    want = {k: v for k, v in cfg.to_dict().items() if k not in derived}
    have = {k: v for k, v in (done.get("iql") or {}).items() if k not in derived}
    return (
        bool(done.get("complete"))
        and want == have
        and (done.get("dataset") or {}).get("sha256") == sha256
    )
