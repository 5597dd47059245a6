"""DT Playground: watch a Decision Transformer play at the return you ask for.

The entry point: builds the page (`app.tabs` lays it out, `app.wiring` wires its events to
`dt_playground.app.ui.Handlers` methods, which call the library, each part tested without
Gradio) and serves it. Run with ``python app.py``.
"""

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import warnings  # noqa: E402

import gradio as gr  # noqa: E402

from dt_playground.app import tabs, texts  # noqa: E402
from dt_playground.app.ui import Handlers  # noqa: E402
from dt_playground.app.wiring import wire  # noqa: E402
from dt_playground.checkpoints import layout  # noqa: E402
from dt_playground.paths import DATA_DIR  # noqa: E402
from dt_playground.serve.instances import exit_on_sigterm  # noqa: E402
from dt_playground.serve.sessions import SessionStore, clean_dataset_staging  # noqa: E402
from dt_playground.serve.workers import pool_from_env, spawn_without_main  # noqa: E402


def build_demo(store: SessionStore | None = None, example: bool = True) -> gr.Blocks:
    """The app's layout (`app.tabs`) and wiring. ``store`` holds the sessions (default: a
    fresh one in folders of this instance alone); ``example``: play the Play tab's arrival
    example in the background."""
    store = store or SessionStore.for_instance(  # this instance's folders only
        videos_base=gr.utils.get_upload_folder() + "/dtp-videos"
    )
    store.clean_start()
    clean_dataset_staging(DATA_DIR / "datasets")
    h = Handlers(store)
    default_env, first = layout.arrival_choices()
    if example:
        h.start_example(default_env, first[0][1] if first else None)
    with warnings.catch_warnings():  # Gradio 6 prefers launch(theme=, css=): set here, every
        warnings.filterwarnings("ignore", message="The parameters have been moved")  # launcher
        demo = gr.Blocks(
            title="DT Playground",
            delete_cache=(1800, 3600),
            css=texts.APP_CSS,
            theme=gr.themes.Default(font=texts.FONTS),
            js=tabs.KEEP_EMPTY_TARGET,
        )
    demo.handlers = h  # the app's state: held by the demo, found by `main` and the tests
    with demo:
        wire(demo, h, default_env, first)
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def main() -> None:
    """Serve the app. The page is up before torch loads; then worker processes start
    (rollouts and renders run there, one torch thread each: see `serve/workers.py`;
    DTP_WORKERS=0 keeps them in this process) and the library is warmed."""
    spawn_without_main()  # workers import the library, not this script (Gradio)
    exit_on_sigterm()  # a stopped app removes its own folders
    demo = build_demo(example=False)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), prevent_thread_lock=True
    )
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
