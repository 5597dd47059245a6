"""A DT's return model: target "best" without touching the DT's action path.

Multi-Game DT (Lee et al. 2022, §3.3) reads P(R_t | history) from a head on the
DT itself, which needs the (s, R, a) token order and a second loss on the trunk.
Here that cost action quality badly on continuous control (Hopper's DT with the
head: Spearman -0.05 on trial seeds against 0.95 without; Pendulum's 0.21 against
1.0), so a DT may instead carry a separate *return model*: a small transformer
over the same (s, a) history (a BC model's layout) with the same binned
return-distribution head (dt.return_head), trained on the same data. It lives in the
DT's ``returns/`` folder, itself a checkpoint folder (`checkpoints.checkpoint.load_checkpoint`
loads and checks it), and `rollout.policy.DTPolicy` asks it for P(R_t | s_<=t, a_<t)
when the DT plays "best". The DT's weights, its numeric targets and its cards'
numeric rows are unchanged by adding one.

``python -m dt_playground returns --checkpoint DT_FOLDER`` trains one on the DT's
dataset and puts it in place atomically.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from dt_playground.atomic import atomic_dir
from dt_playground.checkpoints.checkpoint import load_checkpoint, load_return_model
from dt_playground.checkpoints.layout import RETURNS_DIR
from dt_playground.dt.return_head import DEFAULT_BINS, DEFAULT_KAPPA
from dt_playground.paths import relative_to_repo
from dt_playground.training.train import TrainConfig, train


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class ReturnModelRecipe:
    """How a return model is trained (the `returns` verb's flags)."""

    steps: int = _f(3000, "gradient steps")
    hidden: int = _f(64, "embedding width")
    n_layers: int = _f(2, "transformer blocks")
    bins: int = _f(DEFAULT_BINS, "return bins over the data's range of returns-to-go")
    lr: float = _f(1e-3, "peak learning rate")
    batch_size: int = _f(64, "windows per batch")
    seed: int = _f(0, "seed for initialisation and batch sampling")
    # Not a training setting: written to returns/config.json (`Checkpoint.best_kappa`).
    kappa: float = _f(
        DEFAULT_KAPPA, "kappa of this DT's target best, stored beside it (choose it on trial seeds)"
    )

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def train_config(
        self, dt_config: dict, out: Path, threads: int = 0, dataset: str | None = None
    ) -> TrainConfig:
        """The `TrainConfig` of a return model for the DT whose config.json is ``dt_config``:
        a BC model with a head, on the DT's dataset (or ``dataset``: an id or folder of the
        same data) and context length."""
        dataset = (
            dataset
            or (dt_config.get("dataset") or {}).get("dataset_id")
            or (dt_config.get("train") or {}).get("dataset")
        )
        if not dataset:
            raise ValueError("the DT's config.json names no dataset to train a return model on")
        return TrainConfig(
            dataset=str(dataset),
            env_id=dt_config["env_id"],
            out=str(out),
            algo="bc",
            steps=self.steps,
            batch_size=self.batch_size,
            context_len=int(dt_config["context_len"]),
            hidden=self.hidden,
            n_layers=self.n_layers,
            lr=self.lr,
            warmup_steps=min(200, self.steps // 5),
            eval_episodes=0,
            save_every=self.steps,
            seed=self.seed,
            resume=False,
            threads=threads,
            return_bins=self.bins,
        )


def train_return_model(
    dt_dir: Path | str,
    recipe: ReturnModelRecipe | None = None,
    threads: int = 0,
    progress: bool = False,
    dataset: str | None = None,
) -> Path:
    """Train a return model for the DT in ``dt_dir`` on its dataset (or ``dataset``) and
    write it to ``dt_dir/returns`` (replacing any there; nothing changes if training
    fails, and one trained on other data is refused: `checkpoints.checkpoint.load_return_model`).
    Returns the ``returns`` folder."""
    dt_dir = Path(dt_dir)
    recipe = recipe or ReturnModelRecipe()
    ck = load_checkpoint(dt_dir, returns=False)
    if ck.algo != "dt":
        raise ValueError(f"{ck.name} is a {ck.algo} checkpoint; only a DT takes a return model")
    final = dt_dir / RETURNS_DIR
    stage = Path(tempfile.mkdtemp(prefix=f".{dt_dir.name}.returns-", dir=dt_dir.parent))
    try:
        cfg = recipe.train_config(ck.config, stage / "model", threads, dataset)
        train(cfg, progress=progress)
        attach(dt_dir, stage / "model", out_name=relative_to_repo(final), kappa=recipe.kappa)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final


def attach(
    dt_dir: Path, trained: Path, out_name: str | None = None, kappa: float = DEFAULT_KAPPA
) -> None:
    """Copy the return model in folder ``trained`` into ``dt_dir/returns`` atomically,
    with ``kappa``, after checking that it fits the DT (`checkpoints.checkpoint.load_return_model`).
    ``out_name`` replaces the training folder recorded in its config (no temp paths in
    a shipped file)."""
    config = json.loads((Path(trained) / "config.json").read_text())
    config["train"] = {
        **config.get("train", {}),
        "out": out_name or relative_to_repo(dt_dir / RETURNS_DIR),
    }
    config["kappa"] = float(kappa)
    dt = load_checkpoint(dt_dir, returns=False)  # the one there now may be what's broken
    with atomic_dir(Path(dt_dir) / RETURNS_DIR) as stage:
        shutil.copyfile(Path(trained) / "model.safetensors", stage / "model.safetensors")
        (stage / "config.json").write_text(json.dumps(config, indent=1))
        load_return_model(stage, dt)  # refuses one that doesn't fit: nothing is replaced
