"""DT Playground: watch a Decision Transformer play at the return you ask for.

Layout and wiring only: each handler below is a small typed function that
calls `dt_playground.playground` (tested without Gradio) and turns its
`PlaygroundError`s into `gr.Error`s. Run with ``python app.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import functools  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from dt_playground import arrival, folders, formatting, plots, plots_glance, plots_inspect  # noqa: E402
from dt_playground.envs import env_ids, get_spec  # noqa: E402
from dt_playground.errors import PlaygroundError, scrub_paths  # noqa: E402
from dt_playground.jobs import TrainJob, TrainRequest  # noqa: E402
from dt_playground.paths import DATA_DIR  # noqa: E402
from dt_playground.render import RenderError, render_trace  # noqa: E402
from dt_playground.seeds import APP_SEED  # noqa: E402
from dt_playground.sessions import SessionStore, clean_dataset_staging  # noqa: E402
from dt_playground.summary import DatasetSummary, target_range  # noqa: E402
from dt_playground.workers import (  # noqa: E402
    CheckpointRef,
    WorkerPool,
    pool_from_env,
    spawn_without_main,
)


def _theme() -> gr.themes.Base:
    """Gradio's default theme in Source Sans 3 (bundled, 400 and 600): with the default
    Source Sans Pro, bold text fell back to another font glyph by glyph, so the About
    tab's bold leads looked like headings of mixed size."""
    font = gr.themes.LocalFont("Source Sans 3", weights=(400, 600))
    return gr.themes.Default(font=[font, "ui-sans-serif", "system-ui", "sans-serif"])


ABOUT = """
### What you are looking at
A **Decision Transformer** (Chen et al., 2021) treats control as sequence modelling. An episode
is written as a sequence of (return-to-go, state, action) tokens, and a GPT-style causal
transformer learns to predict each action from the recent past: the last *K* steps.

**The return-to-go is a prompt.** Like an LLM told "write a great essay", the model is told
"from here, collect *R* more reward". At each step the prompt shrinks by the reward just
received. Ask for a low return and a well-trained DT plays like the poor episodes in its
data; ask for a high one and it plays like the best.

**What it cannot do.** The model imitates what is in its data, conditioned on outcome. Ask
for more than any episode ever achieved and it saturates near the best behaviour it has seen
(the *Dataset* tab shows that ceiling). And unlike value-based offline RL it does not
reliably *stitch* good pieces of different bad episodes into a better one: it learns which
behaviour went with which outcome, not how to improve on it.

**Baselines.** *BC* clones every action in the data regardless of outcome; *%BC* clones only
the best 10% of episodes. If DT at its top target is no better than %BC, return conditioning
bought nothing but control.

All checkpoints were trained by this project on datasets generated from shipped behaviour
policies and seeds; nothing is downloaded.
"""


_LOG = logging.getLogger("dt_playground.app")
STORE = SessionStore()  # replaced by `build_demo`; handlers look it up at call time
# Where rollouts, renders and sweeps run: in this process until `main` starts worker
# processes (`workers`; the in-process tests keep this one).
POOL = WorkerPool.inline()


def _lib():
    """The library's torch half, imported on first use rather than with the app: the page
    is served before torch has loaded (start-up <= 5 s), and `main` warms it right after
    launch. (Python's import lock makes concurrent first calls safe.)"""
    from dt_playground import playground

    return playground


def _checkpoint(sid, value, env_id):
    """The loaded checkpoint ``value`` names: a pretrained name or one of this session's ids."""
    return _lib().catalogue.resolve(value, env_id, STORE.owned(sid))


def _user_error(exc: BaseException) -> gr.Error:
    """What the user sees: our own messages as they are; anything else as a short,
    path-free line (the traceback goes to the server log)."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, PlaygroundError):
        return gr.Error(scrub_paths(str(exc)))
    _LOG.exception("unexpected error in a handler")
    return gr.Error(
        f"Something went wrong on the server ({type(exc).__name__}); the request was not "
        "completed. Other requests are unaffected."
    )


def boundary(fn):
    """Every handler's exceptions become clear `gr.Error`s (generators included)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise _user_error(exc) from None

        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise _user_error(exc) from None

    return call


