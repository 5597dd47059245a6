"""The page's events: every component of `app.tabs` wired to its `app.ui.Handlers` method.

Each interactive event first checks its inputs in a queued step without outputs (a refusal
is a toast and every result stays: `app.checks`), then runs. API names and the order of
their parameters are public: extend at the end, never reorder.
"""

from typing import Any

import gradio as gr

from dt_playground.app import critic_views, share, tabs
from dt_playground.app.checks import CHECK
from dt_playground.checkpoints import layout

ROLLOUTS: dict[str, Any] = {
    "concurrency_limit": 8,
    "concurrency_id": "rollouts",
}  # admission limits each
HEAVY: dict[str, Any] = {"concurrency_limit": 4, "concurrency_id": "heavy"}
RAW: dict[str, Any] = {
    "preprocess": False
}  # numbers reach the library as sent; it checks and explains them
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
CLEAR_RESULTS = "() => [null, null, null, '', null, null, null, null, null]"


def checked(button, check, run, inputs, outputs, api_name, js=None, **kwargs):
    """``button`` runs ``check`` (no outputs: a refusal is a toast and nothing else
    changes), then, if it passed, ``run``; returns the run's event."""
    return button.click(check, inputs, None, js=js, **CHECK).success(
        run, inputs, outputs, api_name=api_name, **kwargs
    )


