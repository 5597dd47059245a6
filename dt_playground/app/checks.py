"""The first step of every interactive event: check its inputs, touch no output.

A refusal here is a `gradio.Error` in a queued step with no outputs, so the page shows it as a
toast and nothing else changes (no result cleared, no red badge on any component). The
step that follows (`.success`) checks again: API calls go to it directly.

Why queued: Gradio's page drops the ``visible`` flag of an error raised by an unqueued
(``queue=False``) step, so its toast is never shown; a queued step's error is.
"""

import math

import gradio as gr

from dt_playground.app.boundary import boundary, rollout_lib, session_key
from dt_playground.checkpoints import layout
from dt_playground.errors import PlaygroundError
from dt_playground.serve.admission import Admission
from dt_playground.serve.jobs import TrainRequest
from dt_playground.serve.sessions import SessionStore

MAX_SEED = 2**31 - 1

# Event options of a check step: queued (its toast shows) but never waiting behind work,
# no progress overlay, not an API endpoint; values as the page sent them (Gradio's own
# checks would answer in their words, ours say what to type).
CHECK = {
    "concurrency_limit": None,
    "show_progress": "hidden",
    "api_visibility": "private",
    "preprocess": False,
}


def seed_of(value, what: str = "Seed") -> int:
    """A reset seed from a form field: an empty or unreadable box is a sentence, not 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PlaygroundError(
            f"{what} is empty or not a number: type a whole number from 0 to {MAX_SEED}."
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PlaygroundError(f"{what} must be a whole number from 0 to {MAX_SEED}.")
    return rollout_lib("requests").parse_count(value, what, 0, MAX_SEED)


def target_of(value, ck) -> float | str:
    """A target from the page: an empty box is a sentence, not 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PlaygroundError("Target return is empty: type a number (or tick best).")
    return rollout_lib("requests").play_target(value, ck)


def critic_of(ck, check):
    """``ck``; with a ticked "check with critic" box, refused with the library's reason
    unless it can be checked (`rollout.playable.check_critic`)."""
    if check is True:
        rollout_lib("playable").check_critic(ck)
    return ck


class Checks:
    """The check steps, mixed into `ui.Handlers` (which provides ``_checkpoint``)."""

    admission: Admission
    store: SessionStore

    def _checkpoint(self, sid, value, env_id):  # pragma: no cover - Handlers defines it
        raise NotImplementedError

    def _room(self, request, background: bool = False) -> None:
        """Refuse now what admission would refuse once the run starts (its sentence then
        would come with error marks on the run's outputs)."""
        interactive, jobs = self.admission.in_flight(session_key(request))
        if background and jobs >= self.admission.background:
            raise PlaygroundError(
                "You already have a sweep, comparison or training running; it will finish first."
            )
        if not background and interactive >= 1 + self.admission.waiting:
            raise PlaygroundError(
                "You already have a request running and another waiting; "
                "they will finish first. Try again when one is done."
            )

    @boundary
    def check_play(
        self,
        env_id,
        checkpoint,
        target,
        seed,
        sampled=False,
        best=False,
        sid=None,
        check=False,
        request: gr.Request | None = None,
    ):
        self._room(request)
        ck = self._checkpoint(sid, checkpoint, env_id)
        target_of("best" if best is True else target, ck)
        seed_of(seed)
        critic_of(ck, check)

    @boundary
    def check_schedule(
        self, env_id, checkpoint, schedule, seed, sid=None, request: gr.Request | None = None
    ):
        self._room(request)
        self._checkpoint(sid, checkpoint, env_id)
        rollout_lib("schedules").parse_schedule(schedule)
        seed_of(seed)

    @boundary
    def check_grid(
        self,
        env_id,
        checkpoint,
        targets,
        seed,
        sid=None,
        check=False,
        request: gr.Request | None = None,
    ):
        self._room(request)
        ck = self._checkpoint(sid, checkpoint, env_id)
        rollout_lib("grid").parse_grid_targets(targets, ck)
        seed_of(seed)
        critic_of(ck, check)

    @boundary
    def check_attention(
        self,
        env_id,
        checkpoint,
        target,
        seed,
        sampled,
        step,
        sid=None,
        request: gr.Request | None = None,
    ):
        self._room(request)
        ck = self._checkpoint(sid, checkpoint, env_id)
        target_of(target, ck)
        seed_of(seed)
        if step is None or (isinstance(step, str) and not step.strip()):
            raise PlaygroundError("Step is empty: type the step whose attention to show.")
        rollout_lib("requests").parse_count(step, "Step", 0, ck.spec.max_ep_len - 1)

    @boundary
    def check_sweep(
        self,
        env_id,
        checkpoint,
        n_targets,
        n_seeds,
        seed,
        sid=None,
        check=False,
        request: gr.Request | None = None,
    ):
        self._room(request, background=True)
        ck = self._checkpoint(sid, checkpoint, env_id)
        rollout_lib("sweep").sweep_targets(ck, n_targets)
        rollout_lib("requests").parse_count(n_seeds, "Seeds per target", 1, 10)
        seed_of(seed, "First seed")
        critic_of(ck, check)

    @boundary
    def check_compare(self, env_id, n_seeds, seed, request: gr.Request | None = None):
        self._room(request, background=True)
        if env_id not in layout.envs_with_checkpoints():
            raise PlaygroundError(f"No pretrained checkpoints for {str(env_id)[:40]!r}.")
        rollout_lib("requests").parse_count(n_seeds, "Seeds", 1, 20)
        seed_of(seed, "First seed")

    @boundary
    def check_train(
        self, env_id, algo, steps, context_len, lr, sid=None, request: gr.Request | None = None
    ):
        self._room(request, background=True)
        if lr is None or (isinstance(lr, str) and not lr.strip()):
            raise PlaygroundError("Learning rate is empty: type a number such as 0.001.")
        TrainRequest.parse(env_id, algo, steps, context_len, lr)
        session = self.store.get(sid)
        if session is not None and session.job is not None and not session.job.done:
            raise PlaygroundError("This session is already training: cancel it first.")

    @boundary
    def check_stitching(self, data, seed, history, sid=None, request: gr.Request | None = None):
        self._room(request)
        from dt_playground.app import stitch_view

        seed_of(seed)
        stitch_view.check_inputs(data, seed, history)

    @boundary
    def check_dataset(self, env_id, checkpoint, sid=None):
        self._checkpoint(sid, checkpoint, env_id)
