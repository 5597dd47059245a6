"""Headless OpenGL for MuJoCo: pick a working backend and create contexts.

MuJoCo draws offscreen through EGL (a GPU, or Mesa's software llvmpipe) or
OSMesa. Which one works depends on the machine's libraries, and a backend can't
be switched once mujoco has loaded it, so each candidate is probed in a fresh
process and the first that works is exported as ``MUJOCO_GL``. When none works
the error names the Debian/Ubuntu package to install.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import threading

from dt_playground.errors import RenderError

# Where each MuJoCo GL backend comes from on Debian/Ubuntu.
GL_PACKAGES = {"egl": "libegl1", "osmesa": "libosmesa6"}
GL_CANDIDATES = ("egl", "osmesa")

# OSMesa is not thread-safe: with it, one thread renders MuJoCo at a time in
# this process (re-entrant: the grid draws several replays in turn from one
# thread). EGL gives each thread its own current context, so replays on
# different threads (concurrent plays in the app) draw in parallel.
GL_LOCK = threading.RLock()


def render_lock(backend: str | None):
    """The lock a replay on ``backend`` must hold (none for EGL, see `GL_LOCK`)."""
    return contextlib.nullcontext() if backend in (None, "egl") else GL_LOCK


_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 16, 16)
r.update_scene(mujoco.MjData(m))
assert r.render().shape == (16, 16, 3)
r.close()
"""


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


def gl_context(backend: str, width: int, height: int):
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
