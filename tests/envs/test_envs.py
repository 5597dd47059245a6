import numpy as np
import pytest

from dt_playground.envs.episodes import run_episode
from dt_playground.envs.registry import REGISTRY, get_spec, make_env, space_dims
from dt_playground.errors import UnknownEnvError


def test_unknown_env_lists_valid_ids():
    with pytest.raises(UnknownEnvError) as err:
        get_spec("NoSuchEnv-v0")
    msg = str(err.value)
    assert "NoSuchEnv-v0" in msg
    for env_id in REGISTRY:
        assert env_id in msg


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=lambda s: s.env_id)
def test_registry_entry_makes_its_env(spec):
    env = make_env(spec)
    obs, _ = env.reset(seed=0)
    s, a = space_dims(env)
    assert obs.shape == (s,)
    assert spec.discrete == hasattr(env.action_space, "n")
    assert env.spec.max_episode_steps == spec.max_ep_len
    assert spec.render_every >= 1 and spec.video_fps > 0
    assert list(spec.target_presets) == sorted(spec.target_presets)
    env.close()


def test_normalised_score_endpoints():
    spec = get_spec("Hopper-v5")
    assert spec.normalised_score(spec.random_return) == pytest.approx(0.0)
    assert spec.normalised_score(spec.expert_return) == pytest.approx(100.0)
    assert np.isclose(spec.normalised_score(3234.3), 100.0)


def _random_policy(space):
    if hasattr(space, "n"):
        return lambda obs, rng: int(rng.integers(space.n))
    return lambda obs, rng: rng.uniform(space.low, space.high).astype(np.float32)


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=lambda s: s.env_id)
def test_same_seed_same_episode_and_actions_replay_it(spec):
    """Gymnasium-style determinism, for every registered env: the same seed and policy
    give the same episode, and replaying its actions from that seed (what rendering
    does) retraces its observations and rewards exactly."""
    env = make_env(spec)
    policy = _random_policy(env.action_space)
    a = run_episode(env, policy, 7, np.random.default_rng(7))
    b = run_episode(env, policy, 7, np.random.default_rng(7))
    actions = iter(a.actions)
    replay = run_episode(env, lambda obs, rng: next(actions), 7, np.random.default_rng(0))
    other = run_episode(env, policy, 8, np.random.default_rng(7))
    env.close()
    assert len(a) >= 5
    for ep in (b, replay):
        assert len(ep) == len(a) and ep.terminated == a.terminated
        np.testing.assert_array_equal(ep.observations, a.observations)
        np.testing.assert_array_equal(ep.actions, a.actions)
        np.testing.assert_array_equal(ep.rewards, a.rewards)
    # and the seed matters: another reset seed starts elsewhere
    assert not np.array_equal(other.observations[0], a.observations[0])
