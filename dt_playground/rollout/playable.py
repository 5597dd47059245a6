"""Any checkpoint the app plays, loaded and kept: a DT, BC or %BC (`checkpoints.cache`) or
an IQL one (`offline.store`), told apart by what its folder says it is.

And the question a "check with critic" box asks before anything runs: can this checkpoint
be checked? The answer is the library's own sentence (`offline.critic.load_critic`,
`rollout.evaluate.policy_for`), as a `PlaygroundError`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from dt_playground.checkpoints.cache import load_cached
from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.checkpoints.layout import parse_env
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.offline.critic import load_critic
from dt_playground.offline.store import IQLCheckpoint, load_iql
from dt_playground.paths import pretrained_dir
from dt_playground.rollout.evaluate import algo_of, policy_for
from dt_playground.rollout.iql_policy import IGNORES_TARGETS

Playable = Checkpoint | IQLCheckpoint  # what the app can play
CACHE_SIZE = 16
_IQL: OrderedDict[Path, IQLCheckpoint] = OrderedDict()
_LOCK = threading.Lock()

__all__ = ["IGNORES_TARGETS", "Playable", "check_critic", "get_playable", "is_iql", "load_playable"]


def is_iql(ck) -> bool:
    return isinstance(ck, IQLCheckpoint)


def load_playable(path: Path | str) -> Playable:
    """The checkpoint in folder ``path`` (trusted: resolved by `checkpoints.layout.locate`),
    loaded once and kept; a refusal is a `PlaygroundError` naming the folder only."""
    path = Path(path)
    if algo_of(path) != "iql":
        return load_cached(path)
    with _LOCK:
        ck = _IQL.get(path)
        if ck is not None:
            _IQL.move_to_end(path)
            return ck
    try:
        ck = load_iql(path)
    except CheckpointError as exc:
        raise PlaygroundError(f"Can't use checkpoint {path.name}: {exc}") from None
    with _LOCK:
        _IQL[path] = ck
        while len(_IQL) > CACHE_SIZE:
            _IQL.popitem(last=False)
    return ck


def get_playable(path: Path | str, env_id: str | None = None) -> Playable:
    """`checkpoints.cache.get_checkpoint` for any playable kind: by trusted path or shipped
    name, refusing another env's."""
    path = Path(path)
    if not path.is_absolute():
        path = pretrained_dir() / path
    if not path.is_dir():
        raise PlaygroundError(f"Checkpoint {path.name} does not exist")
    ck = load_playable(path)
    if env_id is not None and ck.spec.env_id != parse_env(env_id):
        raise PlaygroundError(
            f"Checkpoint {ck.name} was trained on {ck.spec.env_id}, not "
            f"{env_id}. Pick one of this environment's checkpoints."
        )
    return ck


def check_critic(ck: Playable) -> None:
    """Refuse checking ``ck`` with the library's reason (IQL, BC and %BC have no return
    input; a DT without a critic is told how to make one; a broken critic says what is
    wrong), before any work is queued."""
    try:
        if is_iql(ck):
            policy_for(ck, check=True)  # refuses IQL at once, in its own words
        load_critic(ck.path, ck.config)
    except CheckpointError as exc:
        raise PlaygroundError(str(exc)) from None
