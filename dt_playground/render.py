"""Replay a `Trace` and encode it as an H.264 MP4.

A rollout never renders (DESIGN.md, decision 1). Here we rebuild the episode
from its reset seed and recorded actions (gymnasium envs are deterministic for
a seed), check that every replayed reward equals the recorded one, and draw
every ``spec.render_every``-th step. Frames stream straight into an ffmpeg
process (imageio-ffmpeg's bundled binary), so encoding overlaps rendering.

MuJoCo draws headless through EGL or OSMesa (software llvmpipe on a CPU Space)
with shadows, reflections, skybox and multisampling off and a coarse floor
mesh: the settings that cut a frame from ~60 ms to a few ms (`bench_render`). Classic
and Box2D envs use their own pygame ``rgb_array`` frames.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .envs import EnvSpec, get_spec, make_env
from .rollout import Trace

# Where each MuJoCo GL backend comes from on Debian/Ubuntu.
GL_PACKAGES = {"egl": "libegl1", "osmesa": "libosmesa6"}
GL_CANDIDATES = ("egl", "osmesa")

# Encoder and MuJoCo quality settings (bench_render shows what they cost).
X264_PRESET = "veryfast"
X264_CRF = 23
# MuJoCo's default is 4x multisampling; on llvmpipe any multisampling doubles the
# cost of a frame (2 and 4 cost the same), and 0 still looks fine at 320x320.
MSAA_SAMPLES = 0
# A plane's third size is only its rendering grid spacing (physics ignores it).
# Hopper's 0.125 m draws 320x320 quads a frame: 5.3 -> 2.3 ms CPU per frame at >= 1 m.
PLANE_GRID_M = 1.0
CAMERA = {"elevation": -20.0, "azimuth": 90.0}  # side view of the sagittal plane

# One MuJoCo GL context renders at a time in this process: OSMesa is not
# thread-safe and, on 2 cores, parallel software renders gain nothing.
_GL_LOCK = threading.Lock()

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 16, 16)
r.update_scene(mujoco.MjData(m))
assert r.render().shape == (16, 16, 3)
r.close()
"""


class RenderError(RuntimeError):
    """A video that can't be made: no GL backend, ffmpeg failure, bad output."""


class ReplayDivergenceError(RenderError):
    """Replaying a trace's actions gave different rewards: a determinism bug."""


@dataclass
class VideoInfo:
    """What `render_trace` wrote. Timings: ``render_s`` is replay + drawing,
    ``encode_s`` the time spent waiting on ffmpeg (it encodes in parallel)."""

    path: Path
    n_frames: int
    fps: int
    duration_s: float
    width: int
    height: int
    render_s: float
    encode_s: float


# ---------------------------------------------------------------- GL backend


