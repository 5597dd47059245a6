"""The target grid's video: several replays of one seed, tiled into one MP4.

Each tile replays its own `Trace` (`media.replay.replay_frames`) and all tiles
advance in lock-step, one frame per ``spec.render_every`` steps, so frame i of
the video shows every tile at the same step. A strip above each tile names its
requested return and the return collected so far; a tile whose episode has
ended keeps its last frame and says "done".
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dt_playground.envs.episodes import Trace
from dt_playground.envs.registry import get_spec, make_env
from dt_playground.media.gl import ensure_gl_backend, render_lock
from dt_playground.media.plots.glance import (
    TILE_COLORS,  # a tile and its line in the reward plot match
)
from dt_playground.media.replay import (
    MAX_VIDEO_FRAMES,
    MujocoSurface,
    Progress,
    VideoInfo,
    kept_surface,
    replay_frames,
)
from dt_playground.media.video import encode_mp4
from dt_playground.rollout.grid import MAX_TILES, GridResult

LABEL_H = 52  # pixels of the two-line label strip above each tile (18 px type: >= 12 px on a phone)
GAP = 4  # pixels between tiles
# Tile frames at most this wide: 2x2 Hopper tiles at 240 px draw ~1.8x fewer
# pixels than at the env's 320 and still read well at half a page width.
TILE_MAX_WIDTH = 240
TILE_TIMEOUT_S = 300  # the helper thread's frames arrive well within this


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` tiles: as square as possible, wider than tall."""
    if not 1 <= n <= MAX_TILES:
        raise ValueError(f"a grid has 1 to {MAX_TILES} tiles, got {n}")
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def tile_size(env_id: str, max_width: int = TILE_MAX_WIDTH) -> tuple[int, int]:
    """(width, height) of one tile's frames: the env's render size scaled down to
    ``max_width``, with even sides."""
    w, h = get_spec(env_id).render_size
    scale = min(1.0, max_width / w)
    return 2 * round(w * scale / 2), 2 * round(h * scale / 2)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


class _Labeller:
    """Draws a tile's label strip: colour bar, requested and achieved-so-far return.

    Text is set from cached per-character masks: FreeType renders each glyph
    once instead of two strings per tile per frame (~0.35 ms each).
    """

    LINE_H = 23

    def __init__(self, width: int):
        self.width = width
        self.font = _font(18)
        self.glyphs: dict[str, np.ndarray] = {}
        self.strips: dict[str, np.ndarray] = {}

    def _mask(self, text: str) -> np.ndarray:
        masks = []
        for ch in text:
            g = self.glyphs.get(ch)
            if g is None:
                w = max(1, math.ceil(self.font.getlength(ch)))
                img = Image.new("L", (w, self.LINE_H), 0)
                ImageDraw.Draw(img).text((0, 0), ch, fill=255, font=self.font)
                g = self.glyphs[ch] = np.asarray(img, dtype=np.float32) / 255.0
            masks.append(g)
        mask = np.hstack(masks) if masks else np.zeros((self.LINE_H, 0), np.float32)
        return mask[:, : self.width - 12]

    def _blit(self, strip: np.ndarray, text: str, y: int, gray: int) -> None:
        m = self._mask(text)[..., None][:, : max(0, strip.shape[1] - 10)]  # clip, never spill
        region = strip[y : y + self.LINE_H, 10 : 10 + m.shape[1]]
        region[:] = (region * (1.0 - m) + gray * m).astype(np.uint8)

    def __call__(self, color: str, top: str, bottom: str) -> np.ndarray:
        key = f"{color}|{top}"
        base = self.strips.get(key)
        if base is None:
            img = Image.new("RGB", (self.width, LABEL_H), "white")
            ImageDraw.Draw(img).rectangle((0, 0, 5, LABEL_H - 1), fill=color)
            base = np.array(img)
            self._blit(base, top, 3, 0)
            self.strips[key] = base
        strip = base.copy()
        self._blit(strip, bottom, 27, 51)
        return strip


def _fmt(x: float | str) -> str:
    if isinstance(x, str):  # "best"
        return x
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


# ---------------------------------------------------------------- lock-step replays


def _tiles_in_turn(traces, spec, size, n_frames) -> Iterator[list]:
    """Frame i of every tile (None once its episode has ended), n_frames times, from
    one thread on one GL surface; then each replay runs to its end (every reward is
    checked)."""
    with ExitStack() as stack:
        surface = None
        if spec.family == "mujoco":  # one GL surface for every tile (same model)
            backend = ensure_gl_backend()
            stack.enter_context(render_lock(backend))
            env = stack.enter_context(closing(make_env(spec)))
            surface = kept_surface(env, spec, size, backend)  # the app's workers
            if surface is None:
                surface = MujocoSurface(env.unwrapped.model, size, backend)  # pyright: ignore[reportAttributeAccessIssue]
                stack.callback(surface.close)
        # Closed when the stack unwinds (before the surface): frees each replay's env.
        sources = [
            stack.enter_context(
                closing(
                    replay_frames(
                        t,
                        spec,
                        size,
                        n_frames,  # pyright: ignore[reportArgumentType]
                        surface=surface,
                    )
                )
            )
            for t in traces
        ]
        live = [True] * len(sources)
        for _ in range(n_frames):
            now = []
            for k, src in enumerate(sources):
                frame = next(src, None) if live[k] else None
                live[k] = frame is not None
                # A copy: the tiles share the surface's pixel buffer, redrawn by the next.
                now.append(None if frame is None else frame.copy())
            yield now
        for src in sources:
            for _ in src:
                pass


