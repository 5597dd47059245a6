"""The parts of training that depend on where it runs: window sampling on the
device, the optimiser step (eager, ``torch.compile`` or one CUDA graph), and
data parallelism under ``torchrun``.

On a GPU a DT this size is launch-bound: a step is ~100 small kernels, and the
card idles between them. So on CUDA the dataset lives on the GPU and windows are
gathered there (no host round trip per step), and the whole step (forward,
backward, clip, update) can be replayed as one CUDA graph; the model's forward
and loss have no host syncs for this reason (model.py). On the CPU the step
stays eager and sampling stays in numpy. AdamW is fused on both.

Every branch runs on the CPU in the tests: the graph step's static-buffer logic
with an eager "graph" (`TrainStep(capture=...)`), the device gather against
`data.windows.gather_windows`, and DDP over gloo.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from dt_playground.dt.model import DecisionTransformer
from dt_playground.training import fast_step

STEP_MODES = ("auto", "eager", "compile", "graph")
WARMUP_STEPS = 3  # eager steps before a CUDA graph is captured (real steps, not discarded)


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we started the process group, so we end it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def batch_share(self, global_batch: int) -> int:
        """Windows this rank samples: the global batch split as evenly as possible."""
        if global_batch < self.size:
            raise ValueError(
                f"batch size {global_batch} is smaller than the world size "
                f"{self.size}: every rank needs at least one window"
            )
        return global_batch // self.size + int(self.rank < global_batch % self.size)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def join_world(device: torch.device) -> World:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1 in the
    environment): NCCL on CUDA, gloo on the CPU. A group that is already up is
    used as it is. Without torchrun: a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(
            dist.get_rank(),
            dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", 0)),
            owns_group=False,
        )
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch has no torch.distributed")
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(
        dist.get_rank(),
        dist.get_world_size(),
        int(os.environ.get("LOCAL_RANK", 0)),
        owns_group=True,
    )


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A 63-bit seed for rank ``rank`` from the run's seed (and the step, on resume)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(2, np.uint64)[0] >> 1)


class DeviceWindows:
    """An `OfflineDataset`'s buffers as tensors on ``device``, and window gathering
    there: what `data.windows.gather_windows` computes, without leaving the device."""

    def __init__(self, ds, device: torch.device):
        def put(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.device = device
        self.states, self.actions, self.rtg = put(ds.states), put(ds.actions), put(ds.rtg)
        self.rows = put(ds.window_rows.astype(np.int64))
        self.ends = put(ds.window_ends.astype(np.int64))
        self.max_ep_len = ds.spec.max_ep_len

    def gather(self, rows: torch.Tensor, ends: torch.Tensor, K: int) -> dict[str, torch.Tensor]:
        """The last K steps ending at ``ends`` of episodes ``rows``, left-padded (mask 0)."""
        idx = ends[:, None] - K + 1 + torch.arange(K, device=self.device)  # (B, K)
        mask = idx >= 0
        idx = idx.clamp_min(0)
        r = rows[:, None]
        m = mask[..., None]
        zero = torch.zeros((), device=self.device)
        return {
            "states": torch.where(m, self.states[r, idx], zero),
            "actions": torch.where(m, self.actions[r, idx], zero),
            "rtg": torch.where(m, self.rtg[r, idx][..., None], zero),
            "timesteps": idx.clamp_max(self.max_ep_len - 1),
            "mask": mask.float(),
        }

    def sample(self, batch: int, K: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device=self.device)
        return self.gather(self.rows[pick], self.ends[pick], K)


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Optimizer state as (tensors, json) so it can live in safetensors."""
    tensors, meta = {}, {}
    for i, (_, st) in enumerate(sorted(opt.state_dict()["state"].items())):
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0:
                tensors[f"{i}.{k}"] = v.contiguous()
            else:
                meta[f"{i}.{k}"] = float(v)
    return tensors, meta


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    n = len(sd["param_groups"][0]["params"])
    state = {}
    for i in range(n):
        st = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)}
        st.update(
            {
                k.split(".", 1)[1]: torch.tensor(v)
                for k, v in meta.items()
                if k.split(".", 1)[0] == str(i)
            }
        )
        if st:
            state[i] = st
    sd["state"] = state
    opt.load_state_dict(sd)


def sampler_state(windows, gen, rng) -> tuple[dict, dict]:
    """Rank 0's batch-sampler state as (tensors, json) for the resume files."""
    if windows is not None:
        return {"__sampler_rng": gen.get_state()}, {}
    return {}, {"numpy_rng": rng.bit_generator.state}


class _Loss(torch.nn.Module):
    """The model's loss as a module's forward: what DDP wraps, so that its hooks
    see every forward (the loss reads the trunk directly, not ``model(...)``).
    ``precision``: `fast_step.loss` with its matmuls in that precision; None: the
    model's own ``loss`` (the plain path, under the caller's autocast)."""

    def __init__(self, model: DecisionTransformer, precision: str | None = None):
        super().__init__()
        self.model, self.precision = model, precision

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.precision is None:
            return self.model.loss(batch)
        return fast_step.loss(self.model, batch, self.precision)


