"""StitchMaze-v0: deterministic per seed, the seed picks the start cell, the cells do what
the lab's design needs (one-way ledge, three ends), frames are clear RGB."""

import gymnasium as gym
import numpy as np
import pytest

from dt_playground.envs import maze
from dt_playground.envs.registry import get_spec, make_env


def _walk(seed: int, n: int = 25):
    env = make_env(maze.ENV_ID)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs.copy()]
    for _ in range(n):
        obs, r, term, trunc, _ = env.step(int(rng.integers(4)))
        out.append(np.append(obs, r))
        if term or trunc:
            break
    return out


def test_registered_and_in_the_registry():
    assert maze.ENV_ID in gym.registry
    spec = get_spec(maze.ENV_ID)
    assert spec.family == "grid" and spec.max_ep_len == maze.MAX_STEPS and spec.discrete


def test_same_seed_same_episode_and_the_seed_picks_the_start():
    for seed in (0, 7, 123):
        a, b = _walk(seed), _walk(seed)
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    env = make_env(maze.ENV_ID)
    starts = {tuple(env.reset(seed=s)[0].astype(int)) for s in range(60)}
    assert starts == set(maze.START_CELLS)


def test_ledge_is_one_way_and_the_three_ends():
    env = maze.StitchMaze()
    env.reset(seed=0, options={"start": maze.MIDDLE})
    obs, r, term, _, _ = env.step(3)  # left, onto the ledge
    assert tuple(obs.astype(int)) == maze.LEDGE and r == maze.STEP_REWARD and not term
    obs, *_ = env.step(1)  # right: no way back up
    assert tuple(obs.astype(int)) == maze.LEDGE
    env.reset(seed=0, options={"start": (maze.GOAL[0], maze.GOAL[1] - 1)})
    _, r, term, _, info = env.step(1)
    assert (r, term, info["goal"]) == (maze.GOAL_REWARD, True, True)
    assert maze.reached_goal([r], term)
    env.reset(seed=0, options={"start": (maze.PRIZE[0], maze.PRIZE[1] + 1)})
    _, r, term, _, info = env.step(3)
    assert (r, term, info["goal"]) == (maze.PRIZE_REWARD, True, False)
    assert not maze.reached_goal([r], term)
    with pytest.raises(ValueError):
        env.reset(seed=0, options={"start": (0, 0)})  # a wall


def test_distances_respect_the_ledge():
    to_goal = maze.distances(maze.GOAL)
    assert to_goal[maze.LEDGE] == -1  # no way from the ledge to the goal
    assert min(to_goal[c] for c in maze.START_CELLS) == 6


def test_frames_are_rgb_at_least_256_px_with_start_goal_and_agent():
    env = make_env(maze.ENV_ID, render=True)
    env.reset(seed=1)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape[2] == 3 and min(frame.shape[:2]) >= 256
    px = maze.CELL_PX

    def centre(cell):
        return tuple(frame[cell[0] * px + 3, cell[1] * px + 3])

    assert centre(maze.GOAL) == maze._COLOURS["goal"]
    assert centre(maze.START_CELLS[0]) in (maze._COLOURS["start"],)
    agent = tuple(env.unwrapped.cell)
    mid = frame[agent[0] * px + px // 2, agent[1] * px + px // 2]
    assert tuple(mid) == maze._COLOURS["agent"]