@functools.cache
def _probe_backend(backend: str, pyopengl_platform: str | None) -> str | None:
    """Create a tiny `mujoco.Renderer` under ``MUJOCO_GL=backend`` in a fresh
    process (a backend can't be switched once loaded). None if it works, else
    the error's last line."""
    env = dict(os.environ, MUJOCO_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    if pyopengl_platform is not None:
        env["PYOPENGL_PLATFORM"] = pyopengl_platform
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "timed out creating a GL context"
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def ensure_gl_backend() -> str:
    """Pick MuJoCo's headless GL backend and export it as ``MUJOCO_GL``.

    A user-set ``MUJOCO_GL`` is kept (and checked); otherwise ``egl``, then
    ``osmesa``. Call it before ``import mujoco`` for mujoco's own
    `mujoco.Renderer` to see it (mujoco reads the variable at import); our
    renderer creates its context from the returned backend, so it works
    whenever it is called. Raises `RenderError` naming the apt package to
    install when no backend works. Probes run in a subprocess and are cached.
    """
    platform = os.environ.get("PYOPENGL_PLATFORM")
    user = os.environ.get("MUJOCO_GL", "").strip()
    candidates = (user,) if user else GL_CANDIDATES
    errors = {}
    for backend in candidates:
        err = _probe_backend(backend, platform)
        if err is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
        errors[backend] = err
    tried = "; ".join(f"MUJOCO_GL={b}: {e}" for b, e in errors.items())
    if user and user.lower() in GL_PACKAGES:
        pkg = GL_PACKAGES[user.lower()]
        fix = (
            f"install {pkg} (`apt-get install {pkg}`), or unset MUJOCO_GL to let the "
            "playground try egl, then osmesa"
        )
    elif user:
        fix = (
            "set MUJOCO_GL to egl (apt package libegl1) or osmesa (apt package libosmesa6), "
            "or unset it"
        )
    else:
        fix = (
            "install libegl1 for MUJOCO_GL=egl or libosmesa6 for MUJOCO_GL=osmesa "
            "(`apt-get install libegl1 libosmesa6`)"
        )
    if platform:
        fix += f"; PYOPENGL_PLATFORM={platform!r} is set and must match the backend"
    raise RenderError(
        f"No working headless OpenGL backend for MuJoCo ({tried}). To render MuJoCo videos, {fix}."
    )


# ---------------------------------------------------------------- frames


def _gl_context(backend: str, width: int, height: int):
    """A headless GL context for ``backend``, imported now rather than when mujoco
    was first imported (mujoco's own `Renderer` fixes its backend at import)."""
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.glfw import GLContext
    try:
        return GLContext(width, height)
    except Exception as err:
        raise RenderError(f"could not create a MUJOCO_GL={backend} context: {err}") from err


class _MujocoFrames:
    """Fast offscreen MuJoCo frames with a camera that follows the torso.

    The same calls as gymnasium's `OffScreenViewer`, minus the depth read-back,
    with shadows, reflections, skybox and multisampling off and a coarser floor
    mesh. These edit the replay env's own model, never physics.
    """

    def __init__(self, env, size: tuple[int, int], backend: str):
        import mujoco

        self.mj = mujoco
        u = env.unwrapped
        self.model, self.data = u.model, u.data
        self.width, self.height = size
        vis = self.model.vis
        vis.global_.offwidth = max(vis.global_.offwidth, self.width)
        vis.global_.offheight = max(vis.global_.offheight, self.height)
        vis.quality.offsamples = MSAA_SAMPLES  # read when the MjrContext is made
        planes = self.model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
        self.model.geom_size[planes, 2] = np.maximum(self.model.geom_size[planes, 2], PLANE_GRID_M)
        self.gl = _gl_context(backend, self.width, self.height)
        self.gl.make_current()
        self.con = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.con)
        self.scn = mujoco.MjvScene(self.model, maxgeom=1000)
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            self.scn.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        self.opt, self.pert = mujoco.MjvOption(), mujoco.MjvPerturb()
        self.rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self.rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)

        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        self.body = body if body >= 0 else 1
        cfg = getattr(getattr(u, "mujoco_renderer", None), "default_cam_config", None) or {}
        self.cam = mujoco.MjvCamera()
        self.cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.cam.distance = float(cfg.get("distance", 3.0))
        self.cam.elevation, self.cam.azimuth = CAMERA["elevation"], CAMERA["azimuth"]
        self.height_z = None

    def __call__(self) -> np.ndarray:
        mj = self.mj
        # Follow the torso's subtree centre of mass along the ground; keep the
        # reset height so hops and falls don't shake the camera.
        com = self.data.subtree_com[self.body]
        if self.height_z is None:
            self.height_z = float(com[2])
        self.cam.lookat[:] = (com[0], com[1], self.height_z)
        mj.mjv_updateScene(
            self.model, self.data, self.opt, self.pert, self.cam, mj.mjtCatBit.mjCAT_ALL, self.scn
        )
        mj.mjr_render(self.rect, self.scn, self.con)
        mj.mjr_readPixels(self.rgb, None, self.rect, self.con)
        return self.rgb[::-1]  # OpenGL's rows run bottom-up

    def close(self) -> None:
        self.con.free()
        self.gl.free()


class _GymFrames:
    """The env's own rgb_array frames (pygame for classic control and Box2D)."""

    def __init__(self, env, size: tuple[int, int], backend: str | None = None):
        self.env, self.size = env, size

    def __call__(self) -> np.ndarray:
        frame = np.asarray(self.env.render())
        width, height = self.size
        if frame.shape[:2] != (height, width):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))
        return frame

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- encoding


