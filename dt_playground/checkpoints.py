"""Checkpoints: self-describing folders, safetensors + JSON only.

A checkpoint folder holds:

- ``config.json``: ``env_id``, ``algo`` ("dt", "bc" or "pbc"), ``context_len``,
  ``model`` (the `DTConfig` fields), ``state_mean``/``state_std``,
  ``return_scale``, ``dataset`` (the dataset summary), ``train`` (training
  config) and ``curve`` (loss curve).
- ``model.safetensors``: the weights.
- ``card.json`` (optional): evaluation results.

Loading needs nothing else and never unpickles, so an uploaded checkpoint
cannot run code. Every way a checkpoint can be wrong is refused with a
`CheckpointError` that names the problem.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .data import Normaliser
from .envs import EnvSpec, UnknownEnvError, get_spec
from .model import DecisionTransformer, DTConfig

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def pretrained_dir() -> Path:
    """Where shipped checkpoints live (``$DTP_PRETRAINED_DIR`` overrides, e.g. in tests)."""
    return Path(os.environ.get("DTP_PRETRAINED_DIR", PRETRAINED_DIR))


MAX_UPLOAD_BYTES = 64 * 1024 * 1024
ALGOS = ("dt", "bc", "pbc")


class CheckpointError(ValueError):
    """A checkpoint that can't be used, with the reason."""


@dataclass
class Checkpoint:
    path: Path
    model: DecisionTransformer
    config: dict
    card: dict | None

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
    def name(self) -> str:
        return self.path.name


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` via a temp file + rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {**config, "model": model.cfg.to_dict(), "context_len": model.cfg.context_len}
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
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
        trash = None
        if path.exists():
            trash = path.with_name(f".{path.name}.old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(path, trash)
        os.replace(stage, path)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return path


def _read_json(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{what} is missing: {path.name} not found in {path.parent}"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path.name} in {path.parent} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name} in {path.parent} must hold a JSON object")
    return obj


def _model_config(config: dict) -> DTConfig:
    raw = config.get("model")
    if not isinstance(raw, dict):
        raise CheckpointError("config.json has no 'model' section")
    names = {f.name for f in fields(DTConfig)}
    unknown = set(raw) - names
    if unknown:
        raise CheckpointError(f"config.json 'model' has unknown fields: {sorted(unknown)}")
    try:
        cfg = DTConfig(**raw)
    except TypeError as exc:
        raise CheckpointError(f"config.json 'model' is incomplete: {exc}") from None
    for name in (
        "state_dim",
        "act_dim",
        "hidden",
        "n_layers",
        "n_heads",
        "context_len",
        "max_ep_len",
    ):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= 100_000:
            raise CheckpointError(
                f"config.json 'model.{name}' must be a positive integer, got {v!r}"
            )
    if cfg.hidden % cfg.n_heads:
        raise CheckpointError("config.json: 'model.hidden' must be divisible by 'model.n_heads'")
    return cfg


def load_checkpoint(path: Path | str, expect_env: str | None = None) -> Checkpoint:
    """Load and validate a checkpoint folder (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint folder {path} does not exist")
    config = _read_json(path / "config.json", "The checkpoint's config")
    for key in ("env_id", "algo", "state_mean", "state_std", "return_scale"):
        if key not in config:
            raise CheckpointError(f"config.json is missing '{key}'")
    try:
        spec = get_spec(config["env_id"])
    except UnknownEnvError as exc:
        raise CheckpointError(f"config.json names an unknown environment: {exc}") from None
    if expect_env is not None and spec.env_id != expect_env:
        raise CheckpointError(f"This checkpoint was trained on {spec.env_id}, not {expect_env}")
    if config["algo"] not in ALGOS:
        raise CheckpointError(f"config.json 'algo' must be one of {ALGOS}, got {config['algo']!r}")
    cfg = _model_config(config)
    mean, std = (np.asarray(config[k], dtype=np.float64) for k in ("state_mean", "state_std"))
    if mean.shape != (cfg.state_dim,) or std.shape != (cfg.state_dim,):
        raise CheckpointError(
            f"state_mean/state_std have shape {mean.shape}/{std.shape}; the model's state_dim "
            f"is {cfg.state_dim}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise CheckpointError("state_mean/state_std contain NaN, infinite or non-positive values")
    scale = config["return_scale"]
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise CheckpointError(f"return_scale must be a positive number, got {scale!r}")
    _check_env_dims(spec, cfg)

    weights_path = path / "model.safetensors"
    if not weights_path.is_file():
        raise CheckpointError(f"The weights are missing: model.safetensors not found in {path}")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"model.safetensors is corrupt or not a safetensors file ({exc})"
        ) from None
    model = DecisionTransformer(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"model.safetensors does not match config.json: missing tensors {missing[:5]}, "
            f"unexpected tensors {unexpected[:5]}"
        )
    for k, v in expected.items():
        if state[k].shape != v.shape:
            raise CheckpointError(
                f"Tensor '{k}' has shape {tuple(state[k].shape)}, "
                f"config.json implies {tuple(v.shape)}"
            )
        if not torch.isfinite(state[k]).all():
            raise CheckpointError(f"Tensor '{k}' contains NaN or infinite weights")
    model.load_state_dict(state)
    model.eval()
    card = _read_json(path / "card.json", "card") if (path / "card.json").exists() else None
    return Checkpoint(path, model, config, card)


def _check_env_dims(spec: EnvSpec, cfg: DTConfig) -> None:
    """The model's input/output sizes must fit the env's spaces."""
    from .envs import make_env, space_dims

    env = make_env(spec)
    s, a = space_dims(env)
    env.close()
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


ALLOWED_UPLOAD_FILES = {"config.json", "model.safetensors", "card.json", "README.md"}


def extract_upload(archive: Path | str, dest: Path | str) -> Path:
    """Unpack an uploaded checkpoint zip into ``dest`` safely and return the folder.

    Only the known checkpoint files are taken (from the archive root or one
    folder deep); anything else, path tricks or oversize content are refused.
    """
    archive, dest = Path(archive), Path(dest)
    if not zipfile.is_zipfile(archive):
        raise CheckpointError(f"{archive.name} is not a zip archive of a checkpoint folder")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > MAX_UPLOAD_BYTES:
            raise CheckpointError("The uploaded checkpoint is larger than 64 MB")
        taken = 0
        for info in infos:
            name = Path(info.filename).name
            parts = Path(info.filename).parts
            if name not in ALLOWED_UPLOAD_FILES or len(parts) > 2 or ".." in parts:
                continue
            with zf.open(info) as src, open(dest / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
            taken += 1
    if not taken:
        raise CheckpointError(
            f"{archive.name} holds no checkpoint files (expected {sorted(ALLOWED_UPLOAD_FILES)})"
        )
    return dest


def list_checkpoints(root: Path | str | None = None, env_id: str | None = None) -> list[Path]:
    """Checkpoint folders (with a config.json) under ``root`` (default: the pretrained
    folder), optionally for one env."""
    root = Path(root) if root is not None else pretrained_dir()
    if not root.is_dir():
        return []
    out = []
    for cfg_path in sorted(root.glob("*/config.json")):
        try:
            env = json.loads(cfg_path.read_text()).get("env_id")
        except ValueError:
            continue
        if env_id is None or env == env_id:
            out.append(cfg_path.parent)
    return out