# ---------------------------------------------------------------- handlers


@boundary
def on_env_change(env_id: str, sid: str | None):
    """Checkpoint list for the env (pretrained + this session's)."""
    choices = folders.choices(env_id, STORE.owned(sid))
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


@boundary
def on_checkpoint_change(env_id: str, checkpoint: str, sid: str | None = None):
    """Target slider range and marks from the checkpoint's dataset."""
    if not checkpoint:
        return gr.Slider(), "No checkpoint for this environment yet: train one in the Train tab."
    try:  # from config.json alone: no model is loaded for the page's first request
        path = folders.locate(checkpoint, env_id, STORE.owned(sid))
        dataset = DatasetSummary.from_dict(folders.read_json(path / "config.json", "config")
                                           .get("dataset"))
    except (PlaygroundError, folders.CheckpointError) as exc:
        return gr.Slider(), f"⚠️ {exc}"
    r = target_range(dataset, get_spec(env_id).target_presets)
    return (
        gr.Slider(minimum=r.minimum, maximum=r.maximum, value=r.value),
        f"Dataset returns: {r.describe()}",
    )


@boundary
def best_on_checkpoint(env_id: str, checkpoint: str, sid: str | None = None):
    """The Play tab's `best` box, shown for DTs with a return head or a return model
    (from config.json and the folder; the play itself loads and checks both)."""
    try:
        path = folders.locate(checkpoint, env_id, STORE.owned(sid))
        config = folders.read_json(path / "config.json", "config")
        bins = (config.get("model") or {}).get("return_bins") or 0
        own = isinstance(bins, int) and bins > 0
        separate = (path / folders.RETURNS_DIR / "config.json").is_file()
        head = config.get("algo") == "dt" and (own or separate)
    except (PlaygroundError, folders.CheckpointError):
        head = False
    return gr.Checkbox(value=False, visible=head)


@boundary
def play(
    env_id: str,
    checkpoint: str,
    target: float,
    seed: float,
    sampled: bool,
    best: bool = False,
    sid: str | None = None,
    progress=gr.Progress(),
):
    """Play one episode: plots as soon as it is simulated, then the video. ``best``: the
    model picks its own target (DTs with a return head), the slider is ignored."""
    pg = _lib()
    ck = _checkpoint(sid, checkpoint, env_id)
    target = "best" if best is True else target
    progress(0, desc="simulating")
    trace = POOL.run("interactive", pg.play_episode, CheckpointRef.of(ck), target, seed, sampled,
                     progress=lambda d, n: progress(d / n, desc="simulating"))
    summary = pg.episode_summary(trace, ck)
    figs = (plots.rtg_figure(trace), plots.reward_figure(trace))
    yield None, *figs, pg.summary_markdown(summary), summary
    info = _video(render_trace, trace, progress, sid, f"{ck.spec.short_name}-{trace.seed}",
                  max_frames=pg.MAX_VIDEO_FRAMES)
    summary = {
        **summary,
        "video_frames": info.n_frames,
        "video_seconds": info.duration_s,
        "render_seconds": round(info.seconds, 3),
    }
    yield str(info.path), *figs, pg.summary_markdown(summary), summary


@boundary
def attention(
    env_id: str,
    checkpoint: str,
    target: float,
    seed: float,
    sampled: bool,
    step: float,
    sid: str | None = None,
):
    """What the action at one step of the episode attended to (the episode is replayed)."""
    pg = _lib()
    ck = _checkpoint(sid, checkpoint, env_id)
    att = POOL.run("interactive", pg.attention_at, CheckpointRef.of(ck), target, seed, step,
                   sampled)
    return plots_inspect.attention_figure(att), att


