"""The zoo's offline RL: ``pretrained/<env>-iql`` and each K=20 DT's ``critic/``.

One IQL run per env, on the DT's own dataset, gives both: its actor (the snapshot of the
run that plays best on trial seeds) is the IQL checkpoint, its Q, V and return nets at
the run's end are the DT's critic (the same run: the critic costs no second training).
Same recipe and data hash: kept, not retrained (`pretrain`'s keep-check);
``pretrain --verify`` covers them as it covers the DTs.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from dt_playground.envs.registry import get_spec
from dt_playground.offline.critic import CheckSettings, critic_dir, write_critic
from dt_playground.offline.iql import IQLConfig
from dt_playground.offline.train_iql import already_trained, base_config, train_iql, write_iql
from dt_playground.training.critic_refit import (
    REFIT,
    RefitSettings,
    is_refit,
    refit_critic,
    refit_done,
)

# IQL's D4RL locomotion recipe (tau 0.7, beta 3, gamma 0.99, lr 3e-4, batch 256) for
# every env, with two 128-wide layers per net (the paper's are 256 wide): a step costs
# 6-9 ms of CPU on one thread against ~18 ms at 256, and the nets are a quarter of the
# size. The first shipped runs (8-20k steps, the MuJoCo ones stopped at 10k) were below
# %BC everywhere; these complete runs take 2-5 CPU-minutes (docs/critic.md), leaving
# the 20 CPU-minute budget room for the critic's refit (`training/critic_refit.py`).
# More steps are not IQL's lever on Hopper: complete 10k/20k/40k runs averaged 1357,
# 1233 and 838 on its trial seeds (bimodal: a run falls or reaches ~3300); the 40k run
# is kept for its critic, chosen on trial seeds. CartPole's run is the 256-wide recipe.
# Which snapshot of a run acts is IQL's lever (`SnapshotPicker`): the 40k Hopper run's
# snapshots played 104 to 1927 on 20 trial seeds, its last 950.
# The folders are snapshotted every SNAPSHOT_EVERY steps: a stopped run leaves a
# checkpoint that says how far it got (``steps_done``, ``complete: false``).
_STEPS = {
    "Pendulum-v1": 20_000,
    "LunarLander-v3": 40_000,
    "Hopper-v5": 40_000,
    "HalfCheetah-v5": 40_000,
    "Walker2d-v5": 40_000,
}
IQL_RECIPES: dict[str, IQLConfig] = {
    "CartPole-v1": IQLConfig(steps=20_000, return_steps=20_000),
    **{env: IQLConfig(hidden=128, steps=n, return_steps=n) for env, n in _STEPS.items()},
}
SNAPSHOT_EVERY = 2500  # steps between the folders' snapshots (complete: false until done)
# The IQL checkpoint is the run's snapshot that plays best on this many trial seeds
# (`SnapshotPicker`); the critic is the complete run's.
SELECT_SEEDS = 50
# The checked DT's candidates per env (n, spread and switches; docs/critic.md), chosen
# on trial seeds (10 a target, 8 targets p10..max) with the refit G. Mean |achieved -
# asked| up to p90, unchecked -> checked, and rho:
# - CartPole: 64.3 -> 41.2 at (5, 0.1), 52.1 at (3, 0.05); rho 0.976 -> 1.000.
# - Pendulum: 191.8 -> 198.6 at (5, 0.1); 94.5 with IQL's action among the candidates
#   for asks and `best` (its DT cannot swing up, IQL can); `best` -679 -> -154.
# - LunarLander: 44.4 -> 27.6 at (5, 0.1), rho 0.881 -> 0.976; IQL's action for `best`
#   lowered it (241 -> 230).
# - Hopper: 160.8 -> 180.8 at (5, 0.1) with Q's `best` 3030 -> 2592; 90.6 at (3, 0.05),
#   rho 0.929 -> 0.976, with the DT's own `best`.
# - HalfCheetah: 498.5 -> 569.6 at (5, 0.1), 536.0 at (3, 0.05) (rho 0.929 kept); Q's
#   `best` 4073 -> 4734 at (3, 0.05), 5109 with IQL's action among the candidates.
# - Walker2d: 841.5 -> 780.0 at (5, 0.1), 714.3 at (3, 0.05); rho 0.833 -> 0.881; Q's
#   `best` 5476 -> 5732 at (3, 0.05) (5873 at (5, 0.1)); the DT's own `best` 5392.
_CHECK = CheckSettings(n=5, spread=0.1)
CHECKS: dict[str, CheckSettings] = {
    **{env: _CHECK for env in IQL_RECIPES},
    "Pendulum-v1": replace(_CHECK, actor=True, actor_asks=True),
    "Hopper-v5": CheckSettings(n=3, spread=0.05, q_for_best=False),
    "HalfCheetah-v5": CheckSettings(n=3, spread=0.05, actor=True),
    "Walker2d-v5": CheckSettings(n=3, spread=0.05),
}
# How each env's critic's G is refit on its DT's rollouts (`training/critic_refit.py`).
# Pendulum's DT cannot swing the pendulum up and IQL can: its rollouts explore IQL's
# action too, so that G learns where it leads (its checked DT offers it, `actor_asks`).
REFITS: dict[str, RefitSettings] = {
    **{env: REFIT for env in IQL_RECIPES},
    "Pendulum-v1": replace(REFIT, actor=True),
}


def refit_recipe(env_id: str, seeds: int | None = None, steps: int | None = None) -> RefitSettings:
    """The env's refit settings, with ``seeds`` rollout seeds a target when given.
    ``steps`` is a test's override of the training steps: the refit then takes as many
    steps, on one rollout seed a target (unless ``seeds`` says otherwise)."""
    base = REFITS.get(get_spec(env_id).env_id, REFIT)
    if steps:
        base = replace(base, steps=steps, seeds=1)
    return base if seeds is None else replace(base, seeds=seeds)


def iql_name(env_id: str) -> str:
    return f"{get_spec(env_id).short_name}-iql"


def ensure_iql(
    env_id: str,
    dataset: str,
    sha256: str | None,
    out_root: Path,
    steps: int | None = None,
    log=print,
) -> Path:
    """``<out_root>/<env>-iql`` and ``<env>-dt/critic`` (when that DT is there), trained
    unless both are of this recipe and data already. Returns the IQL folder."""
    spec = get_spec(env_id)
    cfg = IQL_RECIPES[spec.env_id]
    if steps:
        cfg = IQLConfig(**{**cfg.to_dict(), "steps": steps, "return_steps": steps})
    out = Path(out_root) / iql_name(spec.env_id)
    dt_dir = Path(out_root) / f"{spec.short_name}-dt"
    refit = refit_recipe(spec.env_id, steps=steps)
    want_critic = (dt_dir / "config.json").is_file()
    # The critic: kept (this recipe, data and refit), kept and refit (its G still the IQL
    # run's), or written anew by the run below (a refit cannot be undone).
    critic_ok, critic_refit, refit_otherwise = not want_critic, False, False
    if want_critic and already_trained(critic_dir(dt_dir), cfg, sha256, "critic"):
        critic_config = json.loads((critic_dir(dt_dir) / "config.json").read_text())
        critic_ok = refit_done(critic_config, refit)
        critic_refit = not critic_ok and not is_refit(critic_config)
        refit_otherwise = not critic_ok and not critic_refit
    iql_ok = already_trained(out, cfg, sha256) and selection_done(out)
    if iql_ok and critic_ok:
        log(f"  kept {out.name}{' and its critic' * want_critic}: already trained with this recipe")
        return out
    if iql_ok and critic_refit:
        log(f"  kept {out.name}; refitting its critic's G")
        refit_critic(dt_dir, refit, log=log)
        return out
    new_critic = want_critic and not (critic_ok or critic_refit)
    if want_critic and not new_critic:
        log(f"  kept {dt_dir.name}'s critic; training {out.name} again to pick its snapshot")
    elif refit_otherwise:
        log(f"  {dt_dir.name}'s critic was refit otherwise: training it anew")
    dt_config = json.loads((dt_dir / "config.json").read_text()) if new_critic else None
    picker = SnapshotPicker(spec.env_id)

    def save(res) -> None:  # the IQL folder and the DT's critic, from one run
        write_iql(out, res, spec.env_id)
        if dt_config is not None:
            base = base_config(res, spec.env_id, "critic")
            write_critic(dt_dir, res.model, dt_config, base, CHECKS[spec.env_id], support_of(res))
        picker.offer(res)

    t0 = time.perf_counter()
    res = train_iql(
        dataset, spec.env_id, cfg, progress=True, snapshot_every=SNAPSHOT_EVERY, on_snapshot=save
    )
    save(res)
    picker.write(out, res)  # the IQL folder: the run's snapshot that played best
    log(
        f"  trained {out.name}{' and its critic' * new_critic}: {cfg.steps} steps in "
        f"{time.perf_counter() - t0:.0f} s, final losses {res.curve[-1]}; its actor is step "
        f"{picker.best_step}'s ({picker.best_mean:.1f} on {SELECT_SEEDS} trial seeds)"
    )
    if want_critic and not critic_ok:
        refit_critic(dt_dir, refit, dataset=res.data, log=log)
    return out


class SnapshotPicker:
    """Which snapshot of an IQL run to ship: the one whose actor plays best on
    ``SELECT_SEEDS`` trial seeds (never card seeds). Offline RL's policy swings from
    snapshot to snapshot: Hopper's run played 1927 on its trial seeds at step 17 500 and
    104 at 27 500. ``offer`` plays each snapshot as the run makes it and keeps the best's
    actor; ``write`` ships it, with every snapshot's mean (config.json's ``selected``)."""

    def __init__(self, env_id: str, n_seeds: int | None = None):
        self.env_id, self.n_seeds = env_id, n_seeds or SELECT_SEEDS
        self.means: list[list[float]] = []  # [step, mean] of every snapshot offered
        self.best_step, self.best_mean, self.best_state = 0, float("-inf"), None

    def score(self, res) -> float:
        """The mean return of the run's actor as it is now, on the trial seeds."""
        import numpy as np

        from dt_playground.envs.seeds import TRIAL_SEED
        from dt_playground.offline.store import IQLCheckpoint
        from dt_playground.rollout.evaluate import sweep

        ck = IQLCheckpoint(Path(), res.model, base_config(res, self.env_id, "iql"))
        top = ck.config["dataset"]["return_max"]  # as its card plays (any target plays the same)
        traces = sweep(ck, [top], self.n_seeds, seed=TRIAL_SEED)
        return round(float(np.mean([t.ret for t in traces])), 3)

    def offer(self, res) -> None:
        import torch

        from dt_playground.offline.iql import PARTS_OF, shipped_state

        mean = self.score(res)
        self.means.append([res.steps_done, mean])
        if mean > self.best_mean:  # a tie keeps the earlier snapshot
            state = shipped_state(res.model, PARTS_OF["iql"])
            self.best_state = {k: torch.clone(v) for k, v in state.items()}
            self.best_step, self.best_mean = res.steps_done, mean

    def write(self, out: Path, res) -> Path:
        """The IQL folder of the complete run ``res`` with the best snapshot's actor."""
        from dt_playground.offline.iql import IQL
        from dt_playground.offline.store import save_iql

        if self.best_state is None:
            raise RuntimeError("SnapshotPicker.write before any snapshot was offered")
        model = IQL(res.model.cfg)
        model.load_state_dict(self.best_state, strict=False)
        config = base_config(res, self.env_id, "iql")
        config["selected"] = {
            "step": self.best_step,
            "every": SNAPSHOT_EVERY,
            "trial_seeds": self.n_seeds,
            "means": self.means,
        }
        return save_iql(out, model, config)


