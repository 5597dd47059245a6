"""Sessions: what each visitor made, kept apart and bounded.

A browser tab (or a `gradio_client.Client`) holds only an opaque session id in
server-side state. The `SessionStore` maps it to a `Session`: its folder
(created on first write, so refused requests leave nothing), the checkpoints
it uploaded or trained (opaque id -> folder; `checkpoints.layout.locate` accepts these
ids from this session only), its training job and its videos. Torch-free:
loading is `catalogue`'s job.

Disk use is bounded per session and in total; a session's folder is removed when it
ends. An app's store lives in folders of its own instance (`SessionStore.for_instance`,
serve/instances.py): at start it empties only those, and removes what dead instances
left, so a second app on the same machine never deletes the first one's files.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dt_playground.atomic import remove_stale
from dt_playground.errors import PlaygroundError
from dt_playground.serve import instances

if TYPE_CHECKING:  # jobs imports torch; sessions stays torch-free
    from dt_playground.serve.jobs import TrainJob

MAX_SESSION_BYTES = 400 * 1024 * 1024  # uploads + trained checkpoints of one session
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024  # all sessions together
MAX_OWNED = 8  # checkpoints per session
VIDEOS_PER_SESSION = 4  # older videos of a session are deleted
SHARED_VIDEOS = 32  # videos of session-less API calls
MAX_VIDEO_BYTES = 1024 * 1024 * 1024  # all videos together


def default_root() -> Path:
    return Path(os.environ.get("DTP_SESSIONS_DIR", Path(tempfile.gettempdir()) / "dtp_sessions"))


@dataclass
class Session:
    id: str
    dir: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)  # opaque id -> folder
    job: TrainJob | None = None
    videos: deque = field(default_factory=deque)
    last_used: float = field(default_factory=time.time)


class SessionStore:
    """Sessions by id, their folders under ``root`` and their videos under ``videos_root``."""

    def __init__(self, root: Path | None = None, videos_root: Path | None = None):
        self.root = Path(root or default_root())
        self.videos_root = Path(videos_root or self.root / "videos")
        self._sessions: dict[str, Session] = {}
        self._shared_videos: deque = deque()
        self._lock = threading.Lock()

    @classmethod
    def for_instance(
        cls, sessions_base: Path | None = None, videos_base: Path | None = None
    ) -> SessionStore:
        """A store in folders of this app instance alone: a fresh subfolder of
        ``sessions_base`` (default `default_root`) and of ``videos_base`` (default: a
        ``videos`` folder beside the sessions), removed when the process exits; what dead
        instances left there is removed now."""
        sessions_base = Path(sessions_base or default_root())
        root = instances.claim(sessions_base)
        videos = instances.claim(Path(videos_base or sessions_base.parent / "dtp_videos"))
        for folder in (root, videos):
            atexit.register(instances.release, folder)
        return cls(root, videos)

    def clean_start(self) -> None:
        """Empty this store's own folders (what this instance left before); nothing
        outside them is touched."""
        for d in (self.root, self.videos_root):
            if d.is_dir():
                for entry in d.iterdir():
                    if entry.name == instances.OWNER_FILE:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ ids

    def new(self) -> str:
        sid = secrets.token_hex(16)
        with self._lock:
            self._sessions[sid] = Session(sid, self.root / sid)
        return sid

    def get(self, sid) -> Session | None:
        with self._lock:
            s = self._sessions.get(sid) if isinstance(sid, str) else None
        if s is not None:
            s.last_used = time.time()
        return s

    def get_or_new(self, sid) -> Session:
        """The caller's session, or a new one (API clients start without one)."""
        s = self.get(sid)
        return s if s is not None else self._sessions[self.new()]

    def owned(self, sid) -> dict[str, Path]:
        s = self.get(sid)
        return dict(s.checkpoints) if s is not None else {}

    def end(self, sid) -> None:
        """Stop the session's job and delete everything it made."""
        with self._lock:
            s = self._sessions.pop(sid, None) if isinstance(sid, str) else None
        if s is None:
            return
        if s.job is not None:
            s.job.stop.set()
        for v in s.videos:
            Path(v).unlink(missing_ok=True)
        shutil.rmtree(s.dir, ignore_errors=True)

    # ------------------------------------------------------------ disk

    def reserve(self, s: Session, kind: str) -> tuple[str, Path]:
        """An opaque id and a (not yet existing) folder for a new checkpoint of ``s``,
        refused when the session or the server is over its bounds."""
        if len(s.checkpoints) >= MAX_OWNED:
            raise PlaygroundError(
                f"This session already holds {MAX_OWNED} checkpoints: reload the page to start "
                "a fresh session."
            )
        if _du(s.dir) > MAX_SESSION_BYTES:
            raise PlaygroundError("This session's storage is full: reload the page to start over.")
        if _du(self.root) > MAX_TOTAL_BYTES:
            raise PlaygroundError("The server's storage is full right now: try again later.")
        cid = f"{kind}-{secrets.token_hex(6)}"
        return cid, s.dir / kind / cid

    def adopt(self, s: Session, cid: str, path: Path) -> None:
        s.checkpoints[cid] = path

    def tidy(self, s: Session) -> None:
        """Remove the session's folder if a refused request left it empty."""
        for d in sorted(s.dir.glob("**/"), key=lambda p: -len(p.parts)) if s.dir.exists() else []:
            try:
                d.rmdir()  # only empty ones go
            except OSError:
                pass

    def video_path(self, sid, stem: str) -> Path:
        """A fresh, unguessable video path; the session's (or the shared pool's) oldest
        videos beyond their bound are deleted, and so are the oldest of all when the
        videos together pass `MAX_VIDEO_BYTES`."""
        self.videos_root.mkdir(parents=True, exist_ok=True)
        path = self.videos_root / f"{stem}-{secrets.token_hex(8)}.mp4"
        s = self.get(sid)
        queue, bound = (s.videos, VIDEOS_PER_SESSION) if s else (self._shared_videos, SHARED_VIDEOS)
        with self._lock:
            queue.append(path)
            while len(queue) > bound:
                Path(queue.popleft()).unlink(missing_ok=True)
        _prune_oldest(self.videos_root, MAX_VIDEO_BYTES)
        return path


def _du(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _prune_oldest(root: Path, limit: int) -> None:
    files = sorted((f for f in root.glob("*.mp4") if f.is_file()), key=lambda f: f.stat().st_mtime)
    total = sum(f.stat().st_size for f in files)
    while files and total > limit:
        f = files.pop(0)
        total -= f.stat().st_size
        f.unlink(missing_ok=True)


def clean_dataset_staging(data_root: Path) -> None:
    """Remove `.staging-*` folders a killed collection left in the datasets folder."""
    remove_stale(data_root, ".staging-")
