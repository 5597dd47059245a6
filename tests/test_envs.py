import numpy as np
import pytest

from dt_playground.envs import REGISTRY, UnknownEnvError, get_spec, make_env, space_dims


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
