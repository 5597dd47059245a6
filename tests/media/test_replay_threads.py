"""Concurrent MuJoCo replays (the app serves several plays at once): on EGL each thread
draws in its own context, without a process-wide lock, and gets the same frames as
when it draws alone."""

import threading

import numpy as np
import pytest
from helpers import gl_or_skip

from dt_playground.media.gl import GL_LOCK, render_lock
from dt_playground.media.replay import random_trace, replay_frames


def _frames(trace, out, key):
    out[key] = [f.copy() for f in replay_frames(trace, size=(64, 64), max_frames=20)]


def test_lock_only_where_the_backend_needs_it():
    assert render_lock("osmesa") is GL_LOCK
    assert render_lock("egl") is not GL_LOCK


def test_parallel_replays_match_sequential():
    backend = gl_or_skip()
    traces = [random_trace("Hopper-v5", 60, seed=s) for s in (1, 2)]
    alone: dict = {}
    for i, tr in enumerate(traces):
        _frames(tr, alone, i)
    together: dict = {}
    threads = [
        threading.Thread(target=_frames, args=(tr, together, i)) for i, tr in enumerate(traces)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert set(together) == {0, 1}, f"a {backend} replay thread failed"
    for i in range(2):
        assert len(together[i]) == len(alone[i]) > 1
        for a, b in zip(alone[i], together[i]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(alone[0][-1], alone[1][-1])  # two different episodes


def test_a_kept_surface_draws_what_a_fresh_one_does(monkeypatch):
    """The app's workers keep a replay's GL surface for the next replay of that env:
    the frames are the same as on a fresh surface, and a new surface is made only
    for a new (env, size)."""
    from dt_playground.media import replay

    gl_or_skip()
    traces = [random_trace("Hopper-v5", 40, seed=s) for s in (3, 4)]
    fresh: dict = {}
    for i, tr in enumerate(traces):
        _frames(tr, fresh, i)
    made = []
    real = replay.MujocoSurface
    monkeypatch.setattr(replay, "MujocoSurface", lambda *a: made.append(a[1]) or real(*a))
    replay.keep_surfaces(1)
    try:
        kept: dict = {}
        for i, tr in enumerate(traces):
            _frames(tr, kept, i)
        [f.copy() for f in replay_frames(traces[0], size=(32, 32), max_frames=2)]
        _frames(traces[1], kept, "again")
    finally:
        replay.keep_surfaces(0)
    assert made == [(64, 64), (32, 32), (64, 64)]  # one per size; a cap of 1 evicts
    for i in range(2):
        for a, b in zip(fresh[i], kept[i]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh[1], kept["again"]):
        np.testing.assert_array_equal(a, b)


RACE = """
import threading
from dt_playground.media.replay import random_trace, render_trace
errors = []
def go(i):
    try:
        render_trace(random_trace("CartPole-v1", 20, seed=i), f"{OUT}/race{i}.mp4")
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
[t.start() for t in threads]
[t.join(timeout=120) for t in threads]
print(errors)
"""


LAZY = """
import sys
from dt_playground.media.replay import _pygame_ready
print("pygame" in sys.modules)
_pygame_ready()  # the first import of pygame in this process
print(type(sys.modules["pygame.surfarray"]).__name__)
"""


@pytest.mark.process
def test_the_render_lock_runs_pygames_lazy_surfarray_whole():
    """pygame imports surfarray lazily: the first ``import pygame`` leaves it unrun, and
    the first attribute read runs it after marking it loaded, so another thread's read in
    between found no ``pixels3d``. Under the lock, before any render, it is run whole."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", LAZY], capture_output=True, text=True, cwd=repo, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "module"], out.stdout  # not "_LazyModule"


@pytest.mark.process
@pytest.mark.slow
def test_first_renders_in_two_threads_both_work(tmp_path):
    """A fresh process whose first CartPole renders start in several threads at once (the
    arrival example and a first play): each one renders (they could see a half-imported
    pygame.surfarray). The race is at the first import only, so each try is a new process."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for _ in range(6):
        out = subprocess.run(
            [sys.executable, "-c", f"OUT = {str(tmp_path)!r}\n" + RACE],
            capture_output=True,
            text=True,
            cwd=repo,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]
