"""The one exception type the app shows to users as is."""

from __future__ import annotations

import re
from pathlib import PurePath


class PlaygroundError(ValueError):
    """A problem with the user's request, phrased for the user (no server paths)."""


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")


def scrub_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last part: server paths never
    reach a user, even inside a library's exception text."""
    return _PATH.sub(lambda m: PurePath(m.group().rstrip("/\\")).name, message)