@boundary
def sweep(
    env_id: str,
    checkpoint: str,
    n_targets: float,
    n_seeds: float,
    seed: float,
    sid: str | None = None,
    progress=gr.Progress(),
):
    """Achieved vs requested return over targets x seeds, batched."""
    pg = _lib()
    ck = _checkpoint(sid, checkpoint, env_id)
    targets = pg.sweep_targets(ck, n_targets)
    res, refs = POOL.run("background", pg.sweep_with_references, CheckpointRef.of(ck), targets,
                         n_seeds, seed, progress=lambda d, n: progress(d / n, desc="sweeping"))
    fig = plots.sweep_figure(res["rows"], ck.dataset.as_dict(), refs)
    return fig, pg.sweep_markdown(res), {**res, "references": refs}


@boundary
def compare(env_id: str, n_seeds: float, seed: float, progress=gr.Progress()):
    """DT vs BC vs %BC (and DTs of other context lengths) on the same seeds."""
    pg = _lib()
    progress(0, desc="playing every checkpoint")
    results, notes = POOL.run("background", pg.compare_report, env_id, n_seeds, seed)
    return plots.compare_figure(results), pg.compare_table(results, notes)


@boundary
def train_model(
    env_id: str,
    algo: str,
    steps: float,
    context_len: float,
    lr: float,
    sid: str | None,
    progress=gr.Progress(),
):
    """Collect (first use) and train in the background, streaming the loss curve."""
    request = TrainRequest.parse(env_id, algo, steps, context_len, lr)
    session = STORE.get_or_new(sid)
    if session.job is not None and not session.job.done:
        raise PlaygroundError("This session is already training: cancel it first.")
    cid, out = STORE.reserve(session, "trained")
    job = session.job = TrainJob(request, out).start()
    deadline = time.monotonic() + 3600  # the job's own step budget ends it well before
    try:
        while not job.done and time.monotonic() < deadline:
            time.sleep(0.5)
            n = len(job.steps)
            progress(n / request.steps, desc=job.stage)
            yield plots_inspect.loss_figure(job.curve()), job.status(), session.id
    finally:
        job.stop.set()  # the user left or cancelled: stop the thread too
    if job.error:
        STORE.tidy(session)
        raise gr.Error(job.status())
    if out.is_dir():
        STORE.adopt(session, cid, out)
    yield plots_inspect.loss_figure(job.curve()), job.status().replace(out.name, cid), session.id


@boundary
def cancel_training(sid: str | None) -> str:
    """Stop this session's training job (the checkpoint so far is kept)."""
    session = STORE.get(sid)
    if session is None or session.job is None or session.job.done:
        return "No training running."
    session.job.stop.set()
    return "Cancelling…"


@boundary
def dataset_view(env_id: str, checkpoint: str, sid: str | None = None):
    """The return histogram, lengths and quality levels behind a checkpoint."""
    pg = _lib()
    ck = _checkpoint(sid, checkpoint, env_id)
    d = ck.dataset.as_dict()
    info = pg.dataset_overview(ck)
    figs = (plots_inspect.dataset_figure(d), plots_inspect.lengths_figure(d),
            plots_inspect.quality_figure(d))
    return *figs, info


@boundary
def upload(file: str | None, env_id: str, sid: str | None):
    """Accept a zipped checkpoint folder (ours, or a `transformers` DT folder with its
    stats): safetensors + JSON only, never unpickled. Refers to it by an opaque id."""
    sid, cid, ck = _lib().catalogue.import_upload(STORE, sid, file, env_id)
    env = ck.spec.env_id
    choices = folders.choices(env, STORE.owned(sid))
    return gr.Dropdown(value=env), gr.Dropdown(choices=choices, value=cid), \
        f"Loaded `{cid}` for {env}.", sid


# ---------------------------------------------------------------- grid, re-prompts, arrival


def _interactive():
    """`dt_playground.interactive` (imports torch: loaded on first use, as `_lib`)."""
    from dt_playground import interactive

    return interactive


def _video(render, episodes, progress, sid: str | None, stem: str, **kwargs):
    """``render(episodes, path)`` on a worker into a fresh session video (`render_trace`
    or `grid_video`); a failure becomes a message that says the episode itself ran."""
    try:
        return POOL.run("interactive", render, episodes, str(STORE.video_path(sid, stem)),
                        progress=lambda d, n: progress(d / n, desc="rendering video"), **kwargs)
    except RenderError as exc:
        msg = f"The episode ran (see plots) but its video could not be made: {exc}"
        raise gr.Error(scrub_paths(msg)) from None


