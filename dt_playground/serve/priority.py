"""Interactive work first: background jobs run on low-priority threads.

On the Space's two cores a play is what a user waits for, watching a spinner; a
sweep, a comparison or an in-browser training is a longer job whose user
expects to wait. With equal priorities, two sweeps beside eight plays take a
third of the CPU and every play pays for it. So the app runs the long jobs on
threads with a lower scheduling priority (Linux: a nice value per thread), and
the plays get the cores first; a long job still runs whenever a core is free.

Torch-free: the app imports this before the library loads.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

BACKGROUND_NICE = 19  # the lowest priority above SCHED_IDLE: weight 15 against 1024
BACKGROUND_WORKERS = 2

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def thread_nice() -> int | None:
    """The calling thread's nice value (None where threads have none of their own)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return None


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Lower the calling thread's CPU priority to ``nice`` (never raise it).

    Linux only, where ``setpriority`` on a thread id applies to that thread
    alone. An unprivileged process can't raise a priority again, so call this
    only on a thread that does background work for the rest of its life.
    Returns whether the thread now runs at ``nice`` or lower.
    """
    current = thread_nice()
    if current is None:
        return False
    if current >= nice:
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        return False
    return True


def _background_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                BACKGROUND_WORKERS,
                thread_name_prefix="dtp-background",
                initializer=lower_thread_priority,
            )
        return _pool


def in_background(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` on a low-priority worker thread and wait for it.

    Returns its result or raises its exception. The call runs in a copy of the
    caller's context, so context-bound callbacks (Gradio's progress) still work.
    """
    ctx = contextvars.copy_context()
    return _background_pool().submit(ctx.run, fn, *args, **kwargs).result()
