"""The app's handlers: Gradio events onto library calls (the one module here that
imports gradio; `app.py` only lays out components and wires them to these).

`Handlers` holds the app's state (sessions, worker pool, admission): `build_demo` makes
one, no module-level globals are reassigned. Each handler validates, runs through the
session's admission (serve/admission.py), calls the library and turns its results into
component values; every exception becomes a sentence at the `boundary`.
"""

import gradio as gr

from dt_playground.app import card_views, critic_views, formatting, share, widgets
from dt_playground.app.background import Background
from dt_playground.app.boundary import (
    boundary,
    progress_steps,
    session_key,
)
from dt_playground.app.checks import Checks, critic_of
from dt_playground.app.example import Example
from dt_playground.checkpoints import layout
from dt_playground.data.summary import target_range
from dt_playground.envs.registry import get_spec
from dt_playground.errors import CheckpointError, PlaygroundError, RenderError, scrub_paths
from dt_playground.media.plots import figures, glance, inspect
from dt_playground.media.replay import MAX_VIDEO_FRAMES, render_trace
from dt_playground.serve.admission import Admission, PlaySlots
from dt_playground.serve.sessions import SessionStore
from dt_playground.serve.workers import CheckpointRef, WorkerPool


def _sourced(source: str, summary: str) -> str:
    """A result's summary, then the line that says what made it (the summary first: on a
    phone its first line must sit on the first screen)."""
    return f"{summary}\n\n<small>{source}</small>"


class Handlers(Background, Checks, share.Share, Example, critic_views.CriticViews):
    """The app's state and its event handlers (bound methods are the Gradio callbacks)."""

    def __init__(self, store: SessionStore, pool: WorkerPool | None = None):
        self.store = store
        self.use_pool(pool or WorkerPool.inline())
        self.admission = Admission()
        self._selected: dict[str, tuple[str, str]] = {}  # sid -> (env, checkpoint) to show
        self._shared: dict = {}  # session hash -> what its link asked for (app/share.py)
        self.init_example()

    # ------------------------------------------------------------ helpers

    def _checkpoint(self, sid, value, env_id, check=False):  # check: refused if not checkable
        from dt_playground.serve import catalogue  # imports torch: on first use

        return critic_of(catalogue.resolve(value, env_id, self.store.owned(sid)), check)

    def _video(self, render, episodes, progress, sid, stem: str, path=None, **kwargs):
        """``render(episodes, path)`` on a worker into a fresh session video; a failure
        says that the episode itself ran."""
        path = path or self.store.video_path(sid, stem)
        try:
            return self.pool.run(
                "interactive",
                render,
                episodes,
                str(path),
                progress=progress_steps(progress, "rendering video"),
                **kwargs,
            )
        except RenderError as exc:
            msg = f"The episode ran (see plots) but its video could not be made: {exc}"
            raise gr.Error(scrub_paths(msg), print_exception=False) from None

    def use_pool(self, pool: WorkerPool) -> None:
        """Run the heavy calls on ``pool``; as many plays at once as it has interactive
        workers (2 in-process)."""
        self.pool = pool
        self.slots = PlaySlots(2 if pool.inline_mode else max(1, pool.sizes["interactive"]))

    def _turn(self, progress):
        """A play slot for a whole play (serve/admission.py: `PlaySlots`), saying where
        a waiting request stands."""
        return self.slots.turn(lambda text: progress(0, desc=text))

    def _cheap(self, request) -> bool:
        return self.admission.cheap(session_key(request))

    # ------------------------------------------------------------ lists and arrival

    @boundary
    def on_env_change(
        self, env_id: str, checkpoint: str | None, sid: str | None, request: gr.Request = None
    ):
        """The env's checkpoint list (pretrained + this session's); the shown checkpoint
        stays when it belongs to the env (an upload that switched the env), so the
        update is idempotent and triggers nothing when nothing changed."""
        if not self._cheap(request):
            return gr.skip()
        choices = layout.choices(env_id, self.store.owned(sid))
        values = [v for _, v in choices]
        chosen = self._selected.pop(sid, None) if isinstance(sid, str) else None
        if chosen is not None and chosen[0] == env_id and chosen[1] in values:
            checkpoint = chosen[1]  # an upload switched the env: the page may still send
        link = self.shared(request)
        if link is not None and link.env == env_id and link.checkpoint in values:
            checkpoint = link.checkpoint  # a link's choice, set as the page loads
        value = checkpoint if checkpoint in values else (values[0] if values else None)
        return gr.Dropdown(choices=choices, value=value)

    @boundary
    def on_checkpoint_change(
        self, env_id: str, checkpoint: str, sid: str | None = None, request: gr.Request = None
    ):
        """Target slider range and the dataset line, from config.json alone (no model)."""
        if not self._cheap(request):
            return gr.skip(), gr.skip()
        if not checkpoint:
            return (
                gr.Slider(),
                "No checkpoint for this environment yet: train one in the Train tab.",
            )
        try:
            dataset = card_views.dataset_of(env_id, checkpoint, self.store.owned(sid))
        except (PlaygroundError, CheckpointError) as exc:
            return gr.Slider(), f"⚠️ {exc}"
        r = target_range(dataset, get_spec(env_id).target_presets)
        link, value = self.shared(request), r.value
        if link is not None and (link.env, link.checkpoint) == (env_id, checkpoint):
            value = r.value if link.target == "best" else link.target  # the link's target
        return (
            gr.Slider(minimum=r.minimum, maximum=r.maximum, value=value),
            f"Dataset returns: {r.describe()}",
        )

    @boundary
    def controls(self, env_id: str, checkpoint: str, sid: str | None = None):
        """The `best` box (DTs with a return head or model) and "sample actions"
        (discrete envs only), from the checkpoint's files. A checkpoint without `best`
        hides and clears the box; one with it leaves the tick as the visitor set it (a
        late or repeated update must not untick what they just ticked)."""
        try:
            info = layout.peek_checkpoint(layout.locate(checkpoint, env_id, self.store.owned(sid)))
            best, discrete = bool(info and info.offers_best), get_spec(env_id).discrete
        except (PlaygroundError, CheckpointError):
            best, discrete = False, True
        shown = gr.Checkbox(visible=True) if best else gr.Checkbox(value=False, visible=False)
        return shown, gr.Checkbox(visible=discrete)

    @boundary
    def arrival(
        self, env_id: str, checkpoint: str, sid: str | None = None, request: gr.Request = None
    ):
        """What the Sweep and Dataset tabs and the re-prompt box show for a checkpoint,
        read from its files (no rollout, no torch)."""
        if not self._cheap(request):
            return (gr.skip(),) * 8
        owned = self.store.owned(sid)
        return (
            *card_views.sweep_view(env_id, checkpoint, owned),
            *card_views.dataset_view(env_id, checkpoint, owned),
            widgets.tagged_example(
                [env_id, checkpoint], card_views.schedule_example(env_id, checkpoint, owned)
            ),
        )

    @boundary
    def compare_on_arrival(self, env_id: str, request: gr.Request = None):
        """Every pretrained checkpoint's card of the env (no rollout)."""
        if not self._cheap(request):
            return gr.skip(), gr.skip()
        return card_views.compare_view(env_id)

    # ------------------------------------------------------------ interactive work

    @boundary
    def play(
        self,
        env_id: str,
        checkpoint: str,
        target: float,
        seed: float,
        sampled: bool,
        best: bool = False,
        sid: str | None = None,
        check: bool = False,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Play one episode: summary and plots as soon as it is simulated, then the
        video. ``best``: the model picks its own target; ``check``: its critic acts."""
        with self.admission.interactive(session_key(request), "play"):
            yield from self._play(
                env_id, checkpoint, target, seed, sampled, best, sid, progress, check=check is True
            )

    def _play(
        self,
        env_id,
        checkpoint,
        target,
        seed,
        sampled,
        best,
        sid,
        progress,
        video_path=None,
        check: bool = False,
    ):
        from dt_playground.rollout import episode

        ck = self._checkpoint(sid, checkpoint, env_id, check)
        target = "best" if best is True else target
        with self._turn(progress):
            trace = self.pool.run(
                "interactive",
                episode.play_episode,
                CheckpointRef.of(ck),
                target,
                seed,
                sampled,
                progress=progress_steps(progress, "simulating"),
                check=check,
            )
            summary = episode.episode_summary(trace, ck)  # pyright: ignore[reportArgumentType] (an IQL checkpoint has what it reads)
            source = formatting.source_line(env_id, checkpoint, trace.seed, target, checked=check)
            figs = tuple(
                formatting.with_source(f, source)
                for f in (figures.rtg_figure(trace), figures.reward_figure(trace))
            )
            yield gr.skip(), *figs, _sourced(source, formatting.summary_markdown(summary)), summary
            info = self._video(
                render_trace,
                trace,
                progress,
                sid,
                f"{ck.spec.short_name}-{trace.seed}",
                path=video_path,
                max_frames=MAX_VIDEO_FRAMES,
            )
        summary = {
            **summary,
            "video_frames": info.n_frames,
            "video_seconds": info.duration_s,
            "render_seconds": round(info.seconds, 3),
        }
        yield str(info.path), *figs, _sourced(source, formatting.summary_markdown(summary)), summary

    @boundary
    def play_schedule(
        self,
        env_id: str,
        checkpoint: str,
        schedule: str,
        seed: float,
        sid: str | None,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """One episode re-prompted mid-way ("0:3000,300:500"); the same outputs as
        `play`, with the switches marked."""
        with (
            self.admission.interactive(session_key(request), "re-prompted play"),
            self._turn(progress),
        ):
            from dt_playground.rollout import schedules

            ck = self._checkpoint(sid, checkpoint, env_id)
            trace = self.pool.run(
                "interactive",
                schedules.play_schedule,
                CheckpointRef.of(ck),
                schedule,
                seed,
                progress=progress_steps(progress, "simulating"),
            )
            summary = schedules.schedule_summary(trace, ck, schedule)  # pyright: ignore[reportArgumentType] (an IQL checkpoint has what it reads)
            source = formatting.source_line(
                env_id, checkpoint, trace.seed, schedule=str(schedule).strip()[:60]
            )
            figs = [formatting.with_source(f, source) for f in glance.schedule_figures(trace)]
            md = _sourced(source, formatting.schedule_markdown(summary))
            yield gr.skip(), *figs, md, summary
            info = self._video(
                render_trace,
                trace,
                progress,
                sid,
                f"{ck.spec.short_name}-reprompt-{trace.seed}",
                max_frames=MAX_VIDEO_FRAMES,
            )
            summary = {
                **summary,
                "video_frames": info.n_frames,
                "render_seconds": round(info.seconds, 3),
            }
            yield (
                str(info.path),
                *figs,
                _sourced(source, formatting.schedule_markdown(summary)),
                summary,
            )

    @boundary
    def play_grid(
        self,
        env_id: str,
        checkpoint: str,
        targets: str,
        seed: float,
        sid: str | None,
        check: bool = False,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """The same seed at several targets in one batched rollout: the plot first,
        then one tiled video. ``check``: every tile acted by the DT's critic."""
        with self.admission.interactive(session_key(request), "grid"), self._turn(progress):
            from dt_playground.media import tiles
            from dt_playground.rollout import grid

            ck = self._checkpoint(sid, checkpoint, env_id, check := check is True)
            res = self.pool.run(
                "interactive",
                grid.play_grid,
                CheckpointRef.of(ck),
                targets,
                seed,
                progress=progress_steps(progress, "simulating"),
                check=check,
            )
            summary = res.summary(ck)  # pyright: ignore[reportArgumentType] (an IQL checkpoint has what it reads)
            source = formatting.source_line(env_id, checkpoint, res.seed, checked=check)
            fig = formatting.with_source(glance.grid_reward_figure(res.traces, res.labels), source)
            yield gr.skip(), fig, summary
            info = self._video(
                tiles.grid_video, res, progress, sid, f"{ck.spec.short_name}-grid-{res.seed}"
            )
            yield (
                str(info.path),
                fig,
                {
                    **summary,
                    "video_frames": info.n_frames,
                    "render_seconds": round(info.seconds, 3),
                },
            )

    @staticmethod
    def grid_markdown(summary: dict | None) -> str:
        return formatting.grid_markdown(summary) if summary and summary.get("tiles") else ""

    @boundary
    def attention(
        self,
        env_id: str,
        checkpoint: str,
        target: float,
        seed: float,
        sampled: bool,
        step: float,
        sid: str | None = None,
        request: gr.Request = None,
    ):
        """What the action at one step of the episode attended to (replayed)."""
        with (
            self.admission.interactive(session_key(request), "attention view"),
            self.slots.turn(lambda text: None),
        ):
            from dt_playground.rollout import episode

            ck = self._checkpoint(sid, checkpoint, env_id)
            att = self.pool.run(
                "interactive",
                episode.attention_at,
                CheckpointRef.of(ck),
                target,
                seed,
                step,
                sampled,
            )
            fig = inspect.attention_figure(att)
            source = formatting.source_line(env_id, checkpoint, seed, target)
            return formatting.with_source(fig, f"{source} · step {int(step)}"), att

    @boundary
    def upload(self, file: str | None, env_id: str, sid: str | None, request: gr.Request = None):
        """A zipped checkpoint folder (ours, or a `transformers` DT folder with its stats):
        safetensors + JSON only. Returns its env and checkpoint list (into hidden copies:
        `show_own` then selects it, so a refusal marks no input of the page), a line and
        the session."""
        with self.admission.interactive(session_key(request), "upload"):
            from dt_playground.serve import catalogue

            sid, cid, ck = catalogue.import_upload(self.store, sid, file, env_id)
            env = ck.spec.env_id
            choices = layout.choices(env, self.store.owned(sid))
            return (
                gr.Dropdown(value=env),
                gr.Dropdown(choices=choices, value=cid),
                f"Loaded `{cid}` for {env}.",
                sid,
            )

    @boundary
    def stitching(
        self,
        data: str,
        seed: float,
        history: float,
        sid: str | None = None,
        request: gr.Request = None,
    ):
        """The stitching lab: every method from one start cell of ``data``'s maze, the
        DT with ``history`` steps of context; the success table from the lab's cards."""
        from dt_playground.app import stitch_view

        with self.admission.interactive(session_key(request), "stitching lab run"):
            return stitch_view.stitching_view(
                data, seed, history, self.store.video_path(sid, "stitch")
            ).outputs()

    @boundary
    def stitching_arrival(self, data: str, sid: str | None = None, request: gr.Request = None):
        """The lab's tab on arrival, from its shipped files (replayed, no model run)."""
        from dt_playground.app import stitch_view

        if not self._cheap(request):
            return (gr.skip(),) * 4
        return stitch_view.arrival_view(data, self.store.video_path(sid, "stitch")).outputs()

    # ------------------------------------------------------------ sessions

    def start_session(self) -> str:
        return self.store.new()

    def end_session(self, sid: str | None) -> None:
        if isinstance(sid, str):
            self._selected.pop(sid, None)
        self.store.end(sid)