class _Encoder:
    """rgb24 frames in, H.264/yuv420p MP4 out, via a piped ffmpeg process."""

    def __init__(self, path: Path, width: int, height: int, fps: int):
        import imageio_ffmpeg

        self.path, self.width, self.height = path, width, height
        # A file, not a pipe: ffmpeg can't block on it. Closed by abort().
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            X264_PRESET,
            "-crf",
            str(X264_CRF),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(path),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log
        )
        self.wait_s = 0.0

    def write(self, frame: np.ndarray) -> None:
        t = time.perf_counter()
        try:
            self.proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError) as err:
            self.proc.wait()
            raise RenderError(f"ffmpeg stopped while encoding: {self._stderr() or err}") from err
        self.wait_s += time.perf_counter() - t

    def finish(self) -> None:
        t = time.perf_counter()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        code = self.proc.wait()
        self.wait_s += time.perf_counter() - t
        if code != 0:
            raise RenderError(f"ffmpeg failed (exit {code}): {self._stderr()}")

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()

    def _stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()[-2000:]


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: repeat the last row/column when odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _check_mp4(path: Path) -> None:
    """Walk the top-level MP4 boxes: ftyp, moov before mdat (faststart), all complete."""
    size = path.stat().st_size
    seen, pos = [], 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                raise RenderError(f"truncated MP4 box header at byte {pos}")
            box_len, kind = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
            if box_len == 1:
                box_len = int.from_bytes(head[8:16], "big")
            elif box_len == 0:
                box_len = size - pos
            if box_len < 8 or pos + box_len > size:
                raise RenderError(f"corrupt MP4: box {kind!r} at byte {pos} overruns the file")
            seen.append(kind)
            pos += box_len
    if not seen or seen[0] != "ftyp" or "moov" not in seen or "mdat" not in seen:
        raise RenderError(f"corrupt MP4: top-level boxes {seen}")
    if seen.index("moov") > seen.index("mdat"):
        raise RenderError("MP4 is not fast-start (moov after mdat)")


# ---------------------------------------------------------------- replay


def _as_action(action, discrete: bool):
    return int(action) if discrete else np.asarray(action, dtype=np.float32)


