"""Speak Hugging Face: our checkpoints <-> `transformers`' `DecisionTransformerModel` folders.

Both are the Chen et al. DT with a pre-LN GPT-2 trunk, so the weights map one to one:

- ours ``blocks.i.attn.qkv`` (nn.Linear, (out, in)) is GPT-2's ``encoder.h.i.attn.c_attn``
  (Conv1D, (in, out)): transposed, q/k/v in the same order and head layout. Likewise
  ``proj``/``c_proj``, ``mlp.0``/``mlp.c_fc``, ``mlp.2``/``mlp.c_proj``; LayerNorms by name.
- HF adds GPT-2's position embedding ``wpe`` after ``embed_ln``, always at position 0
  (`transformers.DecisionTransformerModel.forward` passes zero position ids). Export writes zeros;
  import folds ``wpe[0]`` into ``embed_ln.bias``, which is the same sum.
- HF's ``wte`` (unused with ``inputs_embeds``), ``predict_state`` and ``predict_return``
  never touch the action: export writes zeros (so `from_pretrained` finds every weight),
  import drops them.
- ReLU is GPT-2's ``activation_function="relu"``; we have no dropout on attention
  probabilities, so export says ``attn_pdrop=0``. Import accepts any dropout rates
  (they only act while training) and records them; it refuses what would change the
  actions: another activation, ``n_inner != 4*hidden``, a LayerNorm epsilon other than
  1e-5, no tanh on actions, cross-attention. Attention scalings other than 1/sqrt(d) are
  folded into the query weights.
- Refused on export: discrete actions (HF's action head is continuous), BC/%BC models
  (no return tokens; HF's always has them) and the (s, R, a) token order of models with
  a return-distribution head (HF's order is fixed (R, s, a)).

What `transformers` doesn't store, the sidecar ``dt_playground.json`` does, under the
names of the HF blog's ``DecisionTransformerGymDataCollator``: ``state_mean``/``state_std``
(states enter as (s - mean) / std), ``scale`` (returns-to-go enter divided by it),
``max_len`` (context K), ``max_ep_len``; plus ``env_id``, ``action_scale`` (env action =
``action_preds * action_scale``) and ``dataset`` (the training data's return summary).

No pickle: a ``pytorch_model.bin`` is refused, never opened. Config and safetensors
header are size- and range-checked before anything is allocated.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dt_playground.atomic import atomic_dir
from dt_playground.checkpoints import hub_card
from dt_playground.checkpoints.checkpoint import load_checkpoint, save_checkpoint
from dt_playground.checkpoints.hf_validate import (
    MODEL_TYPE,
    SIDECAR,
    hf_shapes,
    is_transformers_folder,
    read_header,
    read_hf_config,
    read_stats,
)
from dt_playground.checkpoints.validate import check_size
from dt_playground.data.summary import DatasetSummary
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.envs.registry import action_scale, env_dims, get_spec
from dt_playground.errors import CheckpointError, UnknownEnvError

__all__ = [
    "MODEL_TYPE",
    "SIDECAR",
    "export_transformers",
    "import_transformers_folder",
    "is_transformers_folder",
]
# DTConfig fields this mapping understands, with the values it can map (None: any).
_MAPPABLE = {
    "state_dim": None,
    "act_dim": None,
    "discrete": (False,),
    "hidden": None,
    "n_layers": None,
    "n_heads": None,
    "context_len": None,
    "max_ep_len": None,
    "dropout": None,
    "use_returns": (True,),
    "token_order": ("rsa",),
    "return_bins": (0,),
    "return_low": None,
    "return_high": None,
}
_WHY = {
    "discrete": "it has discrete actions; transformers' DecisionTransformerModel only "
    "predicts continuous (tanh) actions",
    "use_returns": "it is a BC/%BC model without return tokens; transformers' DT always "
    "interleaves (R, s, a)",
    "token_order": "its tokens are ordered (s, R, a); transformers' DT order is fixed (R, s, a)",
    "return_bins": "its return-distribution head has no counterpart in transformers",
}


def _pairs(n_layers: int) -> list[tuple[str, str, bool]]:
    """(our name, HF name, transposed) for every weight that maps one to one."""
    out = [
        (f"embed_{n}.{p}", f"embed_{n}.{p}", False)
        for n in ("return", "state", "action", "ln")
        for p in ("weight", "bias")
    ]
    out.append(("embed_timestep.weight", "embed_timestep.weight", False))
    for i in range(n_layers):
        ours, hf = f"blocks.{i}.", f"encoder.h.{i}."
        for a, b in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out += [(f"{ours}{a}.{p}", f"{hf}{b}.{p}", False) for p in ("weight", "bias")]
        for a, b in (
            ("attn.qkv", "attn.c_attn"),
            ("attn.proj", "attn.c_proj"),
            ("mlp.0", "mlp.c_fc"),
            ("mlp.2", "mlp.c_proj"),
        ):
            out += [
                (f"{ours}{a}.weight", f"{hf}{b}.weight", True),
                (f"{ours}{a}.bias", f"{hf}{b}.bias", False),
            ]
    out += [(f"ln_f.{p}", f"encoder.ln_f.{p}", False) for p in ("weight", "bias")]
    out += [(f"predict_action.{p}", f"predict_action.0.{p}", False) for p in ("weight", "bias")]
    return out


# ---------------------------------------------------------------- export


def check_exportable(cfg: DTConfig) -> None:
    """CheckpointError unless ``cfg`` maps exactly onto transformers' DT."""
    for f in fields(cfg):
        ok = _MAPPABLE.get(f.name, (f.default,))
        value = getattr(cfg, f.name)
        if ok is not None and value not in ok:
            why = _WHY.get(f.name, f"its '{f.name}' = {value!r} has no transformers counterpart")
            raise CheckpointError(f"Can't export to transformers: {why}.")


