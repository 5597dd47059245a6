"""Gradio layout pieces `app.py` repeats: a caption under a plot, a video beside its
plots, JSON in a collapsed accordion, a textbox that takes examples without overwriting what
was typed. Layout only: no Python handlers, no server state."""

import json

import gradio as gr

from dt_playground.app import texts


def caption(key: str) -> gr.Markdown:
    """One line under a plot: how to read it (`texts.CAPTIONS`)."""
    return gr.Markdown(texts.CAPTIONS[key], elem_classes="caption")


def media_row(label: str, captions: list[str]) -> list:
    """A video filling its column beside plots, each with its caption; on a phone the
    columns stack. Returns the video and the plots."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            out: list[gr.Video | gr.Plot] = [gr.Video(label=label, autoplay=True)]
        with gr.Column(scale=2, min_width=300):
            for key in captions:
                out.append(gr.Plot(show_label=False))
                caption(key)
    return out


def details(label: str) -> gr.JSON:
    """Machine-readable results, out of the way: a JSON panel in a collapsed accordion."""
    with gr.Accordion("Details", open=False):
        return gr.JSON(label=label)


# (example, box, shown, *picked) -> (box, shown): an example is JSON {"for": the pickers'
# values it was made for, "text": its text}. It replaces the box's text only while the box
# still shows the last example it took, and only when it was made for what is picked now:
# text the visitor typed stays, and a late example made for the env or checkpoint picked
# before (its request was slower than the one that followed it) is dropped.
_TAKE_EXAMPLE = """(example, box, shown, ...picked) => {
    let x;
    try { x = JSON.parse(example); } catch (e) { return [box, shown]; }
    const current = JSON.stringify(x && x.for) === JSON.stringify(picked);
    return current && box === shown ? [x.text, x.text] : [box, shown];
}"""


def tagged_example(picked: list, text: str) -> str:
    """The example box's value: ``text``, made for the pickers' values ``picked``."""
    return json.dumps({"for": list(picked), "text": text})


def example_box(value: str, picked: list, **kwargs) -> tuple[gr.Textbox, gr.Textbox]:
    """A textbox and a hidden "example" box to send suggestions to (`tagged_example`,
    made for the values of the components ``picked``). A suggestion lands in the textbox
    only while the visitor has not edited it since the last one, and only if it was made
    for what is picked now (checks run in the page, where the typing and the picking
    happen: neither a late suggestion nor a stale one can overwrite a schedule).
    Returns (textbox, example box)."""
    box = gr.Textbox(value, **kwargs)
    example, shown = gr.Textbox(visible=False), gr.Textbox(value, visible=False)
    example.change(
        None,
        [example, box, shown, *picked],
        [box, shown],
        js=_TAKE_EXAMPLE,
        api_visibility="private",
    )
    return box, example
