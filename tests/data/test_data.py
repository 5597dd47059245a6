import json

import h5py
import numpy as np
import pytest

from dt_playground.behaviour.collect import collect_episodes
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.data.storage import load_episodes, read_collection, write_minari
from dt_playground.data.windows import OfflineDataset, dataset_summary, gather_windows
from dt_playground.envs.episodes import Episode, dataset_sha256, returns_to_go, run_episode
from dt_playground.envs.registry import get_spec, make_env
from dt_playground.errors import DatasetError


def test_returns_to_go_hand_made():
    np.testing.assert_allclose(returns_to_go([1.0, 2.0, 3.0]), [6.0, 5.0, 3.0])
    np.testing.assert_allclose(returns_to_go([-1.0, 0.5]), [-0.5, 0.5])


def _episode(T, S=3, start=0.0, reward=1.0):
    obs = np.arange(start, start + (T + 1) * S, dtype=np.float32).reshape(T + 1, S)
    return Episode(obs, np.arange(T) % 2, np.full(T, reward, np.float32), True, False)


def test_gather_windows_left_pads_with_mask():
    S = np.arange(2 * 6).reshape(2, 6, 1).astype(np.float32) + 1  # nonzero everywhere
    A = np.ones((2, 6, 1), np.float32)
    R = np.arange(12).reshape(2, 6).astype(np.float32)
    w = gather_windows(S, A, R, np.array([0, 1]), np.array([1, 5]), K=4, max_ep_len=10)
    np.testing.assert_array_equal(w["mask"], [[0, 0, 1, 1], [1, 1, 1, 1]])
    np.testing.assert_array_equal(w["states"][0, :, 0], [0, 0, 1, 2])  # padded with zeros
    np.testing.assert_array_equal(w["states"][1, :, 0], [9, 10, 11, 12])
    np.testing.assert_array_equal(w["timesteps"], [[0, 0, 0, 1], [2, 3, 4, 5]])
    np.testing.assert_array_equal(w["rtg"][1, :, 0], [8, 9, 10, 11])
    assert w["rtg"].shape == (2, 4, 1)


def test_offline_dataset_buffers_rtg_and_stats():
    eps = [_episode(3, reward=1.0), _episode(5, start=100.0, reward=2.0)]
    ds = OfflineDataset(eps, get_spec("CartPole-v1"), act_dim=2)
    # rtg of episode 1: 10, 8, 6, 4, 2 scaled by 1/100
    np.testing.assert_allclose(ds.rtg[1, :5], np.array([10, 8, 6, 4, 2]) / 100.0, rtol=1e-6)
    assert ds.rtg[0, 3:].sum() == 0  # padding after the shorter episode
    all_obs = np.concatenate([e.observations[:-1] for e in eps])  # final obs excluded
    np.testing.assert_allclose(ds.norm.state_mean, all_obs.mean(0))
    np.testing.assert_array_equal(ds.actions[0, :3], np.eye(2)[[0, 1, 0]])  # one-hot
    batch = ds.sample(256, 4, np.random.default_rng(0))
    # Length-weighted: the 5-step episode is picked ~5/8 of the time (its states are > 30).
    frac_long = (
        batch["states"][:, -1, 0] * ds.norm.state_std[0] + ds.norm.state_mean[0] > 50
    ).mean()
    assert 0.5 < frac_long < 0.75


def test_summary_quantiles_and_top10():
    eps = [_episode(1, reward=float(r)) for r in range(1, 21)]
    s = dataset_summary(eps)
    assert s["episodes"] == 20 and s["return_min"] == 1 and s["return_max"] == 20
    assert s["return_top10_mean"] == pytest.approx(19.5)  # mean of 19, 20
    assert sum(s["histogram"]["counts"]) == 20
    assert s["return_median"] == pytest.approx(10.5)


def test_collection_is_reproducible_and_spread():
    a = collect_episodes("CartPole-v1", 12, seed=3)
    b = collect_episodes("CartPole-v1", 12, seed=3)
    assert [e.ret for e in a] == [e.ret for e in b]
    assert all(np.array_equal(x.actions, y.actions) for x, y in zip(a, b))
    rets = [e.ret for e in a]
    assert max(rets) == 500 and min(rets) < 100  # expert and near-random both present


