"""Checking a transformers Decision Transformer folder before anything is built from it.

An uploaded folder is a stranger's: its config.json is size-capped and every number
range-checked (with the parameter count it implies bounded) before a tensor is
allocated; the safetensors header is read by hand and compared with the shapes the
config implies; settings that would change the actions are refused by name.
The mapping itself is `hf.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dt_playground.checkpoints.layout import read_json
from dt_playground.checkpoints.validate import (
    DTYPES,
    INT_BOUNDS,
    MAX_PARAMS,
    read_safetensors_header,
)
from dt_playground.errors import CheckpointError

SIDECAR = "dt_playground.json"  # what transformers doesn't store (see `hf.py`)
MAX_CONFIG_BYTES = 256 * 1024  # an HF DT config.json is ~1 KB
MODEL_TYPE = "decision_transformer"
_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers older GPT-2 saves carry


def hf_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight a `DecisionTransformerModel` of config ``c`` has."""
    h, s, a, inner = (
        c["hidden_size"],
        c["state_dim"],
        c["act_dim"],
        c["n_inner"] or 4 * c["hidden_size"],
    )
    out = {
        "embed_timestep.weight": (c["max_ep_len"], h),
        "embed_return.weight": (h, 1),
        "embed_state.weight": (h, s),
        "embed_action.weight": (h, a),
        "encoder.wte.weight": (c["vocab_size"], h),
        "encoder.wpe.weight": (c["n_positions"], h),
        "predict_state.weight": (s, h),
        "predict_state.bias": (s,),
        "predict_action.0.weight": (a, h),
        "predict_action.0.bias": (a,),
        "predict_return.weight": (1, h),
        "predict_return.bias": (1,),
    }
    for n in ("embed_return", "embed_state", "embed_action", "embed_ln", "encoder.ln_f"):
        out[f"{n}.bias"] = (h,)
    out["embed_ln.weight"] = out["encoder.ln_f.weight"] = (h,)
    for i in range(c["n_layer"]):
        p = f"encoder.h.{i}."
        for n, shape in (
            ("ln_1", (h,)),
            ("ln_2", (h,)),
            ("attn.c_attn", (h, 3 * h)),
            ("attn.c_proj", (h, h)),
            ("mlp.c_fc", (h, inner)),
            ("mlp.c_proj", (inner, h)),
        ):
            out[f"{p}{n}.weight"] = shape
            out[f"{p}{n}.bias"] = (shape[-1],)
    return out


def _read_small_json(path: Path, what: str) -> dict:
    """`checkpoints.layout.read_json`, with an HF config's much smaller size cap."""
    if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path.name} is over {MAX_CONFIG_BYTES // 1024} KB; refused")
    return read_json(path, what or path.name)


def is_transformers_folder(path: str | Path) -> bool:
    """True when ``path`` holds a transformers Decision Transformer config.json."""
    try:
        return _read_small_json(Path(path) / "config.json", "").get("model_type") == MODEL_TYPE
    except (CheckpointError, OSError):
        return False


def _int(c: dict, key: str, lo: int, hi: int, default=None) -> int:
    v = c.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise CheckpointError(
            f"config.json '{key}' must be an integer in [{lo}, {hi}], got {v!r:.40}"
        )
    return v


def read_hf_config(path: Path) -> dict:
    """The HF config, every number range-checked and every unmappable setting refused."""
    raw = _read_small_json(path / "config.json", "The model's config")
    if raw.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            f"config.json is not a transformers Decision Transformer "
            f"(model_type {raw.get('model_type')!r:.40})"
        )
    c = {
        k: _int(raw, k, *INT_BOUNDS[ours])
        for k, ours in (
            ("state_dim", "state_dim"),
            ("act_dim", "act_dim"),
            ("hidden_size", "hidden"),
            ("n_layer", "n_layers"),
            ("n_head", "n_heads"),
            ("max_ep_len", "max_ep_len"),
        )
    }
    c["vocab_size"] = _int(raw, "vocab_size", 1, 1_000_000, 1)
    c["n_positions"] = _int(raw, "n_positions", 1, 1_000_000, 1024)
    h = c["hidden_size"]
    if h % c["n_head"]:
        raise CheckpointError("config.json: 'hidden_size' must be divisible by 'n_head'")
    c["n_inner"] = raw.get("n_inner")  # pyright: ignore[reportArgumentType]
    refusals = [
        (
            raw.get("activation_function", "relu") != "relu",
            f"activation_function {raw.get('activation_function')!r:.30} (ours is ReLU)",
        ),
        (c["n_inner"] not in (None, 4 * h), f"n_inner {c['n_inner']!r:.20} (ours is 4*hidden)"),
        (raw.get("layer_norm_epsilon", 1e-5) != 1e-5, "layer_norm_epsilon other than 1e-5"),
        (raw.get("action_tanh", True) is not True, "action_tanh false (ours squashes with tanh)"),
        (raw.get("add_cross_attention", False) is not False, "cross-attention"),
    ]
    for bad, what in refusals:
        if bad:
            raise CheckpointError(f"Can't import: this model uses {what}; the actions would differ")
    c["scale_attn_weights"] = raw.get("scale_attn_weights", True) is not False
    c["inverse_layer_scale"] = raw.get("scale_attn_by_inverse_layer_idx", False) is True
    for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        v = raw.get(k, 0.1)
        c[k] = float(v) if isinstance(v, (int, float)) and 0 <= v < 1 else 0.1  # pyright: ignore[reportArgumentType]
    if sum(math.prod(s) for s in hf_shapes(c).values()) > MAX_PARAMS:
        raise CheckpointError(f"config.json implies over {MAX_PARAMS // 10**6}M parameters")
    return c


