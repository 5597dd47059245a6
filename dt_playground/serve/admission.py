"""Fair before fast: what one visitor may have in flight, and what is refused at once.

The app's queue is first come, first served, so without limits one client that submits
40 plays makes everyone else wait behind all 40. Here each *session* (a browser tab, or a
`gradio_client.Client`: both carry Gradio's session hash) gets:

- **interactive work** (play, grid, re-prompt, attention, upload): one request running and
  one waiting; a third is refused at once with a sentence, never queued. A session's
  requests run one after another, so a flood holds one worker at most and every other
  visitor's play finds the other one free.
- **background work** (sweep, compare, training): one job at a time per session.
- **cheap events** (list refreshes, on-arrival views): a token bucket of
  `CHEAP_EVENTS_PER_S`; events over it are dropped before any work is done.

Torch-free and Gradio-free: the app passes in the session key, the limits are the
named constants below (the README lists them beside the other bounds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dt_playground.errors import PlaygroundError

INTERACTIVE_RUNNING = 1  # a session's interactive requests running at once
INTERACTIVE_WAITING = 1  # ... and waiting behind them; more are refused at once
BACKGROUND_PER_SESSION = 1  # sweeps, comparisons and training jobs of one session at once
CHEAP_EVENTS_PER_S = 10.0  # list refreshes and arrival views, per session (token bucket)
CHEAP_EVENTS_BURST = 20  # ... with this many at once (a page load fires about 10)
WAIT_LIMIT_S = 600.0  # a waiting request gives up after this long (a stuck one ahead)
FORGET_AFTER_S = 3600.0  # idle sessions' counters are dropped after this long


@dataclass
class _Session:
    turn: threading.Lock = field(default_factory=threading.Lock)  # held by the running one
    interactive: int = 0  # running + waiting
    running_what: str = ""
    background: int = 0
    background_what: str = ""
    tokens: float = CHEAP_EVENTS_BURST
    refilled: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)


class Admission:
    """Per-session admission for the app's events (thread-safe)."""

    def __init__(
        self,
        running: int = INTERACTIVE_RUNNING,
        waiting: int = INTERACTIVE_WAITING,
        background: int = BACKGROUND_PER_SESSION,
        rate: float = CHEAP_EVENTS_PER_S,
        burst: int = CHEAP_EVENTS_BURST,
    ):
        if running != 1:
            raise ValueError("a session's interactive requests run one at a time")
        self.waiting, self.background, self.rate, self.burst = waiting, background, rate, burst
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def _get(self, key: str) -> _Session:
        now = time.monotonic()
        if len(self._sessions) > 256:  # forget idle sessions (counters only; nothing in flight)
            for k in [
                k
                for k, s in self._sessions.items()
                if now - s.seen > FORGET_AFTER_S and not s.interactive and not s.background
            ]:
                del self._sessions[k]
        s = self._sessions.setdefault(key, _Session(tokens=self.burst))
        s.seen = now
        return s

    @contextmanager
    def interactive(self, key: str | None, what: str = "request") -> Iterator[None]:
        """Run the block as one of this session's interactive requests: at once if none
        runs, after the running one if one runs, refused (PlaygroundError) if one already
        waits too."""
        key = key or "anonymous"
        with self._lock:
            s = self._get(key)
            if s.interactive >= 1 + self.waiting:
                raise PlaygroundError(
                    f"You already have a {s.running_what or 'request'} running and another "
                    "waiting; they will finish first. Try again when one is done."
                )
            s.interactive += 1
        try:
            if not s.turn.acquire(timeout=WAIT_LIMIT_S):
                raise PlaygroundError("Your previous request is still running; try again.")
            try:
                s.running_what = what
                yield
            finally:
                s.running_what = ""
                s.turn.release()
        finally:
            with self._lock:
                s.interactive -= 1

    @contextmanager
    def background_job(self, key: str | None, what: str) -> Iterator[None]:
        """Run the block as this session's one background job; refuse a second."""
        key = key or "anonymous"
        with self._lock:
            s = self._get(key)
            if s.background >= self.background:
                raise PlaygroundError(
                    f"You already have a {s.background_what or what} running; it will finish first."
                )
            s.background += 1
            s.background_what = what
        try:
            yield
        finally:
            with self._lock:
                s.background -= 1

    def cheap(self, key: str | None) -> bool:
        """Take a token for a cheap event: False when this session is over its rate (the
        event is then dropped)."""
        with self._lock:
            s = self._get(key or "anonymous")
            now = time.monotonic()
            s.tokens = min(self.burst, s.tokens + (now - s.refilled) * self.rate)
            s.refilled = now
            if s.tokens < 1.0:
                return False
            s.tokens -= 1.0
            return True

    def in_flight(self, key: str | None) -> tuple[int, int]:
        """(interactive, background) requests of a session now: running + waiting."""
        with self._lock:
            s = self._sessions.get(key or "anonymous")
            return (s.interactive, s.background) if s else (0, 0)


class PlaySlots:
    """The server's play slots: an admitted play holds one for its whole run, simulation
    and video, so a play that has simulated is rendered next rather than behind every
    other play's simulation. Requests wait here in order and can say how many are ahead."""

    def __init__(self, n: int):
        self.n = n
        self._free = threading.Semaphore(n)
        self._lock = threading.Lock()
        self._holding = self._waiting = 0

    def ahead(self) -> int:
        """How many plays a new one would wait behind (0: a slot is free)."""
        with self._lock:
            return max(0, self._holding + self._waiting - self.n + 1)

    @contextmanager
    def turn(self, note) -> Iterator[None]:
        """Hold a slot for the block; ``note(text)`` says "simulating" or how many are
        ahead before waiting."""
        ahead = self.ahead()
        note(f"waiting for a free worker: {ahead} ahead" if ahead else "simulating")
        with self._lock:
            self._waiting += 1
        try:
            got = self._free.acquire(timeout=WAIT_LIMIT_S)
        finally:
            with self._lock:
                self._waiting -= 1
        if not got:
            raise PlaygroundError("The server is too busy right now: try again in a minute.")
        with self._lock:
            self._holding += 1
        try:
            yield
        finally:
            with self._lock:
                self._holding -= 1
            self._free.release()