def export_transformers(ck_path: str | Path, out: str | Path) -> Path:
    """Write checkpoint ``ck_path`` as a `DecisionTransformerModel` folder at ``out``
    (config.json, model.safetensors, the sidecar and a Hub README.md), atomically.
    Needs no `transformers`."""
    ck = load_checkpoint(ck_path)
    cfg = ck.model.cfg
    check_exportable(cfg)
    ours = ck.model.state_dict()
    hf_config = {
        "architectures": ["DecisionTransformerModel"],
        "model_type": MODEL_TYPE,
        "state_dim": cfg.state_dim,
        "act_dim": cfg.act_dim,
        "hidden_size": cfg.hidden,
        "max_ep_len": cfg.max_ep_len,
        "action_tanh": True,
        "vocab_size": 1,
        "n_positions": 1024,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": 4 * cfg.hidden,
        "activation_function": "relu",
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "use_cache": False,
        "bos_token_id": None,
        "eos_token_id": None,
        "dtype": "float32",
    }
    shapes = hf_shapes(hf_config)
    state = {k: torch.zeros(v) for k, v in shapes.items()}  # the unused heads stay zero
    mapped = set()
    for a, b, t in _pairs(cfg.n_layers):
        state[b] = (ours[a].t() if t else ours[a]).float().contiguous().clone()
        mapped.add(a)
    if set(ours) - mapped:
        raise CheckpointError(
            f"Can't export to transformers: weights with no counterpart "
            f"{sorted(set(ours) - mapped)[:5]}"
        )
    d = ck.dataset.as_dict()
    keep = (
        "dataset_id",
        "return_min",
        "return_max",
        "return_median",
        "return_p90",
        "return_top10_mean",
        "ref_min_score",
        "ref_max_score",
    )
    sidecar = {
        "env_id": ck.spec.env_id,
        "state_mean": ck.config["state_mean"],
        "state_std": ck.config["state_std"],
        "scale": float(ck.config["return_scale"]),
        "max_len": cfg.context_len,
        "max_ep_len": ck.spec.max_ep_len,
        "action_scale": [float(x) for x in action_scale(ck.spec.env_id)],  # pyright: ignore[reportOptionalIterable]
        "dataset": {k: d[k] for k in keep if k in d},
        "source": f"dt-playground checkpoint {ck.name}",
    }
    with atomic_dir(out) as stage:
        save_file(state, str(stage / "model.safetensors"), metadata={"format": "pt"})
        (stage / "config.json").write_text(json.dumps(hf_config, indent=1))
        (stage / SIDECAR).write_text(json.dumps(sidecar, indent=1))
        (stage / "README.md").write_text(hub_card.render(ck.path, library_name="transformers"))
    return Path(out)


# ---------------------------------------------------------------- import


