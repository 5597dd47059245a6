"""Gradio layout pieces `app.py` repeats: a caption under a plot, a video beside its
plots, JSON in a collapsed accordion. Layout only: no handlers, no state."""

import gradio as gr

from dt_playground.serve import texts


def caption(key: str) -> gr.Markdown:
    """One line under a plot: how to read it (`texts.CAPTIONS`)."""
    return gr.Markdown(texts.CAPTIONS[key], elem_classes="caption")


def media_row(label: str, captions: list[str]) -> list:
    """A video filling its column beside plots, each with its caption; on a phone the
    columns stack. Returns the video and the plots."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            out = [gr.Video(label=label, autoplay=True)]
        with gr.Column(scale=2, min_width=300):
            for key in captions:
                out.append(gr.Plot(show_label=False))
                caption(key)
    return out


def details(label: str) -> gr.JSON:
    """Machine-readable results, out of the way: a JSON panel in a collapsed accordion."""
    with gr.Accordion("Details", open=False):
        return gr.JSON(label=label)
