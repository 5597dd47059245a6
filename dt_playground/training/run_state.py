"""What a training run carries from step to step and across restarts: `restore` (a
fresh start, or resuming a folder's saved state), the `Checkpointer` that writes the
checkpoint folder and the state to resume from, and the `LossLog` that reads losses
back (in bursts on a GPU) into the curve, the caller's ``on_step`` and a progress bar.
`training.train.train` runs the loop between them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from dt_playground.checkpoints.checkpoint import save_checkpoint
from dt_playground.paths import relative_to_repo
from dt_playground.training.step import (
    DeviceWindows,
    optimizer_state,
    rank_seed,
    restore_optimizer,
    sampler_state,
)

LOG_EVERY = 10  # steps between loss-curve points (and loss read-backs on CUDA)


@dataclass
class RunState:
    """The run so far: steps done, the loss curve and evaluations, seconds spent, and
    the batch sampler's random state (numpy's ``rng`` on the CPU; ``gen`` beside
    ``windows`` when batches are gathered on the device)."""

    windows: DeviceWindows | None = None  # None: numpy batches
    gen: torch.Generator | None = None
    rng: np.random.Generator | None = None
    step: int = 0
    curve: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    elapsed: float = 0.0


def restore(cfg, model, opt, summary: dict, world, device: torch.device, windows=None) -> RunState:
    """A fresh run, or the run saved in ``cfg.out`` when ``cfg.resume`` and its recipe
    (and dataset) match: weights, optimizer, random states, curve and steps restored.
    The sampler continues exactly where it stopped in a world of one; otherwise every
    rank reseeds from (seed, rank, step)."""
    out = Path(cfg.out)
    gen = torch.Generator(device=device) if windows is not None else None
    run = RunState(windows, gen)
    exact = False
    state_json = out / "train_state.json"
    if cfg.resume and state_json.is_file():
        st = json.loads(state_json.read_text())
        _check_same_run(cfg, out, st.get("config", {}), summary)
        model.load_state_dict(load_file(str(out / "model.safetensors"), device=str(device)))
        tensors = load_file(str(out / "train_state.safetensors"))
        torch.set_rng_state(tensors.pop("__torch_rng"))
        cuda_rng = tensors.pop("__cuda_rng", None)
        if cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state(cuda_rng, device)
        sampler_rng = tensors.pop("__sampler_rng", None)
        restore_optimizer(opt, tensors, st["optimizer"])
        run.step, run.curve, run.evals, run.elapsed = (
            st["step"],
            st["curve"],
            st["evals"],
            st["seconds"],
        )
        # The saved sampler state is rank 0's of a world of one.
        same_world = world.size == 1 and st.get("world_size", 1) == 1
        if same_world and windows is None and "numpy_rng" in st:
            run.rng = np.random.default_rng()
            run.rng.bit_generator.state = st["numpy_rng"]
            exact = True
        elif same_world and gen is not None and sampler_rng is not None:
            gen.set_state(sampler_rng)
            exact = True
    if not exact:
        # Rank 0 of a fresh single-process run keeps the seeding of every earlier run.
        fresh = run.step == 0 and world.rank == 0
        seed = cfg.seed if fresh else rank_seed(cfg.seed, world.rank, run.step)
        run.rng = np.random.default_rng(seed)
        if gen is not None:
            gen.manual_seed(seed)
    return run


def _check_same_run(cfg, out: Path, saved: dict, summary: dict) -> None:
    if type(cfg).identity_of(saved, steps=False) != cfg.identity(steps=False):
        raise ValueError(
            f"{out} holds a run with a different configuration; choose "
            "another output folder or pass --no-resume"
        )
    done = json.loads((out / "config.json").read_text()).get("dataset", {})
    if done.get("dataset_id") != summary["dataset_id"]:
        raise ValueError(
            f"{out} holds a run on dataset {done.get('dataset_id')!r}, not "
            f"{summary['dataset_id']!r}; choose another output folder"
        )


class Checkpointer:
    """Writes the run's checkpoint folder (rank 0 only): the weights and config.json,
    and, until the run is complete (or with ``keep_train_state``), the state to resume
    from."""

    def __init__(
        self, cfg, model, opt, spec, norm, summary: dict, world, device: torch.device, run: RunState
    ):
        self.cfg, self.model, self.opt, self.spec, self.norm = cfg, model, opt, spec, norm
        self.summary, self.world, self.device, self.run = summary, world, device, run

    def _train_config(self) -> dict:
        # No machine paths in a checkpoint: the dataset id, the folder relative to the repo.
        return {
            **asdict(self.cfg),
            "dataset": self.summary.get("dataset_id", ""),
            "out": relative_to_repo(self.cfg.out),
        }

    def config_json(self, final: bool) -> dict:
        cfg, run = self.cfg, self.run
        return {
            "env_id": self.spec.env_id,
            "algo": cfg.algo,
            "context_len": cfg.context_len,
            "state_mean": self.norm.state_mean.tolist(),
            "state_std": self.norm.state_std.tolist(),
            "return_scale": self.spec.return_scale,
            "dataset": self.summary,
            "train": self._train_config(),
            "curve": run.curve,
            "evals": run.evals,
            "steps_done": run.step,
            "complete": final,
            "train_seconds": round(run.elapsed, 2),
        }

    def _resume_files(self) -> dict:
        run = self.run
        tensors, meta = optimizer_state(self.opt)
        tensors["__torch_rng"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["__cuda_rng"] = torch.cuda.get_rng_state(self.device)
        s_tensors, s_meta = sampler_state(run.windows, run.gen, run.rng)
        return {
            "train_state.safetensors": {**tensors, **s_tensors},
            "train_state.json": {
                "config": self._train_config(),
                "optimizer": meta,
                **s_meta,
                "world_size": self.world.size,
                "step": run.step,
                "curve": run.curve,
                "evals": run.evals,
                "seconds": run.elapsed,
            },
        }

    def save(self, final: bool) -> None:
        if not self.world.main:
            return
        keep = not final or self.cfg.keep_train_state
        extra = self._resume_files() if keep else {}
        save_checkpoint(Path(self.cfg.out), self.model, self.config_json(final), extra_files=extra)


class LossLog:
    """Losses kept on the device until read back in one transfer (on CUDA the loop's
    only sync): every `LOG_EVERY` steps a point on the curve, every step a call of
    ``on_step(step, loss, lr)`` (rank 0) and a tick of the progress bar."""

    def __init__(self, run: RunState, last_step: int, on_step=None, bar=None, main: bool = True):
        self.run, self.last_step, self.on_step, self.bar, self.main = (
            run,
            last_step,
            on_step,
            bar,
            main,
        )
        self.pending: list[tuple[int, torch.Tensor, float]] = []
        self.last = float("nan")  # the last loss read back

    def add(self, step: int, loss: torch.Tensor, lr: float, read_now: bool) -> None:
        self.pending.append((step, loss, lr))
        if read_now:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        values = torch.stack([x for _, x, _ in self.pending]).float().cpu().tolist()
        for (s, _, lr), v in zip(self.pending, values):
            self.last = v
            if s % LOG_EVERY == 0 or s == self.last_step:
                self.run.curve.append({"step": s, "loss": round(v, 5), "lr": lr})
            if self.on_step is not None and self.main:
                self.on_step(s, v, lr)
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{v:.4f}")
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        if self.bar is not None:
            self.bar.close()


def clock(run: RunState) -> float:
    """A ``perf_counter`` origin such that now - origin counts the run's earlier seconds."""
    return time.perf_counter() - run.elapsed