def selection_done(folder: Path | str) -> bool:
    """The IQL folder's actor was picked among its run's snapshots as the recipe says."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
        sel = config["selected"]
        return sel["every"] == SNAPSHOT_EVERY and sel["trial_seeds"] == SELECT_SEEDS
    except (OSError, ValueError, KeyError, TypeError):
        return False


def support_of(res) -> tuple[float, float]:
    """The lowest and highest return-to-go of the run's data (raw units): the band the
    checked DT's candidates stay inside."""
    rtg = res.data.rtg * res.data.norm.return_scale
    return float(rtg.min()), float(rtg.max())


def make_critic(
    dt_dir: Path | str,
    steps: int | None = None,
    dataset: str | None = None,
    log=print,
    refit_seeds: int | None = None,
) -> Path:
    """``python -m dt_playground critic --checkpoint DIR``: train the critic of the DT in
    ``dt_dir`` on the DT's own dataset (recollected from its recipe when it is the env's
    standard one and missing; ``dataset`` names it when it lives elsewhere), write
    ``DIR/critic``, then refit its G on the DT's own rollouts (``refit_seeds`` a target,
    default the env's recipe; 0: no refit). Refused, with a sentence, for a folder that is
    not a DT or whose data is not here or not the DT's."""
    from dt_playground.behaviour.collect import ensure_dataset
    from dt_playground.checkpoints.layout import read_json
    from dt_playground.data.storage import (
        DEFAULT_DATA_ROOT,
        default_dataset_id,
        read_collection,
        resolve_dataset,
    )
    from dt_playground.errors import CheckpointError, DatasetError

    dt_dir = Path(dt_dir)
    config = read_json(dt_dir / "config.json", "The checkpoint's config")
    if config.get("algo") != "dt":
        raise CheckpointError(
            f"A critic checks a DT; {dt_dir.name} is "
            f"{config.get('algo')!r:.20}, which has no return input"
        )
    spec = get_spec(config.get("env_id", ""))
    dataset = (
        dataset or (config.get("train") or {}).get("dataset") or default_dataset_id(spec.env_id)
    )
    if dataset == default_dataset_id(spec.env_id):
        ensure_dataset(spec.env_id, log=log)
    try:
        sha = read_collection(resolve_dataset(dataset, DEFAULT_DATA_ROOT)).get("sha256")
    except DatasetError as exc:
        raise DatasetError(f"The DT's dataset {dataset!r:.80} is not here: {exc}") from None
    want = (config.get("dataset") or {}).get("sha256")
    if want and sha and sha != want:
        raise DatasetError(
            "The dataset here differs from the one the DT was trained on "
            "(sha256 mismatch): its critic would score other data"
        )
    cfg = IQL_RECIPES.get(spec.env_id, IQLConfig())
    if steps:
        cfg = IQLConfig(**{**cfg.to_dict(), "steps": steps, "return_steps": steps})
    t0 = time.perf_counter()
    res = train_iql(dataset, spec.env_id, cfg, progress=True)
    base = base_config(res, spec.env_id, "critic")
    out = write_critic(
        dt_dir, res.model, config, base, CHECKS.get(spec.env_id, CheckSettings()), support_of(res)
    )
    log(f"  wrote {dt_dir.name}/critic: {cfg.steps} steps in {time.perf_counter() - t0:.0f} s")
    if refit_seeds != 0:
        refit_critic(
            dt_dir, refit_recipe(spec.env_id, refit_seeds, steps), dataset=res.data, log=log
        )
    return out


