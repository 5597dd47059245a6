"""The critic and offline RL in the app: the "check with critic" boxes of Play, Target grid
and Sweep, IQL's fixed objective in Play, and IQL's flat line on the Sweep tab's card.

Everything here reads files only (config.json, card.json, whether ``critic/`` is there):
no torch, so these views can answer on a checkpoint change before the library loads.
Whether a checkpoint can really be checked is the library's answer, asked in the check
step before a job is queued (`rollout.playable.check_critic`, through `app.checks`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr

from dt_playground.checkpoints.layout import (
    CRITIC_DIR,
    OFFLINE_ALGOS,
    CheckpointInfo,
    list_checkpoints,
    locate,
    parse_env,
    peek_checkpoint,
    read_json,
)
from dt_playground.data.summary import is_number
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.serve.sessions import SessionStore

CHECK_LABEL = "check with critic"
CHECK_INFO = "a critic picks among the DT's actions"
# The library's sentence (`rollout.iql_policy.IGNORES_TARGETS`, a test keeps them equal),
# here without importing torch.
IGNORES_TARGETS = (
    "IQL ignores the target return: its objective is fixed, so every target plays the same policy."
)


def check_box(scale: int = 1, min_width: int = 140) -> gr.Checkbox:
    """A "check with critic" box: hidden until a checkpoint with a critic is selected."""
    return gr.Checkbox(
        False,
        label=CHECK_LABEL,
        info=CHECK_INFO,
        visible=False,
        scale=scale,
        min_width=min_width,
        elem_classes="dtp-check",  # its info line is desktop-only (texts.APP_CSS)
    )


def info_of(env_id: str, checkpoint, owned: dict[str, Path] | None = None) -> CheckpointInfo | None:
    """What the selected checkpoint's folder says about itself, or None when it can't be read
    (the play's own check then says why)."""
    try:
        return peek_checkpoint(locate(checkpoint, env_id, owned))
    except (PlaygroundError, CheckpointError):
        return None


def checked_by_default(info: CheckpointInfo | None) -> bool:
    """Whether the checkpoint's critic measured checking better than not (its card's
    ``default``, from card seeds: docs/critic.md): its boxes then start ticked."""
    if info is None or not info.has_critic:
        return False
    try:
        card = read_json(info.path / CRITIC_DIR / "card.json", "The critic's card")
    except CheckpointError:
        return False
    return card.get("default") == "checked"


def offline_controls(info: CheckpointInfo | None, ticked: bool | None = None) -> tuple:
    """(play box, grid box, sweep box, ignores-target flag, its note) for a checkpoint: the
    boxes shown where it has a critic, ticked as ``ticked`` says or else as its critic's
    card measured better (a hidden box is also unticked), the target box disabled with
    one line where it is IQL."""
    critic = bool(info is not None and info.has_critic)
    value = checked_by_default(info) if ticked is None else ticked
    box = gr.Checkbox(value=value if critic else False, visible=critic)
    iql = bool(info is not None and info.algo in OFFLINE_ALGOS)
    note = gr.Markdown(f"ℹ️ {IGNORES_TARGETS}" if iql else "", visible=iql)
    return box, box, box, iql, note


def target_box(best: bool, ignores_target: bool):
    """The target slider: usable unless `best` is ticked or the checkpoint ignores targets."""
    return gr.Slider(interactive=not (best is True or ignores_target is True))


class CriticViews:
    """The handlers of this module, mixed into `ui.Handlers` (which provides ``store``)."""

    store: SessionStore
    shared: Callable  # (request) -> the page's link choice (`app.share.Share`)

    def critic_controls(
        self, env_id: str, checkpoint, sid: str | None = None, request: gr.Request = None
    ):
        """`offline_controls` for the checkpoint the page shows; a page opened from a link
        shows the link's choice for the checkpoint it names."""
        link = self.shared(request)
        ticked = None
        if link is not None and (link.env, link.checkpoint) == (env_id, checkpoint):
            ticked = link.check
        return offline_controls(info_of(env_id, checkpoint, self.store.owned(sid)), ticked)


def iql_card(env_id: str, root: Path | None = None) -> dict | None:
    """The card of the env's shipped IQL checkpoint, if it has one."""
    for path in list_checkpoints(root, parse_env(env_id), offline=True):
        info = peek_checkpoint(path)
        if info is not None and info.algo in OFFLINE_ALGOS:
            try:
                card = read_json(path / "card.json", "card")
            except CheckpointError:
                continue
            if is_number(card.get("top_target_mean")):
                return card
    return None


def with_iql_reference(card: dict | None, env_id: str) -> dict | None:
    """A DT's card with the env's IQL as one more flat reference (its card's mean at the
    data's max: IQL plays the same policy whatever the target), beside BC and %BC."""
    iql = iql_card(env_id)
    if not card or iql is None or card.get("algo") in OFFLINE_ALGOS:
        return card
    refs = {**(card.get("references") or {}), "iql": float(iql["top_target_mean"])}
    return {**card, "references": refs}