def test_minari_round_trip(cartpole_dataset):
    path, episodes = cartpole_dataset
    loaded, env_id, meta = load_episodes(path)
    assert env_id == "CartPole-v1"
    assert len(loaded) == len(episodes)
    for a, b in zip(episodes, loaded):
        np.testing.assert_array_equal(a.observations, b.observations)
        assert len(b.observations) == len(b.actions) + 1  # Minari's T+1 observations
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
        assert a.behaviour == b.behaviour and a.label == b.label != ""
    # The hash is of the content: what was collected and what was read back agree.
    assert dataset_sha256(loaded) == dataset_sha256(episodes) == meta["collection"]["sha256"]
    assert dataset_summary(loaded)["behaviours"] == dataset_summary(episodes)["behaviours"]


def test_sha256_is_canonical_and_sees_every_array():
    """The documented byte form (uint64 T, then float32 LE obs, actions, rewards per
    episode) gives the hash; changing any value, or where an episode ends, changes it."""
    import hashlib

    eps = [_episode(3), _episode(2, start=50.0, reward=-1.0)]
    h = hashlib.sha256()
    for e in eps:
        h.update(np.array([len(e)], "<u8").tobytes())
        h.update(e.observations.astype("<f4").tobytes())
        h.update(np.asarray(e.actions).reshape(len(e), -1).astype("<f4").tobytes())
        h.update(e.rewards.astype("<f4").tobytes())
    assert dataset_sha256(eps) == h.hexdigest()
    # dtype of the inputs does not matter, only their values
    wide = [
        Episode(
            e.observations.astype(np.float64),
            e.actions.astype(np.int32),
            e.rewards.astype(np.float64),
            e.terminated,
            e.truncated,
        )
        for e in eps
    ]
    assert dataset_sha256(wide) == dataset_sha256(eps)
    for field_name in ("observations", "actions", "rewards"):
        changed = [_episode(3), _episode(2, start=50.0, reward=-1.0)]
        arr = getattr(changed[1], field_name).copy()
        arr.flat[-1] += 1
        setattr(changed[1], field_name, arr)
        assert dataset_sha256(changed) != dataset_sha256(eps), field_name
    # the same steps split into episodes differently hash differently
    one = _episode(5)
    a = Episode(one.observations[:3], one.actions[:2], one.rewards[:2], False, True)
    b = Episode(one.observations[2:], one.actions[2:], one.rewards[2:], True, False)
    c = Episode(one.observations[:4], one.actions[:3], one.rewards[:3], False, True)
    d = Episode(one.observations[3:], one.actions[3:], one.rewards[3:], True, False)
    assert dataset_sha256([a, b]) != dataset_sha256([c, d])


def test_collection_json_is_read_defensively(tmp_path, cartpole_dataset):
    import shutil

    shutil.copytree(cartpole_dataset[0], tmp_path / "ds")
    col = read_collection(tmp_path / "ds")
    assert col["env_id"] == "CartPole-v1" and len(col["sha256"]) == 64
    assert col["behaviour_labels"]["0"] == "expert"
    (tmp_path / "ds" / "collection.json").write_text(
        json.dumps({"sha256": 5, "episodes": "many", "behaviour_labels": {"0": ["x"], "1": "ok"}})
    )
    assert read_collection(tmp_path / "ds") == {"behaviour_labels": {"1": "ok"}}
    (tmp_path / "ds" / "collection.json").write_text("[not json")
    with pytest.raises(DatasetError, match="collection.json"):
        read_collection(tmp_path / "ds")


def test_missing_dataset_is_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="collect"):
        load_episodes("dtp/nothing/here-v0", root=tmp_path)


def _copy_dataset(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst / "data" / "main_data.hdf5"


def test_corrupt_dataset_file_refused(cartpole_dataset, tmp_path):
    h5 = _copy_dataset(cartpole_dataset[0], tmp_path / "ds")
    h5.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="Could not read"):
        load_episodes(tmp_path / "ds")