def render_trace(
    trace: Trace,
    out_path: str | Path,
    max_frames: int | None = None,
    progress=None,
    spec: EnvSpec | None = None,
) -> VideoInfo:
    """Replay ``trace`` and write it to ``out_path`` as an H.264 MP4.

    Args:
        trace: the episode (env id, reset seed, actions, recorded rewards).
        out_path: the .mp4 to write; written to a temp file beside it and
            renamed into place, so readers never see a partial video.
        max_frames: stop drawing after this many frames (the replay still runs
            to the end, checking every reward).
        progress: optional ``progress(done_steps, total_steps)`` callback.
        spec: the env spec to use instead of the registry's (e.g. different
            ``make_kwargs``); must describe ``trace.env_id``.

    Frames: the reset state, then after every ``spec.render_every``-th step.
    Raises `ReplayDivergenceError` if a replayed reward or episode end differs
    from the trace, `RenderError` if the video can't be written.
    """
    spec = spec or get_spec(trace.env_id)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    mujoco = spec.family == "mujoco"
    backend = ensure_gl_backend() if mujoco else None
    total = len(trace.actions)
    if len(trace.rewards) != total:
        raise ValueError(f"trace has {total} actions but {len(trace.rewards)} rewards")
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{out_path.stem}.", suffix=".mp4.part", dir=out_path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    env = frames = encoder = None
    n_frames = 0
    lock = _GL_LOCK if mujoco else threading.Lock()
    start = time.perf_counter()
    try:
        with lock:
            env = make_env(spec, render=True)
            env.reset(seed=int(trace.seed))
            frames = (_MujocoFrames if mujoco else _GymFrames)(env, spec.render_size, backend)
            cap = float("inf") if max_frames is None else max_frames

            def draw() -> None:
                nonlocal encoder, n_frames
                frame = _pad_even(frames())
                if encoder is None:
                    h, w = frame.shape[:2]
                    encoder = _Encoder(tmp, w, h, spec.video_fps)
                encoder.write(frame)
                n_frames += 1

            if cap > 0:
                draw()
            for t, action in enumerate(trace.actions):
                _, reward, term, trunc, _ = env.step(_as_action(action, spec.discrete))
                if not np.isclose(reward, trace.rewards[t], rtol=1e-5, atol=1e-5):
                    raise ReplayDivergenceError(
                        f"{trace.env_id} seed {trace.seed}: replayed reward {reward!r} at step "
                        f"{t} differs from the recorded {float(trace.rewards[t])!r}"
                    )
                last = t == total - 1
                if (term or trunc) and not last:
                    raise ReplayDivergenceError(
                        f"{trace.env_id} seed {trace.seed}: replay ended at step {t} but the "
                        f"trace has {total} steps"
                    )
                if last and trace.terminated and not term:
                    raise ReplayDivergenceError(
                        f"{trace.env_id} seed {trace.seed}: the trace terminated at step {t} "
                        "but the replay did not"
                    )
                if (t + 1) % spec.render_every == 0 and n_frames < cap:
                    draw()
                if progress:
                    progress(t + 1, total)
        if encoder is None:
            raise RenderError("no frames to encode (max_frames=0?)")
        render_s = time.perf_counter() - start - encoder.wait_s
        encoder.finish()
        _check_mp4(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the video from a separate web server
        os.replace(tmp, out_path)
    except BaseException:
        if encoder is not None:
            encoder.abort()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if frames is not None:
            frames.close()
        if env is not None:
            env.close()
    encoder.abort()  # closes the log file; ffmpeg has already exited
    h, w = encoder.height, encoder.width
    return VideoInfo(
        out_path,
        n_frames,
        spec.video_fps,
        n_frames / spec.video_fps,
        w,
        h,
        render_s,
        encoder.wait_s,
    )


# ---------------------------------------------------------------- benchmark


def random_trace(env_id: str, steps: int, seed: int = 0, spec: EnvSpec | None = None) -> Trace:
    """A uniformly random-action episode of at most ``steps`` steps, as a `Trace`."""
    spec = spec or get_spec(env_id)
    env = make_env(spec)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions, rewards, terminated = [], [], False
    for _ in range(steps):
        action = env.action_space.sample()
        _, reward, terminated, truncated, _ = env.step(action)
        actions.append(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    rewards = np.asarray(rewards, dtype=np.float64)
    rtg = np.cumsum(rewards[::-1])[::-1].copy()
    return Trace(
        spec.env_id, seed, float(rewards.sum()), np.asarray(actions), rewards, rtg, bool(terminated)
    )


def bench_render(
    env_id: str, steps: int = 1000, seed: int = 0, out_dir: str | Path | None = None
) -> dict:
    """Time one random-action episode of up to ``steps`` steps, replayed to MP4.

    MuJoCo envs with a "healthy" termination run with it disabled, so a random
    policy still plays all ``steps`` (a random Hopper falls within ~50 steps).
    """
    spec = get_spec(env_id)
    if spec.family == "mujoco" and spec.env_id.split("-")[0] in ("Hopper", "Walker2d", "Ant"):
        spec = dataclasses.replace(
            spec, make_kwargs={**spec.make_kwargs, "terminate_when_unhealthy": False}
        )
    if spec.family == "mujoco":
        ensure_gl_backend()  # cached; not part of the per-video time
    t0 = time.perf_counter()
    trace = random_trace(env_id, steps, seed, spec)
    rollout_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        info = render_trace(trace, Path(tmp) / "bench.mp4", spec=spec)
        total_s = time.perf_counter() - t0
        cpu_s = _cpu_seconds() - cpu0
        size = info.path.stat().st_size
    return {
        "env_id": spec.env_id,
        "steps": trace.length,
        "frames": info.n_frames,
        "size": f"{info.width}x{info.height}",
        "rollout_s": round(rollout_s, 3),
        "render_s": round(info.render_s, 3),
        "encode_wait_s": round(info.encode_s, 3),
        "total_s": round(total_s, 3),
        "ms_per_frame": round(1000 * total_s / info.n_frames, 2),
        "cpu_s": round(cpu_s, 3),
        "video_s": round(info.duration_s, 2),
        "mp4_kb": round(size / 1024, 1),
    }


def _cpu_seconds() -> float:
    """CPU time of this process (all threads: llvmpipe rasterises in threads) plus
    its finished children (ffmpeg): a figure less sensitive to other load than wall time."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime
