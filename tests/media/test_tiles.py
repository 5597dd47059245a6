"""media.tiles: the grid's tiled video."""

import imageio.v3 as iio
import numpy as np
import pytest
from helpers import gl_or_skip

from dt_playground.checkpoints import cache
from dt_playground.envs.registry import get_spec
from dt_playground.media import replay, tiles
from dt_playground.media.replay import random_trace


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small batched matmuls on a shared 2-core machine: one thread avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hopper():
    return cache.get_checkpoint("hopper-dt")


@pytest.fixture(scope="module")
def gl_backend():
    return gl_or_skip()


def _decoded(path):
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def test_grid_video_tiles_freeze_when_their_episode_ends(tmp_path):
    spec_every = 2  # CartPole renders every 2nd step
    traces = [random_trace("CartPole-v1", 500, seed=s) for s in (0, 1, 2)]
    lengths = [t.length for t in traces]
    info = tiles.render_grid(traces, tmp_path / "g.mp4", size=(150, 100))
    frames = _decoded(info.path)
    assert len(frames) == info.n_frames == 1 + max(lengths) // spec_every
    rows, cols = tiles.grid_shape(3)
    assert (rows, cols) == (2, 2)
    h, w = rows * (tiles.LABEL_H + 100) + tiles.GAP, cols * 150 + tiles.GAP
    assert frames.shape[1:3] == (h, w)
    # The shortest episode's tile (its picture, below the label) stops changing.
    k = int(np.argmin(lengths))
    r, c = divmod(k, cols)
    y, x = r * (tiles.LABEL_H + 100 + tiles.GAP) + tiles.LABEL_H, c * (150 + tiles.GAP)
    pic = frames[:, y + 4 : y + 96, x + 4 : x + 146].astype(int)
    last = lengths[k] // spec_every
    assert np.abs(pic[-1] - pic[last]).mean() < 2.0  # frozen (up to codec noise)
    assert np.abs(pic[last] - pic[0]).mean() > 0.5  # but it did move before
    meta = iio.immeta(info.path, plugin="FFMPEG")
    assert meta["codec"] == "h264"


def test_grid_video_of_hopper(tmp_path, hopper, gl_backend):
    traces = [random_trace("Hopper-v5", 24, seed=s) for s in (0, 1)]
    info = tiles.render_grid(traces, tmp_path / "h.mp4")
    frames = _decoded(info.path)
    tw, th = tiles.tile_size("Hopper-v5")
    assert frames.shape[1:3] == (tiles.LABEL_H + th, 2 * tw + tiles.GAP)
    assert frames[-1, tiles.LABEL_H :, :tw].std() > 5  # a scene in each tile
    assert frames[-1, tiles.LABEL_H :, tw + tiles.GAP :].std() > 5


def test_grid_video_refuses_mixed_envs(tmp_path):
    with pytest.raises(ValueError, match="one env"):
        tiles.render_grid(
            [random_trace("CartPole-v1", 5), random_trace("Pendulum-v1", 5)], tmp_path / "x.mp4"
        )


def _hopper_traces():
    return [random_trace("Hopper-v5", n, seed=s) for n, s in ((30, 1), (45, 2), (60, 3))]


def test_tiles_split_over_two_threads_draw_what_one_thread_does(gl_backend):
    """The grid draws odd tiles on a helper thread (EGL): every frame of every tile is
    the one drawn in turn, ended tiles give None alike, and the tiles differ."""
    traces, spec = _hopper_traces(), get_spec("Hopper-v5")
    n = 1 + 60 // spec.render_every
    in_turn = list(tiles._tiles_in_turn(traces, spec, (64, 48), n))
    split = list(tiles.lockstep_frames(traces, spec, (64, 48), n))
    assert len(split) == len(in_turn) == n
    for a, b in zip(in_turn, split):
        assert [f is None for f in a] == [f is None for f in b]
        for fa, fb in zip(a, b):
            if fa is not None:
                np.testing.assert_array_equal(fa, fb)
    for k, t in enumerate(traces):  # a tile has 1 + length // every frames, then None
        drawn = [i for i, now in enumerate(in_turn) if now[k] is not None]
        assert drawn == list(range(min(n, 1 + t.length // spec.render_every)))
    assert len({t.length for t in traces}) > 1  # tiles that end at different frames
    assert not np.array_equal(in_turn[2][0], in_turn[2][1])  # not one buffer thrice


def test_a_divergent_tile_on_the_helper_thread_raises_here(gl_backend):
    traces, spec = _hopper_traces(), get_spec("Hopper-v5")
    traces[1].rewards[5] += 1.0  # tile 1: drawn by the helper thread on EGL
    with pytest.raises(replay.ReplayDivergenceError):
        list(tiles.lockstep_frames(traces, spec, (64, 48), 4))
    early = tiles.lockstep_frames(_hopper_traces(), spec, (64, 48), 16)
    next(early), next(early)
    early.close()  # stops the helper too: a later grid still renders
    assert len(list(tiles.lockstep_frames(_hopper_traces(), spec, (64, 48), 3))) == 3