def test_truncated_episode_refused(cartpole_dataset, tmp_path):
    h5 = _copy_dataset(cartpole_dataset[0], tmp_path / "ds")
    with h5py.File(h5, "a") as f:
        obs = f["episode_0/observations"][()]
        del f["episode_0/observations"]
        f["episode_0/observations"] = obs[:-3]  # cut short: fewer observations than T+1
    with pytest.raises(DatasetError, match="episode_0|Episode 0"):
        load_episodes(tmp_path / "ds")


def test_empty_episodes_skipped_all_empty_refused(tmp_path):
    eps = [_episode(4), _episode(3)]
    path = write_minari(eps, "dtp/t/empty-v0", "CartPole-v1", root=tmp_path)
    with h5py.File(path / "data" / "main_data.hdf5", "a") as f:
        for k in ("observations", "actions", "rewards", "terminations", "truncations"):
            data = f[f"episode_1/{k}"][()]
            del f[f"episode_1/{k}"]
            f[f"episode_1/{k}"] = data[:1] if k == "observations" else data[:0]
    loaded, _, meta = load_episodes(path)
    assert len(loaded) == 1 and meta["skipped_empty"] == 1
    with h5py.File(path / "data" / "main_data.hdf5", "a") as f:
        for k in ("observations", "actions", "rewards", "terminations", "truncations"):
            data = f[f"episode_0/{k}"][()]
            del f[f"episode_0/{k}"]
            f[f"episode_0/{k}"] = data[:1] if k == "observations" else data[:0]
    with pytest.raises(DatasetError, match="no non-empty episodes"):
        load_episodes(path)


def test_minari_layout_under_home_dir_by_id(tmp_path, monkeypatch, cartpole_dataset):
    """A dataset a user downloaded with Minari (~/.minari/datasets/<id>) loads by id."""
    import shutil

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    dst = tmp_path / ".minari" / "datasets" / "cartpole" / "user-v0"
    shutil.copytree(cartpole_dataset[0], dst)
    eps, env_id, meta = load_episodes("cartpole/user-v0", root=tmp_path / "nowhere")
    assert env_id == "CartPole-v1" and len(eps) == len(cartpole_dataset[1])
    assert json.loads(meta["env_spec"])["id"] == "CartPole-v1"


def test_minari_mujoco_dataset_by_id_trains(tmp_path, monkeypatch):
    """A dataset laid out like Minari's mujoco/hopper/medium-v0 under ~/.minari
    loads by id, names its env in metadata, and trains a few steps."""
    from dt_playground.training.train import TrainConfig, train

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    env = make_env("Hopper-v5")
    space = env.action_space
    eps = [
        run_episode(
            env,
            lambda o, r: r.uniform(space.low, space.high).astype(np.float32),
            i,
            np.random.default_rng(i),
        )
        for i in range(4)
    ]
    write_minari(
        eps, "mujoco/hopper/medium-v0", "Hopper-v5", root=tmp_path / ".minari" / "datasets"
    )
    loaded, env_id, meta = load_episodes("mujoco/hopper/medium-v0", root=tmp_path / "nothing")
    assert env_id == "Hopper-v5" and len(loaded) == 4
    assert meta["ref_max_score"] == get_spec("Hopper-v5").expert_return
    res = train(
        TrainConfig(
            dataset="mujoco/hopper/medium-v0",
            out=str(tmp_path / "ck"),
            steps=3,
            batch_size=4,
            context_len=3,
            hidden=16,
            n_layers=1,
            eval_episodes=0,
            save_every=0,
        )
    )
    ck = load_checkpoint(res.checkpoint)
    assert ck.config["env_id"] == "Hopper-v5"
    assert ck.config["dataset"]["dataset_id"] == "mujoco/hopper/medium-v0"
    assert ck.config["dataset"]["ref_min_score"] == pytest.approx(-20.272305)
    # No machine paths in the checkpoint: the dataset id, the output folder's name.
    assert ck.config["train"]["dataset"] == "mujoco/hopper/medium-v0"
    assert ck.config["train"]["out"] == "ck"
    assert ck.config["dataset"]["sha256"] == dataset_sha256(eps)
