"""In-app training: a validated request becomes a background job the page can watch.

A `TrainJob` runs in a thread: first it makes sure the env's dataset exists
(collected from the shipped behaviour policies: its own progress stage), then
it trains. The page polls `TrainJob.status()`; cancelling sets `stop`. The
trainer's `threads=1` keeps one core free for everyone else's rollouts, and its
thread runs at a low priority (`priority`), so plays go first.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dt_playground.behaviour.collect import ensure_dataset
from dt_playground.checkpoints.layout import ALGOS
from dt_playground.errors import PlaygroundError, scrub_paths
from dt_playground.serve.priority import lower_thread_priority

# Envs whose dataset collects in under a minute of CPU (measured: CartPole 0.5 s, Pendulum
# 2 s, LunarLander 5 s, HalfCheetah 17 s, Hopper 20 s, Walker2d 30 s): all of them.
TRAINABLE_ENVS = (
    "CartPole-v1",
    "Pendulum-v1",
    "LunarLander-v3",
    "Hopper-v5",
    "HalfCheetah-v5",
    "Walker2d-v5",
)
_DATASET_LOCK = threading.Lock()  # two jobs never collect the same dataset at once


@dataclass
class TrainRequest:
    """A user's training request, validated."""

    env_id: str
    algo: str
    steps: int
    context_len: int
    lr: float
    hidden: int = 64

    @classmethod
    def parse(cls, env_id, algo, steps, context_len, lr) -> TrainRequest:
        if env_id not in TRAINABLE_ENVS:
            raise PlaygroundError(f"In-browser training is offered for {', '.join(TRAINABLE_ENVS)}")
        if algo not in ALGOS:
            raise PlaygroundError(f"Unknown algorithm {str(algo)[:20]!r}: one of dt, bc, pbc")
        try:
            steps, context_len, lr = int(steps), int(context_len), float(lr)
        except (TypeError, ValueError, OverflowError):
            raise PlaygroundError(
                "Steps, context length and learning rate must be numbers"
            ) from None
        if not 10 <= steps <= 5000:
            raise PlaygroundError("Steps must be between 10 and 5000")
        if not 1 <= context_len <= 50:
            raise PlaygroundError("Context length must be between 1 and 50")
        if not (math.isfinite(lr) and 1e-6 <= lr <= 1e-1):
            raise PlaygroundError("Learning rate must be between 1e-6 and 0.1")
        return cls(env_id, algo, steps, context_len, lr)


ETA_WARM_STEPS = 5  # steps left out of the pace (model build, torch warm-up)
ETA_MIN_STEPS = 20  # steady steps timed before a time left is given


@dataclass
class TrainJob:
    """A training run in a background thread, observable and cancellable."""

    request: TrainRequest
    out: Path
    dataset: str | None = None  # a Minari dataset path or id; None: the env's own (collected)
    stage: str = "queued"  # queued -> collecting -> training -> done
    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    done: bool = False
    error: str | None = None
    collect_seconds: float = 0.0
    train_seconds: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    train_started: float | None = None  # perf_counter() when the first step began
    step_times: list = field(default_factory=list)  # perf_counter() after each step

    def start(self) -> TrainJob:
        threading.Thread(target=self._run, daemon=True, name="dtp-train").start()
        return self

    def _run(self) -> None:
        from dt_playground.training.train import (  # torch: loaded when a job starts
            TrainConfig,
            train,
        )

        lower_thread_priority()  # this thread's whole life is the job: plays go first
        try:
            self.stage = "collecting"
            t0 = time.perf_counter()
            dataset = self.dataset
            if dataset is None:
                with _DATASET_LOCK:
                    dataset = ensure_dataset(self.request.env_id, log=lambda m: None)
            self.collect_seconds = time.perf_counter() - t0
            if self.stop.is_set():
                return
            self.stage = "training"
            r = self.request
            cfg = TrainConfig(
                dataset=dataset,
                env_id=r.env_id,
                algo=r.algo,
                steps=r.steps,
                context_len=r.context_len,
                lr=r.lr,
                hidden=r.hidden,
                out=str(self.out),
                eval_episodes=0,
                save_every=0,
                warmup_steps=min(200, r.steps // 5),
                threads=1,
                resume=False,
            )
            t0 = self.train_started = time.perf_counter()
            train(cfg, on_step=self._on_step, should_stop=self.stop.is_set)
            self.train_seconds = time.perf_counter() - t0
        except Exception as exc:  # reported to the user; the server keeps going
            self.error = scrub_paths(f"{type(exc).__name__}: {exc}")
        finally:
            self.stage = "done"
            self.done = True

    def _on_step(self, step: int, loss: float, lr: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self.step_times.append(time.perf_counter())

    def seconds_left(self) -> float | None:
        """The training time still to go, from the pace of the steps after the first
        `ETA_WARM_STEPS` (the first ones pay for building the model and warming torch: timed
        from the start, a first estimate read "about 11 min" for a 90 s job); None until
        `ETA_MIN_STEPS` steady steps have been timed."""
        times, total = list(self.step_times), self.request.steps
        steady = len(times) - 1 - ETA_WARM_STEPS
        if steady < ETA_MIN_STEPS:
            return None
        per_step = (times[-1] - times[ETA_WARM_STEPS]) / steady
        return per_step * max(0, total - len(times))

    def _loss_and_eta(self, n: int, total: int) -> str:
        if not n or not self.losses:
            return ""
        left = self.seconds_left()
        if left is None:
            eta = "estimating the time left"
        else:
            eta = "about " + (f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min") + " left"
        return f" · loss {self.losses[-1]:.4g} · {eta}"

    def watch(self, every_s: float = 0.5, limit_s: float = 3600.0) -> Iterator[TrainJob]:
        """Yield this job every ``every_s`` seconds while it runs (a page redraws its
        curve and status from it), and once more when it is done. If the watcher leaves
        (the generator is closed: the visitor left or cancelled), the job is stopped too;
        ``limit_s`` bounds the wait whatever happens."""
        deadline = time.monotonic() + limit_s
        try:
            while not self.done and time.monotonic() < deadline:
                time.sleep(every_s)
                yield self
        finally:
            if not self.done:
                self.stop.set()
        yield self

    def curve(self) -> list[dict]:
        return [{"step": s, "loss": v} for s, v in zip(list(self.steps), list(self.losses))]

    def status(self) -> str:
        n, total = len(self.steps), self.request.steps
        if self.stage in ("queued", "collecting"):
            return f"Collecting the {self.request.env_id} dataset (first use only)…"
        if not self.done:
            return f"Training… step {n}/{total}{self._loss_and_eta(n, total)}"
        if self.error:
            return f"Training failed: {self.error}"
        verb = "Cancelled" if n < total else "Done"
        collected = f", {self.collect_seconds:.0f} s collecting" if self.collect_seconds > 1 else ""
        return (
            f"{verb} after {n} steps ({self.train_seconds:.0f} s training{collected}): "
            f"checkpoint `{self.out.name}` is in the Play tab's list for {self.request.env_id}."
        )