def make_optimizer(
    model, lr: float, weight_decay: float, device: torch.device, graph: bool
) -> torch.optim.AdamW:
    """Fused AdamW (one kernel per step instead of ~10 per tensor group: ~5x faster
    updates on this project's CPU, more on a GPU); the same algorithm as the default.
    A graph needs the learning rate as a device tensor it reads on every replay."""
    lr_arg = torch.tensor(lr, device=device) if graph and device.type == "cuda" else lr
    capturable = lr_arg is not lr
    try:
        return torch.optim.AdamW(
            model.parameters(),
            lr=lr_arg,
            weight_decay=weight_decay,
            capturable=capturable,
            fused=True,
        )
    except (RuntimeError, TypeError, ValueError):  # a device or dtype fused can't take
        return torch.optim.AdamW(
            model.parameters(), lr=lr_arg, weight_decay=weight_decay, capturable=capturable
        )


def choose_mode(mode: str, device: torch.device, world: World) -> str:
    """``auto``: one CUDA graph on a single GPU, eager otherwise (DDP's gradient hooks
    and a CPU gain nothing from a graph)."""
    if mode not in STEP_MODES:
        raise ValueError(f"step mode must be one of {STEP_MODES}, got {mode!r}")
    if mode == "auto":
        return "graph" if device.type == "cuda" and world.size == 1 else "eager"
    if mode == "graph" and world.size > 1:
        warnings.warn("step mode graph is not supported with DDP; running eager", stacklevel=2)
        return "eager"
    return mode


class TrainStep:
    """One optimiser step: forward in bf16 (or fp32), backward, clip, AdamW.

    ``fast`` (the default): the loss is `fast_step.loss`, the same maths with fewer
    ops, which makes its own bf16 casts (emulated by rounding on a CPU without
    native bf16 matmuls, `fast_step.matmul_precision`). ``fast=False``: the plain
    path, the model's own ``loss`` under bf16 autocast.

    ``mode`` "graph": the first `WARMUP_STEPS` calls run eagerly, then the step is
    captured once and later calls copy their batch into the captured input buffers
    and replay it. ``capture(fn)`` makes the replayable step (a CUDA graph by
    default; tests pass an eager stand-in to check the buffer logic on the CPU).
    If capture raises, the step falls back to eager with a warning.
    """

    def __init__(
        self,
        model: DecisionTransformer,
        opt: torch.optim.Optimizer,
        *,
        device,
        bf16: bool,
        grad_clip: float,
        mode: str = "eager",
        world: World | None = None,
        capture=None,
        fast: bool = True,
    ):
        self.model, self.opt, self.device = model, opt, torch.device(device)
        self.bf16, self.grad_clip, self.mode = bf16, grad_clip, mode
        self.fast = fast
        # What the step's matmuls compute in ("fp32", "bf16" or "bf16-emulated").
        self.precision = (
            fast_step.matmul_precision(self.device, bf16) if fast else ("bf16" if bf16 else "fp32")
        )
        module = _Loss(model, self.precision if fast else None)
        world = world or World()
        if world.size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # BC has no return tokens: its return embedding gets no gradient.
            module = torch.nn.parallel.DistributedDataParallel(
                module, device_ids=ids, find_unused_parameters=not model.cfg.use_returns
            )
        self.module = module
        self.loss_fn = torch.compile(module) if mode == "compile" else module
        self.capture = capture or _cuda_graph
        # Graph warm-up runs on a side stream, as the PyTorch docs advise before capture.
        self.side = torch.cuda.Stream() if mode == "graph" and self.device.type == "cuda" else None
        self.calls, self.replay, self.static = 0, None, None

    def _set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)  # in place: a captured graph reads this tensor
            else:
                group["lr"] = lr

    def _eager(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # No autocast weight cache under capture: cached casts would be graph outputs.
        # The fast loss makes its own casts: autocast is the plain path's.
        with torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.bf16 and not self.fast,
            cache_enabled=self.mode != "graph",
        ):
            loss = self.loss_fn(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        return loss.detach()

    def __call__(self, batch: dict[str, torch.Tensor], lr: float) -> torch.Tensor:
        """Take one step on ``batch`` at learning rate ``lr``; the loss, detached (no sync)."""
        self._set_lr(lr)
        self.calls += 1
        if self.mode == "compile" and self.calls == 1:
            try:
                return self._eager(batch)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run eager
                warnings.warn(f"torch.compile failed ({exc}); training eagerly", stacklevel=2)
                self.mode, self.loss_fn = "eager", self.module
        if self.mode != "graph":
            return self._eager(batch)
        if self.calls <= WARMUP_STEPS:
            if self.side is None:
                return self._eager(batch)
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = self._eager(batch)
            torch.cuda.current_stream().wait_stream(self.side)
            return loss
        if self.replay is None:
            self.static = {k: v.clone() for k, v in batch.items()}
            try:
                self.opt.zero_grad(set_to_none=True)  # grads are then the graph's own
                self.replay, self.static_loss = self.capture(lambda: self._eager(self.static))  # pyright: ignore[reportArgumentType]
            except Exception as exc:  # noqa: BLE001 - any capture failure: run eager
                warnings.warn(f"CUDA graph capture failed ({exc}); training eagerly", stacklevel=2)
                self.mode = "eager"
                return self._eager(batch)
        for k, v in batch.items():
            self.static[k].copy_(v)  # pyright: ignore[reportOptionalSubscript]
        self.replay()
        return self.static_loss.clone()


def _cuda_graph(fn):
    """Capture ``fn()`` in a CUDA graph; returns (replay, output). Capture records the
    kernels without running them: the first replay takes the step."""
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph.replay, out


def eager_capture(fn):
    """A stand-in for `_cuda_graph` on the CPU: "replay" runs ``fn`` again and writes
    its loss into the same output tensor, as a replayed graph would."""
    out = torch.zeros(())

    def replay():
        out.copy_(fn())

    return replay, out
