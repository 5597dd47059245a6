"""Replay a `Trace` into frames, and into an MP4.

A rollout never renders (docs/ARCHITECTURE.md,
"Simulate first, render after"). Here we rebuild the episode
from its reset seed and recorded actions (gymnasium envs are deterministic for
a seed), check that every replayed reward equals the recorded one, and draw
every ``spec.render_every``-th step. `video.encode_mp4` encodes the frames as
they come; `gl` picks the headless OpenGL backend.

MuJoCo frames skip shadows, reflections, skybox and multisampling and use a
coarse floor mesh: the settings that cut a 320x320 llvmpipe frame from ~60 ms to
a few ms. Classic and Box2D envs use their own pygame ``rgb_array`` frames.
"""

# mujoco is a compiled module without type stubs: its attributes are unknown to pyright.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dt_playground.envs.episodes import Progress, Trace
from dt_playground.envs.registry import EnvSpec, get_spec, make_env
from dt_playground.errors import ReplayDivergenceError
from dt_playground.media.gl import ensure_gl_backend, gl_context, render_lock
from dt_playground.media.video import encode_mp4

# MuJoCo's default is 4x multisampling; on llvmpipe any multisampling doubles the
# cost of a frame (2 and 4 cost the same), and 0 still looks fine at 320x320.
MSAA_SAMPLES = 0
# A plane's third size is only its rendering grid spacing (physics ignores it).
# Hopper's 0.125 m draws 320x320 quads a frame: 5.3 -> 2.3 ms CPU per frame at >= 1 m.
PLANE_GRID_M = 1.0
CAMERA = {"elevation": -20.0, "azimuth": 90.0}  # side view of the sagittal plane

MAX_VIDEO_FRAMES = 1001  # a full 1000-step episode at render_every=1 (HalfCheetah)


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

    @property
    def seconds(self) -> float:
        """Wall time from the first replayed step to the checked file."""
        return self.render_s + self.encode_s


# ---------------------------------------------------------------- frame sources


_PYGAME_IMPORT = threading.Lock()


def _pygame_ready() -> None:
    """Load pygame's surfarray once, under a lock, before any render. pygame imports it
    lazily (``importlib.util.LazyLoader``): ``import pygame.surfarray`` runs nothing, and
    the first attribute read runs the module, after marking it loaded. So a second thread
    reading ``pixels3d`` meanwhile sees a half-made module (``module 'pygame.surfarray'
    has no attribute 'pixels3d'``): the arrival example and a first play did, in one
    process. Reading an attribute here runs it whole while every other render waits."""
    with _PYGAME_IMPORT:
        import pygame.surfarray

        pygame.surfarray.pixels3d  # noqa: B018  (the read that runs the lazy module)


def _fast_model(model, size: tuple[int, int]) -> None:
    """Cheaper drawing settings on a replay env's own model (never physics)."""
    import mujoco

    vis = model.vis
    vis.global_.offwidth = max(vis.global_.offwidth, size[0])
    vis.global_.offheight = max(vis.global_.offheight, size[1])
    vis.quality.offsamples = MSAA_SAMPLES  # read when the MjrContext is made
    planes = model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
    model.geom_size[planes, 2] = np.maximum(model.geom_size[planes, 2], PLANE_GRID_M)


class MujocoSurface:
    """An offscreen GL context and MuJoCo render context of one size.

    Replays of the same env can share one (the grid's tiles): a render context
    holds the model's meshes and textures, identical for every copy of an env,
    and making one costs ~0.2 s on llvmpipe.
    """

    def __init__(self, model, size: tuple[int, int], backend: str):
        import mujoco

        self.mj = mujoco
        self.width, self.height = size
        _fast_model(model, size)
        self.gl = gl_context(backend, self.width, self.height)
        self.gl.make_current()
        self.con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.con)
        self.rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self.rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)

    def draw(self, scn) -> np.ndarray:
        self.gl.make_current()
        self.mj.mjr_render(self.rect, scn, self.con)
        self.mj.mjr_readPixels(self.rgb, None, self.rect, self.con)
        return self.rgb[::-1]  # OpenGL's rows run bottom-up

    def close(self) -> None:
        self.gl.make_current()
        self.con.free()
        self.gl.free()


class MujocoFrames:
    """Fast offscreen MuJoCo frames with a camera that follows the torso.

    The same calls as gymnasium's `OffScreenViewer`, minus the depth read-back,
    with shadows, reflections, skybox and multisampling off and a coarser floor
    mesh. Draws on ``surface`` when given (and leaves it open), else on its own.
    """

    def __init__(self, env, size: tuple[int, int], backend: str, surface=None):
        import mujoco

        self.mj = mujoco
        u = env.unwrapped
        self.model, self.data = u.model, u.data
        _fast_model(self.model, size)
        self.own = surface is None
        self.surface = MujocoSurface(self.model, size, backend) if self.own else surface
        self.scn = mujoco.MjvScene(self.model, maxgeom=1000)
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            self.scn.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        self.opt, self.pert = mujoco.MjvOption(), mujoco.MjvPerturb()

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
        return self.surface.draw(self.scn)  # pyright: ignore[reportOptionalMemberAccess]

    def close(self) -> None:
        if self.own:
            self.surface.close()  # pyright: ignore[reportOptionalMemberAccess]


