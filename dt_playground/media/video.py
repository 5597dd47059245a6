"""H.264 MP4 encoding: frames in, a browser-playable file out.

Frames stream into an ffmpeg process (imageio-ffmpeg's bundled binary) while
they are being drawn, so encoding overlaps rendering. The output is
H.264/yuv420p with the index first (``+faststart``), written to a temp file,
checked box by box and only then renamed into place.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dt_playground.atomic import atomic_path
from dt_playground.errors import RenderError

# A 1000-step Hopper play (250 frames, 320x320): veryfast 0.65 CPU-s / 464 KB, superfast
# 0.40 / 629 KB, ultrafast 0.25 / 1301 KB. On a shared 2-core server the CPU matters more.
X264_PRESET = "superfast"
X264_CRF = 23


@dataclass
class Encoded:
    """What `encode_mp4` wrote. ``encode_s``: time spent waiting on ffmpeg."""

    path: Path
    n_frames: int
    width: int
    height: int
    encode_s: float


class Encoder:
    """rgb24 frames in, H.264/yuv420p MP4 out, via a piped ffmpeg process."""

    def __init__(self, path: Path, width: int, height: int, fps: int, preset: str | None = None):
        import imageio_ffmpeg

        self.path, self.width, self.height = path, width, height
        # A file, not a pipe: ffmpeg can't block on it. Closed by abort().
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-y", "-v", "error"),
            *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"),
            *("-r", str(fps), "-i", "-", "-an"),
            *("-c:v", "libx264", "-preset", preset or X264_PRESET, "-crf", str(X264_CRF)),
            *("-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(path)),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log
        )
        self.wait_s = 0.0
        self.n_frames = 0

    def write(self, frame: np.ndarray) -> None:
        t = time.perf_counter()
        try:
            self.proc.stdin.write(np.ascontiguousarray(frame).data)  # pyright: ignore[reportOptionalMemberAccess]
        except (BrokenPipeError, OSError) as err:
            self.proc.wait()
            raise RenderError(f"ffmpeg stopped while encoding: {self._stderr() or err}") from err
        self.wait_s += time.perf_counter() - t
        self.n_frames += 1

    def finish(self) -> None:
        t = time.perf_counter()
        try:
            self.proc.stdin.close()  # pyright: ignore[reportOptionalMemberAccess]
        except OSError:
            pass
        code = self.proc.wait()
        self.wait_s += time.perf_counter() - t
        if code != 0:
            raise RenderError(f"ffmpeg failed (exit {code}): {self._stderr()}")

    def abort(self) -> None:
        """Stop ffmpeg if it still runs and close its log (safe after `finish`)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()

    def _stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()[-2000:]


def pad_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: repeat the last row/column when odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def check_mp4(path: Path) -> None:
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


def encode_mp4(
    frames: Iterable[np.ndarray], out_path: str | Path, fps: int, preset: str | None = None
) -> Encoded:
    """Encode ``frames`` (H, W, 3 uint8, all the same size) to ``out_path``.

    Written beside ``out_path`` and renamed into place after `check_mp4`, so a
    reader never sees a partial video and a failure leaves no file behind (an
    older file at ``out_path`` stays as it was). ``frames`` may be a generator;
    it is closed on failure, so it can release what it holds. ``preset``: x264's
    speed/size trade-off (default `X264_PRESET`).
    """
    out_path = Path(out_path)
    encoder = None
    try:
        with atomic_path(out_path, suffix=".mp4.part") as tmp:
            try:
                for frame in frames:
                    frame = pad_even(frame)
                    if encoder is None:
                        h, w = frame.shape[:2]
                        encoder = Encoder(tmp, w, h, fps, preset)
                    encoder.write(frame)
                if encoder is None:
                    raise RenderError("no frames to encode (max_frames=0?)")
                encoder.finish()
                check_mp4(tmp)
            finally:
                close = getattr(frames, "close", None)
                if close is not None:
                    close()
    finally:
        if encoder is not None:
            encoder.abort()
    return Encoded(out_path, encoder.n_frames, encoder.width, encoder.height, encoder.wait_s)  # pyright: ignore[reportOptionalMemberAccess]
