"""Collection: each episode depends only on (seed, index); standard datasets are
collected once per recipe; `pretrain --verify` tells matching, stale and unhashed
checkpoints apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dt_playground.behaviour import collect
from dt_playground.behaviour.collect import (
    DATASETS,
    behaviour_grid,
    behaviour_labels,
    collect_episodes,
    ensure_dataset,
)
from dt_playground.cli.main import main as cli_main
from dt_playground.data.storage import load_episodes, read_collection
from dt_playground.envs.episodes import dataset_sha256, run_episode
from dt_playground.envs.registry import make_env
from dt_playground.zoo.verify import Verified, verify_datasets, verify_table


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "LunarLander-v3", "Hopper-v5"])
def test_episode_depends_only_on_seed_and_index(env_id):
    """Episode i of a collection is the episode its behaviour plays alone from seed + i
    with rng [seed, i]: no policy state leaks from one episode into the next (sticky
    random actions hold state), so a collection's prefix is a smaller collection."""
    grid = behaviour_grid(env_id)
    n = len(grid) + 2
    eps = collect_episodes(env_id, n, seed=5)
    env = make_env(env_id)
    for i in range(n):
        alone = run_episode(
            env, grid[i % len(grid)].make(env), 5 + i, np.random.default_rng([5, i])
        )
        np.testing.assert_array_equal(alone.actions, eps[i].actions)
        np.testing.assert_array_equal(alone.observations, eps[i].observations)
        assert eps[i].behaviour == i % len(grid) and eps[i].seed == 5 + i
    env.close()
    assert dataset_sha256(collect_episodes(env_id, 3, seed=5)) == dataset_sha256(eps[:3])
    assert dataset_sha256(collect_episodes(env_id, 3, seed=6)) != dataset_sha256(eps[:3])


def test_behaviour_labels_name_every_grid_entry():
    for env_id in DATASETS:
        grid = behaviour_grid(env_id)
        labels = behaviour_labels(env_id)
        assert list(labels) == list(range(len(grid)))
        assert len(set(labels.values())) >= len(grid) - 1  # LunarLander lists the expert twice


def test_ensure_dataset_collects_once_per_recipe(tmp_path):
    logs = []
    path = ensure_dataset("CartPole-v1", episodes=6, seed=2, root=tmp_path, log=logs.append)
    assert path == str(tmp_path / "dtp/cartpole/mixed-v0") and len(logs) == 1
    col = read_collection(path)
    assert (col["episodes"], col["seed"], col["env_id"]) == (6, 2, "CartPole-v1")
    eps, _, _ = load_episodes(path)
    assert (
        col["sha256"]
        == dataset_sha256(eps)
        == dataset_sha256(collect_episodes("CartPole-v1", 6, seed=2))
    )
    # same recipe: kept; another count or seed, or a dataset without collection.json: recollected
    ensure_dataset("CartPole-v1", episodes=6, seed=2, root=tmp_path, log=logs.append)
    assert len(logs) == 1
    ensure_dataset("CartPole-v1", episodes=7, seed=2, root=tmp_path, log=logs.append)
    assert len(logs) == 2 and read_collection(path)["episodes"] == 7
    (tmp_path / "dtp/cartpole/mixed-v0/collection.json").unlink()
    ensure_dataset("CartPole-v1", episodes=7, seed=2, root=tmp_path, log=logs.append)
    assert len(logs) == 3


def test_ensure_dataset_names_default_root_datasets_by_id(tmp_path, monkeypatch):
    """Under the default data root the dataset is named by its id, so a checkpoint
    trained on it records no machine path."""
    monkeypatch.setattr(collect, "DEFAULT_DATA_ROOT", tmp_path)
    assert ensure_dataset("CartPole-v1", episodes=3, log=lambda m: None) == "dtp/cartpole/mixed-v0"
    assert (
        read_collection(tmp_path / "dtp/cartpole/mixed-v0")["seed"] == DATASETS["CartPole-v1"].seed
    )


def _fake_checkpoint(root, name, dataset: dict):
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(
        json.dumps({"env_id": "CartPole-v1", "dataset": dataset})
    )


def test_verify_tells_match_mismatch_and_missing_hash(tmp_path, capsys):
    n = DATASETS["CartPole-v1"].episodes
    fresh = collect_episodes("CartPole-v1", n, seed=DATASETS["CartPole-v1"].seed)
    zoo = tmp_path / "zoo"
    _fake_checkpoint(zoo, "good", {"episodes": n, "sha256": dataset_sha256(fresh)})
    _fake_checkpoint(zoo, "prefix", {"episodes": 10, "sha256": dataset_sha256(fresh[:10])})
    _fake_checkpoint(zoo, "stale", {"episodes": n, "sha256": "0" * 64})
    _fake_checkpoint(zoo, "old", {"episodes": n})
    rets = [round(e.ret, 3) for e in fresh]
    _fake_checkpoint(zoo, "old2", {"episodes": n, "returns": rets[:-2] + [-1.0, -1.0]})
    rows, seconds = verify_datasets(["CartPole-v1"], zoo, log=lambda m: None)
    assert {r.checkpoint: r.status for r in rows} == {
        "good": "match",
        "prefix": "match",
        "stale": "MISMATCH",
        "old": "no hash yet",
        "old2": f"no hash yet; returns equal in {n - 2}/{n}",
    }
    assert seconds["CartPole-v1"] > 0
    table = verify_table(rows, seconds)
    assert "2 checkpoint(s) have no dataset.sha256 yet" in table
    assert "1 checkpoint(s) were trained on data this code no longer makes" in table
    # the CLI exits non-zero unless every checkpoint matches
    assert cli_main(["pretrain", "--verify", "--env", "CartPole-v1", "--out", str(zoo)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    for name in ("stale", "old", "old2"):
        (zoo / name / "config.json").unlink()
    assert cli_main(["pretrain", "--verify", "--env", "CartPole-v1", "--out", str(zoo)]) == 0
    assert "All 2 checkpoint(s) match" in capsys.readouterr().out


def test_verify_table_keeps_long_names_apart_from_their_env():
    long = "stitch/random-walks-offline_rl"
    table = verify_table(
        [
            Verified("StitchMaze-v0", long, 3000, "a" * 64, "a" * 64),
            Verified("CartPole-v1", "cartpole-dt", 30, "b" * 64, "b" * 64),
        ],
        {},
    )
    rows = [line.split() for line in table.splitlines()[1:3]]
    assert rows[0][:3] == [long, "StitchMaze-v0", "3000"]
    assert rows[1][:3] == ["cartpole-dt", "CartPole-v1", "30"]