class GymFrames:
    """The env's own rgb_array frames (pygame for classic control and Box2D)."""

    def __init__(self, env, size: tuple[int, int], backend: str | None = None, surface=None):
        self.env, self.size = env, size

    def __call__(self) -> np.ndarray:
        frame = np.asarray(self.env.render())
        width, height = self.size
        if frame.shape[:2] != (height, width):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))  # pyright: ignore[reportAttributeAccessIssue]
        return frame

    def close(self) -> None:
        pass


# A single replay draws on a surface kept from the last replay of the same env and size
# on this thread (making one costs ~0.17 s of a ~1 s Hopper render), at most
# `_KEEP_SURFACES` per thread. Off by default: the app's worker processes turn it on
# (`keep_surfaces`); in a server that runs replays on many threads each would keep its own.
_KEEP_SURFACES = 0
_kept = threading.local()


def keep_surfaces(n: int) -> None:
    """Keep up to ``n`` MuJoCo surfaces per thread for later replays (0: none).
    A process-wide setting, for processes that replay on few threads."""
    global _KEEP_SURFACES
    _KEEP_SURFACES = max(0, int(n))


def kept_surface(env, spec: EnvSpec, size: tuple[int, int], backend: str):
    """This thread's surface for (env, size), made on first use; None when not kept."""
    if _KEEP_SURFACES == 0:
        return None
    cache = getattr(_kept, "surfaces", None)
    if cache is None:
        cache = _kept.surfaces = OrderedDict()
    key = (spec.env_id, repr(sorted(spec.make_kwargs.items())), size, backend)
    surface = cache.pop(key, None) or MujocoSurface(env.unwrapped.model, size, backend)
    cache[key] = surface
    while len(cache) > _KEEP_SURFACES:
        cache.popitem(last=False)[1].close()
    return surface


# ---------------------------------------------------------------- replay


def _as_action(action, discrete: bool):
    return int(action) if discrete else np.asarray(action, dtype=np.float32)


def replay_frames(
    trace: Trace,
    spec: EnvSpec | None = None,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    progress: Progress | None = None,
    surface: MujocoSurface | None = None,
) -> Iterator[np.ndarray]:
    """Replay ``trace`` and yield its frames: the reset state, then the state after
    every ``spec.render_every``-th step, at most ``max_frames`` of them (the replay
    still runs to the end, checking every reward).

    ``size`` (width, height) overrides ``spec.render_size``. A yielded frame is
    only valid until the next one. Raises `ReplayDivergenceError` when a replayed
    reward or episode end differs from the trace. Close the generator (or run it
    out) to free its env and GL context. A MuJoCo replay draws on ``surface``
    when given (one of this env at this size; the caller closes it).
    """
    spec = spec or get_spec(trace.env_id)
    total = len(trace.actions)
    if len(trace.rewards) != total:
        raise ValueError(f"trace has {total} actions but {len(trace.rewards)} rewards")
    mujoco = spec.family == "mujoco"
    backend = ensure_gl_backend() if mujoco else None
    if not mujoco:
        _pygame_ready()
    cap = float("inf") if max_frames is None else max_frames
    env = frames = None
    n = 0
    with render_lock(backend):
        try:
            env = make_env(spec, render=True)
            env.reset(seed=int(trace.seed))
            size = tuple(size or spec.render_size)  # pyright: ignore[reportAssignmentType]
            if mujoco and surface is None:
                surface = kept_surface(env, spec, size, backend)  # pyright: ignore[reportArgumentType]
            frames = (MujocoFrames if mujoco else GymFrames)(env, size, backend, surface)  # pyright: ignore[reportArgumentType]
            if n < cap:
                n += 1
                yield frames()
            for t, action in enumerate(trace.actions):
                _, reward, term, trunc, _ = env.step(_as_action(action, spec.discrete))
                _check_step(trace, t, reward, term, trunc, total)
                if (t + 1) % spec.render_every == 0 and n < cap:
                    n += 1
                    yield frames()
                if progress:
                    progress(t + 1, total)
        finally:
            if frames is not None:
                frames.close()
            if env is not None:
                env.close()


def _check_step(trace: Trace, t: int, reward, term: bool, trunc: bool, total: int) -> None:
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


def render_trace(
    trace: Trace,
    out_path: str | Path,
    max_frames: int | None = None,
    progress: Progress | None = None,
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

    Raises `ReplayDivergenceError` if a replayed reward or episode end differs
    from the trace, `RenderError` if the video can't be written.
    """
    spec = spec or get_spec(trace.env_id)
    start = time.perf_counter()
    frames = replay_frames(trace, spec, max_frames=max_frames, progress=progress)
    enc = encode_mp4(frames, out_path, spec.video_fps)
    total_s = time.perf_counter() - start
    return VideoInfo(
        enc.path,
        enc.n_frames,
        spec.video_fps,
        enc.n_frames / spec.video_fps,
        enc.width,
        enc.height,
        total_s - enc.encode_s,
        enc.encode_s,
    )


def random_trace(env_id: str, steps: int, seed: int = 0, spec: EnvSpec | None = None) -> Trace:
    """A uniformly random-action episode of at most ``steps`` steps, as a `Trace`
    (a test and benchmark input with no model involved)."""
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