@boundary
def play_grid(
    env_id: str, checkpoint: str, targets: str, seed: float, sid: str | None,
    progress=gr.Progress(),
):
    """The same seed at several targets ("a,b,c"; empty: the dataset's p10, median,
    max and 1.5x max) in one batched rollout; the plot first, then one tiled video."""
    ia = _interactive()
    ck = _checkpoint(sid, checkpoint, env_id)
    res = POOL.run("interactive", ia.play_grid, CheckpointRef.of(ck), targets, seed,
                   progress=lambda d, n: progress(d / n, desc="simulating"))
    summary = res.summary(ck)
    fig = plots_glance.grid_reward_figure(res.traces, res.labels)
    yield None, fig, summary
    info = _video(ia.grid_video, res, progress, sid, f"{ck.spec.short_name}-grid-{res.seed}")
    yield str(info.path), fig, {**summary, "video_frames": info.n_frames,
                                "render_seconds": round(info.seconds, 3)}


@boundary
def play_schedule(
    env_id: str, checkpoint: str, schedule: str, seed: float, sid: str | None,
    progress=gr.Progress(),
):
    """One episode re-prompted mid-way ("0:3000,300:500": the return-to-go is reset to
    500 at step 300); the same outputs as `play`, with the switches marked."""
    ia = _interactive()
    ck = _checkpoint(sid, checkpoint, env_id)
    trace = POOL.run("interactive", ia.play_schedule, CheckpointRef.of(ck), schedule, seed,
                     progress=lambda d, n: progress(d / n, desc="simulating"))
    summary = ia.schedule_summary(trace, ck, schedule)
    figs = plots_glance.schedule_figures(trace)
    yield None, *figs, formatting.schedule_markdown(summary), summary
    info = _video(render_trace, trace, progress, sid,
                  f"{ck.spec.short_name}-reprompt-{trace.seed}", max_frames=_lib().MAX_VIDEO_FRAMES)
    summary = {**summary, "video_frames": info.n_frames, "render_seconds": round(info.seconds, 3)}
    yield str(info.path), *figs, formatting.schedule_markdown(summary), summary


@boundary
def grid_markdown(summary: dict | None) -> str:
    return formatting.grid_markdown(summary) if summary and summary.get("tiles") else ""


@boundary
def sweep_on_arrival(env_id: str, checkpoint: str, sid: str | None = None):
    """The checkpoint's card sweep, read from its files (no rollout)."""
    return arrival.sweep_view(env_id, checkpoint, STORE.owned(sid))


@boundary
def compare_on_arrival(env_id: str):
    """Every pretrained checkpoint's card of the env (no rollout)."""
    return arrival.compare_view(env_id)


@boundary
def dataset_on_arrival(env_id: str, checkpoint: str, sid: str | None = None):
    """The checkpoint's dataset summary as figures, read from its config."""
    return arrival.dataset_view(env_id, checkpoint, STORE.owned(sid))


@boundary
def schedule_on_arrival(env_id: str, checkpoint: str, sid: str | None = None) -> str:
    return arrival.schedule_example(env_id, checkpoint, STORE.owned(sid))


def start_session() -> str:
    return STORE.new()


def end_session(sid: str | None) -> None:
    STORE.end(sid)


# ---------------------------------------------------------------- layout


def _any_number(payload):
    """Preprocessing for numeric inputs: the library validates them (see `build_demo`)."""
    return payload


