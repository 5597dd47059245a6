"""media.replay: replayed videos decode to the frames we meant, and failures are loud."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from helpers import gl_or_skip

from dt_playground.envs.registry import get_spec
from dt_playground.errors import RenderError, ReplayDivergenceError
from dt_playground.media import replay, video
from dt_playground.media.replay import random_trace, render_trace

REPO = Path(__file__).resolve().parents[2]


def decoded_frames(path: Path) -> np.ndarray:
    """Every frame, decoded by imageio's ffmpeg reader: (N, H, W, 3)."""
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def expected_frames(length: int, every: int) -> int:
    return 1 + length // every  # the reset frame, then every k-th step


def leftovers(directory: Path, keep: str | None = None) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


@pytest.fixture(scope="module")
def gl_backend():
    return gl_or_skip()


def test_cartpole_video_has_every_second_step(tmp_path):
    trace = random_trace("CartPole-v1", 40, seed=3)
    spec = get_spec("CartPole-v1")
    info = render_trace(trace, tmp_path / "cartpole.mp4")
    frames = decoded_frames(info.path)
    assert info.n_frames == expected_frames(trace.length, spec.render_every)
    assert len(frames) == info.n_frames
    assert frames.shape[1:] == (info.height, info.width, 3) == (400, 600, 3)
    assert info.fps == spec.video_fps
    assert info.duration_s == pytest.approx(info.n_frames / spec.video_fps)
    assert leftovers(tmp_path) == ["cartpole.mp4"]  # the temp file was renamed, not copied


def test_hopper_video_decodes_with_even_dims(tmp_path, gl_backend):
    trace = random_trace("Hopper-v5", 30, seed=1)
    spec = get_spec("Hopper-v5")
    info = render_trace(trace, tmp_path / "sub" / "hopper.mp4")
    frames = decoded_frames(info.path)
    assert len(frames) == info.n_frames == expected_frames(trace.length, spec.render_every)
    assert frames.shape[1:3] == (spec.render_size[1], spec.render_size[0])
    assert frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0
    assert frames[-1].std() > 5  # a scene, not a blank frame
    with open(info.path, "rb") as f:  # fast start: the index comes before the media data
        head = f.read(1 << 16)
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_odd_render_size_is_padded_to_even(tmp_path):
    spec = dataclasses.replace(get_spec("Pendulum-v1"), render_size=(201, 151), render_every=50)
    trace = random_trace("Pendulum-v1", 200, seed=0)
    info = render_trace(trace, tmp_path / "odd.mp4", spec=spec)
    frames = decoded_frames(info.path)
    assert (info.width, info.height) == (202, 152)
    assert frames.shape == (5, 152, 202, 3)


def test_max_frames_caps_the_video(tmp_path):
    trace = random_trace("Pendulum-v1", 200, seed=0)
    info = render_trace(trace, tmp_path / "capped.mp4", max_frames=7)
    assert info.n_frames == len(decoded_frames(info.path)) == 7


def test_progress_reports_every_step(tmp_path):
    trace = random_trace("CartPole-v1", 40, seed=0)
    calls = []
    render_trace(trace, tmp_path / "p.mp4", progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i + 1, trace.length) for i in range(trace.length)]


def test_tampered_reward_raises_and_leaves_nothing(tmp_path):
    trace = random_trace("Pendulum-v1", 60, seed=0)
    trace.rewards = trace.rewards.copy()
    trace.rewards[10] += 0.5
    with pytest.raises(ReplayDivergenceError, match="step 10"):
        render_trace(trace, tmp_path / "bad.mp4")
    assert leftovers(tmp_path) == []


def test_wrong_seed_diverges(tmp_path):
    trace = random_trace("Pendulum-v1", 20, seed=0)
    trace.seed = 1  # different initial state: the same actions earn different rewards
    with pytest.raises(ReplayDivergenceError, match="step 0"):
        render_trace(trace, tmp_path / "bad.mp4")


def test_episode_end_mismatch_diverges(tmp_path):
    trace = random_trace("CartPole-v1", 500, seed=0)
    assert trace.terminated
    trace.actions, trace.rewards = trace.actions[:-1], trace.rewards[:-1]  # cut before the fall
    with pytest.raises(ReplayDivergenceError, match="terminated"):
        render_trace(trace, tmp_path / "bad.mp4")


def test_ffmpeg_failure_raises_render_error_and_cleans_up(tmp_path, monkeypatch):
    (tmp_path / "old.mp4").write_bytes(b"previous video")
    monkeypatch.setattr(video, "X264_PRESET", "no-such-preset")
    trace = random_trace("CartPole-v1", 40, seed=0)
    with pytest.raises(RenderError, match="ffmpeg"):
        render_trace(trace, tmp_path / "old.mp4")
    assert leftovers(tmp_path) == ["old.mp4"]
    assert (tmp_path / "old.mp4").read_bytes() == b"previous video"  # not clobbered


def test_truncated_mp4_is_detected(tmp_path):
    info = render_trace(random_trace("CartPole-v1", 40, seed=0), tmp_path / "ok.mp4")
    video.check_mp4(info.path)
    data = info.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(RenderError, match="corrupt"):
        video.check_mp4(cut)


def _ensure_in_subprocess(**env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env.update(env_overrides)
    code = (
        "from dt_playground.media.gl import ensure_gl_backend, RenderError\n"
        "try:\n    print('OK', ensure_gl_backend())\n"
        "except RenderError as e:\n    print('ERR', e)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_gl_backend_names_the_package():
    out = _ensure_in_subprocess(MUJOCO_GL="bogus").stdout
    assert out.startswith("ERR"), out
    assert "MUJOCO_GL=bogus" in out and "libegl1" in out and "libosmesa6" in out


def test_unloadable_egl_names_libegl1():
    # PYOPENGL_PLATFORM that contradicts MUJOCO_GL makes mujoco refuse the backend.
    out = _ensure_in_subprocess(MUJOCO_GL="egl", PYOPENGL_PLATFORM="osmesa").stdout
    assert out.startswith("ERR"), out
    assert "apt-get install libegl1" in out and "PYOPENGL_PLATFORM" in out


def test_no_backend_at_all_names_both_packages():
    out = _ensure_in_subprocess(PYOPENGL_PLATFORM="bogus").stdout
    assert out.startswith("ERR"), out
    assert "MUJOCO_GL=egl" in out and "MUJOCO_GL=osmesa" in out
    assert "libegl1" in out and "libosmesa6" in out


def test_fallback_picks_a_working_backend(gl_backend):
    out = _ensure_in_subprocess().stdout
    assert out.strip() in ("OK egl", "OK osmesa"), out


def test_mujoco_imported_before_backend_chosen(tmp_path, gl_backend):
    # The app may run a Hopper rollout (importing mujoco with MUJOCO_GL unset) before
    # the first video: rendering must still pick a headless backend.
    code = (
        "import mujoco, sys\n"
        "from dt_playground.media.replay import random_trace, render_trace\n"
        "trace = random_trace('Hopper-v5', 8, seed=0)\n"
        f"info = render_trace(trace, {str(tmp_path / 'late.mp4')!r})\n"
        "print('frames', info.n_frames)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frames" in proc.stdout


def test_replay_frames_at_another_size_match_the_video_frame_count(tmp_path):
    trace = random_trace("Pendulum-v1", 30, seed=4)
    frames = [f.copy() for f in replay.replay_frames(trace, size=(64, 48))]
    assert len(frames) == 31 and frames[0].shape == (48, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])  # the pendulum moved