_END = object()
_helpers: ThreadPoolExecutor | None = None
_helpers_lock = threading.Lock()


def _helper_pool() -> ThreadPoolExecutor:
    """Long-lived threads that draw half a grid's tiles: each keeps its GL surface
    (`media.replay.kept_surface` is per thread), as the caller's thread does."""
    global _helpers
    with _helpers_lock:
        if _helpers is None:
            _helpers = ThreadPoolExecutor(2, thread_name_prefix="dtp-tiles")
        return _helpers


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def lockstep_frames(traces, spec, size, n_frames) -> Iterator[list]:
    """`_tiles_in_turn`, with MuJoCo tiles on EGL split over two threads: the odd tiles
    are drawn on a helper thread (MuJoCo's drawing and llvmpipe leave the GIL), the even
    ones here; frames are the same as drawn in turn (tested). OSMesa is one thread at a
    time (`gl.GL_LOCK`), and classic envs draw in turn."""
    if spec.family != "mujoco" or len(traces) < 2 or ensure_gl_backend() != "egl":
        yield from _tiles_in_turn(traces, spec, size, n_frames)
        return
    q: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()

    def produce():
        try:
            with closing(_tiles_in_turn(traces[1::2], spec, size, n_frames)) as theirs:  # pyright: ignore[reportArgumentType]
                for now in theirs:
                    if not _put(q, now, stop):
                        return
            _put(q, _END, stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(q, exc, stop)

    helper = _helper_pool().submit(produce)
    try:
        with closing(_tiles_in_turn(traces[0::2], spec, size, n_frames)) as mine:  # pyright: ignore[reportArgumentType]
            for now in mine:
                theirs = _take(q)
                tiles = [None] * len(traces)
                tiles[0::2], tiles[1::2] = now, theirs
                yield tiles
        if _take(q) is not _END:  # the helper's replays ran to their ends too
            raise RuntimeError("tile helper sent more frames than asked for")
    finally:
        stop.set()
        helper.result(timeout=TILE_TIMEOUT_S)  # its GL surface is released on its thread


def _take(q: queue.Queue):
    item = q.get(timeout=TILE_TIMEOUT_S)
    if isinstance(item, BaseException):
        raise item
    return item


def render_grid(
    traces: Sequence[Trace],
    out_path: str | Path,
    labels: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    progress: Progress | None = None,
) -> VideoInfo:
    """Replay every trace (same env) and write them as one tiled, synchronised MP4.

    Args:
        traces: one per tile, in reading order; all of one env.
        out_path: the .mp4 to write (atomically, as `media.replay.render_trace`).
        labels: the first line of each tile's label (default "target R").
        size: (width, height) of a tile's frame (default `tile_size`).
        max_frames: cap on the video's frames.
        progress: ``progress(frames_done, frames_total)``.

    Raises `errors.ReplayDivergenceError` when a replay disagrees with its trace.
    """
    if not traces:
        raise ValueError("no traces to render")
    env_id = traces[0].env_id
    if any(t.env_id != env_id for t in traces):
        raise ValueError("all tiles of a grid must be of one env")
    spec = get_spec(env_id)
    rows, cols = grid_shape(len(traces))
    w, h = size or tile_size(env_id)
    labels = list(labels) if labels is not None else [f"target {_fmt(t.target)}" for t in traces]
    every = spec.render_every
    n_frames = max(1 + t.length // every for t in traces)
    if max_frames is not None:
        n_frames = min(n_frames, max_frames)
    cum = [np.concatenate([[0.0], np.cumsum(np.asarray(t.rewards, np.float64))]) for t in traces]
    canvas = np.full(
        (rows * (LABEL_H + h) + (rows - 1) * GAP, cols * w + (cols - 1) * GAP, 3), 255, np.uint8
    )
    label = _Labeller(w)
    start = time.perf_counter()

    def frames():
        with closing(lockstep_frames(traces, spec, (w, h), n_frames)) as source:  # pyright: ignore[reportArgumentType]
            for i, now in enumerate(source):
                step = i * every
                for k, (trace, frame) in enumerate(zip(traces, now)):
                    r, c = divmod(k, cols)
                    y, x = r * (LABEL_H + h + GAP), c * (w + GAP)
                    if frame is not None:  # None: its episode ended, keep the last frame
                        canvas[y + LABEL_H : y + LABEL_H + h, x : x + w] = frame
                    done = frame is None or step >= trace.length
                    got = cum[k][min(step, trace.length)]
                    status = f"return {_fmt(got)}" + (" · done" if done else f" · step {step}")
                    canvas[y : y + LABEL_H, x : x + w] = label(
                        TILE_COLORS[k % MAX_TILES], labels[k], status
                    )
                if progress:
                    progress(i + 1, n_frames)
                yield canvas

    enc = encode_mp4(frames(), out_path, spec.video_fps)  # video.X264_PRESET
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


def grid_video(
    result: GridResult, out_path: str | Path, progress: Progress | None = None
) -> VideoInfo:
    """A grid's tiled video (`render_grid`), labelled as its tiles."""
    return render_grid(
        result.traces, out_path, result.labels, max_frames=MAX_VIDEO_FRAMES, progress=progress
    )
