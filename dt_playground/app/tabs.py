"""The page's components, tab by tab: layout only (no handlers, no server state).

`page` builds the header, the pickers and every tab inside the caller's `gr.Blocks`, and
returns the components by name (a `SimpleNamespace`), which `app.py` wires to the handlers.
"""

from types import SimpleNamespace

import gradio as gr

from dt_playground.app import critic_views, formatting, texts, widgets
from dt_playground.envs.seeds import APP_SEED

# The page keeps an emptied target box empty (Gradio's slider would turn it into 0 when
# it loses focus), so the play's check sees the empty box and says so.
KEEP_EMPTY_TARGET = """() => {
  const guard = (e) => {
    const t = e.target;
    if (t && t.matches && t.matches('input[aria-label="number input for Target return"]')
        && t.value.trim() === '') e.stopImmediatePropagation();
  };
  for (const kind of ['blur', 'change', 'focusout']) document.addEventListener(kind, guard, true);
}"""

# (env, checkpoint, target, ...rest) -> the same, with the target as the box shows it: an
# empty box is sent as '' (the check refuses it) instead of the slider's last number.
TARGET_AS_SHOWN = """(...args) => {
  const box = document.querySelector('input[aria-label="number input for Target return"]');
  if (box && box.value.trim() === '') args[2] = '';
  return args;
}"""


def _hidden_pick() -> gr.Dropdown:
    """A hidden copy of a picker: a job's result lands here, and a step that follows selects
    it in the real one (a failed job marks only the copy)."""
    return gr.Dropdown(visible=False, allow_custom_value=True)


def _play_tab(picked: list) -> dict:
    """``picked``: the env and checkpoint pickers (the re-prompt examples are made for them)."""
    with gr.Tab("Play"):
        with gr.Row(elem_classes="dtp-play-controls"):
            target = gr.Slider(
                -300,
                400,
                value=200,
                step=1,
                label="Target return",
                scale=3,
                min_width=220,
                info=texts.INFO["target"],
            )
            seed = gr.Number(
                APP_SEED,
                precision=0,
                label="Seed",
                minimum=0,
                scale=1,
                min_width=100,
                elem_classes="dtp-seed",
            )
            sampled = gr.Checkbox(  # hidden on continuous envs
                False,
                label="Sample actions",
                scale=1,
                min_width=100,
                info="discrete actions: sample instead of argmax",
                elem_classes="dtp-sampled",
            )
            # Before best: on a phone the row's last box takes a line of its own.
            play_check = critic_views.check_box()
            best = gr.Checkbox(
                False,
                label="best: the model picks its own target",
                scale=1,
                visible=False,
                min_width=160,
                info=texts.INFO["best"],
            )
        ignored_md = gr.Markdown(visible=False)  # IQL: the target is not used
        ignores = gr.Checkbox(False, visible=False)  # the checkpoint ignores targets
        marks = gr.Markdown(elem_classes="dtp-marks")
        play_btn = gr.Button("Play episode", variant="primary")
        summary_md = gr.Markdown()
        with gr.Row():
            link_btn = gr.Button("Copy link", size="sm", scale=0, min_width=110)
            link_box = gr.Textbox(
                label="Link to this result", visible=False, scale=4, interactive=False, max_lines=1
            )
            link_query = gr.Textbox(visible=False)  # a link's query, as checked
        video, rtg_plot, reward_plot = widgets.media_row("Episode", ["rtg", "reward"])
        with gr.Accordion("Re-prompt mid-episode: a target schedule", open=False):
            gr.Markdown(texts.REPROMPT_NOTE)
            with gr.Row():
                schedule, sched_hint = widgets.example_box(
                    "0:3000,300:500",
                    picked,
                    label="Schedule (step:target)",
                    scale=3,
                    min_width=200,
                )
                schedule_btn = gr.Button("Play with re-prompt", scale=1, min_width=160)
        with gr.Accordion("Attention: what the action at a step looked at", open=False):
            with gr.Row():
                att_step = gr.Number(100, precision=0, label="Step", minimum=0)
                att_btn = gr.Button("Show attention")
            att_plot = gr.Plot(label="Attention", show_label=False)
            widgets.caption("attention")
            att_json = gr.JSON(label="Weights", visible=False)
        with gr.Accordion(
            "Upload a checkpoint (zip of config.json + model.safetensors)", open=False
        ):
            up_file = gr.File(file_types=[".zip"], label="Checkpoint zip")
            up_msg = gr.Markdown()
            up_env, up_ckpt = _hidden_pick(), _hidden_pick()
        summary_json = widgets.details("Summary")
    del picked
    return locals()


