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

import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from dt_playground import playground as pg  # noqa: E402
from dt_playground import plots  # noqa: E402
from dt_playground.envs import env_ids  # noqa: E402

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


def _err(exc: Exception) -> gr.Error:
    return gr.Error(str(exc))


# ---------------------------------------------------------------- handlers


def on_env_change(env_id: str, session_dir: str | None):
    """Checkpoint list for the env (pretrained + this session's)."""
    choices = pg.checkpoint_choices(env_id, _session_roots(session_dir))
    value = choices[0][1] if choices else None
    return gr.Dropdown(choices=choices, value=value)


def on_checkpoint_change(env_id: str, checkpoint: str):
    """Target slider range and marks from the checkpoint's dataset."""
    if not checkpoint:
        return gr.Slider(), "No checkpoint for this environment yet: train one in the Train tab."
    try:
        ck = pg.user_checkpoint(checkpoint, env_id)
    except pg.PlaygroundError as exc:
        return gr.Slider(), f"⚠️ {exc}"
    r = pg.target_range(ck)
    return (
        gr.Slider(minimum=r.minimum, maximum=r.maximum, value=r.value),
        f"Dataset returns: {r.describe()}",
    )


def play(
    env_id: str,
    checkpoint: str,
    target: float,
    seed: float,
    sampled: bool,
    session_dir: str | None,
    progress=gr.Progress(),
):
    """Play one episode: plots as soon as it is simulated, then the video."""
    from dt_playground.render import RenderError, render_trace

    try:
        ck = pg.user_checkpoint(checkpoint, env_id)
        progress(0, desc="simulating")
        trace = pg.play_episode(
            ck, target, seed, sampled, progress=lambda d, n: progress(d / n, desc="simulating")
        )
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    summary = pg.episode_summary(trace, ck)
    figs = (plots.rtg_figure(trace), plots.reward_figure(trace))
    yield None, *figs, pg.summary_markdown(summary), summary
    session = Path(session_dir) if session_dir else pg.shared_dir()
    out = session / "videos" / f"{ck.spec.short_name}-{trace.seed}-{uuid.uuid4().hex[:6]}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        info = render_trace(
            trace,
            out,
            max_frames=pg.MAX_VIDEO_FRAMES,
            progress=lambda d, n: progress(d / n, desc="rendering video"),
        )
    except RenderError as exc:
        msg = f"The episode ran (see plots) but its video could not be made: {exc}"
        raise gr.Error(msg) from None
    summary = {
        **summary,
        "video_frames": info.n_frames,
        "video_seconds": info.duration_s,
        "render_seconds": round(time.perf_counter() - t0, 3),
    }
    yield str(info.path), *figs, pg.summary_markdown(summary), summary


def attention(
    env_id: str, checkpoint: str, target: float, seed: float, sampled: bool, step: float
):
    """What the action at one step of the episode attended to (the episode is replayed)."""
    try:
        ck = pg.user_checkpoint(checkpoint, env_id)
        att = pg.attention_at(ck, target, seed, step, sampled)
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    return plots.attention_figure(att), att


def sweep(
    env_id: str,
    checkpoint: str,
    n_targets: float,
    n_seeds: float,
    seed: float,
    progress=gr.Progress(),
):
    """Achieved vs requested return over targets x seeds, batched."""
    try:
        ck = pg.user_checkpoint(checkpoint, env_id)
        targets = pg.sweep_targets(ck, n_targets)
        res = pg.run_sweep(
            ck, targets, n_seeds, seed, progress=lambda d, n: progress(d / n, desc="sweeping")
        )
        progress(1.0, desc="baselines")
        seeds = [pg.parse_seed(seed) + i for i in range(int(n_seeds))]
        refs = pg.references(env_id, seeds, pg.MAX_EPISODE_STEPS)
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    fig = plots.sweep_figure(res["rows"], ck.config.get("dataset"), refs)
    text = (
        f"Spearman ρ(target, mean achieved) = **{res['spearman']:.2f}** over all targets, "
        f"**{res['spearman_in_data_range']:.2f}** within the dataset's range "
        f"({len(res['rows'])} episodes in {res['seconds']:.1f} s)."
    )
    return fig, text, {**res, "references": refs}


def compare(env_id: str, n_seeds: float, seed: float, progress=gr.Progress()):
    """DT vs BC vs %BC (and DTs of other context lengths) on the same seeds."""
    try:
        progress(0, desc="playing every checkpoint")
        results = pg.compare_models(env_id, n_seeds, seed)
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    table = {k: {"mean": float(sum(v) / len(v)), "episodes": len(v)} for k, v in results.items()}
    return plots.compare_figure(results), table


def train_model(
    env_id: str,
    algo: str,
    steps: float,
    context_len: float,
    lr: float,
    session_dir: str | None,
    progress=gr.Progress(),
):
    """Train in the background and stream the loss curve; one job at a time."""
    try:
        session_dir = session_dir or str(pg.new_session_dir())
        cfg = pg.training_config(env_id, algo, steps, context_len, lr, session_dir)
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    job = pg.TrainJob(cfg).start()
    _JOBS[session_dir] = job
    try:
        while not job.done:
            time.sleep(0.5)
            n = len(job.steps)
            progress(n / cfg.steps, desc=f"step {n}/{cfg.steps}")
            yield plots.loss_figure(job.curve()), f"Training… step {n}/{cfg.steps}", session_dir
    finally:
        job.stop.set()  # the user left or cancelled: stop the thread too
    if job.error:
        raise gr.Error(f"Training failed: {job.error}")
    status = "Cancelled" if len(job.steps) < cfg.steps else "Done"
    yield (
        plots.loss_figure(job.curve()),
        f"{status} after {len(job.steps)} steps: checkpoint `{Path(cfg.out).name}` is now in "
        "the Play tab's list for this environment.",
        session_dir,
    )


