"""IQL folders on disk: saved atomically, checked before anything is allocated.

An IQL checkpoint (``pretrained/<env>-iql``) and a DT's critic (``<dt>/critic/``) are the
same kind of folder: ``config.json`` (``env_id``, ``algo`` "iql" or "critic", ``iql``: the
`IQLConfig` fields, ``state_mean``/``state_std``, ``return_scale``, ``dataset``) and
``model.safetensors`` (IQL's online nets: twin Q, V, actor, return net). A critic also has
``check``: how many candidates the checked DT proposes and how far apart
(`offline/critic.py`).

Like every checkpoint it may come from a stranger: the config's every field is type- and
range-checked, the parameter count it implies is bounded, and the safetensors header is
compared with the nets the config implies (built on ``meta``) before a tensor is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dt_playground.atomic import atomic_dir
from dt_playground.checkpoints.layout import CRITIC_DIR, read_json
from dt_playground.checkpoints.validate import MAX_PARAMS, check_safetensors
from dt_playground.data.summary import DatasetSummary, is_number
from dt_playground.data.windows import Normaliser
from dt_playground.envs.registry import EnvSpec, env_dims, get_spec
from dt_playground.errors import CheckpointError, UnknownEnvError
from dt_playground.offline.iql import IQL, PARTS_OF, IQLConfig, expected_shapes, shipped_state
from dt_playground.paths import relative_to_repo

KINDS = ("iql", "critic")
__all__ = ["CRITIC_DIR", "KINDS", "IQLCheckpoint", "load_iql", "save_iql", "iql_config"]
# Bounds of the `IQLConfig` fields a config.json may hold.
_INTS = {
    "state_dim": (1, 4096),
    "act_dim": (1, 4096),
    "hidden": (1, 2048),
    "batch_size": (1, 1 << 16),
    "steps": (0, 10_000_000),
    "return_steps": (0, 10_000_000),
    "seed": (0, 2**63 - 1),
}
_FLOATS = {
    "gamma": (0.0, 1.0),
    "expectile": (0.0, 1.0),
    "beta": (0.0, 1000.0),
    "lr": (0.0, 1.0),
    "target_tau": (0.0, 1.0),
    "reward_scale": (1e-9, 1e9),
}


@dataclass
class IQLCheckpoint:
    """A loaded IQL or critic folder."""

    path: Path
    model: IQL
    config: dict
    card: dict | None = None

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
    def dataset(self) -> DatasetSummary:
        return DatasetSummary.from_dict(self.config.get("dataset"))

    @property
    def name(self) -> str:
        return self.path.name


def save_iql(path: Path | str, model: IQL, config: dict, card: dict | None = None) -> Path:
    """Write an IQL/critic folder atomically (built beside ``path``, renamed over it)."""
    path = Path(path)
    config = {**config, "iql": model.cfg.to_dict()}
    # No machine paths in a checkpoint: the folder relative to the repo.
    config["train"] = {**config.get("train", {}), "out": relative_to_repo(path)}
    parts = PARTS_OF[config["algo"]]
    with atomic_dir(path) as stage:
        save_file(shipped_state(model, parts), str(stage / "model.safetensors"))
        (stage / "config.json").write_text(json.dumps(config, indent=1))
        if card is not None:
            (stage / "card.json").write_text(json.dumps(card, indent=1))
    return path


def iql_config(raw) -> IQLConfig:
    """config.json's ``iql`` section as an `IQLConfig`, every field checked."""
    if not isinstance(raw, dict):
        raise CheckpointError("config.json has no 'iql' section")
    unknown = set(raw) - IQLConfig.field_names()
    if unknown:
        raise CheckpointError(f"config.json 'iql' has unknown fields: {sorted(unknown)[:5]}")
    for name, value in raw.items():
        where = f"config.json 'iql.{name}'"
        if name in _INTS:
            lo, hi = _INTS[name]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise CheckpointError(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")
        elif name in _FLOATS:
            lo, hi = _FLOATS[name]
            if not is_number(value) or not lo <= value <= hi:
                raise CheckpointError(f"{where} must be a number in [{lo}, {hi}], got {value!r}")
        elif name == "discrete" and not isinstance(value, bool):
            raise CheckpointError(f"{where} must be true or false, got {value!r}")
    cfg = IQLConfig(**raw)
    h, s, a = cfg.hidden, cfg.state_dim, cfg.act_dim
    params = 5 * (2 * h * h + (s + a + 2) * h + a)  # five two-layer nets, roughly
    if params > MAX_PARAMS:
        raise CheckpointError(
            f"config.json implies about {params / 1e6:.0f}M parameters "
            f"(hidden {h}); the limit is {MAX_PARAMS / 1e6:.0f}M"
        )
    return cfg


def load_iql(path: Path | str, expect_env: str | None = None, kind: str = "iql") -> IQLCheckpoint:
    """Load and check an IQL folder (``kind`` "iql") or a critic (``kind`` "critic")."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint folder {path.name} does not exist")
    config = read_json(path / "config.json", "The checkpoint's config")
    for key in ("env_id", "algo", "iql", "state_mean", "state_std", "return_scale"):
        if key not in config:
            raise CheckpointError(f"config.json is missing '{key}'")
    if config["algo"] != kind:
        raise CheckpointError(f"config.json 'algo' must be {kind!r}, got {config['algo']!r:.40}")
    if not isinstance(config["env_id"], str):
        raise CheckpointError("config.json 'env_id' must be a string")
    try:
        spec = get_spec(config["env_id"])
    except UnknownEnvError as exc:
        raise CheckpointError(f"config.json names an unknown environment: {exc}") from None
    if expect_env is not None and spec.env_id != expect_env:
        raise CheckpointError(f"This checkpoint was trained on {spec.env_id}, not {expect_env}")
    cfg = iql_config(config["iql"])
    s, a = env_dims(spec.env_id)
    if (s, a, spec.discrete) != (cfg.state_dim, cfg.act_dim, cfg.discrete):
        raise CheckpointError(
            f"The nets (state_dim={cfg.state_dim}, act_dim={cfg.act_dim}, discrete="
            f"{cfg.discrete}) do not fit {spec.env_id} (state_dim={s}, act_dim={a}, "
            f"discrete={spec.discrete})"
        )
    _check_stats(config, cfg.state_dim)
    DatasetSummary.from_dict(config.get("dataset"))
    weights = path / "model.safetensors"
    check_safetensors(weights, expected_shapes(cfg, PARTS_OF[kind]))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"model.safetensors is corrupt or not a safetensors file ({type(exc).__name__})"
        ) from None
    for k, v in state.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"Tensor '{k}' contains NaN or infinite weights")
    model = IQL(cfg)
    model.load_state_dict(state, strict=False)  # only its kind's nets are shipped
    model.q_target.load_state_dict(model.q.state_dict())
    model.eval().requires_grad_(False)
    card = read_json(path / "card.json", "card") if (path / "card.json").exists() else None
    return IQLCheckpoint(path, model, config, card)


def _check_stats(config: dict, state_dim: int) -> None:
    try:
        mean, std = (np.asarray(config[k], dtype=np.float64) for k in ("state_mean", "state_std"))
    except (ValueError, TypeError):
        raise CheckpointError("state_mean/state_std must be lists of numbers") from None
    if mean.shape != (state_dim,) or std.shape != (state_dim,):
        raise CheckpointError(
            f"state_mean/state_std have shape {mean.shape}/{std.shape}; the "
            f"nets' state_dim is {state_dim}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise CheckpointError("state_mean/state_std contain NaN, infinite or non-positive values")
    scale = config["return_scale"]
    if not is_number(scale) or scale <= 0:
        raise CheckpointError(f"return_scale must be a positive number, got {scale!r:.40}")