def import_transformers_folder(
    src: str | Path,
    dest: str | Path,
    env_id: str | None = None,
    stats: dict | str | Path | None = None,
    fallback_env: str | None = None,
) -> Path:
    """Turn transformers DT folder ``src`` into a playable checkpoint folder ``dest``
    (written atomically, then loaded back as the app would; ``dest`` may be ``src``).
    The env is ``env_id``, else the sidecar's, else ``fallback_env`` (the app's current
    env); ``stats`` (dict or JSON path) defaults to the sidecar. Needs no `transformers`."""
    src = Path(src)
    weights = src / "model.safetensors"
    if not weights.is_file():
        bins = [p.name for p in src.glob("*.bin")]
        raise CheckpointError(
            "The model folder has no model.safetensors"
            + (
                f" ({', '.join(bins[:3])} is a pickle: never loaded here; convert it with "
                "transformers' save_pretrained(safe_serialization=True) on a trusted machine)"
                if bins
                else ""
            )
        )
    c = read_hf_config(src)
    st = read_stats(stats, src, c["state_dim"])
    env_id = env_id or st["env_id"] or fallback_env
    if not env_id:
        raise CheckpointError(
            "Which environment does this model play? Give --env "
            f"(its config.json and {SIDECAR} don't say)"
        )
    try:
        spec = get_spec(str(env_id)[:100])
    except UnknownEnvError as exc:
        raise CheckpointError(f"Unknown environment: {exc}") from None
    if spec.discrete:
        raise CheckpointError(
            f"{spec.env_id} has discrete actions; transformers' DT predicts continuous ones"
        )
    dims = env_dims(spec.env_id)
    if dims != (c["state_dim"], c["act_dim"]):
        raise CheckpointError(
            f"The model (state_dim={c['state_dim']}, act_dim={c['act_dim']})"
            f" does not fit {spec.env_id} (state_dim={dims[0]}, "
            f"act_dim={dims[1]})"
        )
    env_scale = action_scale(spec.env_id)
    assert env_scale is not None  # continuous (checked above)
    given = (
        env_scale if st["action_scale"] is None and np.all(env_scale == 1) else st["action_scale"]
    )
    if (
        given is None
        or np.asarray(given, np.float64).shape != env_scale.shape
        or not np.allclose(given, env_scale)
    ):
        raise CheckpointError(
            f"{spec.env_id}'s actions span ±{env_scale.tolist()}, but the model's tanh "
            "outputs ±1: give action_scale (the half-range its training actions were divided "
            "by) in the stats; only models trained on actions scaled to [-1, 1] play here"
        )
    shapes = hf_shapes(c)
    read_header(weights, shapes)
    try:
        with safe_open(str(weights), framework="pt") as f:
            hf = {k: f.get_tensor(k).float() for k in shapes}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"model.safetensors is corrupt ({type(exc).__name__})") from None
    for k, v in hf.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"Tensor '{k}' contains NaN or infinite weights")
    cfg = DTConfig(
        state_dim=c["state_dim"],
        act_dim=c["act_dim"],
        hidden=c["hidden_size"],
        n_layers=c["n_layer"],
        n_heads=c["n_head"],
        context_len=st["max_len"],
        max_ep_len=c["max_ep_len"],
        dropout=c["resid_pdrop"],
    )
    check_size(cfg)
    state = {a: (hf[b].t() if t else hf[b]).contiguous() for a, b, t in _pairs(cfg.n_layers)}
    # GPT-2 adds wpe[0] to every token right after embed_ln: the same as a bias shift.
    state["embed_ln.bias"] = state["embed_ln.bias"] + hf["encoder.wpe.weight"][0]
    head = cfg.hidden // cfg.n_heads
    for i in range(cfg.n_layers):  # fold GPT-2's attention scaling into the queries
        s = (head**-0.5 if c["scale_attn_weights"] else 1.0) / (
            i + 1 if c["inverse_layer_scale"] else 1
        )
        if s != head**-0.5:
            for p in ("weight", "bias"):
                state[f"blocks.{i}.attn.qkv.{p}"][: cfg.hidden] *= s / head**-0.5
    model = DecisionTransformer(cfg)
    model.load_state_dict(state)
    config = {
        "env_id": spec.env_id,
        "algo": "dt",
        "state_mean": st["state_mean"],
        "state_std": st["state_std"],
        "return_scale": float(st["scale"]),
        "dataset": DatasetSummary.from_dict(st["dataset"]).as_dict(),
        "train": {
            "imported_from": "transformers",
            "source": src.name[:100],
            **{k: c[k] for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")},
        },
        "curve": [],
        "evals": [],
        "complete": True,
    }
    with atomic_dir(dest) as stage:
        save_checkpoint(stage, model, config)
        load_checkpoint(stage, expect_env=spec.env_id)  # refuse what the app would refuse
    return Path(dest)
