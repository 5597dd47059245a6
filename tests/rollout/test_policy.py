import numpy as np
import pytest
import torch
from helpers import tiny_model, tiny_norm

from dt_playground.envs.registry import action_scale, get_spec
from dt_playground.rollout.policy import DTPolicy, run_episodes


def _policy(env_id, sample=False, use_returns=True):
    model = tiny_model(env_id, use_returns=use_returns)
    return DTPolicy(model, tiny_norm(model), get_spec(env_id), sample=sample)


class Recorder(DTPolicy):
    """Records, at every step, the training-layout window of the acting episodes
    and the actions the policy chose (from its cached per-step features)."""

    def _predict_cached(self, engine, rows, t, returns):
        if not returns:  # the action pass (a return-head pass reads the same window)
            self.log.append([self.window(rows, t), None])
        return super()._predict_cached(engine, rows, t, returns)

    def act(self, rows, t, obs):
        acts = super().act(rows, t, obs)
        self.log[-1][1] = acts
        return acts


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_rollout_action_is_model_prediction_on_window(env_id):
    model = tiny_model(env_id)
    pol = Recorder(model, tiny_norm(model), get_spec(env_id))
    pol.log = []
    traces = run_episodes(pol, [50.0, -20.0], [1, 2], max_steps=30)
    assert len(pol.log) >= 10
    if env_id == "CartPole-v1":  # one episode outlives the other: steps with one row acting
        assert traces[0].length != traces[1].length
        assert min(len(acts) for _, acts in pol.log) == 1
    for win, acts in pol.log:
        x = {k: torch.from_numpy(v) for k, v in win.items()}
        with torch.no_grad():
            out = model(x["rtg"], x["states"], x["actions"], x["timesteps"], x["mask"])[:, -1]
        if get_spec(env_id).discrete:
            assert acts == out.argmax(-1).tolist()
        else:
            scale = action_scale(env_id)  # the env's torque range; the model works in [-1, 1]
            np.testing.assert_allclose(np.stack(acts), out.numpy() * scale, rtol=1e-5, atol=1e-6)


def test_window_matches_training_layout():
    """At step t the window holds normalised states, scaled rtg, past actions, abs timesteps."""
    pol = _policy("CartPole-v1")
    pol.log = []
    pol.__class__ = Recorder
    traces = run_episodes(pol, [80.0], [5], max_steps=12)
    win, _ = pol.log[9]  # step 9, K = 5
    np.testing.assert_array_equal(win["timesteps"][0], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(win["mask"][0], np.ones(5))
    expected_rtg = (80.0 - np.concatenate([[0], np.cumsum(traces[0].rewards)]))[5:10] / 100.0
    np.testing.assert_allclose(win["rtg"][0, :, 0], expected_rtg, rtol=1e-6)
    np.testing.assert_array_equal(win["actions"][0, -1], [0, 0])  # current action unknown
    np.testing.assert_array_equal(win["actions"][0, :-1].argmax(-1), traces[0].actions[5:9])
    early, _ = pol.log[1]
    np.testing.assert_array_equal(early["mask"][0], [0, 0, 0, 1, 1])


def test_rtg_decrements_by_reward():
    traces = run_episodes(_policy("Pendulum-v1"), [-300.0], [0], max_steps=50)
    tr = traces[0]
    np.testing.assert_allclose(tr.rtg, -300.0 - np.concatenate([[0], np.cumsum(tr.rewards)[:-1]]))


@pytest.mark.parametrize("env_id,sample", [("CartPole-v1", True), ("Pendulum-v1", False)])
def test_same_seed_same_trace(env_id, sample):
    a = run_episodes(_policy(env_id, sample), [100.0, 100.0], [3, 4], max_steps=60)
    b = run_episodes(_policy(env_id, sample), [100.0, 100.0], [3, 4], max_steps=60)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.rewards, y.rewards)
    assert not np.array_equal(a[0].rewards, a[1].rewards)  # different seeds differ


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "LunarLander-v3"])
def test_batched_equals_single_runs(env_id):
    targets, seeds = [10.0, 200.0, -100.0], [11, 12, 13]
    batched = run_episodes(_policy(env_id), targets, seeds, max_steps=80)
    for t, s, b in zip(targets, seeds, batched):
        single = run_episodes(_policy(env_id), [t], [s], max_steps=80)[0]
        assert single.length == b.length
        np.testing.assert_allclose(single.ret, b.ret, rtol=1e-6)


def test_trace_json_record():
    tr = run_episodes(_policy("CartPole-v1"), [42.0], [9], max_steps=20)[0]
    d = tr.to_dict()
    assert d == {"target": 42.0, "seed": 9, "return": tr.ret, "length": tr.length}
    assert tr.length == len(tr.actions) == len(tr.rtg) <= 20


def test_bf16_policy_keeps_model_state_and_is_deterministic():
    model = tiny_model("Pendulum-v1")
    keys = set(model.state_dict())
    pol = DTPolicy(model, tiny_norm(model), get_spec("Pendulum-v1"), precision="bf16")
    a = run_episodes(pol, [-200.0, -900.0], [1, 2], max_steps=40)
    b = run_episodes(
        DTPolicy(model, tiny_norm(model), get_spec("Pendulum-v1"), precision="bf16"),
        [-200.0],
        [1],
        max_steps=40,
    )
    assert set(model.state_dict()) == keys  # the bf16 copy is not a submodule
    np.testing.assert_array_equal(a[0].actions, b[0].actions)  # batch doesn't change rows
    fp32 = run_episodes(_policy("Pendulum-v1"), [-200.0], [1], max_steps=40)[0]
    np.testing.assert_allclose(a[0].actions, fp32.actions, atol=0.05)  # close to fp32


def test_continuous_actions_span_the_env_range():
    """Pendulum's torque is in [-2, 2]: the model works in [-1, 1] and the policy
    scales back, so a saturated head gives full torque; training data is scaled down."""
    from dt_playground.data.windows import OfflineDataset
    from dt_playground.envs.episodes import Episode

    model = tiny_model("Pendulum-v1")
    with torch.no_grad():
        model.predict_action.bias.fill_(50.0)  # tanh saturates at +1
    tr = run_episodes(
        DTPolicy(model, tiny_norm(model), get_spec("Pendulum-v1")), [0.0], [0], max_steps=3
    )[0]
    np.testing.assert_allclose(tr.actions, 2.0, rtol=1e-5)
    ep = Episode(
        np.zeros((3, 3), np.float32),
        np.array([[2.0], [-1.0]], np.float32),
        np.zeros(2, np.float32),
        True,
        False,
    )
    ds = OfflineDataset([ep], get_spec("Pendulum-v1"), act_dim=1)
    np.testing.assert_allclose(ds.actions[0, :2, 0], [1.0, -0.5])
