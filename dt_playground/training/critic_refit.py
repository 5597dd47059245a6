"""The critic's G refit on its own DT's rollouts.

IQL's run fits G(s, a, t) to the return the *data's* behaviour policies went on to
collect after (s, a). The checked DT asks a different question: what will *this DT*
collect from here? So after the IQL run the DT plays the goals' 8 targets (the data's
p10 to its max), ``seeds`` episodes each on the critic-rollout seeds (`envs/seeds.py`:
never card or trial seeds). At each step it proposes its ``n`` candidates as the checked
DT does and plays a uniformly drawn one (`ExploringPolicy`), so G sees where each
candidate leads, not only where the DT's own choice does. G is then fine-tuned for
``steps`` steps on batches that are ``mix`` rollouts and the rest data; Q, V and the
actor stay as IQL left them.

Each episode draws its picks from a generator of its own, seeded by (the recipe's
seed, the episode's reset seed, its target): batching does not change them, and the
same recipe gives the same G. The critic's ``config.json`` records the recipe as
``refit``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dt_playground.envs.seeds import seed_range
from dt_playground.offline.critic import MAX_REFIT_SEEDS, CheckSettings
from dt_playground.offline.iql import IQL
from dt_playground.offline.transitions import Transitions
from dt_playground.rollout.checked import CheckedPolicy

GRID_TARGETS = 8  # the goals' targets: the data's p10 to its max


@dataclass(frozen=True)
class RefitSettings:
    """How G is refit (the critic's config.json ``refit``)."""

    seeds: int = 10  # critic-rollout seeds per target
    steps: int = 10_000  # G's fine-tuning steps
    mix: float = 0.5  # the share of each batch drawn from the rollouts
    n: int = 5  # candidates the exploring DT draws from
    spread: float = 0.1  # their band, as the checked DT's
    actor: bool = False  # IQL's own action among them
    lr: float = 3e-4
    batch_size: int = 256
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


REFIT = RefitSettings()


def grid_targets(dataset: dict) -> list[float]:
    """The goals' 8 targets, from the data's p10 to its max (rounded to cents)."""
    lo, hi = dataset["return_p10"], dataset["return_max"]
    return np.linspace(lo, hi, GRID_TARGETS).round(2).tolist()


def _target_bits(target: float) -> int:
    return int(np.array([float(target)], np.float64).view(np.uint64)[0])


class ExploringPolicy(CheckedPolicy):
    """The checked DT, except that each row plays a uniformly drawn candidate (one of
    the DT's ``n``, or IQL's own action too with ``actor``), from its own generator."""

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = int(seed)

    def reset(self, targets, seeds, max_steps: int | None = None) -> None:
        super().reset(targets, seeds, max_steps)
        self.pick_rngs = [
            np.random.default_rng([self.seed, int(s), _target_bits(x)])
            for x, s in zip(targets, seeds)
        ]
        self.picks = np.full(self.rtg.shape, -1, np.int64)

    def choose(self, rows: np.ndarray, t: int, enc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = enc.shape[1]
        pick = np.array([self.pick_rngs[r].integers(m) for r in rows], np.int64)
        self.picks[rows, t] = pick
        return pick, np.full((len(rows), m), np.nan)  # G is not asked: nothing is checked


@dataclass
class Rollouts:
    """Every step of the exploring DT's episodes, in the critic's units."""

    s: np.ndarray  # (N, S) normalised states
    a: np.ndarray  # (N, A) encoded actions (the ones played)
    t: np.ndarray  # (N,) step / max_ep_len
    rtg: np.ndarray  # (N,) the return collected from that step on / return scale
    returns: np.ndarray  # (E,) episode returns
    picks: np.ndarray  # (N,) which candidate each step played

    def __len__(self) -> int:
        return len(self.rtg)


def rollouts(ck, critic, settings: RefitSettings = REFIT, seeds=None) -> Rollouts:
    """The DT of checkpoint ``ck`` exploring its candidates (critic: its `IQLCheckpoint`)
    on the goals' targets, ``settings.seeds`` critic-rollout seeds each (or ``seeds``)."""
    from dt_playground.rollout.policy import run_grid

    check = CheckSettings(settings.n, settings.spread, settings.actor, settings.actor)
    pol = ExploringPolicy.for_checkpoint(ck, critic=critic, settings=check, seed=settings.seed)
    seeds = seed_range("critic", settings.seeds) if seeds is None else list(seeds)
    traces = run_grid(pol, grid_targets(ck.config["dataset"]), seeds)
    scale, T = ck.norm.return_scale, ck.spec.max_ep_len
    parts: dict[str, list] = {k: [] for k in ("s", "a", "t", "rtg", "picks")}
    for i, tr in enumerate(traces):
        n = len(tr.rewards)
        parts["s"].append(pol.states[i, :n])
        parts["a"].append(pol.actions[i, :n])
        parts["t"].append(np.arange(n, dtype=np.float32) / T)
        parts["rtg"].append((np.cumsum(tr.rewards[::-1])[::-1] / scale).astype(np.float32))
        parts["picks"].append(pol.picks[i, :n])
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Rollouts(
        cat["s"].astype(np.float32),
        cat["a"].astype(np.float32),
        cat["t"],
        cat["rtg"],
        np.array([float(tr.ret) for tr in traces]),
        cat["picks"],
    )


def refit_return(
    model: IQL, data: Transitions, roll: Rollouts, settings: RefitSettings = REFIT
) -> list[dict]:
    """Fine-tune ``model``'s G alone on batches of ``settings.mix`` rollouts and the
    rest data; the other nets are not touched. Returns the loss curve (every 500 steps)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    keys = ("s", "a", "t", "rtg")
    pools = [{k: torch.from_numpy(getattr(x, k)) for k in keys} for x in (roll, data)]
    n_roll = int(round(settings.batch_size * settings.mix))
    sizes = (n_roll, settings.batch_size - n_roll)
    params = list(model.ret.parameters())
    model.ret.train().requires_grad_(True)
    opt = torch.optim.Adam(params, lr=settings.lr)
    curve, acc = [], 0.0
    for step in range(settings.steps):
        batch = {k: [] for k in pools[0]}
        for pool, size in zip(pools, sizes):
            if size:
                idx = torch.from_numpy(rng.integers(len(pool["rtg"]), size=size))
                for k, v in pool.items():
                    batch[k].append(v[idx])
        b = {k: torch.cat(v) for k, v in batch.items()}
        loss = F.mse_loss(model.return_value(b["s"], b["a"], b["t"]), b["rtg"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc += float(loss.detach())
        if (step + 1) % 500 == 0 or step + 1 == settings.steps:
            curve.append({"step": step + 1, "return": round(acc / ((step % 500) + 1), 6)})
            acc = 0.0
    model.eval().requires_grad_(False)
    return curve


def refit_done(config: dict, settings: RefitSettings = REFIT) -> bool:
    """The critic whose config is ``config`` was refit with ``settings``."""
    done = config.get("refit")
    if not isinstance(done, dict):
        return False
    want = settings.to_dict()
    return {k: done.get(k) for k in want} == want  # (beside them: what the refit measured)


def is_refit(config: dict) -> bool:
    """G was refit (with whatever settings): it is no longer the IQL run's."""
    return isinstance(config.get("refit"), dict)


def refit_critic(
    dt_dir: Path | str, settings: RefitSettings = REFIT, dataset=None, log=print
) -> Path:
    """Refit the G of the critic in ``dt_dir/critic`` on the DT's own rollouts and write
    the critic back (atomically), ``refit`` recorded in its config. ``dataset``: the
    data's transitions (`offline/transitions.py`), loaded from the critic's own dataset
    when not given. A refit cannot be undone: a critic is refit once, from its IQL run's G.
    The critic's card (measured with the old G) is dropped with it."""
    from dt_playground.checkpoints.checkpoint import load_checkpoint
    from dt_playground.errors import CheckpointError
    from dt_playground.offline.critic import critic_dir, load_critic
    from dt_playground.offline.store import save_iql
    from dt_playground.offline.train_iql import load_transitions

    if not 1 <= settings.seeds <= MAX_REFIT_SEEDS:
        raise ValueError(f"refit seeds must be in [1, {MAX_REFIT_SEEDS}], got {settings.seeds}")
    dt_dir = Path(dt_dir)
    ck = load_checkpoint(dt_dir)
    critic, _ = load_critic(dt_dir, ck.config)
    if is_refit(critic.config):
        raise CheckpointError(
            f"{dt_dir.name}'s critic was refit already; train it anew to refit it again"
        )
    t0 = time.perf_counter()
    if dataset is None:
        dataset, _, _ = load_transitions(critic.config["train"]["dataset"], ck.spec.env_id)
    if not np.array_equal(dataset.norm.state_mean, ck.norm.state_mean):
        raise CheckpointError("The refit's data is normalised differently from the DT's")
    roll = rollouts(ck, critic, settings)
    model = critic.model
    curve = refit_return(model, dataset, roll, settings)
    seconds = time.perf_counter() - t0
    config = {
        **critic.config,
        "refit": {
            **settings.to_dict(),
            "episodes": len(roll.returns),
            "transitions": len(roll),
            "rollout_return_mean": round(float(roll.returns.mean()), 2),
            "curve": curve,
            "seconds": round(seconds, 1),
        },
    }
    out = save_iql(critic_dir(dt_dir), model, config)
    log(
        f"  refit {dt_dir.name}/critic's G on {len(roll.returns)} of its DT's episodes "
        f"({len(roll)} steps) in {seconds:.0f} s"
    )
    return out
