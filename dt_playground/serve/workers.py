"""The app's CPU-bound work in worker processes: rollouts, renders, sweeps.

Why processes: a rollout spends about a third of each step in Python (the
lock-step loop, the env wrappers, torch's dispatch), so two plays on two
threads of one process queue for the GIL. Measured here (4 Hopper plays of
1000 steps, one torch thread each): 8.8 s one after another, 6.8 s on two
threads, 4.5 s on two processes. The server's own process then only serves
pages, checks requests and draws plots.

`WorkerPool` has two lanes: ``interactive`` (plays, grids, re-prompts,
renders: what a user watches a spinner for) and ``background`` (sweeps,
comparisons) whose processes run at the lowest priority (`priority`), so plays
go first. A crashed worker (a segfault, the OOM killer) fails the requests
running in its lane at that moment with a clear message; the lane is rebuilt
(a worker that died between requests costs nobody anything) and the server
keeps serving.

Arguments and results cross the process boundary by pickle, between this
server's own processes only (never user data: requests are parsed and
checked before they get here). A checkpoint travels as a `CheckpointRef`, its
folder (already resolved and owned), and is loaded by the worker (cached).

``WorkerPool.inline()`` runs everything in the calling process (background
work on a low-priority thread): the library's tests and `DTP_WORKERS=0`.
"""

from __future__ import annotations

import contextvars
import itertools
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dt_playground.errors import PlaygroundError
from dt_playground.serve.priority import BACKGROUND_NICE, in_background

T = TypeVar("T")
LANES = ("interactive", "background")
TASK_TIMEOUT_S = 900  # no request legitimately runs this long (a 100-episode sweep: ~1 min)
PROGRESS_EVERY_S = 0.1  # a worker reports progress at most this often per task
ORPHAN_CHECK_S = 1.0  # how often a worker checks that its server is still there

_progress_queue = None  # set in each worker process by `_init_worker`


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint by its (trusted, resolved) folder: loaded where it is used."""

    path: str

    @classmethod
    def of(cls, ck) -> CheckpointRef:
        return cls(str(ck.path))


# ---------------------------------------------------------------- worker side


def _exit_with_parent(parent: int, every_s: float = ORPHAN_CHECK_S) -> None:
    """End this worker once its server is gone. A worker holds both ends of its task
    queue's pipe, so a killed server (SIGTERM, SIGKILL, OOM) never closes it and the
    worker would wait forever, holding its memory."""
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker(progress_queue, nice: int, threads: int) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="dtp-orphan-watch"
    ).start()
    if nice:  # on Linux: this thread, and what it starts (llvmpipe's threads, ffmpeg)
        os.nice(nice)
    from dt_playground.dt.runtime import setup_process
    from dt_playground.media.replay import keep_surfaces

    setup_process(threads=threads)
    keep_surfaces(2)  # a worker replays on one thread: keep its GL surfaces


def _warm() -> int:
    """Import the library's torch half and pick the GL backend, so a first request
    doesn't pay for it."""
    from dt_playground.media.gl import ensure_gl_backend

    try:
        ensure_gl_backend()
    except Exception:  # no GL here: plots still work, videos report it when asked
        pass
    return os.getpid()


def _report(task_id: int) -> Callable[[int, int], None]:
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            _progress_queue.put((task_id, int(done), int(total)))  # pyright: ignore[reportOptionalMemberAccess]

    return progress


def _load(arg):
    if isinstance(arg, CheckpointRef):
        from dt_playground.rollout.playable import load_playable  # IQL too

        return load_playable(Path(arg.path))
    return arg


def _invoke(fn: Callable, args: tuple, kwargs: dict, progress=None):
    """``fn`` with `CheckpointRef` arguments loaded, and ``progress`` when given."""
    args = tuple(_load(a) for a in args)
    kwargs = {k: _load(v) for k, v in kwargs.items()}
    if progress is not None:
        kwargs["progress"] = progress
    return fn(*args, **kwargs)


def _call(task_id: int, fn: Callable, args: tuple, kwargs: dict, with_progress: bool):
    return _invoke(fn, args, kwargs, _report(task_id) if with_progress else None)


# ---------------------------------------------------------------- server side


def _all_alive(pool: ProcessPoolExecutor) -> bool:
    """No worker of ``pool`` has died or is dying (the executor notices a death only a
    moment later, and a request submitted in that moment would fail with it)."""
    from multiprocessing.connection import wait as ready

    procs = list((pool._processes or {}).values())
    try:  # a dead process's pipe is ready, whoever reaped it
        if ready([p.sentinel for p in procs], timeout=0):
            return False
    except (OSError, ValueError):  # a sentinel closed under us: the pool is going
        return False
    return not any(_dying(p.pid) for p in procs)  # pyright: ignore[reportArgumentType]


