"""Checkpoints: self-describing folders, safetensors + JSON only.

A checkpoint folder holds:

- ``config.json``: ``env_id``, ``algo`` ("dt", "bc" or "pbc"), ``context_len``,
  ``model`` (the `DTConfig` fields), ``state_mean``/``state_std``,
  ``return_scale``, ``dataset`` (the dataset summary), ``train`` (training
  config) and ``curve`` (loss curve).
- ``model.safetensors``: the weights.
- ``card.json`` (optional): evaluation results.
- ``returns/`` (optional, DTs only): a *return model*, itself a checkpoint folder (a
  BC model with a return-distribution head, trained on the same data), which gives
  the DT target "best" without touching its action path (dt.return_head).

Loading needs nothing else and never unpickles, so an uploaded checkpoint
cannot run code. Every way a checkpoint can be wrong is refused with a
`CheckpointError` that names the problem (checks: `validate.py`; unpacking an
upload: `uploads.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dt_playground.atomic import atomic_dir, write_json_atomic
from dt_playground.checkpoints.layout import (
    ALGOS,
    RETURNS_DIR,
    CheckpointInfo,
    list_checkpoints,
    peek_checkpoint,
    read_json,
)
from dt_playground.checkpoints.uploads import ALLOWED_UPLOAD_FILES, MAX_UPLOAD_BYTES, extract_upload
from dt_playground.checkpoints.validate import check_safetensors, expected_tensors, model_config
from dt_playground.data.summary import DatasetSummary, is_number
from dt_playground.data.windows import Normaliser
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.dt.return_head import DEFAULT_KAPPA, has_head
from dt_playground.envs.registry import EnvSpec, env_dims, get_spec
from dt_playground.errors import CheckpointError, UnknownEnvError
from dt_playground.paths import PRETRAINED_DIR, pretrained_dir

MAX_KAPPA = 1000.0  # a stored kappa beyond this is a typo, not a choice

__all__ = [  # re-exported: callers imported these from here before the split
    "ALLOWED_UPLOAD_FILES",
    "MAX_UPLOAD_BYTES",
    "PRETRAINED_DIR",
    "CheckpointError",
    "extract_upload",
    "pretrained_dir",
    "write_json_atomic",
    "CheckpointInfo",
    "list_checkpoints",
    "peek_checkpoint",
]


@dataclass
class Checkpoint:
    path: Path
    model: DecisionTransformer
    config: dict
    card: dict | None
    returns: Checkpoint | None = None  # the `returns/` return model, when shipped

    @property
    def spec(self) -> EnvSpec:
        return get_spec(self.config["env_id"])

    @property
    def algo(self) -> str:
        return self.config["algo"]

    @property
    def norm(self) -> Normaliser:
        return Normaliser(
            np.asarray(self.config["state_mean"], np.float32),
            np.asarray(self.config["state_std"], np.float32),
            float(self.config["return_scale"]),
        )

    @property
    def offers_best(self) -> bool:
        """A DT with a return-distribution head, or with a return model beside it: it can
        play target "best" (dt.return_head)."""
        return self.algo == "dt" and (has_head(self.model.cfg) or self.returns is not None)

    @property
    def best_kappa(self) -> float:
        """The kappa of target "best" (dt.return_head) its return model's recipe chose on
        trial seeds (``returns/config.json`` → ``kappa``), else the paper's 10."""
        kappa = (self.returns.config if self.returns is not None else {}).get("kappa")
        return float(kappa) if kappa is not None else DEFAULT_KAPPA

    @property
    def dataset(self) -> DatasetSummary:
        """The training data's summary, typed (every field optional)."""
        return DatasetSummary.from_dict(self.config.get("dataset"))

    @property
    def name(self) -> str:
        return self.path.name


def save_checkpoint(
    path: Path | str,
    model: DecisionTransformer,
    config: dict,
    card: dict | None = None,
    extra_files: dict | None = None,
) -> Path:
    """Write a checkpoint folder atomically: built beside ``path``, then renamed over it.

    ``extra_files`` maps file names to tensors dicts (safetensors) or JSON-able
    objects, e.g. the trainer's resume state.
    """
    path = Path(path)
    config = {**config, "model": model.cfg.to_dict(), "context_len": model.cfg.context_len}
    with atomic_dir(path) as stage:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(stage / "model.safetensors"))
        (stage / "config.json").write_text(json.dumps(config, indent=1))
        if card is not None:
            (stage / "card.json").write_text(json.dumps(card, indent=1))
        for name, obj in (extra_files or {}).items():
            if name.endswith(".safetensors"):
                save_file(obj, str(stage / name))
            else:
                (stage / name).write_text(json.dumps(obj, indent=1))
    return path