def iql_card(folder: Path | str, refs: dict | None = None, n_seeds: int | None = None) -> dict:
    """An IQL checkpoint's card: its fixed objective played at the data's max (any target
    plays the same) on the card seeds, beside its env's BC and %BC (``refs``)."""
    import numpy as np

    from dt_playground.envs.seeds import CARD_SEED
    from dt_playground.offline.store import load_iql
    from dt_playground.rollout.evaluate import summarise, sweep
    from dt_playground.zoo.cards import CARD_SEEDS

    n_seeds = n_seeds or CARD_SEEDS
    ck = load_iql(folder)
    d = ck.config["dataset"]
    t0 = time.perf_counter()
    traces = sweep(ck, [d["return_max"]], n_seeds, seed=CARD_SEED)
    top = summarise(traces)["per_target"][-1]
    span = d["return_top10_mean"] - d["return_min"]
    card = {
        "env_id": ck.spec.env_id,
        "algo": "iql",
        "context_len": None,
        "seeds": list(range(CARD_SEED, CARD_SEED + n_seeds)),
        "per_target": [top],
        "spearman": None,
        "top_target": top["target"],
        "top_target_mean": top["mean"],
        "top_target_std": top["std"],
        "dataset_top10_mean": d["return_top10_mean"],
        "dataset_max": d["return_max"],
        "normalised_top": ck.spec.normalised_score(top["mean"]),
        "shortfall": (d["return_top10_mean"] - top["mean"]) / max(span, 1e-9),
        "returns": [round(float(t.ret), 2) for t in traces],
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }
    sel = ck.config.get("selected")
    if isinstance(sel, dict):  # which snapshot of the run plays (`SnapshotPicker`)
        card["snapshot"] = {
            "step": sel.get("step"),
            "of": ck.config.get("steps_done"),
            "trial_seeds": sel.get("trial_seeds"),
        }
    pbc = (refs or {}).get("pbc")
    card["bars"] = {
        "iql_ge_pbc": None if pbc is None else bool(top["mean"] >= pbc),
        "within_5pct_of_top10": bool(card["shortfall"] <= 0.05),
    }
    if refs:
        card["references"] = refs
    card["returns_std"] = float(np.std(card["returns"]))
    return card
