"""The app's worker processes: results, progress, errors, crashes, priorities."""

from __future__ import annotations

import contextvars
import os
import sys

import numpy as np
import pytest

from dt_playground.checkpoints import cache
from dt_playground.errors import PlaygroundError
from dt_playground.rollout import episode
from dt_playground.serve.priority import BACKGROUND_NICE
from dt_playground.serve.workers import CheckpointRef, WorkerPool

pytestmark = pytest.mark.process

VAR = contextvars.ContextVar("VAR", default="unset")


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(interactive=1, background=1)
    yield p
    p.close()


def test_a_play_in_a_worker_equals_the_play_here_and_reports_progress(pool):
    ck = cache.get_checkpoint("cartpole-dt", "CartPole-v1")
    seen = []
    VAR.set("the request's context")
    trace = pool.run(
        "interactive",
        episode.play_episode,
        CheckpointRef.of(ck),
        200,
        5,
        progress=lambda d, n: seen.append((d, n, VAR.get())),
    )
    here = episode.play_episode(ck, 200, 5)
    assert trace.ret == here.ret
    np.testing.assert_array_equal(trace.actions, here.actions)
    assert seen and all(0 < d <= n for d, n, _ in seen)  # best effort: may trail the result
    assert {c for *_, c in seen} == {"the request's context"}  # Gradio's progress needs it


def test_work_runs_in_other_processes_and_background_runs_niced(pool):
    assert pool.run("interactive", os.getpid) != os.getpid()
    assert pool.run("background", os.getpid) not in (
        os.getpid(),
        pool.run("interactive", os.getpid),
    )
    if sys.platform.startswith("linux"):
        assert pool.run("background", os.getpriority, os.PRIO_PROCESS, 0) >= BACKGROUND_NICE
        assert pool.run("interactive", os.getpriority, os.PRIO_PROCESS, 0) == os.getpriority(
            os.PRIO_PROCESS, 0
        )


def test_a_workers_error_reaches_the_caller_as_itself(pool):
    ck = cache.get_checkpoint("cartpole-dt", "CartPole-v1")
    with pytest.raises(PlaygroundError, match="Seed must be"):
        pool.run("interactive", episode.play_episode, CheckpointRef.of(ck), 200, "abc")
    with pytest.raises(ValueError, match="unknown lane"):
        pool.run("gpu", os.getpid)


def test_a_crashed_worker_fails_its_request_only(pool):
    with pytest.raises(PlaygroundError, match="stopped unexpectedly"):
        pool.run("interactive", os._exit, 3)
    assert pool.run("interactive", os.getpid) != os.getpid()  # the lane was rebuilt
    assert all(pid != os.getpid() for pid in pool.pids())


def test_inline_pool_runs_here_with_background_on_a_low_priority_thread():
    inline = WorkerPool.inline()
    assert inline.run("interactive", os.getpid) == os.getpid()
    ck = cache.get_checkpoint("cartpole-dt", "CartPole-v1")
    seen = []
    trace = inline.run(
        "background",
        episode.play_episode,
        CheckpointRef.of(ck),
        200,
        5,
        progress=lambda d, n: seen.append(d),
    )
    assert trace.ret == episode.play_episode(ck, 200, 5).ret and seen


SCRIPT = """
import os, sys
if __name__ != "__main__":  # imported by a worker
    open(os.environ["MARK"], "w").write(__name__)
from dt_playground.serve.workers import WorkerPool, spawn_without_main
if __name__ == "__main__":
    if sys.argv[1] == "skip":
        spawn_without_main()
    pool = WorkerPool(interactive=1, background=0)
    print(pool.run("interactive", os.getpid))
    pool.close()
"""


@pytest.mark.parametrize("mode", ["import", "skip"])
def test_workers_skip_the_servers_script_when_asked(tmp_path, mode):
    """app.py imports Gradio: its workers must not import it again (~90 MB each)."""
    import subprocess
    from pathlib import Path

    script, mark = tmp_path / "server.py", tmp_path / "imported"
    script.write_text(SCRIPT)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MARK": str(mark), "PYTHONPATH": str(repo)}
    out = subprocess.run(
        [sys.executable, str(script), mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 0
    assert mark.exists() == (mode == "import")  # the default re-imports the script


ORPHANS = """
import os
from dt_playground.serve.workers import WorkerPool

if __name__ == "__main__":
    pool = WorkerPool(interactive=2, background=1)
    pids = {pool.run("interactive", os.getpid), pool.run("background", os.getpid)}
    print(" ".join(map(str, pool.pids())), flush=True)
    os._exit(0)  # as a killed server: no shutdown, no atexit
"""


def test_workers_exit_when_their_server_dies(tmp_path):
    """A killed server leaves no worker behind (each held ~230-600 MB)."""
    import subprocess
    import time
    from pathlib import Path

    script = tmp_path / "server.py"
    script.write_text(ORPHANS)
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) >= 2, out.stderr[-2000:]
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [
            p
            for p in pids
            if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
        ]
    assert not alive, f"workers {alive} outlived their server"


def _running(pid: int) -> bool:
    """Whether ``pid`` still holds open files: a SIGKILLed process shows as a zombie as
    soon as its main thread exits, but it is dead only when its last thread has gone and
    its files (its pipe to the pool among them) are closed."""
    try:
        return bool(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return False


def test_a_worker_killed_between_requests_costs_nobody_a_request(pool):
    import signal
    import time

    before = pool.run("interactive", os.getpid)
    os.kill(before, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _running(before) and time.monotonic() < deadline:  # dead, whoever reaps it
        time.sleep(0.05)
    assert not _running(before)
    after = pool.run("interactive", os.getpid)  # rebuilt and served, no error
    assert after != before