def load_checkpoint(
    path: Path | str, expect_env: str | None = None, returns: bool = True
) -> Checkpoint:
    """Load and validate a checkpoint folder (see the module docstring), with its
    return model if it has one (and ``returns``).

    Everything is checked before memory is spent: the config's types, ranges and
    implied size, then the weights' header against the config, then the tensors.
    """
    ck = _load_one(Path(path), expect_env)
    if returns and (ck.path / RETURNS_DIR).is_dir():
        ck.returns = load_return_model(ck.path / RETURNS_DIR, ck)
    return ck


def load_return_model(folder: Path, ck: Checkpoint) -> Checkpoint:
    """The return model in ``folder``, checked against DT ``ck``: it must serve a DT,
    have a head, and see the DT's inputs exactly as the DT does (the same state
    normalisation and return scale)."""
    try:
        ret = _load_one(Path(folder), ck.spec.env_id)
    except CheckpointError as exc:
        raise CheckpointError(f"The return model (returns/) is invalid: {exc}") from None
    if ck.algo != "dt":
        raise CheckpointError("Only a DT can have a return model (returns/)")
    kappa = ret.config.get("kappa", DEFAULT_KAPPA)
    if not is_number(kappa) or not 0 <= kappa <= MAX_KAPPA:
        raise CheckpointError(f"returns/config.json 'kappa' must be a number in [0, {MAX_KAPPA}]")
    if not has_head(ret.model.cfg):
        raise CheckpointError("The return model (returns/) has no return-distribution head")
    same = all(ret.config[k] == ck.config[k] for k in ("state_mean", "state_std", "return_scale"))
    if not same:
        raise CheckpointError(
            "The return model (returns/) normalises states or returns "
            "differently from the DT: it must be trained on the same data"
        )
    return ret


def _load_one(path: Path, expect_env: str | None) -> Checkpoint:
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint folder {path.name} does not exist")
    config = read_json(path / "config.json", "The checkpoint's config")
    for key in ("env_id", "algo", "state_mean", "state_std", "return_scale"):
        if key not in config:
            raise CheckpointError(f"config.json is missing '{key}'")
    if not isinstance(config["env_id"], str):
        raise CheckpointError("config.json 'env_id' must be a string")
    try:
        spec = get_spec(config["env_id"])
    except UnknownEnvError as exc:
        raise CheckpointError(f"config.json names an unknown environment: {exc}") from None
    if expect_env is not None and spec.env_id != expect_env:
        raise CheckpointError(f"This checkpoint was trained on {spec.env_id}, not {expect_env}")
    if config["algo"] not in ALGOS:
        algo = config["algo"]
        raise CheckpointError(f"config.json 'algo' must be one of {ALGOS}, got {algo!r:.40}")
    cfg = model_config(config.get("model"))
    _check_stats(config, cfg)
    DatasetSummary.from_dict(config.get("dataset"))  # refuse ill-typed summaries now
    _check_env_dims(spec, cfg)

    weights_path = path / "model.safetensors"
    check_safetensors(weights_path, expected_tensors(cfg))
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"model.safetensors is corrupt or not a safetensors file ({type(exc).__name__})"
        ) from None
    for k, v in state.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"Tensor '{k}' contains NaN or infinite weights")
    model = DecisionTransformer(cfg)
    model.load_state_dict(state)  # fp16/bf16 weights are cast to the model's fp32
    model.eval()
    card = read_json(path / "card.json", "card") if (path / "card.json").exists() else None
    return Checkpoint(path, model, config, card)


def _check_stats(config: dict, cfg: DTConfig) -> None:
    """state_mean/std: finite numbers of the model's state size; return_scale: positive."""
    try:
        mean, std = (np.asarray(config[k], dtype=np.float64) for k in ("state_mean", "state_std"))
    except (ValueError, TypeError):
        raise CheckpointError("state_mean/state_std must be lists of numbers") from None
    if mean.shape != (cfg.state_dim,) or std.shape != (cfg.state_dim,):
        raise CheckpointError(
            f"state_mean/state_std have shape {mean.shape}/{std.shape}; the model's state_dim "
            f"is {cfg.state_dim}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise CheckpointError("state_mean/state_std contain NaN, infinite or non-positive values")
    scale = config["return_scale"]
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not np.isfinite(scale)
        or scale <= 0
    ):
        raise CheckpointError(f"return_scale must be a positive number, got {scale!r:.40}")


def _check_env_dims(spec: EnvSpec, cfg: DTConfig) -> None:
    """The model's input/output sizes must fit the env's spaces."""
    s, a = env_dims(spec.env_id)
    if (s, a) != (cfg.state_dim, cfg.act_dim) or spec.discrete != cfg.discrete:
        raise CheckpointError(
            f"The model (state_dim={cfg.state_dim}, act_dim={cfg.act_dim}, "
            f"discrete={cfg.discrete}) does not fit {spec.env_id} (state_dim={s}, act_dim={a}, "
            f"discrete={spec.discrete})"
        )
    if cfg.max_ep_len < spec.max_ep_len:
        raise CheckpointError(
            f"model.max_ep_len={cfg.max_ep_len} is shorter than {spec.env_id}'s episodes "
            f"({spec.max_ep_len} steps)"
        )