def _dying(pid: int) -> bool:
    """Linux: a killed process is a zombie as soon as its main thread exits, before its
    other threads (torch's) have gone and its pipe reads as closed."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc here: the sentinel is the only sign
        return False
    return "\nState:\tZ" in status or "\nState:\tX" in status


class WorkerPool:
    """Processes for the app's heavy calls: ``run(lane, fn, *args, progress=cb)``."""

    def __init__(self, interactive: int = 2, background: int = 1, threads: int = 1):
        self.sizes = {"interactive": interactive, "background": background}
        self.threads = threads
        self.inline_mode = interactive == 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._callbacks: dict[int, Callable[[int, int], object]] = {}
        self._pools: dict[str, ProcessPoolExecutor] = {}
        if not self.inline_mode:
            self._mp = mp.get_context("spawn")  # never fork a process with torch's threads
            self._queue = self._mp.Queue()
            threading.Thread(target=self._pump, daemon=True, name="dtp-progress").start()

    @classmethod
    def inline(cls) -> WorkerPool:
        """Everything in the calling process (background lane on a low-priority thread)."""
        return cls(interactive=0, background=0)

    def _pool(self, lane: str) -> ProcessPoolExecutor:
        with self._lock:
            pool = self._pools.get(lane)
            if pool is None:
                nice = BACKGROUND_NICE if lane == "background" else 0
                pool = self._pools[lane] = ProcessPoolExecutor(
                    max(1, self.sizes[lane]),
                    mp_context=self._mp,
                    initializer=_init_worker,
                    initargs=(self._queue, nice, self.threads),
                )
            return pool

    def _rebuild(self, lane: str, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pools.get(lane) is broken:
                del self._pools[lane]
        broken.shutdown(wait=False, cancel_futures=True)

    def _pump(self) -> None:
        """Progress messages from every worker to the callback of their task."""
        while True:
            try:
                task_id, done, total = self._queue.get()
            except (EOFError, OSError, ValueError):  # the queue was closed: shutting down
                return
            except Exception:  # a message cut short by a killed worker: skip it
                continue
            cb = self._callbacks.get(task_id)
            if cb is not None:
                try:
                    cb(done, total)
                except Exception:  # a progress bar is never worth a failed request
                    pass

    def warm(self) -> None:
        """Start every worker and load the library in it (in the background)."""
        if self.inline_mode:
            return
        for lane in LANES:
            pool = self._pool(lane)
            for _ in range(self.sizes[lane]):
                pool.submit(_warm)

    def run(
        self,
        lane: str,
        fn: Callable[..., T],
        /,
        *args,
        progress: Callable[[int, int], object] | None = None,
        **kwargs,
    ) -> T:
        """``fn(*args, **kwargs)`` on a worker of ``lane``; returns its result or raises
        its exception. ``fn`` must be a module-level function; `CheckpointRef` arguments
        arrive as loaded checkpoints. ``progress(done, total)`` is called in this process
        (from another thread) as the worker reports."""
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}")
        if self.inline_mode:
            if lane == "background":
                return in_background(_invoke, fn, args, kwargs, progress)
            return _invoke(fn, args, kwargs, progress)
        task_id = next(self._ids)
        if progress is not None:  # called from the pump thread, in the caller's context
            ctx = contextvars.copy_context()
            self._callbacks[task_id] = lambda d, n: ctx.run(progress, d, n)
        pool = self._pool(lane)
        if not _all_alive(pool):  # a worker died between requests: start afresh, at once
            self._rebuild(lane, pool)
            pool = self._pool(lane)
        task = (_call, task_id, fn, args, kwargs, progress is not None)
        try:
            try:
                future = pool.submit(*task)
            except BrokenProcessPool:  # a worker died between requests: start afresh
                self._rebuild(lane, pool)
                pool = self._pool(lane)
                future = pool.submit(*task)
            return future.result(timeout=TASK_TIMEOUT_S)
        except BrokenProcessPool:  # a worker died during this request (or a neighbour's)
            self._rebuild(lane, pool)
            raise PlaygroundError(
                "The worker running this request stopped unexpectedly (out of memory?). "
                "It has been restarted: please try again."
            ) from None
        except TimeoutError:
            raise PlaygroundError(
                f"The request took longer than {TASK_TIMEOUT_S} s and was abandoned."
            ) from None
        finally:
            self._callbacks.pop(task_id, None)

    def pids(self) -> list[int]:
        """The worker processes now running (for benchmarks and tests)."""
        with self._lock:
            pools = list(self._pools.values())
        return [p.pid for pool in pools for p in (pool._processes or {}).values()]  # pyright: ignore[reportReturnType]

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
        if not self.inline_mode:
            try:
                self._queue.close()
            except (OSError, ValueError):
                pass


def spawn_without_main() -> None:
    """Let worker processes skip importing the server's script.

    A spawned process re-imports its parent's ``__main__`` (for ``python app.py``:
    Gradio, plotly and the layout code, ~90 MB and ~1.5 s of CPU per worker) unless
    that module's spec is named ``__main__``, which multiprocessing then leaves
    alone. Workers run library functions only, so the script is never needed there.
    Process-wide: for an entry point that runs as a script (the app's `main`).
    """
    import importlib.machinery
    import sys

    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


def pool_from_env(default_interactive: int = 2) -> WorkerPool:
    """The app's pool: ``DTP_WORKERS`` interactive workers (0: run in-process), plus one
    background worker."""
    raw = os.environ.get("DTP_WORKERS", str(default_interactive))
    try:
        n = max(0, min(int(raw), 8))
    except ValueError:
        n = default_interactive
    return WorkerPool(interactive=n, background=1) if n else WorkerPool.inline()
