"""The Play tab's arrival example: one episode played in the background at start-up (the
default env's first checkpoint at its default target and the app's seed, deterministic;
checked by its critic where the "check with critic" box starts ticked),
shown to every page that arrives without a link's choice; made again if its video is gone.
Mixed into `app.ui.Handlers`, which provides ``_play`` and ``store``."""

import atexit
import threading
from pathlib import Path

import gradio as gr

from dt_playground.app import card_views, critic_views, share
from dt_playground.app.boundary import LOG, rollout_lib
from dt_playground.data.summary import target_range
from dt_playground.envs.registry import get_spec
from dt_playground.serve.sessions import SessionStore

EXAMPLE_WAIT_S = 120.0  # how long a page's first load waits for the start-up example
EXAMPLE_EXIT_WAIT_S = 30.0  # how long exiting waits for it (killed in torch/GL, it aborts)


class Example:
    """The arrival example's state and handlers."""

    store: SessionStore

    def _play(self, *args, **kwargs):  # pragma: no cover - Handlers defines it
        raise NotImplementedError

    def init_example(self) -> None:
        self._example: tuple | None = None
        self._example_ready = threading.Event()
        self._example_lock = threading.Lock()

    def start_example(self, env_id: str, checkpoint: str | None) -> None:
        """Play the Play tab's arrival example once, in the background: the default
        env's first checkpoint at its default target and the app's seed
        (deterministic), video included; then warm the stitching lab's models."""

        def run():
            try:
                if checkpoint:  # (none shipped for the env: no example, the lab still warms)
                    self._example = self._play_example(env_id, checkpoint)
            except Exception:  # the page works without its example
                LOG.exception("the arrival example could not be played")
            finally:
                self._example_ready.set()
            try:  # then the schedules' module and the stitching lab's models (a first
                from dt_playground.app import stitch_view  # check or run would pay ~2 s)

                rollout_lib("schedules")
                stitch_view.warm_up()
            except Exception:
                LOG.exception("the stitching lab could not be warmed")

        thread = threading.Thread(target=run, daemon=True, name="dtp-example")
        thread.start()
        # Let it finish before the interpreter tears down: killed inside torch or GL at
        # exit, it aborts the process ("terminate called without an active exception").
        atexit.register(thread.join, EXAMPLE_EXIT_WAIT_S)

    def _play_example(self, env_id: str, checkpoint: str) -> tuple:
        """The example's (env, checkpoint, target, *outputs), played now."""
        from dt_playground.envs.seeds import APP_SEED

        dataset = card_views.dataset_of(env_id, checkpoint)
        target = target_range(dataset, get_spec(env_id).target_presets).value
        video = Path(self.store.videos_root) / "example" / f"{checkpoint}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        *_, last = self._play(
            env_id,
            checkpoint,
            target,
            APP_SEED,
            False,
            False,
            None,
            lambda *a, **k: None,
            video_path=video,
            check=critic_views.checked_by_default(critic_views.info_of(env_id, checkpoint)),
        )
        return (env_id, checkpoint, target, *last)

    def example(self, env_id: str, checkpoint: str, request: gr.Request = None):
        """The arrival example's outputs (target, video, plots, summary), if the page
        still shows its env and checkpoint and came without a link's choice; nothing
        changes otherwise."""
        if any(k in (getattr(request, "query_params", None) or {}) for k in share.KEYS):
            return (gr.skip(),) * 6
        self._example_ready.wait(EXAMPLE_WAIT_S)
        ex = self._example
        if ex is None or (ex[0], ex[1]) != (env_id, checkpoint):
            return (gr.skip(),) * 6
        with self._example_lock:  # its video was deleted (a cache sweep): made again, once
            if self._example is ex and not Path(ex[3]).is_file():
                self._example = self._play_example(env_id, checkpoint)
            return (self._example or ex)[2:]
