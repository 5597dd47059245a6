"""The app through a real Gradio client: launched in-process, called over HTTP."""

import imageio
import pytest
from helpers import predict

from dt_playground.checkpoints import cache
from dt_playground.data.summary import target_range
from dt_playground.rollout import episode
from dt_playground.rollout.policy import DTPolicy, run_episodes


@pytest.fixture(scope="module")
def server(app_client, tiny_zoo):
    return app_client, tiny_zoo


def test_build_demo_without_launch(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    import app

    demo = app.build_demo(example=False)
    names = {d.api_name for d in demo.fns.values() if d.api_name}
    assert {"play", "sweep", "compare", "train", "dataset", "upload", "checkpoints"} <= names


def test_a_late_arrival_example_never_overwrites_the_visitors_choice(tiny_zoo, monkeypatch):
    """The arrival example is dropped (cancelled in the page) as soon as the visitor changes
    the env or checkpoint, or plays: it may land long after they have moved on."""
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    import app

    demo = app.build_demo(example=False)
    fns = list(demo.fns.values())
    example = next(f for f in fns if f.fn == demo.handlers.example)
    by_label = {b.label: b._id for b in demo.blocks.values() if getattr(b, "label", None)}
    buttons = {b.value: b._id for b in demo.blocks.values() if type(b).__name__ == "Button"}
    wanted = {
        (by_label["Environment"], "change"),
        (by_label["Checkpoint"], "change"),
        (buttons["Play episode"], "click"),
        (buttons["Play with re-prompt"], "click"),
    }
    cancelling = {tuple(t) for f in fns if example._id in f.cancels for t in f.targets}
    assert wanted <= cancelling


def test_a_checkpoint_update_never_unticks_best_where_it_is_offered(monkeypatch):
    """The `best` box: a checkpoint with a return model shows it and leaves its tick alone
    (a late or repeated update would untick what the visitor just ticked); one without hides
    and clears it."""
    monkeypatch.delenv("DTP_PRETRAINED_DIR", raising=False)  # the shipped zoo
    import app

    handlers = app.build_demo(example=False).handlers
    offered, _ = handlers.controls("CartPole-v1", "cartpole-dt")
    assert offered.constructor_args == {"visible": True}  # no value: the tick stays
    hidden, sampled = handlers.controls("CartPole-v1", "cartpole-bc")
    assert hidden.constructor_args == {"value": False, "visible": False}
    assert sampled.constructor_args == {"visible": True}  # CartPole's actions are discrete


def _frames(path) -> int:
    """Decode the MP4 (as a browser would have to) and count its frames."""
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()


def test_play_endpoint_matches_library(server):
    client, zoo = server
    ck_path = "cartpole-dt"  # as the dropdown offers it
    video, rtg_plot, reward_plot, md, summary = predict(
        client, "CartPole-v1", ck_path, 250, 7, False, api_name="/play"
    )
    ck = cache.get_checkpoint(ck_path)
    ref = run_episodes(DTPolicy(ck.model, ck.norm, ck.spec), [250.0], [7])[0]
    assert summary["achieved"] == pytest.approx(ref.ret)
    assert summary["length"] == ref.length
    path = video["video"] if isinstance(video, dict) else video
    expected = 1 + ref.length // ck.spec.render_every  # reset frame + every k-th step
    assert _frames(path) == expected == summary["video_frames"]
    assert "Requested" in md


def test_bad_inputs_then_normal_request(server):
    client, zoo = server
    from gradio_client.exceptions import AppError

    ck_path = "cartpole-dt"  # as the dropdown offers it
    with pytest.raises(AppError, match="trained on CartPole-v1, not LunarLander-v3"):
        predict(client, "LunarLander-v3", ck_path, 100, 0, False, api_name="/play")
    with pytest.raises(AppError, match="Seed must be|less than minimum value 0"):
        predict(client, "CartPole-v1", ck_path, 100, -3, False, api_name="/play")
    with pytest.raises(AppError):
        predict(client, "CartPole-v1", ck_path, "lots", 0, False, api_name="/play")
    out = predict(client, "CartPole-v1", ck_path, 100, 0, False, api_name="/play")
    assert out[4]["requested"] == 100


def test_sweep_compare_dataset_endpoints(server):
    client, zoo = server
    ck_path = "cartpole-dt"  # as the dropdown offers it
    fig, text, res = predict(client, "CartPole-v1", ck_path, 3, 2, 100, api_name="/sweep")
    assert len(res["rows"]) == 6 and "Spearman" in text
    assert "BC" in res["references"]
    fig, table = predict(client, "CartPole-v1", 2, 50, api_name="/compare")
    assert len(table) == 2
    *_, info = predict(client, "CartPole-v1", ck_path, api_name="/dataset")
    ck = cache.get_checkpoint(ck_path)
    assert info["episodes"] == ck.config["dataset"]["episodes"]


def test_upload_refuses_non_checkpoint(server, tmp_path):
    client, _ = server
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "evil.zip"
    bad.write_bytes(b"\x80\x04 not a zip at all")
    with pytest.raises(AppError, match="not a zip"):
        predict(client, handle_file(str(bad)), "CartPole-v1", api_name="/upload")


def test_absurd_target_then_normal_request(server):
    client, zoo = server
    from gradio_client.exceptions import AppError

    ck_path = "cartpole-dt"  # as the dropdown offers it
    with pytest.raises(AppError, match="out of range|greater than maximum"):
        predict(client, "CartPole-v1", ck_path, 1e12, 0, False, api_name="/play")
    assert predict(client, "CartPole-v1", ck_path, 50, 0, False, api_name="/play")[4]["seed"] == 0


def test_failed_video_keeps_results_and_server(server, monkeypatch):
    """A video that can't be written is a clear error; the next play still works."""
    client, zoo = server
    from gradio_client.exceptions import AppError

    from dt_playground.app import ui
    from dt_playground.errors import RenderError

    real = ui.render_trace

    def broken(*args, **kwargs):
        raise RenderError("ffmpeg exited with status 1")

    monkeypatch.setattr(ui, "render_trace", broken)
    ck_path = "cartpole-dt"  # as the dropdown offers it
    with pytest.raises(AppError, match="video could not be made: ffmpeg exited"):
        predict(client, "CartPole-v1", ck_path, 100, 1, False, api_name="/play")
    monkeypatch.setattr(ui, "render_trace", real)
    out = predict(client, "CartPole-v1", ck_path, 100, 1, False, api_name="/play")
    assert out[4]["video_frames"] > 0


def test_attention_endpoint(server):
    client, _ = server
    fig, att = predict(
        client, "CartPole-v1", "cartpole-dt", 150, 2, False, 12, api_name="/attention"
    )
    ck = cache.get_checkpoint("cartpole-dt")
    assert att == episode.attention_at(ck, 150, 2, 12)
    assert att["tokens"][-1] == "s t"
    with pytest.raises(Exception, match="Step must be between"):
        predict(client, "CartPole-v1", "cartpole-dt", 150, 2, False, 5000, api_name="/attention")
    with pytest.raises(Exception, match="Step must be between"):
        predict(client, "CartPole-v1", "cartpole-dt", 150, 2, False, -4, api_name="/attention")
    assert predict(client, "CartPole-v1", "cartpole-dt", 150, 2, False, 0, api_name="/attention")[
        1
    ]["tokens"] == ["R t", "s t"]


def test_api_reaches_any_checkpoint_by_name_and_nothing_else(server, tmp_path):
    """The dropdown's and slider's browser-side state never reaches API callers: any
    env's checkpoint by name and any sane target work; other paths are refused."""
    client, zoo = server
    ck = cache.get_checkpoint("cartpole-dt")
    presets = ck.spec.target_presets
    beyond = target_range(ck.dataset, presets).maximum + 200  # past the slider's initial range
    summary = predict(client, "CartPole-v1", "cartpole-bc", beyond, 1, False, api_name="/play")[4]
    assert summary["requested"] == beyond and summary["checkpoint"] == "cartpole-bc"
    with pytest.raises(Exception, match="Unknown checkpoint 'nope'.*cartpole-dt"):
        predict(client, "CartPole-v1", "nope", 100, 0, False, api_name="/play")
    with pytest.raises(Exception, match="Unknown checkpoint"):  # a real checkpoint elsewhere
        predict(client, "CartPole-v1", str(zoo / "cartpole-dt"), 100, 0, False, api_name="/play")
    with pytest.raises(Exception, match="Unknown checkpoint"):
        predict(client, "CartPole-v1", "../zoo", 100, 0, False, api_name="/play")
    with pytest.raises(Exception, match="out of range"):
        predict(client, "CartPole-v1", "cartpole-dt", 1e9, 0, False, api_name="/play")
    after = predict(client, "CartPole-v1", "cartpole-dt", 100, 0, False, api_name="/play")[4]
    assert after["checkpoint"] == "cartpole-dt"  # the server keeps serving


def test_best_box_shows_for_a_dt_with_a_return_model(monkeypatch):
    """hopper-dt has no head but a return model (returns/): the Play tab offers `best`."""
    monkeypatch.delenv("DTP_PRETRAINED_DIR", raising=False)
    from dt_playground.checkpoints.layout import peek_checkpoint
    from dt_playground.paths import pretrained_dir

    def offers_best(name):
        return peek_checkpoint(pretrained_dir() / name).offers_best

    assert offers_best("hopper-dt") is True
    assert offers_best("cartpole-dt") is True  # its own head
    assert offers_best("hopper-bc") is False
    assert offers_best("hopper-dt-k5") is False
    for name in ("hopper-dt", "cartpole-dt", "hopper-bc"):  # the same as the loaded model says
        assert offers_best(name) is cache.get_checkpoint(name).offers_best


def test_the_arrival_example_is_made_again_when_its_video_is_gone(tiny_zoo, monkeypatch):
    """A deleted example video (a cache sweep) would be a blank player: the next page gets
    a freshly made one, with the same episode."""
    from pathlib import Path

    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    import app

    h = app.build_demo(example=False).handlers
    h.start_example("CartPole-v1", "cartpole-dt")
    first = h.example("CartPole-v1", "cartpole-dt")
    video = Path(first[1])
    assert video.is_file()
    video.unlink()
    again = h.example("CartPole-v1", "cartpole-dt")
    assert Path(again[1]).is_file() and again[-1]["achieved"] == first[-1]["achieved"]
