"""DT Playground: watch a Decision Transformer play at the return you ask for.

Layout and wiring only: the handlers are `dt_playground.app.ui.Handlers` methods, which
call the library (each part tested without Gradio). Run with ``python app.py``.
"""

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import warnings  # noqa: E402

import gradio as gr  # noqa: E402

from dt_playground.app import formatting, texts, widgets  # noqa: E402
from dt_playground.app.ui import Handlers  # noqa: E402
from dt_playground.checkpoints import layout  # noqa: E402
from dt_playground.envs.seeds import APP_SEED  # noqa: E402
from dt_playground.paths import DATA_DIR  # noqa: E402
from dt_playground.serve.instances import exit_on_sigterm  # noqa: E402
from dt_playground.serve.sessions import SessionStore, clean_dataset_staging  # noqa: E402
from dt_playground.serve.workers import pool_from_env, spawn_without_main  # noqa: E402

ROLLOUTS = {"concurrency_limit": 8, "concurrency_id": "rollouts"}  # admission limits each
RAW = {"preprocess": False}  # numbers reach the library as sent; it checks and explains them
PRIVATE = {"api_visibility": "private"}


def build_demo(store: SessionStore | None = None, example: bool = True) -> gr.Blocks:
    """Layout and wiring. ``store``: the sessions (default: in this instance's own folders);
    ``example``: play the Play tab's arrival example in the background."""
    store = store or SessionStore.for_instance(  # this instance's folders only
        videos_base=gr.utils.get_upload_folder() + "/dtp-videos")
    store.clean_start()
    clean_dataset_staging(DATA_DIR / "datasets")
    h = Handlers(store)
    default_env, first = layout.arrival_choices()
    if example:
        h.start_example(default_env, first[0][1] if first else None)
    with warnings.catch_warnings():  # Gradio 6 prefers launch(theme=, css=): set here, every
        warnings.filterwarnings("ignore", message="The parameters have been moved")  # launcher
        demo = gr.Blocks(title="DT Playground", delete_cache=(1800, 3600), css=texts.APP_CSS,
                         theme=gr.themes.Default(font=texts.FONTS))
    demo.handlers = h  # the app's state: held by the demo, found by `main` and the tests
    with demo:
        session = gr.State(None, delete_callback=h.end_session, time_to_live=6 * 3600)
        gr.Markdown(texts.HEADER, elem_classes="dtp-header")
        with gr.Row(elem_classes="dtp-pickers"):  # side by side on a phone too (CSS)
            env = gr.Dropdown(layout.envs_with_checkpoints(), value=default_env,
                              label="Environment", scale=1, min_width=160)
            # API calls name any env's checkpoint; `layout.locate` checks it.
            ckpt = gr.Dropdown(first, value=first[0][1] if first else None, label="Checkpoint",
                               scale=2, min_width=200, allow_custom_value=True)
        with gr.Tabs(overflow_behavior="wrap"):  # every tab in sight on a phone
            with gr.Tab("Play"):
                with gr.Row(elem_classes="dtp-play-controls"):
                    target = gr.Slider(-300, 400, value=200, step=1, label="Target return",
                                       scale=3, min_width=220, info=texts.INFO["target"])
                    seed = gr.Number(APP_SEED, precision=0, label="Seed", minimum=0, scale=1,
                                     min_width=100)
                    sampled = gr.Checkbox(False, label="Sample actions", scale=1, min_width=100,
                                          info="discrete actions: sample instead of argmax")
                    best = gr.Checkbox(False, label="best: the model picks its own target",
                                       scale=1, visible=False, min_width=160,
                                       info=texts.INFO["best"])
                marks = gr.Markdown(elem_classes="dtp-marks")
                play_btn = gr.Button("Play episode", variant="primary")
                summary_md = gr.Markdown()
                video, rtg_plot, reward_plot = widgets.media_row("Episode", ["rtg", "reward"])
                with gr.Accordion("Re-prompt mid-episode: a target schedule", open=False):
                    gr.Markdown(texts.REPROMPT_NOTE)
                    with gr.Row():
                        schedule, sched_hint = widgets.example_box(
                            "0:3000,300:500", label="Schedule (step:target)", scale=3,
                            min_width=200)
                        schedule_btn = gr.Button("Play with re-prompt", scale=1, min_width=160)
                with gr.Accordion("Attention: what the action at a step looked at", open=False):
                    with gr.Row():
                        att_step = gr.Number(100, precision=0, label="Step", minimum=0)
                        att_btn = gr.Button("Show attention")
                    att_plot = gr.Plot(label="Attention", show_label=False)
                    widgets.caption("attention")
                    att_json = gr.JSON(label="Weights", visible=False)
                with gr.Accordion("Upload a checkpoint (zip of config.json + model.safetensors)",
                                  open=False):
                    up_file = gr.File(file_types=[".zip"], label="Checkpoint zip")
                    up_msg = gr.Markdown()
                summary_json = widgets.details("Summary")
            with gr.Tab("Target grid"):
                gr.Markdown(texts.GRID_NOTE)
                with gr.Row():
                    grid_targets = gr.Textbox("", label="Targets (comma-separated)", scale=3,
                                              placeholder="empty: p10, median, max, 1.5× max",
                                              min_width=200, info=texts.INFO["grid"])
                    grid_seed = gr.Number(APP_SEED, precision=0, label="Seed", minimum=0,
                                          scale=1, min_width=100)
                grid_btn = gr.Button("Play grid", variant="primary")
                grid_md = gr.Markdown()
                grid_video, grid_plot = widgets.media_row("Tiles", ["grid"])
                grid_json = widgets.details("Tiles")
                gr.Markdown(formatting.NORMALISED_SCORE_NOTE)
            with gr.Tab("Sweep"):
                with gr.Row():
                    n_targets = gr.Slider(2, 20, value=8, step=1, label="Targets")
                    n_seeds = gr.Slider(1, 10, value=3, step=1, label="Seeds per target")
                    sweep_seed = gr.Number(APP_SEED, precision=0, label="First seed")
                sweep_btn = gr.Button("Run sweep", variant="primary")
                sweep_md = gr.Markdown()
                sweep_plot = gr.Plot(label="Achieved vs requested", show_label=False)
                widgets.caption("sweep")
                sweep_json = gr.JSON(label="Per target", visible=False)
            with gr.Tab("Compare"):
                gr.Markdown(texts.COMPARE_NOTE)
                with gr.Row():
                    cmp_seeds = gr.Slider(1, 20, value=5, step=1, label="Seeds")
                    cmp_seed = gr.Number(APP_SEED, precision=0, label="First seed")
                cmp_btn = gr.Button("Compare", variant="primary")
                cmp_plot = gr.Plot(label="Return by model", show_label=False)
                widgets.caption("compare")
                cmp_json = widgets.details("Means")
            with gr.Tab("Train"):
                gr.Markdown(texts.TRAIN_NOTE)
                with gr.Row():
                    algo = gr.Radio([("Decision Transformer", "dt"), ("BC", "bc"),
                                     ("%BC (top 10%)", "pbc")], value="dt", label="Model")
                    steps = gr.Slider(50, 5000, value=500, step=50, label="Steps")
                    klen = gr.Slider(1, 50, value=20, step=1, label="Context length K",
                                     info=texts.INFO["K"])
                    lr = gr.Number(1e-3, label="Learning rate")
                with gr.Row():
                    train_btn = gr.Button("Train", variant="primary")
                    cancel_btn = gr.Button("Cancel")
                train_md = gr.Markdown()
                loss_plot = gr.Plot(label="Loss", show_label=False)
                widgets.caption("loss")
            with gr.Tab("Dataset"):
                ds_btn = gr.Button("Reload the dataset behind this checkpoint")
                with gr.Row():
                    hist_plot = gr.Plot(label="Returns", min_width=300, show_label=False)
                    len_plot = gr.Plot(label="Episode lengths", min_width=300, show_label=False)
                qual_plot = gr.Plot(label="Quality levels", show_label=False)
                widgets.caption("dataset")
                ds_json = widgets.details("Summary")
            with gr.Tab("Stitching"):
                gr.Markdown(texts.STITCH_NOTE)
                with gr.Row():
                    st_data = gr.Radio(["halves", "random-walks"], value="halves", label="Data")
                    st_seed = gr.Number(1_000_000, precision=0, label="Seed", minimum=0)
                    st_hist = gr.Slider(1, 20, value=20, step=1, label="DT history (steps)")
                st_btn = gr.Button("Play every method", variant="primary")
                st_md = gr.Markdown()
                st_video, st_plot = widgets.media_row("DT's episode", ["stitch"])
                st_table = gr.Dataframe(headers=texts.STITCH_HEADERS, label="Success, card seeds")
            with gr.Tab("About"):
                gr.Markdown(texts.ABOUT)

        play_out = [video, rtg_plot, reward_plot, summary_md, summary_json]
        arrival_out = [sweep_plot, sweep_md, sweep_json, hist_plot, len_plot, qual_plot,
                       ds_json, sched_hint]
        demo.load(h.start_session, None, session, **PRIVATE)
        env.change(h.on_env_change, [env, ckpt, session], ckpt, api_name="checkpoints")
        env.change(h.compare_on_arrival, env, [cmp_plot, cmp_json], **PRIVATE)
        env.change(h.training_status, [env, session], train_md, **PRIVATE)
        ckpt.change(h.on_checkpoint_change, [env, ckpt, session], [target, marks],
                    api_name="target_range", trigger_mode="always_last")
        for fn, outs in ((h.on_checkpoint_change, [target, marks]), (h.arrival, arrival_out),
                         (h.controls, [best, sampled])):
            if fn != h.on_checkpoint_change:
                ckpt.change(fn, [env, ckpt, session], outs, trigger_mode="always_last", **PRIVATE)
            demo.load(fn, [env, ckpt, session], outs, **PRIVATE)
        demo.load(h.compare_on_arrival, env, [cmp_plot, cmp_json], **PRIVATE)
        example = demo.load(h.example, [env, ckpt], [target, *play_out],
                            concurrency_limit=None, show_progress_on=[video], **PRIVATE)
        # Each interactive event first checks its inputs without touching an output (a
        # refusal is a toast and every result stays), then runs, covering only the video.
        play_in = [env, ckpt, target, seed, sampled, best, session]
        play_btn.click(h.check_play, play_in, None, queue=False, **PRIVATE).success(
            h.play, play_in, play_out, api_name="play", show_progress_on=[video], **RAW,
            **ROLLOUTS)
        # A visitor who moves first keeps what they chose: an example still on its way is
        # dropped when the env or checkpoint changes or they play.
        gr.on([env.change, ckpt.change, play_btn.click, schedule_btn.click], None,
              cancels=[example], **PRIVATE)
        sched_in = [env, ckpt, schedule, seed, session]
        schedule_btn.click(h.check_schedule, sched_in, None, queue=False, **PRIVATE).success(
            h.play_schedule, sched_in, play_out, api_name="play_schedule",
            show_progress_on=[video], **RAW, **ROLLOUTS)
        grid_in = [env, ckpt, grid_targets, grid_seed, session]
        grid_btn.click(h.check_grid, grid_in, None, queue=False, **PRIVATE).success(
            h.play_grid, grid_in, [grid_video, grid_plot, grid_json], api_name="play_grid",
            show_progress_on=[grid_video], **RAW, **ROLLOUTS)
        grid_json.change(h.grid_markdown, grid_json, grid_md, **PRIVATE)
        att_in = [env, ckpt, target, seed, sampled, att_step, session]
        att_btn.click(h.check_attention, att_in, None, queue=False, **PRIVATE).success(
            h.attention, att_in, [att_plot, att_json], api_name="attention", **RAW, **ROLLOUTS)
        sweep_btn.click(h.sweep, [env, ckpt, n_targets, n_seeds, sweep_seed, session],
                        [sweep_plot, sweep_md, sweep_json], api_name="sweep",
                        concurrency_limit=4, concurrency_id="heavy", **RAW)
        cmp_btn.click(h.compare, [env, cmp_seeds, cmp_seed], [cmp_plot, cmp_json],
                      api_name="compare", concurrency_limit=4, concurrency_id="heavy", **RAW)
        train_evt = train_btn.click(lambda: gr.Button(interactive=False), None, train_btn,
                                    queue=False, **PRIVATE)
        train_evt.then(h.train_model, [env, algo, steps, klen, lr, session],
                       [loss_plot, train_md, session, ckpt], api_name="train",
                       show_progress_on=[train_md],  # one bar; the live curve stays clear
                       concurrency_limit=1, concurrency_id="train", **RAW).then(
            lambda: gr.Button(interactive=True), None, train_btn, queue=False, **PRIVATE)
        cancel_btn.click(h.cancel_training, session, train_md, api_name="cancel_training",
                         queue=False)
        ds_btn.click(h.dataset_view, [env, ckpt, session], [hist_plot, len_plot, qual_plot,
                     ds_json], api_name="dataset")
        up_file.upload(h.upload, [up_file, env, session], [env, ckpt, up_msg, session],
                       api_name="upload", **ROLLOUTS)
        st_out = [st_plot, st_video, st_table, st_md]
        st_btn.click(h.stitching, [st_data, st_seed, st_hist, session], st_out,
                     api_name="stitching", show_progress_on=[st_video], **RAW, **ROLLOUTS)
        for trigger in (demo.load, st_data.change):
            trigger(h.stitching_arrival, [st_data, session], st_out, **PRIVATE)
        # While `best` is ticked the slider is not the target.
        best.change(lambda b: gr.Slider(interactive=not b), best, target, **PRIVATE)
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def main() -> None:
    """Serve the app. The page is up before torch loads; then worker processes start
    (rollouts and renders run there, one torch thread each: see `serve/workers.py`;
    DTP_WORKERS=0 keeps them in this process) and the library is warmed."""
    spawn_without_main()  # workers import the library, not this script (Gradio)
    exit_on_sigterm()  # a stopped app removes its own folders
    demo = build_demo(example=False)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                prevent_thread_lock=True)
    from dt_playground.dt.runtime import setup_process

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    h = demo.handlers
    h.use_pool(pool_from_env())
    h.pool.warm()
    setup_process(threads=1)
    default_env, first = layout.arrival_choices()
    h.start_example(default_env, first[0][1] if first else None)
    demo.block_thread()


if __name__ == "__main__":
    main()
