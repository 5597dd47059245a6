"""DT Playground: Decision Transformers you can watch.

The library under the app, in layers (docs/ARCHITECTURE.md), bottom to top: ``envs``,
``data``, ``behaviour``, ``dt``, ``checkpoints``, ``rollout``, ``training``, ``media``,
``zoo``, ``stitch``, ``serve``, ``cli``, ``app``. Only ``app`` imports gradio.

The documented entry points are importable from here, e.g.
``from dt_playground import load_checkpoint, DTPolicy, run_episodes``; they load on
first use, so ``import dt_playground`` stays cheap (no torch until a model is needed).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_ENTRY_POINTS = {
    "EnvSpec": "envs.registry",
    "get_spec": "envs.registry",
    "make_env": "envs.registry",
    "env_ids": "envs.registry",
    "collect_episodes": "behaviour.collect",
    "ensure_dataset": "behaviour.collect",
    "load_episodes": "data.storage",
    "write_minari": "data.storage",
    "OfflineDataset": "data.windows",
    "DTConfig": "dt.model",
    "DecisionTransformer": "dt.model",
    "Checkpoint": "checkpoints.checkpoint",
    "load_checkpoint": "checkpoints.checkpoint",
    "DTPolicy": "rollout.policy",
    "run_episodes": "rollout.policy",
    "TrainConfig": "training.train",
    "train": "training.train",
    "render_trace": "media.replay",
    "PlaygroundError": "errors",
}
__all__ = sorted(_ENTRY_POINTS)


def __getattr__(name: str):
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dt_playground' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
