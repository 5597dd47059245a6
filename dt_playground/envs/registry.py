"""Environment registry: the one place per-environment facts live.

Adding an environment is one `EnvSpec` entry here plus its behaviour policy in
`experts.py`. Everything else (datasets, models, rollouts, rendering, the app)
reads what it needs from the spec.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from dt_playground.envs import maze
from dt_playground.errors import UnknownEnvError

maze.register()  # StitchMaze-v0, the stitching lab's maze, made like any gymnasium env


@dataclass(frozen=True)
class EnvSpec:
    """Everything the playground needs to know about one environment.

    Attributes:
        env_id: gymnasium id, e.g. ``"LunarLander-v3"``.
        discrete: True for a `Discrete` action space (the model predicts logits).
        max_ep_len: episode cap (the env's own time limit); also the size of the
            model's timestep embedding.
        return_scale: returns-to-go are divided by this before entering the model
            (the DT paper uses 1000 for MuJoCo).
        target_presets: target returns offered before a checkpoint says better.
        random_return / expert_return: reference returns for the normalised
            score (0 = random, 100 = expert). D4RL's for the MuJoCo tasks.
        family: "classic", "box2d", "mujoco" or "grid" (numpy-drawn frames from
            ``env.render()``, as classic); decides how frames are rendered.
        render_every: render every k-th simulation step (about 30 frames per
            second of simulated time).
        video_fps: playback rate of the rendered video.
        render_size: (width, height) of rendered frames.
        alive_bonus: per-step healthy reward, subtracted while training ARS.
        make_kwargs: extra keyword arguments for `gymnasium.make`.
    """

    env_id: str
    discrete: bool
    max_ep_len: int
    return_scale: float
    target_presets: tuple[float, ...]
    random_return: float
    expert_return: float
    family: str = "classic"
    render_every: int = 1
    video_fps: int = 30
    render_size: tuple[int, int] = (480, 480)
    alive_bonus: float = 0.0
    make_kwargs: dict = field(default_factory=dict)

    @property
    def short_name(self) -> str:
        """Lower-case name without version, e.g. ``"lunarlander"``."""
        return self.env_id.split("-")[0].lower()

    def normalised_score(self, ret: float) -> float:
        """D4RL-style score: 0 = random policy, 100 = expert reference."""
        return 100.0 * (ret - self.random_return) / (self.expert_return - self.random_return)


_SPECS = [
    EnvSpec(
        "CartPole-v1",
        discrete=True,
        max_ep_len=500,
        return_scale=100.0,
        target_presets=(50.0, 150.0, 300.0, 500.0),
        random_return=22.0,
        expert_return=500.0,
        render_every=2,
        video_fps=25,
        render_size=(600, 400),
    ),
    EnvSpec(
        "Pendulum-v1",
        discrete=False,
        max_ep_len=200,
        return_scale=1000.0,  # returns reach -1900; at 100 the DT conditioned worse
        target_presets=(-1200.0, -800.0, -400.0, -150.0),
        random_return=-1230.0,
        expert_return=-145.0,
        render_every=1,
        video_fps=20,
        render_size=(400, 400),
    ),
    EnvSpec(
        "LunarLander-v3",
        discrete=True,
        max_ep_len=1000,
        return_scale=100.0,
        target_presets=(-200.0, 0.0, 100.0, 200.0, 280.0),
        random_return=-180.0,
        expert_return=250.0,
        family="box2d",
        render_every=2,
        video_fps=25,
        render_size=(600, 400),
    ),
    # MuJoCo locomotion (the DT paper's tasks). Reference returns are D4RL's.
    EnvSpec(
        "Hopper-v5",
        discrete=False,
        max_ep_len=1000,
        return_scale=1000.0,
        target_presets=(500.0, 1500.0, 2500.0, 3300.0),
        random_return=-20.272305,
        expert_return=3234.3,
        family="mujoco",
        render_every=4,
        video_fps=31,
        render_size=(320, 320),
        alive_bonus=1.0,
    ),
    EnvSpec(
        "HalfCheetah-v5",
        discrete=False,
        max_ep_len=1000,
        return_scale=1000.0,
        target_presets=(0.0, 2000.0, 4000.0, 6000.0),
        random_return=-280.178953,
        expert_return=12135.0,
        family="mujoco",
        render_every=1,
        video_fps=20,
        render_size=(320, 320),
    ),
    EnvSpec(
        "Walker2d-v5",
        discrete=False,
        max_ep_len=1000,
        return_scale=1000.0,
        target_presets=(500.0, 1500.0, 2500.0, 3500.0),
        random_return=1.629008,
        expert_return=4592.3,
        family="mujoco",
        render_every=4,
        video_fps=31,
        render_size=(320, 320),
        alive_bonus=1.0,
    ),
    # The stitching lab's maze (maze.py, dt_playground.stitch): -1 a step, +20 at the goal, a pit.
    EnvSpec(
        maze.ENV_ID,
        discrete=True,
        max_ep_len=maze.MAX_STEPS,
        return_scale=10.0,
        target_presets=(-10.0, 0.0, 9.0, 13.0),
        random_return=-20.0,
        expert_return=13.0,  # the shortest path from the farthest start cell (8 steps)
        family="grid",
        render_every=1,
        video_fps=6,
        render_size=(352, 288),
    ),
]

REGISTRY: dict[str, EnvSpec] = {s.env_id: s for s in _SPECS}


def env_ids() -> list[str]:
    """All registered environment ids, in registry order."""
    return list(REGISTRY)


def get_spec(env_id: str | EnvSpec) -> EnvSpec:
    """Look up a spec; an unknown id raises `UnknownEnvError` listing the valid ones."""
    if isinstance(env_id, EnvSpec):
        return env_id
    try:
        return REGISTRY[env_id]
    except (KeyError, TypeError):
        raise UnknownEnvError(
            f"Unknown environment {env_id!r}. Valid environments: {', '.join(REGISTRY)}"
        ) from None


def make_env(env: str | EnvSpec, render: bool = False) -> gym.Env:
    """Create the gymnasium env for a spec (``render=True`` gives rgb_array frames)."""
    spec = get_spec(env)
    kwargs = dict(spec.make_kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
        if spec.family == "mujoco":
            kwargs["width"], kwargs["height"] = spec.render_size
    return gym.make(spec.env_id, max_episode_steps=spec.max_ep_len, **kwargs)


@functools.cache
def action_scale(env_id: str) -> np.ndarray | None:
    """Half-range of a continuous action space (actions enter and leave the model
    divided by it, so its tanh head spans the whole range); None when discrete.
    Every registered continuous env is symmetric about 0."""
    spec = get_spec(env_id)
    if spec.discrete:
        return None
    env = make_env(spec)
    try:
        return np.asarray(env.action_space.high, dtype=np.float32).copy()  # pyright: ignore[reportAttributeAccessIssue]
    finally:
        env.close()


def space_dims(env: gym.Env) -> tuple[int, int]:
    """(state_dim, act_dim) of an env; act_dim is the number of actions when discrete."""
    obs_dim = int(np.prod(env.observation_space.shape or ()))
    if isinstance(env.action_space, gym.spaces.Discrete):
        return obs_dim, int(env.action_space.n)
    return obs_dim, int(np.prod(env.action_space.shape or ()))


@functools.cache
def env_dims(env_id: str) -> tuple[int, int]:
    """(state_dim, act_dim) of a registered env (act_dim: the number of actions when
    discrete); the env is made once per process and closed."""
    env = make_env(get_spec(env_id))
    try:
        return space_dims(env)
    finally:
        env.close()
