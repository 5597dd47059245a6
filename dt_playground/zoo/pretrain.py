"""The pretrained zoo, reproducibly: collect -> train -> evaluate -> cards.

``python -m dt_playground pretrain --env LunarLander-v3`` (or ``--all``)
rebuilds that env's dataset from the shipped behaviour policies and seeds,
trains its DT (K=20), BC and %BC (and the context-length ablation where
listed) and IQL with the DT's critic (`offline_zoo`), evaluates each on
held-out seeds and writes ``card.json`` and a ``README.md`` model card into
every checkpoint folder under ``pretrained/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from dt_playground.atomic import write_json_atomic
from dt_playground.behaviour import collect
from dt_playground.behaviour.collect import DATASETS
from dt_playground.checkpoints import hub_card
from dt_playground.checkpoints.layout import RETURNS_DIR
from dt_playground.data.storage import DEFAULT_DATA_ROOT, read_collection, resolve_dataset
from dt_playground.envs.registry import get_spec
from dt_playground.offline.critic import critic_dir
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.training.return_model import ReturnModelRecipe, attach, train_return_model
from dt_playground.training.train import TrainConfig, train
from dt_playground.zoo.cards import (  # noqa: F401  (re-exported: callers imported the cards from here)
    CARD_SEEDS,
    CARD_TARGETS,
    README_END,
    README_START,
    card_evaluation,
    update_readme,
    zoo_table,
)
from dt_playground.zoo.critic_card import CRITIC_CARD_SEEDS, critic_card, write_critic_card
from dt_playground.zoo.offline_zoo import ensure_iql, iql_card


@dataclass
class Recipe:
    """How one env's zoo is built (fixed seeds: same recipe, same checkpoints)."""

    episodes: int
    steps: int
    hidden: int = 128
    n_layers: int = 3
    lr: float = 1e-3
    warmup: int = 200
    batch_size: int = 64
    ablation_ks: tuple[int, ...] = ()
    dt_steps: int | None = None  # DTs' steps when they differ from BC's
    ablation_steps: int | None = None  # the K ablation's, when they differ from the DT's
    seed: int = 0  # the dataset's collection seed (`collect.DATASETS`) and the training seed
    # The zoo's DTs have no return-distribution head unless their recipe opts in
    # (CartPole's does), since the head can cost action quality: with it (token order
    # (s, R, a), 60 bins) Pendulum's DT fell from Spearman 1.0 to 0.21 on the card seeds,
    # and with the order alone (head weight 0) to rho 0.9 at -856 against -632 on trial
    # seeds (README, "Asking for the best"). The others get `best` from a return model.
    return_bins: int = 0
    # The K=20 DT's return model (return_model.py), for target "best"; None: none.
    returns: ReturnModelRecipe | None = None


# Return models (return_model.py; the default recipe: 64 wide, 2 blocks, 3000 steps, 60
# bins) give the DTs without a head target "best". Each kappa is the best of 10, 30 and 100
# on 30 trial seeds ("best" mean): Hopper 2971/2980/2932 (top target 2816, %BC 2977),
# HalfCheetah 4116/4361/4203 (4674, 4553), Walker2d 5118/5317/5461 (5544, 5373), LunarLander
# 224/216/195 (200, 229), Pendulum -789/-735/-682 (-501, -415). A 128-wide, 3-block return
# model of 6000 steps gave Hopper 2800/3021/2791 and Walker2d 4960/-/5638: not kept.
_TRAINING: dict[str, dict] = {
    # CartPole's DT: return head, 3000 steps (trial seeds, 30: rho 0.98, top 497 vs %BC 497;
    # 100 at the top: 497 vs 494) over no head, 1500 (rho 0.98, top 491; 100: 473).
    "CartPole-v1": dict(steps=1500, hidden=64, dt_steps=3000, return_bins=60),
    # Pendulum's DT: 64 wide. 128 wide (8000 steps) played the top target at -648 on trial
    # seeds against -502 (rho 1.0 both).
    "Pendulum-v1": dict(
        steps=3000, hidden=64, dt_steps=8000, returns=ReturnModelRecipe(kappa=100.0)
    ),
    "LunarLander-v3": dict(
        steps=3000, ablation_ks=(1, 5, 10), dt_steps=8000, returns=ReturnModelRecipe(kappa=10.0)
    ),
    # Hopper's DT: 10000 steps (trial seeds: rho 0.93, top 2684) over 3000 (rho 0.86, 2900);
    # its K ablation stayed at 3000 steps (the K=20 DT's budget when it was run).
    # No return head: with it (60 bins, 10000 steps) 30 trial seeds gave rho -0.05, top 451,
    # best 179, against rho 0.95, top 2816 without (%BC 2977); a return model instead.
    "Hopper-v5": dict(
        steps=3000,
        ablation_ks=(1, 5, 10),
        dt_steps=10000,
        ablation_steps=3000,
        returns=ReturnModelRecipe(kappa=30.0),
    ),
    "HalfCheetah-v5": dict(steps=3000, dt_steps=20000, returns=ReturnModelRecipe(kappa=30.0)),
    # Walker2d's DT: 8000 steps (trial seeds, 10/30: rho 0.76/0.93, top 5549/5750) over
    # 16000 (rho 0.33/0.79, top 4456/4524); %BC on the same seeds 5797/5373.
    "Walker2d-v5": dict(steps=3000, dt_steps=8000, returns=ReturnModelRecipe(kappa=100.0)),
}
# The dataset half of each recipe is `collect.DATASETS` (the app collects the same data).
RECIPES: dict[str, Recipe] = {
    env: Recipe(episodes=DATASETS[env].episodes, seed=DATASETS[env].seed, **kw)
    for env, kw in _TRAINING.items()
}


