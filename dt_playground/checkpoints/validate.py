"""Checking a checkpoint before anything is built from it.

A checkpoint can come from a stranger (the app's upload), so every number in
its `config.json` and every tensor in its `model.safetensors` is checked here
*before* memory is spent on it:

- the JSON is size-capped, and deep nesting is refused, not crashed on;
- every `model` field has its type and range, and the parameter count and
  acting memory the config implies are bounded (a config of modest-looking
  fields can still imply gigabytes: 8192 hidden x 1000 layers);
- the safetensors header is read by hand (size-capped, 8-byte length + JSON)
  and its names, dtypes, shapes and offsets are compared with the model the
  config implies (built on the ``meta`` device, which allocates nothing);
- the `dataset` summary is reduced to the typed fields the app reads
  (`DatasetSummary`), so nothing downstream meets a string where it wants a number.

Every refusal is a `CheckpointError` naming the problem.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import fields
from pathlib import Path

import torch

from dt_playground.checkpoints.layout import MAX_JSON_BYTES, read_json
from dt_playground.data.summary import DatasetSummary, is_number
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.errors import CheckpointError

__all__ = ["MAX_JSON_BYTES", "CheckpointError", "DatasetSummary", "read_json"]  # re-exported


MAX_HEADER_BYTES = 512 * 1024  # a DT's safetensors header is a few KB
MAX_PARAMS = 16_000_000  # 64 MB of fp32: the upload cap; shipped DTs have < 1M
MAX_ACTING_BYTES = 1 << 30  # activations of the largest batched sweep
MAX_SWEEP_BATCH = 100  # playground.MAX_SWEEP_EPISODES: episodes acting in lock-step
DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}
# Per-field bounds of `DTConfig`; checked before the product checks below.
INT_BOUNDS = {
    "state_dim": (1, 4096),
    "act_dim": (1, 4096),
    "hidden": (1, 4096),
    "n_layers": (1, 48),
    "n_heads": (1, 64),
    "context_len": (1, 1000),
    "max_ep_len": (1, 100_000),
    "return_bins": (0, 1024),
}


def model_config(raw) -> DTConfig:
    """The `DTConfig` in config.json's ``model`` section, every field type- and range-checked."""
    if not isinstance(raw, dict):
        raise CheckpointError("config.json has no 'model' section")
    known = {f.name: f for f in fields(DTConfig)}
    unknown = set(raw) - set(known)
    if unknown:
        raise CheckpointError(f"config.json 'model' has unknown fields: {sorted(unknown)[:5]}")
    for name, value in raw.items():
        _check_field(name, value, known[name].default)
    try:
        cfg = DTConfig(**raw)
    except (TypeError, ValueError) as exc:  # incomplete, or a bad return-head config
        raise CheckpointError(f"config.json 'model' is invalid: {exc}") from None
    if cfg.hidden % cfg.n_heads:
        raise CheckpointError("config.json: 'model.hidden' must be divisible by 'model.n_heads'")
    check_size(cfg)
    return cfg


def _check_field(name: str, value, default) -> None:
    where = f"config.json 'model.{name}'"
    if name in INT_BOUNDS:
        lo, hi = INT_BOUNDS[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise CheckpointError(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise CheckpointError(f"{where} must be true or false, got {value!r}")
    elif name == "dropout":
        if not is_number(value) or not 0.0 <= value < 1.0:
            raise CheckpointError(f"{where} must be a number in [0, 1), got {value!r}")
    elif isinstance(default, float):
        if not is_number(value):
            raise CheckpointError(f"{where} must be a finite number, got {value!r}")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
            raise CheckpointError(f"{where} must be an integer in [0, 10000], got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str) or len(value) > 32:
            raise CheckpointError(f"{where} must be a short string, got {value!r}")


def check_size(cfg: DTConfig) -> None:
    """Bound the parameters and acting memory a config implies, from arithmetic alone."""
    h, n_layers, k = cfg.hidden, cfg.n_layers, cfg.context_len
    params = n_layers * 12 * h * h + (cfg.max_ep_len + cfg.state_dim + 2 * cfg.act_dim + 8) * h
    if params > MAX_PARAMS:
        raise CheckpointError(
            f"config.json implies about {params / 1e6:.0f}M parameters "
            f"(hidden {h}, {n_layers} layers); the limit is {MAX_PARAMS / 1e6:.0f}M"
        )
    tokens = 3 * k
    acting = 4 * MAX_SWEEP_BATCH * (8 * tokens * h + cfg.n_heads * tokens * tokens)
    if acting > MAX_ACTING_BYTES:
        raise CheckpointError(
            f"config.json implies about {acting / 2**30:.1f} GiB of activations when acting "
            f"(context {k}, hidden {h}); the limit is {MAX_ACTING_BYTES / 2**30:.0f} GiB"
        )


def expected_tensors(cfg: DTConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the weights a model of ``cfg`` has (built on ``meta``: no memory)."""
    with torch.device("meta"):
        model = DecisionTransformer(cfg)
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMS:  # the arithmetic bound above is approximate; this one is exact
        raise CheckpointError(
            f"The model has {n / 1e6:.1f}M parameters; the limit is {MAX_PARAMS / 1e6:.0f}M"
        )
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's header (tensor name -> dtype/shape/offsets) and its length,
    read by hand and size-capped, without touching the tensors. ``__metadata__`` dropped."""
    try:
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise CheckpointError("model.safetensors is truncated")
            (n,) = struct.unpack("<Q", raw_len)
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"model.safetensors is corrupt or not a safetensors file: its header "
                    f"claims {n} bytes (the limit is {MAX_HEADER_BYTES})"
                )
            header = f.read(n)
    except FileNotFoundError:
        raise CheckpointError("The weights are missing: model.safetensors not found") from None
    try:
        meta = json.loads(header)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError("model.safetensors is corrupt or not a safetensors file") from None
    if not isinstance(meta, dict):
        raise CheckpointError("model.safetensors is corrupt or not a safetensors file")
    meta.pop("__metadata__", None)
    return meta, n


def check_safetensors(path: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Compare the safetensors header with ``expected`` before any tensor is read."""
    meta, n = read_safetensors_header(path)
    size = path.stat().st_size
    missing = sorted(set(expected) - set(meta))
    unexpected = sorted(set(meta) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"model.safetensors does not match config.json: missing tensors {missing[:5]}, "
            f"unexpected tensors {unexpected[:5]}"
        )
    end = 0
    for name, shape in expected.items():
        info = meta[name]
        if not isinstance(info, dict):
            raise CheckpointError(f"model.safetensors: bad entry for '{name}'")
        dtype, got, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            raise CheckpointError(
                f"Tensor '{name}' is {dtype!r}; weights must be one of {sorted(DTYPES)}"
            )
        if not isinstance(got, list) or tuple(got) != shape:
            raise CheckpointError(
                f"Tensor '{name}' has shape {got}, config.json implies {list(shape)}"
            )
        nbytes = math.prod(shape) * DTYPES[dtype][1]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)
            or offsets[1] - offsets[0] != nbytes
        ):
            raise CheckpointError(f"Tensor '{name}' has inconsistent data offsets")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise CheckpointError("model.safetensors' size does not match its header")