def _grid_sweep_compare_tabs() -> dict:
    with gr.Tab("Target grid"):
        gr.Markdown(texts.GRID_NOTE)
        with gr.Row():
            grid_targets = gr.Textbox(
                "",
                label="Targets (comma-separated)",
                scale=3,
                placeholder="empty: p10, median, max, 1.5× max",
                min_width=200,
                info=texts.INFO["grid"],
            )
            grid_seed = gr.Number(
                APP_SEED, precision=0, label="Seed", minimum=0, scale=1, min_width=100
            )
            grid_check = critic_views.check_box()
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
            sweep_check = critic_views.check_box()
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
    return locals()


def _train_dataset_stitch_tabs() -> dict:
    with gr.Tab("Train"):
        gr.Markdown(texts.TRAIN_NOTE)
        with gr.Row():
            algo = gr.Radio(
                [("Decision Transformer", "dt"), ("BC", "bc"), ("%BC (top 10%)", "pbc")],
                value="dt",
                label="Model",
            )
            steps = gr.Slider(50, 5000, value=500, step=50, label="Steps")
            klen = gr.Slider(
                1, 50, value=20, step=1, label="Context length K", info=texts.INFO["K"]
            )
            lr = gr.Number(1e-3, label="Learning rate")
        with gr.Row():
            train_btn = gr.Button("Train", variant="primary")
            cancel_btn = gr.Button("Cancel")
        train_md = gr.Markdown()
        loss_plot = gr.Plot(label="Loss", show_label=False)
        widgets.caption("loss")
        trained = _hidden_pick()  # the new checkpoint (`Handlers.show_own` selects it)
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
    return locals()


def page(envs: list[str], default_env: str, first: list[tuple[str, str]]) -> SimpleNamespace:
    """The whole page, in the current `gr.Blocks`: the header, the env and checkpoint
    pickers (``first``: the default env's checkpoints) and the tabs."""
    gr.Markdown(texts.HEADER, elem_classes="dtp-header")
    with gr.Row(elem_classes="dtp-pickers"):  # side by side on a phone too (CSS)
        env = gr.Dropdown(envs, value=default_env, label="Environment", scale=1, min_width=160)
        # API calls name any env's checkpoint; `layout.locate` checks it.
        ckpt = gr.Dropdown(
            first,
            value=first[0][1] if first else None,
            label="Checkpoint",
            scale=2,
            min_width=200,
            allow_custom_value=True,
        )
    with gr.Tabs(overflow_behavior="wrap"):  # every tab in sight on a phone
        c = {**_play_tab([env, ckpt]), **_grid_sweep_compare_tabs(), **_train_dataset_stitch_tabs()}
    c = SimpleNamespace(env=env, ckpt=ckpt, **c)
    c.play_out = [c.video, c.rtg_plot, c.reward_plot, c.summary_md, c.summary_json]
    c.arrival_out = [
        c.sweep_plot,
        c.sweep_md,
        c.sweep_json,
        c.hist_plot,
        c.len_plot,
        c.qual_plot,
        c.ds_json,
        c.sched_hint,
    ]
    c.st_out = [c.st_plot, c.st_video, c.st_table, c.st_md]
    c.critic_out = [c.play_check, c.grid_check, c.sweep_check, c.ignores, c.ignored_md]
    return c