def cancel_training(session_dir: str | None) -> str:
    job = _JOBS.get(session_dir or "")
    if job is None or job.done:
        return "No training running."
    job.stop.set()
    return "Cancelling…"


def dataset_view(env_id: str, checkpoint: str):
    """The return histogram, lengths and quality levels behind a checkpoint."""
    try:
        ck = pg.user_checkpoint(checkpoint, env_id)
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    d = ck.config.get("dataset") or {}
    info = pg.dataset_overview(ck)
    return (plots.dataset_figure(d), plots.lengths_figure(d), plots.quality_figure(d), info)


def upload(file: str | None, env_id: str, session_dir: str | None):
    """Accept a zipped checkpoint folder (safetensors + JSON only; never unpickled)."""
    session_dir = session_dir or str(pg.new_session_dir())
    try:
        ck = pg.import_upload(file, session_dir)
    except pg.PlaygroundError as exc:
        raise _err(exc) from None
    env = ck.spec.env_id
    choices = pg.checkpoint_choices(env, _session_roots(session_dir))
    return (
        gr.Dropdown(value=env),
        gr.Dropdown(choices=choices, value=str(ck.path)),
        f"Loaded {ck.name} for {env}.",
        session_dir,
    )


_JOBS: dict[str, pg.TrainJob] = {}


def _session_roots(session_dir: str | None) -> list[Path]:
    if not session_dir:
        return []
    return [Path(session_dir) / "trained", Path(session_dir) / "uploads"]


def start_session() -> str:
    return str(pg.new_session_dir())


def end_session(session_dir: str | None) -> None:
    job = _JOBS.pop(session_dir or "", None)
    if job is not None:
        job.stop.set()
    pg.cleanup_session_dir(session_dir)


# ---------------------------------------------------------------- layout


def _any_number(payload):
    """Preprocessing for the target slider (see `build_demo`)."""
    return payload


def build_demo() -> gr.Blocks:
    envs = pg.envs_with_checkpoints()
    default_env = "LunarLander-v3" if "LunarLander-v3" in envs else envs[0]
    first = pg.checkpoint_choices(default_env)
    with gr.Blocks(title="DT Playground", delete_cache=(1800, 3600)) as demo:
        # Per-session folder (videos, uploads, trained models); removed when the session ends.
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
                # API calls name any env's checkpoint; `pg.user_checkpoint` checks it.
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
                    seed = gr.Number(0, precision=0, label="Seed", minimum=0, scale=1)
                    sampled = gr.Checkbox(False, label="Sample actions (discrete)", scale=1)
                marks = gr.Markdown()
                play_btn = gr.Button("Play episode", variant="primary")
                summary_md = gr.Markdown()
                with gr.Row():
                    video = gr.Video(label="Episode", autoplay=True, height=360)
                    with gr.Column():
                        rtg_plot = gr.Plot(label="Return-to-go")
                        reward_plot = gr.Plot(label="Cumulative reward")
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
            with gr.Tab("Sweep"):
                with gr.Row():
                    n_targets = gr.Slider(2, 20, value=8, step=1, label="Targets")
                    n_seeds = gr.Slider(1, 10, value=3, step=1, label="Seeds per target")
                    sweep_seed = gr.Number(1_000_000, precision=0, label="First seed")
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
                    cmp_seed = gr.Number(2_000_000, precision=0, label="First seed")
                cmp_btn = gr.Button("Compare", variant="primary")
                cmp_plot = gr.Plot(label="Return by model")
                cmp_json = gr.JSON(label="Means")
            with gr.Tab("Train"):
                gr.Markdown(
                    "Train a small model on this environment's dataset (CartPole, "
                    "Pendulum, LunarLander). One job runs at a time; others wait in "
                    "the queue with their position shown."
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
                ds_btn = gr.Button("Show the dataset behind this checkpoint")
                with gr.Row():
                    hist_plot = gr.Plot(label="Returns")
                    len_plot = gr.Plot(label="Episode lengths")
                qual_plot = gr.Plot(label="Quality levels")
                ds_json = gr.JSON(label="Summary")
            with gr.Tab("About"):
                gr.Markdown(ABOUT)

        demo.load(start_session, None, session, api_visibility="private")
        env.change(on_env_change, [env, session], ckpt, api_name="checkpoints")
        ckpt.change(on_checkpoint_change, [env, ckpt], [target, marks], api_name="target_range")
        demo.load(on_checkpoint_change, [env, ckpt], [target, marks], api_visibility="private")
        play_btn.click(
            play,
            [env, ckpt, target, seed, sampled, session],
            [video, rtg_plot, reward_plot, summary_md, summary_json],
            api_name="play",
            concurrency_limit=2,
            concurrency_id="rollouts",
        )
        att_btn.click(
            attention,
            [env, ckpt, target, seed, sampled, att_step],
            [att_plot, att_json],
            api_name="attention",
            concurrency_limit=2,
            concurrency_id="rollouts",
        )
        sweep_btn.click(
            sweep,
            [env, ckpt, n_targets, n_seeds, sweep_seed],
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
        ).then(on_env_change, [env, session], ckpt)
        cancel_btn.click(
            cancel_training, session, train_md, api_name="cancel_training", queue=False
        )
        ds_btn.click(
            dataset_view, [env, ckpt], [hist_plot, len_plot, qual_plot, ds_json], api_name="dataset"
        )
        up_file.upload(
            upload, [up_file, env, session], [env, ckpt, up_msg, session], api_name="upload"
        )
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


if __name__ == "__main__":
    build_demo().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