def wire(demo: gr.Blocks, h, default_env: str, first: list) -> None:
    """Lay out the page (`app.tabs.page`) inside ``demo`` and wire its events to ``h``."""
    session = gr.State(None, delete_callback=h.end_session, time_to_live=6 * 3600)
    c = tabs.page(layout.envs_with_checkpoints(), default_env, first)
    env, ckpt, target, best = c.env, c.ckpt, c.target, c.best
    picked = [env, ckpt, session]
    demo.load(h.start_session, None, session, **PRIVATE)
    env.change(h.on_env_change, picked, ckpt, api_name="checkpoints")
    env.change(h.compare_on_arrival, env, [c.cmp_plot, c.cmp_json], **PRIVATE)
    env.change(h.training_status, [env, session], c.train_md, **PRIVATE)
    ckpt.change(
        h.on_checkpoint_change,
        picked,
        [target, c.marks],
        api_name="target_range",
        trigger_mode="always_last",
    )
    demo.load(h.on_checkpoint_change, picked, [target, c.marks], **PRIVATE)
    for fn, outs in (
        (h.arrival, c.arrival_out),
        (h.controls, [best, c.sampled]),
        (h.critic_controls, c.critic_out),
    ):
        ckpt.change(fn, picked, outs, trigger_mode="always_last", **PRIVATE)
        demo.load(fn, picked, outs, **PRIVATE)
    # Results made by another env or checkpoint go (in the page: nothing to wait for).
    ckpt.change(
        None,
        None,
        [*c.play_out, c.grid_video, c.grid_plot, c.grid_json, c.att_plot],
        js=CLEAR_RESULTS,
        **PRIVATE,
    )
    demo.load(h.compare_on_arrival, env, [c.cmp_plot, c.cmp_json], **PRIVATE)
    example = demo.load(
        h.example,
        [env, ckpt],
        [target, *c.play_out],
        concurrency_limit=None,
        show_progress_on=[c.video],
        **PRIVATE,
    )
    # A link's choice (app/share.py): selected, then played once.
    demo.load(
        h.from_query,
        session,
        [env, ckpt, target, c.seed, best, c.schedule, c.link_query, c.play_check, *c.play_out],
        show_progress_on=[c.video],
        **ROLLOUTS,
        **PRIVATE,
    )
    c.link_query.change(None, c.link_query, None, js=share.SET_QUERY, **PRIVATE)
    # A visitor who moves first keeps what they chose: an example still on its way is
    # dropped when the env or checkpoint changes or they play.
    gr.on(
        [env.change, ckpt.change, c.play_btn.click, c.schedule_btn.click],
        None,
        cancels=[example],
        **PRIVATE,
    )
    # Each event first checks its inputs in a queued step without outputs (a refusal is
    # a toast and every result stays: app/checks.py), then runs.
    # "check with critic" is each endpoint's optional last parameter (old calls: off).
    play_in = [env, ckpt, target, c.seed, c.sampled, best, session, c.play_check]
    checked(
        c.play_btn,
        h.check_play,
        h.play,
        play_in,
        c.play_out,
        "play",
        js=tabs.TARGET_AS_SHOWN,
        show_progress_on=[c.video],
        **RAW,
        **ROLLOUTS,
    ).success(
        None,
        [env, ckpt, target, c.seed, best, c.play_check],
        None,
        js=share.URL_AFTER_PLAY,
        **PRIVATE,
    )
    sched_in = [env, ckpt, c.schedule, c.seed, session]
    checked(
        c.schedule_btn,
        h.check_schedule,
        h.play_schedule,
        sched_in,
        c.play_out,
        "play_schedule",
        show_progress_on=[c.video],
        **RAW,
        **ROLLOUTS,
    ).success(
        None,
        [env, ckpt, target, c.seed, best, c.schedule],
        None,
        js=share.URL_AFTER_PLAY,
        **PRIVATE,
    )
    c.link_btn.click(None, None, c.link_box, js=share.COPY_LINK, **PRIVATE)
    grid_in = [env, ckpt, c.grid_targets, c.grid_seed, session, c.grid_check]
    checked(
        c.grid_btn,
        h.check_grid,
        h.play_grid,
        grid_in,
        [c.grid_video, c.grid_plot, c.grid_json],
        "play_grid",
        show_progress_on=[c.grid_video],
        **RAW,
        **ROLLOUTS,
    )
    c.grid_json.change(h.grid_markdown, c.grid_json, c.grid_md, **PRIVATE)
    att_in = [env, ckpt, target, c.seed, c.sampled, c.att_step, session]
    checked(
        c.att_btn,
        h.check_attention,
        h.attention,
        att_in,
        [c.att_plot, c.att_json],
        "attention",
        js=tabs.TARGET_AS_SHOWN,
        **RAW,
        **ROLLOUTS,
    )
    checked(
        c.sweep_btn,
        h.check_sweep,
        h.sweep,
        [env, ckpt, c.n_targets, c.n_seeds, c.sweep_seed, session, c.sweep_check],
        [c.sweep_plot, c.sweep_md, c.sweep_json],
        "sweep",
        **HEAVY,
        **RAW,
    )
    checked(
        c.cmp_btn,
        h.check_compare,
        h.compare,
        [env, c.cmp_seeds, c.cmp_seed],
        [c.cmp_plot, c.cmp_json],
        "compare",
        **HEAVY,
        **RAW,
    )
    # Train: refused before the button is locked; unlocked after success or failure
    # (Gradio runs a `.then` step after a success only).
    train_in = [env, c.algo, c.steps, c.klen, c.lr, session]
    locked = c.train_btn.click(h.check_train, train_in, None, **CHECK).success(
        lambda: gr.Button(interactive=False), None, c.train_btn, queue=False, **PRIVATE
    )
    trained = locked.success(
        h.train_model,
        train_in,
        [c.loss_plot, c.train_md, session, c.trained],
        api_name="train",
        show_progress_on=[c.train_md],  # one bar; the curve stays clear
        concurrency_limit=1,
        concurrency_id="train",
        **RAW,
    )
    for after in (trained.then, trained.failure):
        after(lambda: gr.Button(interactive=True), None, c.train_btn, queue=False, **PRIVATE)
    trained.success(h.show_own, [c.trained, session], [env, ckpt], **PRIVATE)
    c.cancel_btn.click(
        h.cancel_training, session, c.train_md, api_name="cancel_training", queue=False
    )
    checked(
        c.ds_btn,
        h.check_dataset,
        h.dataset_view,
        picked,
        [c.hist_plot, c.len_plot, c.qual_plot, c.ds_json],
        "dataset",
    )
    c.up_file.upload(
        h.upload,
        [c.up_file, env, session],
        [c.up_env, c.up_ckpt, c.up_msg, session],
        api_name="upload",
        **ROLLOUTS,
    ).success(h.show_own, [c.up_ckpt, session], [env, ckpt], **PRIVATE)
    checked(
        c.st_btn,
        h.check_stitching,
        h.stitching,
        [c.st_data, c.st_seed, c.st_hist, session],
        c.st_out,
        "stitching",
        show_progress_on=[c.st_video],
        **RAW,
        **ROLLOUTS,
    )
    gr.on(
        [demo.load, c.st_data.change],
        h.stitching_arrival,
        [c.st_data, session],
        c.st_out,
        **PRIVATE,
    )
    # While `best` is ticked, or the checkpoint (IQL) ignores targets, the slider is not
    # the target.
    gr.on(
        [best.change, c.ignores.change],
        critic_views.target_box,
        [best, c.ignores],
        target,
        **PRIVATE,
    )
