"""/play_grid and /play_schedule through a real Gradio client (the tiny CartPole zoo)."""

import imageio.v3 as iio
import pytest
from helpers import head_dt_zip, predict

from dt_playground.checkpoints import cache
from dt_playground.rollout import episode, grid, schedules


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


@pytest.fixture(scope="module")
def head_upload(client, cartpole_dataset, tmp_path_factory):
    """A tiny DT with a return head, uploaded through /upload: (its id, the checkpoint).
    (The tiny test zoo's DT has none: `train --return-bins` is opt-in.)"""
    from gradio_client import handle_file

    from dt_playground.checkpoints.checkpoint import load_checkpoint

    z, out = head_dt_zip(cartpole_dataset[0], tmp_path_factory.mktemp("head"))
    _, ck_update, _ = predict(client, handle_file(str(z)), "CartPole-v1", api_name="/upload")
    return ck_update["value"], load_checkpoint(out)


def _path(video):
    return video["video"] if isinstance(video, dict) else video


def test_play_grid_tiles_match_single_plays(client):
    video, fig, summary = predict(
        client, "CartPole-v1", "cartpole-dt", "20, 200,500", 3, api_name="/play_grid"
    )
    ck = cache.get_checkpoint("cartpole-dt")
    assert [t["target"] for t in summary["tiles"]] == [20.0, 200.0, 500.0]
    for tile in summary["tiles"]:
        single = episode.play_episode(ck, tile["target"], 3)
        assert tile["achieved"] == pytest.approx(single.ret, rel=1e-4)
        assert tile["length"] == single.length
    frames = list(iio.imiter(_path(video), plugin="FFMPEG"))
    longest = max(t["length"] for t in summary["tiles"])
    assert len(frames) == summary["video_frames"] == 1 + longest // ck.spec.render_every
    assert iio.immeta(_path(video), plugin="FFMPEG")["codec"] == "h264"
    assert sum(1 for n in _trace_names(fig) if "→" in n) == len(summary["tiles"])  # one per tile


def test_play_grid_defaults_come_from_the_dataset(client):
    _, _, summary = predict(client, "CartPole-v1", "cartpole-dt", "", 0, api_name="/play_grid")
    ck = cache.get_checkpoint("cartpole-dt")
    assert [t["target"] for t in summary["tiles"]] == grid.default_grid_targets(ck)[0]


def test_play_schedule_without_switch_equals_play(client):
    _, _, _, _, plain = predict(
        client, "CartPole-v1", "cartpole-dt", 300, 4, False, api_name="/play"
    )
    video, rtg, reward, md, sched = predict(
        client, "CartPole-v1", "cartpole-dt", "0:300", 4, api_name="/play_schedule"
    )
    assert sched["achieved"] == plain["achieved"] and sched["length"] == plain["length"]
    assert sched["segments"] == [
        {"start": 0, "target": 300.0, "steps": plain["length"], "return": plain["achieved"]}
    ]
    assert sched["video_frames"] == plain["video_frames"]


def test_play_schedule_reports_segments(client):
    *_, md, s = predict(
        client, "CartPole-v1", "cartpole-dt", "0:500,10:5", 4, api_name="/play_schedule"
    )
    assert s["schedule"] == [{"step": 0, "target": 500.0}, {"step": 10, "target": 5.0}]
    assert [seg["start"] for seg in s["segments"]] == [0, 10]
    assert sum(seg["steps"] for seg in s["segments"]) == s["length"]
    assert "from step 10" in md


@pytest.mark.parametrize(
    "ckpt,schedule,message",
    [
        ("cartpole-dt", "300:5", "start at step 0"),
        ("cartpole-dt", "0:1,0:2", "twice"),
        ("cartpole-bc", "0:best", "no return model"),
    ],
)
def test_play_schedule_refusals_are_clear(client, ckpt, schedule, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        predict(client, "CartPole-v1", ckpt, schedule, 0, api_name="/play_schedule")


def test_play_grid_refuses_too_many_tiles(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="1 to 9"):
        predict(
            client, "CartPole-v1", "cartpole-dt", ",".join(["1"] * 10), 0, api_name="/play_grid"
        )


def test_play_schedule_with_best_then_a_number(client, head_upload):
    cid, ck = head_upload
    *_, md, s = predict(
        client,
        "CartPole-v1",
        cid,
        "0:best,10:300",
        0,  # 12 steps
        api_name="/play_schedule",
    )
    assert [seg["target"] for seg in s["segments"]] == ["best", 300.0]
    trace = schedules.play_schedule(ck, "0:best,10:300", 0)
    assert trace.switches == {0: "best", 10: 300.0}
    assert trace.rtg[10] == pytest.approx(300.0) and s["achieved"] == pytest.approx(trace.ret)


def test_play_grid_with_a_best_tile(client, head_upload):
    cid, _ = head_upload
    video, fig, s = predict(client, "CartPole-v1", cid, "50,best", 1, api_name="/play_grid")
    assert [t["target"] for t in s["tiles"]] == [50.0, "best"]
    assert s["tiles"][1]["label"] == "target best" and s["video_frames"] > 1


def _trace_names(plot) -> list[str]:
    import json

    fig = json.loads(plot["plot"]) if isinstance(plot, dict) else plot
    return [t.get("name", "") for t in fig["data"]]


def test_play_best_on_a_head_dt_equals_the_library_and_draws_the_band(client, head_upload):
    """The Play tab's `best` box (a trailing /play parameter); the slider's target
    is ignored. Numeric plays of a head DT draw the predicted return band too."""
    cid, ck = head_upload
    _, rtg, _, md, s = predict(client, "CartPole-v1", cid, 100, 3, False, True, api_name="/play")
    here = episode.play_episode(ck, "best", 3)
    assert s["requested"] == "best" and s["achieved"] == pytest.approx(here.ret)
    assert "**best**" in md
    assert "predicted return p10-p90" in _trace_names(rtg)
    _, rtg, _, _, s = predict(client, "CartPole-v1", cid, 100, 3, False, api_name="/play")
    assert s["requested"] == 100 and "predicted return p10-p90" in _trace_names(rtg)
    _, rtg, _, _, s = predict(client, "CartPole-v1", "cartpole-bc", 100, 3, False, api_name="/play")
    assert "predicted return p10-p90" not in _trace_names(rtg)


def test_play_best_without_a_head_is_refused_clearly(client):
    with pytest.raises(Exception, match="no return model"):
        predict(client, "CartPole-v1", "cartpole-bc", 100, 3, False, True, api_name="/play")