def checkpoint_name(env_id: str, algo: str, k: int = 20) -> str:
    name = f"{get_spec(env_id).short_name}-{algo}"
    return name if k == 20 or algo != "dt" else f"{name}-k{k}"


def ensure_dataset(
    env_id: str, recipe: Recipe, recollect: bool = False, root: Path | None = None, log=print
) -> str:
    """`collect.ensure_dataset` with a recipe's episode count and seed."""
    return collect.ensure_dataset(env_id, recipe.episodes, recipe.seed, recollect, root, log)


def already_trained(cfg: TrainConfig, sha256: str | None) -> bool:
    """A complete checkpoint from the same recipe, trained on data with this content
    hash, is at ``cfg.out`` (paths may differ): `pretrain`'s keep-check, for DTs, BC and
    return models alike."""
    path = Path(cfg.out) / "config.json"
    if not path.is_file():
        return False
    done = json.loads(path.read_text())
    # return_bins as it took effect: the model's (runs from before the key have none, and
    # BC ran with 60 while it ignored the key; both made no head).
    bins = (done.get("model") or {}).get("return_bins", 0)
    saved = {**done.get("train", {}), "return_bins": bins}
    same = TrainConfig.identity_of(saved) == cfg.identity()
    return (
        bool(done.get("complete"))
        and same
        and done.get("return_scale") == get_spec(cfg.env_id).return_scale
        and (done.get("dataset") or {}).get("sha256") == sha256
    )


