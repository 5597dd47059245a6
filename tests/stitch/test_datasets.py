"""The lab's datasets: reproducible byte for byte, the shipped folders were trained on
exactly this data, and `halves` has no start-to-goal episode (the point of the lab)."""

import json

import numpy as np

from dt_playground.data.storage import load_episodes
from dt_playground.envs import maze
from dt_playground.envs.episodes import dataset_sha256
from dt_playground.stitch import datasets
from dt_playground.stitch.lab import METHODS, folder


def test_same_recipe_same_bytes_and_minari_round_trip(tmp_path):
    a, b = datasets.collect("halves", 30), datasets.collect("halves", 30)
    assert dataset_sha256(a) == dataset_sha256(b)
    assert dataset_sha256(datasets.collect("halves", 30, seed=1)) != dataset_sha256(a)
    path = datasets.ensure("halves", tmp_path, log=lambda m: None)
    back, env_id, _ = load_episodes(path)
    assert env_id == maze.ENV_ID
    assert dataset_sha256(back) == dataset_sha256(datasets.collect("halves"))


def test_shipped_lab_folders_record_the_hash_of_this_code_s_data():
    fresh = {n: dataset_sha256(datasets.collect(n)) for n in datasets.DATA_NAMES}
    for name in datasets.DATA_NAMES:
        for m in METHODS:
            cfg = json.loads((folder(name, m) / "config.json").read_text())
            assert cfg["dataset"]["sha256"] == fresh[name], f"{name}-{m}"


def test_halves_splits_the_path_and_random_walks_hold_whole_ones():
    halves = datasets.collect("halves")
    assert datasets.starts_to_goal(halves) == 0
    fams = {int(e.behaviour) for e in halves}
    assert fams == {0, 1, 2}
    middle = np.array(maze.MIDDLE, np.float32)
    for e in halves:
        reached = maze.reached_goal(e.rewards, e.terminated)
        passes = (e.observations == middle).all(1).any()
        assert reached == (e.behaviour == 1)
        assert passes == (e.behaviour in (0, 1))  # astray and northern share the middle
    walks = datasets.collect("random-walks", 500)
    assert datasets.starts_to_goal(walks) > 0
