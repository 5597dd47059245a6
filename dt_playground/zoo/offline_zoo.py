"""The zoo's offline RL: ``pretrained/<env>-iql`` and each K=20 DT's ``critic/``.

One IQL run per env, on the DT's own dataset, gives both: its actor is the IQL
checkpoint, its Q, V and return nets are the DT's critic (the same run: the critic costs
no second training). Same recipe and data hash: kept, not retrained (`pretrain`'s
keep-check); ``pretrain --verify`` covers them as it covers the DTs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dt_playground.envs.registry import get_spec
from dt_playground.offline.critic import CheckSettings, critic_dir, write_critic
from dt_playground.offline.iql import IQLConfig
from dt_playground.offline.train_iql import already_trained, base_config, train_iql, write_iql

# IQL's D4RL locomotion recipe (tau 0.7, beta 3, gamma 0.99, lr 3e-4, batch 256, two
# 256-wide layers per net) for every env. A step costs ~10 ms on one thread here, so the
# MuJoCo envs' 50k steps take ~9 CPU-minutes (the budget is 20): the probe's d3rlpy IQL
# at 30k steps averaged 1410-1944 on Hopper, at 50k 2406. The smaller envs take fewer.
_STEPS = {"CartPole-v1": 10_000, "Pendulum-v1": 20_000, "LunarLander-v3": 30_000,
          "Hopper-v5": 50_000, "HalfCheetah-v5": 50_000, "Walker2d-v5": 50_000}
IQL_RECIPES: dict[str, IQLConfig] = {
    env: IQLConfig(steps=n, return_steps=n) for env, n in _STEPS.items()
}
# The checked DT's candidates per env (n, spread), chosen on trial seeds (docs/critic.md).
CHECKS: dict[str, CheckSettings] = {env: CheckSettings() for env in IQL_RECIPES}


def iql_name(env_id: str) -> str:
    return f"{get_spec(env_id).short_name}-iql"


def ensure_iql(env_id: str, dataset: str, sha256: str | None, out_root: Path,
               steps: int | None = None, log=print) -> Path:
    """``<out_root>/<env>-iql`` and ``<env>-dt/critic`` (when that DT is there), trained
    unless both are of this recipe and data already. Returns the IQL folder."""
    spec = get_spec(env_id)
    cfg = IQL_RECIPES[spec.env_id]
    if steps:
        cfg = IQLConfig(**{**cfg.to_dict(), "steps": steps, "return_steps": steps})
    out = Path(out_root) / iql_name(spec.env_id)
    dt_dir = Path(out_root) / f"{spec.short_name}-dt"
    want_critic = (dt_dir / "config.json").is_file()
    have_critic = not want_critic or already_trained(critic_dir(dt_dir), cfg, sha256, "critic")
    if already_trained(out, cfg, sha256) and have_critic:
        log(f"  kept {out.name} and its critic: already trained with this recipe")
        return out
    t0 = time.perf_counter()
    res = train_iql(dataset, spec.env_id, cfg, progress=True)
    write_iql(out, res, spec.env_id, str(dataset))
    log(f"  trained {out.name}: {cfg.steps} steps in {time.perf_counter() - t0:.0f} s, "
        f"final losses {res.curve[-1]}")
    if want_critic:
        dt_config = json.loads((dt_dir / "config.json").read_text())
        base = base_config(res, spec.env_id, "critic", str(dataset))
        rtg = res.data.rtg * res.data.norm.return_scale
        support = (float(rtg.min()), float(rtg.max()))
        write_critic(dt_dir, res.model, dt_config, base, CHECKS[spec.env_id], support)
        log(f"  wrote {dt_dir.name}/critic")
    return out


def make_critic(dt_dir: Path | str, steps: int | None = None, log=print) -> Path:
    """``python -m dt_playground critic --checkpoint DIR``: train the critic of the DT in
    ``dt_dir`` on the DT's own dataset (recollected from its recipe when it is the env's
    standard one and missing) and write ``DIR/critic``. Refused, with a sentence, for a
    folder that is not a DT or whose data is not here or not the DT's."""
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
        raise CheckpointError(f"A critic checks a DT; {dt_dir.name} is "
                              f"{config.get('algo')!r:.20}, which has no return input")
    spec = get_spec(config.get("env_id", ""))
    dataset = (config.get("train") or {}).get("dataset") or default_dataset_id(spec.env_id)
    if dataset == default_dataset_id(spec.env_id):
        ensure_dataset(spec.env_id, log=log)
    try:
        sha = read_collection(resolve_dataset(dataset, DEFAULT_DATA_ROOT)).get("sha256")
    except DatasetError as exc:
        raise DatasetError(f"The DT's dataset {dataset!r:.80} is not here: {exc}") from None
    want = (config.get("dataset") or {}).get("sha256")
    if want and sha and sha != want:
        raise DatasetError("The dataset here differs from the one the DT was trained on "
                           "(sha256 mismatch): its critic would score other data")
    cfg = IQL_RECIPES.get(spec.env_id, IQLConfig())
    if steps:
        cfg = IQLConfig(**{**cfg.to_dict(), "steps": steps, "return_steps": steps})
    t0 = time.perf_counter()
    res = train_iql(dataset, spec.env_id, cfg, progress=True)
    base = base_config(res, spec.env_id, "critic", str(dataset))
    rtg = res.data.rtg * res.data.norm.return_scale
    out = write_critic(dt_dir, res.model, config, base, CHECKS.get(spec.env_id, CheckSettings()),
                       (float(rtg.min()), float(rtg.max())))
    log(f"  wrote {dt_dir.name}/critic: {cfg.steps} steps in {time.perf_counter() - t0:.0f} s")
    return out