def recipe_config(
    env_id: str,
    algo: str,
    k: int,
    recipe: Recipe,
    dataset: str,
    out_root: Path,
    steps: int | None = None,
) -> TrainConfig:
    """The `TrainConfig` a recipe gives one checkpoint (``steps`` overrides the budget)."""
    ablation = recipe.ablation_steps if algo == "dt" and k != 20 else None
    n_steps = steps or ablation or (recipe.dt_steps if algo == "dt" else None) or recipe.steps
    return TrainConfig(
        dataset=dataset,
        env_id=env_id,
        out=str(Path(out_root) / checkpoint_name(env_id, algo, k)),
        algo=algo,
        steps=n_steps,
        batch_size=recipe.batch_size,
        context_len=k,
        hidden=recipe.hidden,
        n_layers=recipe.n_layers,
        lr=recipe.lr,
        warmup_steps=min(recipe.warmup, n_steps // 5),
        eval_episodes=0,
        save_every=500,
        seed=recipe.seed,
        resume=True,
        return_bins=recipe.return_bins if algo == "dt" else 0,
    )


def _train_one(
    env_id: str,
    algo: str,
    k: int,
    recipe: Recipe,
    dataset: str,
    sha256: str | None,
    out_root: Path,
    steps: int | None,
    log,
) -> Path:
    name = checkpoint_name(env_id, algo, k)
    cfg = recipe_config(env_id, algo, k, recipe, dataset, out_root, steps)
    if already_trained(cfg, sha256):
        log(f"  kept {name}: already trained with this recipe")
    else:
        t0 = time.perf_counter()
        res = train(cfg, progress=True)
        log(
            f"  trained {name}: {cfg.steps} steps in {time.perf_counter() - t0:.0f} s, "
            f"final loss {res.final_loss:.4f}"
        )
    if algo == "dt" and k == 20 and recipe.returns is not None:
        _ensure_return_model(Path(cfg.out), recipe, dataset, sha256, steps, log)
    return Path(cfg.out)


def return_model_recipe(recipe: Recipe, steps: int | None = None) -> ReturnModelRecipe:
    """The recipe's return model, trained with the recipe's seed (``steps`` overrides)."""
    return replace(recipe.returns, seed=recipe.seed, **({"steps": steps} if steps else {}))  # pyright: ignore[reportArgumentType]


def _ensure_return_model(
    dt_dir: Path, recipe: Recipe, dataset: str, sha256: str | None, steps: int | None, log
) -> None:
    """The DT's return model, trained on ``dataset`` (the DT's) unless one of this recipe
    on this data is there."""
    rm = return_model_recipe(recipe, steps)
    config = json.loads((dt_dir / "config.json").read_text())
    folder = dt_dir / RETURNS_DIR
    if already_trained(rm.train_config(config, folder), sha256):
        log(f"  kept {dt_dir.name}/returns: already trained with this recipe")
        if json.loads((folder / "config.json").read_text()).get("kappa") != rm.kappa:
            attach(dt_dir, folder, kappa=rm.kappa)  # kappa alone changed
        return
    t0 = time.perf_counter()
    train_return_model(dt_dir, rm, progress=True, dataset=dataset)
    log(f"  trained {dt_dir.name}/returns: {rm.steps} steps in {time.perf_counter() - t0:.0f} s")


def pretrain_env(
    env_id: str,
    out_root: Path = PRETRAINED_DIR,
    steps: int | None = None,
    episodes: int | None = None,
    n_seeds: int = CARD_SEEDS,
    recollect: bool = False,
    ablation: bool = True,
    data_root: Path | None = None,
    log=print,
) -> dict:
    """Build one env's zoo; returns {checkpoint name: card}. ``steps``/``episodes``
    override the recipe (tiny budgets for tests)."""
    spec = get_spec(env_id)
    recipe = RECIPES[spec.env_id]
    if episodes:
        recipe = replace(recipe, episodes=episodes)
    t0 = time.perf_counter()
    log(f"[{spec.env_id}] dataset")
    dataset = ensure_dataset(spec.env_id, recipe, recollect, data_root, log)
    sha256 = read_collection(resolve_dataset(dataset, data_root or DEFAULT_DATA_ROOT)).get("sha256")
    runs = [("bc", 20), ("pbc", 20), ("dt", 20)]
    if ablation:
        runs += [("dt", k) for k in recipe.ablation_ks]
    dirs = {}
    for algo, k in runs:
        dirs[(algo, k)] = _train_one(
            spec.env_id, algo, k, recipe, dataset, sha256, Path(out_root), steps, log
        )
    cards, refs = {}, {}
    for (algo, _k), d in dirs.items():
        card = card_evaluation(d, refs if algo == "dt" else None, n_seeds)
        if algo != "dt":
            refs[algo] = card["top_target_mean"]
        write_json_atomic(d / "card.json", card)
        hub_card.write(d)  # README.md: the Hub model card, from the card just written
        cards[d.name] = card
        rho = "" if card["spearman"] is None else f" rho={card['spearman']:.3f}"
        log(
            f"  {d.name}:{rho} top-target mean {card['top_target_mean']:.1f} "
            f"(dataset top-10% {card['dataset_top10_mean']:.1f})"
        )
    # IQL on the same data: pretrained/<env>-iql, and the K=20 DT's critic (one run).
    iql_dir = ensure_iql(spec.env_id, dataset, sha256, Path(out_root), steps, log)
    card = iql_card(iql_dir, refs, n_seeds)
    write_json_atomic(iql_dir / "card.json", card)
    hub_card.write(iql_dir)
    cards[iql_dir.name] = card
    log(
        f"  {iql_dir.name}: mean {card['top_target_mean']:.1f} (dataset top-10% "
        f"{card['dataset_top10_mean']:.1f})"
    )
    # The K=20 DT checked by its critic, beside it unchecked: the critic's card decides
    # which of the two the app starts with, and the DT's Hub README shows both.
    dt_dir = dirs.get(("dt", 20))
    if dt_dir is not None and (critic_dir(dt_dir) / "config.json").is_file():
        ccard = critic_card(dt_dir, n_seeds and min(n_seeds, CRITIC_CARD_SEEDS))
        write_critic_card(dt_dir, ccard)
        log(
            f"  {dt_dir.name}/critic: error p10..p90 {ccard['abs_err_plain']:.1f} unchecked, "
            f"{ccard['abs_err_checked']:.1f} checked; default {ccard['default']}"
        )
    log(f"[{spec.env_id}] done in {time.perf_counter() - t0:.0f} s")
    return cards


def pretrain_commands(envs: list[str], threads: int, flags: dict) -> list[list[str]]:
    """One ``pretrain --env E`` command line per env, with the caller's ``flags``
    (name -> value; True for switches; falsy values left out) and ``threads``."""
    passed = [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags.items() if v]
    return [
        [
            sys.executable,
            "-m",
            "dt_playground",
            "pretrain",
            "--env",
            env,
            "--no-readme",
            f"--threads={threads}",
            *passed,
        ]
        for env in envs
    ]


def pretrain_in_processes(envs: list[str], jobs: int, threads: int, flags: dict) -> int:
    """``pretrain --all --jobs N``: one child process per env, N at a time, each with
    ``threads`` torch/OpenMP threads (0: the cores split between the jobs). 0 if all
    succeed."""
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    env_vars = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with ThreadPoolExecutor(jobs) as pool:
        codes = list(
            pool.map(
                lambda cmd: subprocess.run(cmd, env=env_vars).returncode,
                pretrain_commands(envs, threads, flags),
            )
        )
    for env, code in zip(envs, codes):
        print(f"{env}: {'ok' if code == 0 else f'failed ({code})'}", file=sys.stderr)
    return 0 if all(c == 0 for c in codes) else 1
