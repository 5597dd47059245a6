"""The Gradio boundary of the app's handlers: exceptions become sentences, requests
become session keys, library progress becomes Gradio progress. Imports gradio (like
`ui`, its only user)."""

import functools
import importlib
import inspect
import logging

import gradio as gr

from dt_playground.errors import PlaygroundError, scrub_paths

LOG = logging.getLogger("dt_playground.app")


def rollout_lib(name: str):
    """A `dt_playground.rollout` module, imported on first use: it imports torch, which the
    page's first load does not need."""
    return importlib.import_module(f"dt_playground.rollout.{name}")


def user_error(exc: BaseException) -> gr.Error:
    """What the user sees: our own messages as they are (logged as one line); anything
    else as a short, path-free line (the traceback goes to the server log)."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, PlaygroundError):
        LOG.info("refused: %s", scrub_paths(str(exc))[:200])
        return gr.Error(scrub_paths(str(exc)), print_exception=False)
    LOG.exception("unexpected error in a handler")
    return gr.Error(
        f"Something went wrong on the server ({type(exc).__name__}); the request was not "
        "completed. Other requests are unaffected.",
        print_exception=False,
    )


def boundary(fn):
    """Every handler's exceptions become clear `gr.Error`s (generators included)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise user_error(exc) from None

        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise user_error(exc) from None

    return call


def session_key(request: gr.Request | None) -> str | None:
    """The admission key: Gradio's session hash, which a browser tab and a
    `gradio_client.Client` each have their own of."""
    return getattr(request, "session_hash", None) if request is not None else None


def progress_steps(progress, desc: str):
    return lambda done, total: progress(done / max(total, 1), desc=desc)