def read_header(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Check the safetensors header (read by hand, size-capped) against ``shapes``."""
    meta, n = read_safetensors_header(path)
    size = path.stat().st_size
    extra = [k for k in meta if k not in shapes and not k.endswith(_BUFFERS)]
    missing = [k for k in shapes if k not in meta]
    if missing or extra:
        raise CheckpointError(
            f"model.safetensors does not match config.json: missing "
            f"{missing[:4]}, unexpected {extra[:4]}"
        )
    for name, shape in shapes.items():
        info = meta[name]
        ok = (
            isinstance(info, dict)
            and info.get("dtype") in DTYPES
            and info.get("shape") == list(shape)
        )
        offs = info.get("data_offsets") if ok else None
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(o, int) and 0 <= o <= size - 8 - n for o in offs)
            and offs[1] - offs[0] == math.prod(shape) * DTYPES[info["dtype"]][1]
        ):
            raise CheckpointError(
                f"Tensor '{name}' is not a {list(shape)} float tensor within the file"
            )


def read_stats(stats: dict | str | Path | None, src: Path, state_dim: int) -> dict:
    """State mean/std, return scale, K and env from ``stats`` (a dict or a JSON file in the
    sidecar's format), else from ``src``'s sidecar. Says exactly what is missing."""
    if isinstance(stats, (str, Path)):
        stats = _read_small_json(Path(stats), "The state stats file")
    elif stats is None:
        stats = _read_small_json(src / SIDECAR, "") if (src / SIDECAR).is_file() else {}
    out = {
        "env_id": stats.get("env_id"),
        "max_len": stats.get("max_len", stats.get("context_len", 20)),
        "scale": stats.get("scale", stats.get("return_scale")),
        "action_scale": stats.get("action_scale"),
        "dataset": stats.get("dataset"),
    }
    missing = [k for k in ("state_mean", "state_std") if k not in stats]
    missing += ["scale"] if out["scale"] is None else []
    if missing:
        raise CheckpointError(
            f"transformers keeps no input normalisation; missing {', '.join(missing)}. Give "
            f"a JSON file (--state-stats) with state_mean and state_std ({state_dim} numbers "
            "each: the dataset's state mean/std) and scale (returns-to-go are divided by it; "
            f"the HF blog uses 1000 for MuJoCo), or put it in the model folder as {SIDECAR}"
        )
    for k in ("state_mean", "state_std"):
        try:
            v = np.asarray(stats[k], dtype=np.float64)
        except (TypeError, ValueError):
            raise CheckpointError(f"{k} must be a list of numbers") from None
        if v.shape != (state_dim,) or not np.isfinite(v).all():
            raise CheckpointError(f"{k} must be {state_dim} finite numbers")
        out[k] = v.tolist()
    if min(out["state_std"]) <= 0:
        raise CheckpointError("state_std must be positive")
    s = out["scale"]
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 < s < 1e12:
        raise CheckpointError(f"scale must be a positive number, got {s!r:.40}")
    _int(out, "max_len", *INT_BOUNDS["context_len"])
    return out