def build_demo(store: SessionStore | None = None) -> gr.Blocks:
    """The app's layout and wiring. ``store`` holds the sessions (default: a fresh one
    under the temp folder, emptied now: sessions of an earlier run can't be reached)."""
    global STORE
    STORE = store or SessionStore(videos_root=Path(gr.utils.get_upload_folder()) / "dtp-videos")
    STORE.clean_start()
    clean_dataset_staging(DATA_DIR / "datasets")
    envs = folders.envs_with_checkpoints()
    default_env = "LunarLander-v3" if "LunarLander-v3" in envs else envs[0]
    first = folders.choices(default_env)
    with warnings.catch_warnings():
        # Gradio 6 prefers launch(theme=...); set here, every launcher (main, the tests, a
        # Space) gets the theme.
        warnings.filterwarnings("ignore", message="The parameters have been moved")
        demo = gr.Blocks(title="DT Playground", delete_cache=(1800, 3600), theme=_theme())
    with demo:
        # An opaque session id (server-side state): what the session made is reachable
        # through it only, and deleted when the session ends.
        session = gr.State(None, delete_callback=end_session, time_to_live=6 * 3600)
        gr.Markdown(
            "# DT Playground\nPick an environment, a checkpoint and a target return; "
            "watch the Decision Transformer try to collect exactly that much reward."
        )
        with gr.Row():
            env = gr.Dropdown(env_ids(), value=default_env, label="Environment", scale=1)
            ckpt = gr.Dropdown(
                first,
                value=first[0][1] if first else None,
                label="Checkpoint",
                scale=2,
                # API calls name any env's checkpoint; `folders.locate` checks it.
                allow_custom_value=True,
            )
        with gr.Tabs():
            with gr.Tab("Play"):
                with gr.Row():
                    target = gr.Slider(-300, 400, value=200, step=1, label="Target return", scale=3)
                    # Its range follows the checkpoint in a browser, but an API call never
                    # sees that update, and Gradio's range check would hold every env to the
                    # default one's range. The library checks targets instead
                    # (`pg.parse_target`: finite, within 100x the env's expert return).
                    # (A Slider subclass would make Gradio write an app.pyi stub.)
                    target.preprocess = _any_number
                    seed = gr.Number(APP_SEED, precision=0, label="Seed", minimum=0, scale=1)
                    sampled = gr.Checkbox(False, label="Sample actions (discrete)", scale=1)
                    best = gr.Checkbox(
                        False, label="best: the model picks its own target", scale=1,
                        visible=False, info="Samples a high return from its own predicted "
                        "distribution at every step (Multi-Game DT, §3.3)")
                marks = gr.Markdown()
                play_btn = gr.Button("Play episode", variant="primary")
                summary_md = gr.Markdown()
                with gr.Row(equal_height=False):
                    # At least half the page on desktop; min_width makes the row wrap
                    # (video above the plots) on a phone.
                    video = gr.Video(label="Episode", autoplay=True, height=420, scale=3,
                                     min_width=340)
                    with gr.Column(scale=2, min_width=340):
                        rtg_plot = gr.Plot(label="Return-to-go")
                        reward_plot = gr.Plot(label="Cumulative reward")
                with gr.Accordion("Re-prompt mid-episode: a target schedule", open=False):
                    gr.Markdown(
                        "Rows of `step:target`. At each step the model is prompted anew: its "
                        "return-to-go is reset to the new target, whatever it has collected. "
                        "`best` lets a checkpoint with a return head pick its own."
                    )
                    with gr.Row():
                        schedule = gr.Textbox("0:3000,300:500", label="Schedule (step:target)",
                                              scale=3)
                        schedule_btn = gr.Button("Play with re-prompt", scale=1)
                summary_json = gr.JSON(label="Summary")
                with gr.Accordion("Attention: what the action at a step looked at", open=False):
                    with gr.Row():
                        att_step = gr.Number(100, precision=0, label="Step", minimum=0)
                        att_btn = gr.Button("Show attention")
                    att_plot = gr.Plot(label="Attention")
                    att_json = gr.JSON(label="Weights", visible=False)
                with gr.Accordion(
                    "Upload a checkpoint (zip of config.json + model.safetensors)", open=False
                ):
                    up_file = gr.File(file_types=[".zip"], label="Checkpoint zip")
                    up_msg = gr.Markdown()
            with gr.Tab("Target grid"):
                gr.Markdown(
                    "One seed, several targets, played side by side in one batched rollout. "
                    "Leave the targets empty for the dataset's p10, median and max, and one "
                    "beyond anything in the data."
                )
                with gr.Row():
                    grid_targets = gr.Textbox("", label="Targets (comma-separated)",
                                              placeholder="empty: p10, median, max, 1.5× max",
                                              scale=3)
                    grid_seed = gr.Number(APP_SEED, precision=0, label="Seed", minimum=0, scale=1)
                grid_btn = gr.Button("Play grid", variant="primary")
                grid_md = gr.Markdown()
                with gr.Row(equal_height=False):
                    grid_video = gr.Video(label="Tiles", autoplay=True, height=520, scale=3,
                                          min_width=340)
                    grid_plot = gr.Plot(label="Cumulative reward per tile", scale=2,
                                        min_width=340)
                grid_json = gr.JSON(label="Tiles")
                gr.Markdown(formatting.NORMALISED_SCORE_NOTE)
            with gr.Tab("Sweep"):
                with gr.Row():
                    n_targets = gr.Slider(2, 20, value=8, step=1, label="Targets")
                    n_seeds = gr.Slider(1, 10, value=3, step=1, label="Seeds per target")
                    sweep_seed = gr.Number(APP_SEED, precision=0, label="First seed")
                sweep_btn = gr.Button("Run sweep", variant="primary")
                sweep_md = gr.Markdown()
                sweep_plot = gr.Plot(label="Achieved vs requested")
                sweep_json = gr.JSON(label="Per target", visible=False)
            with gr.Tab("Compare"):
                gr.Markdown(
                    "Every pretrained checkpoint of this environment on the same seeds: "
                    "DT at its dataset's best return, BC and %BC, and DTs with other "
                    "context lengths K where they exist."
                )
                with gr.Row():
                    cmp_seeds = gr.Slider(1, 20, value=5, step=1, label="Seeds")
                    cmp_seed = gr.Number(APP_SEED, precision=0, label="First seed")
                cmp_btn = gr.Button("Compare", variant="primary")
                cmp_plot = gr.Plot(label="Return by model")
                cmp_json = gr.JSON(label="Means")
            with gr.Tab("Train"):
                gr.Markdown(
                    "Train a small model on this environment's dataset (every env's data "
                    "collects in under a minute; the first job of an env collects it, as its "
                    "own stage). One job runs at "
                    "a time; others wait in the queue with their position shown. The "
                    "checkpoint belongs to this browser session only."
                )
                with gr.Row():
                    algo = gr.Radio(
                        [("Decision Transformer", "dt"), ("BC", "bc"), ("%BC (top 10%)", "pbc")],
                        value="dt",
                        label="Model",
                    )
                    steps = gr.Slider(50, 5000, value=500, step=50, label="Steps")
                    klen = gr.Slider(1, 50, value=20, step=1, label="Context length K")
                    lr = gr.Number(1e-3, label="Learning rate")
                with gr.Row():
                    train_btn = gr.Button("Train", variant="primary")
                    cancel_btn = gr.Button("Cancel")
                train_md = gr.Markdown()
                loss_plot = gr.Plot(label="Loss")
            with gr.Tab("Dataset"):
                ds_btn = gr.Button("Reload the dataset behind this checkpoint")
                with gr.Row():
                    hist_plot = gr.Plot(label="Returns")
                    len_plot = gr.Plot(label="Episode lengths")
                qual_plot = gr.Plot(label="Quality levels")
                ds_json = gr.JSON(label="Summary")
            with gr.Tab("About"):
                gr.Markdown(ABOUT)

        # Gradio's own number checks answer a non-number with an empty error; the library
        # checks every number itself and says what is wrong (`pg.parse_count`, ...).
        for number in (seed, grid_seed, att_step, n_targets, n_seeds, sweep_seed, cmp_seeds,
                       cmp_seed, steps, klen, lr):
            number.preprocess = _any_number
        demo.load(start_session, None, session, api_visibility="private")
        env.change(on_env_change, [env, session], ckpt, api_name="checkpoints")
        ckpt.change(
            on_checkpoint_change, [env, ckpt, session], [target, marks], api_name="target_range"
        )
        demo.load(
            on_checkpoint_change, [env, ckpt, session], [target, marks], api_visibility="private"
        )
        play_btn.click(
            play,
            [env, ckpt, target, seed, sampled, best, session],
            [video, rtg_plot, reward_plot, summary_md, summary_json],
            api_name="play",
            concurrency_limit=2,
            concurrency_id="rollouts",
        )
        att_btn.click(
            attention,
            [env, ckpt, target, seed, sampled, att_step, session],
            [att_plot, att_json],
            api_name="attention",
            concurrency_limit=2,
            concurrency_id="rollouts",
        )
        sweep_btn.click(
            sweep,
            [env, ckpt, n_targets, n_seeds, sweep_seed, session],
            [sweep_plot, sweep_md, sweep_json],
            api_name="sweep",
            concurrency_limit=1,
            concurrency_id="heavy",
        )
        cmp_btn.click(
            compare,
            [env, cmp_seeds, cmp_seed],
            [cmp_plot, cmp_json],
            api_name="compare",
            concurrency_limit=1,
            concurrency_id="heavy",
        )
        train_btn.click(
            train_model,
            [env, algo, steps, klen, lr, session],
            [loss_plot, train_md, session],
            api_name="train",
            concurrency_limit=1,
            concurrency_id="train",
        ).then(on_env_change, [env, session], ckpt, api_visibility="private")
        cancel_btn.click(
            cancel_training, session, train_md, api_name="cancel_training", queue=False
        )
        play_grid_evt = grid_btn.click(
            play_grid,
            [env, ckpt, grid_targets, grid_seed, session],
            [grid_video, grid_plot, grid_json],
            api_name="play_grid",
            concurrency_limit=2,
            concurrency_id="rollouts",
        )
        play_grid_evt.then(grid_markdown, grid_json, grid_md, api_visibility="private")
        schedule_btn.click(
            play_schedule,
            [env, ckpt, schedule, seed, session],
            [video, rtg_plot, reward_plot, summary_md, summary_json],
            api_name="play_schedule",
            concurrency_limit=2,
            concurrency_id="rollouts",
        )
        # The `best` box: shown for head DTs; while ticked, the slider is not the target.
        best.change(lambda b: gr.Slider(interactive=not b), best, target,
                    api_visibility="private")
        # Tabs that show something on arrival: cards and dataset summaries, read from the
        # checkpoint's files (no rollout, no torch); the buttons add fresh runs.
        for trigger in (ckpt.change, demo.load):
            trigger(best_on_checkpoint, [env, ckpt, session], best, api_visibility="private")
            trigger(sweep_on_arrival, [env, ckpt, session], [sweep_plot, sweep_md, sweep_json],
                    api_visibility="private")
            trigger(dataset_on_arrival, [env, ckpt, session],
                    [hist_plot, len_plot, qual_plot, ds_json], api_visibility="private")
            trigger(schedule_on_arrival, [env, ckpt, session], schedule,
                    api_visibility="private")
        for trigger in (env.change, demo.load):
            trigger(compare_on_arrival, env, [cmp_plot, cmp_json], api_visibility="private")
        ds_btn.click(
            dataset_view,
            [env, ckpt, session],
            [hist_plot, len_plot, qual_plot, ds_json],
            api_name="dataset",
        )
        up_file.upload(
            upload, [up_file, env, session], [env, ckpt, up_msg, session], api_name="upload"
        )
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def main() -> None:
    """Serve the app. The page is up before torch loads; then the library is warmed and
    the process-wide settings are made, here at the entry point (never as a side effect
    of a library call)."""
    demo = build_demo()
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), prevent_thread_lock=True
    )
    from dt_playground.cpu import setup_process

    global POOL
    # Rollouts and renders run in worker processes, one torch thread each: two plays on
    # two threads of this process would queue for the GIL (see `workers`), and two plays
    # fighting over two OpenMP threads each are slower still (25-107 s vs 2-5 s for a
    # Hopper play under load, benchmarks/grid_bench.py). DTP_WORKERS=0: in this process.
    spawn_without_main()  # workers import the library, not this script (Gradio)
    POOL = pool_from_env()
    POOL.warm()
    _lib()
    setup_process(threads=1)
    demo.block_thread()


if __name__ == "__main__":
    main()
