"""Every exception class the package raises, and how messages lose server paths.

`PlaygroundError` is the one the app shows to users as is; the others name what failed
(a checkpoint, a dataset, a render...) and the app's service layer turns them into
sentences at its boundary."""

from __future__ import annotations

import re
from pathlib import PurePath


class PlaygroundError(ValueError):
    """A problem with the user's request, phrased for the user (no server paths)."""


class UnknownEnvError(ValueError):
    """An environment id that is not in the registry."""


class DatasetError(ValueError):
    """A dataset that can't be used: missing, corrupt, empty or inconsistent."""


class NoReturnHeadError(ValueError):
    """``best`` was asked of a model without a return-distribution head."""


class CheckpointError(ValueError):
    """A checkpoint that can't be used, with the reason."""


class PretrainedMissingError(FileNotFoundError):
    """No folder of shipped checkpoints: neither ``$DTP_PRETRAINED_DIR`` nor the checkout's."""


class RenderError(RuntimeError):
    """A video that can't be made: no GL backend, ffmpeg failure, bad output."""


class ReplayDivergenceError(RenderError):
    """Replaying a trace's actions gave different rewards: a determinism bug."""


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")


def scrub_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last part: server paths never
    reach a user, even inside a library's exception text."""
    return _PATH.sub(lambda m: PurePath(m.group().rstrip("/\\")).name, message)
