"""Value-checked acting: the DT's candidates are its own predictions for the candidate
returns, the critic's pick is the rule's (closest G for a number, highest Q for `best`),
one candidate with no spread is the plain DT, batched equals single, fast equals
reference."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_model, tiny_norm

from dt_playground.dt.acting import engine_for
from dt_playground.envs.registry import get_spec
from dt_playground.offline.critic import CheckSettings
from dt_playground.offline.iql import IQL, IQLConfig
from dt_playground.offline.store import IQLCheckpoint
from dt_playground.rollout.checked import CheckedPolicy
from dt_playground.rollout.policy import DTPolicy, run_episodes

ENVS = ["CartPole-v1", "Pendulum-v1"]


def critic_for(model, env: str, support=(-2000.0, 2000.0)) -> IQLCheckpoint:
    cfg = model.cfg
    torch.manual_seed(1)
    iql = IQL(
        IQLConfig(state_dim=cfg.state_dim, act_dim=cfg.act_dim, discrete=cfg.discrete, hidden=16)
    ).eval()
    config = {
        "env_id": env,
        "algo": "critic",
        "support": list(support),
        "dataset": {"return_min": -1500.0, "return_max": 500.0},
    }
    return IQLCheckpoint(Path("critic"), iql, config)


def policies(env, n=5, spread=0.1, engine="fast", actor=False):
    model = tiny_model(env)
    spec = get_spec(env)
    plain = DTPolicy(model, tiny_norm(model), spec, engine=engine)
    checked = CheckedPolicy(
        model,
        tiny_norm(model),
        spec,
        engine=engine,
        critic=critic_for(model, env),
        settings=CheckSettings(n=n, spread=spread, actor=actor),
    )
    return plain, checked


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("env", ENVS)
def test_one_candidate_without_spread_is_the_plain_dt(env, engine):
    plain, checked = policies(env, n=1, spread=0.0, engine=engine)
    a = run_episodes(plain, [40.0, 80.0], [3, 4], max_steps=30)
    b = run_episodes(checked, [40.0, 80.0], [3, 4], max_steps=30)
    for x, y in zip(a, b):
        np.testing.assert_allclose(
            np.asarray(x.actions, float), np.asarray(y.actions, float), atol=1e-5
        )
        assert y.checked and not x.checked
        assert y.critic_value.shape == (y.length,) and np.isfinite(y.critic_value).all()


@pytest.mark.parametrize("env", ENVS)
def test_candidates_are_the_dts_own_predictions_for_those_returns(env):
    """`_propose` (cached features, the R token swapped) == the model's forward on the
    window with the last return-to-go replaced, for every candidate."""
    _, checked = policies(env, n=4, spread=0.2)
    run_episodes(checked, [30.0, 60.0], [1, 2], max_steps=7)  # fills the buffers up to t=6
    rows, t = np.array([0, 1]), 6
    cand = checked.candidates(rows)
    got = checked._propose(rows, t, cand)
    ref = engine_for(checked.model, "reference")
    w = checked.window(rows, t)
    for j in range(cand.shape[1]):
        rtg = w["rtg"].copy()
        rtg[:, -1, 0] = checked.norm.returns(cand[:, j])
        want = ref.predict_last(
            torch.from_numpy(rtg),
            torch.from_numpy(w["states"]),
            torch.from_numpy(w["actions"]),
            torch.from_numpy(w["timesteps"]),
            torch.from_numpy(w["mask"]),
        ).numpy()
        np.testing.assert_allclose(got[j :: cand.shape[1]], want, atol=1e-5)


class _StubCritic:
    """G(s, a, t) = the first action coordinate; Q = minus it: the picks are checkable."""

    def return_value(self, s, a, t):
        return a[:, 0].clone()

    def q_value(self, s, a):
        return -a[:, 0].clone()

    def act(self, s):
        return torch.zeros(len(s), 1)


def test_the_critic_keeps_the_closest_value_for_a_number_and_the_highest_for_best():
    env = "Pendulum-v1"
    _, checked = policies(env, n=6, spread=0.5)
    checked.critic = _StubCritic()
    checked.norm.return_scale = 1.0  # G is then in raw units: the action itself
    checked.reset([0.3, 0.3], [0, 1], 5)
    checked.best[1] = True  # row 1 plays `best` with the same asked return
    checked._choose_returns = lambda rows, t: None  # (no return model to sample one)
    obs = np.zeros((2, 3), np.float32)
    rows = np.array([0, 1])
    checked.states[rows, 0] = checked.norm.states(obs)
    checked.rtg[rows, 0] = checked.norm.returns(checked.next_rtg[rows])
    proposals = checked._propose(rows, 0, checked.candidates(rows))[:, 0].reshape(2, 6)
    acts = checked.act(rows, 0, obs)
    scale = checked.scale[0]
    want_number = proposals[0][np.abs(proposals[0] - 0.3).argmin()]
    want_best = proposals[1][(-proposals[1]).argmax()]
    np.testing.assert_allclose(
        [acts[0][0] / scale, acts[1][0] / scale], [want_number, want_best], atol=1e-6
    )


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("env", ENVS)
def test_checked_batched_equals_single(env, engine):
    _, checked = policies(env, n=5, spread=0.3, engine=engine, actor=env == "Pendulum-v1")
    both = run_episodes(checked, [20.0, 90.0, 60.0], [5, 6, 7], max_steps=40)
    _, alone = policies(env, n=5, spread=0.3, engine=engine, actor=env == "Pendulum-v1")
    one = run_episodes(alone, [90.0], [6], max_steps=40)[0]
    np.testing.assert_allclose(
        np.asarray(both[1].actions, float), np.asarray(one.actions, float), atol=1e-5
    )
    np.testing.assert_allclose(both[1].critic_value, one.critic_value, atol=1e-4)


@pytest.mark.parametrize("env", ENVS)
def test_checked_fast_equals_reference(env):
    _, fast = policies(env, n=5, spread=0.3, engine="fast")
    _, ref = policies(env, n=5, spread=0.3, engine="reference")
    a = run_episodes(fast, [50.0], [9], max_steps=30)[0]
    b = run_episodes(ref, [50.0], [9], max_steps=30)[0]
    np.testing.assert_allclose(
        np.asarray(a.actions, float), np.asarray(b.actions, float), atol=1e-4
    )


def test_candidates_stay_inside_the_datas_support():
    _, checked = policies("Pendulum-v1", n=5, spread=2.0)
    checked.support = (-100.0, 10.0)
    checked.reset([5.0], [0], 3)
    cand = checked.candidates(np.array([0]))
    assert cand.max() <= 10.0 and cand.min() >= -100.0 and cand[0, 0] == 5.0


class _HighQCritic(_StubCritic):
    """As `_StubCritic`, but Q is the action itself: Q picks the highest proposal."""

    def q_value(self, s, a):
        return a[:, 0].clone()


def _stub_step(settings: CheckSettings, best_rows=(1,), critic=None):
    """One checked step of two Pendulum rows under a stub critic (G = the action; IQL's
    own action is 0.0): (the actions played / scale, the DT's proposals)."""
    _, checked = policies("Pendulum-v1", n=6, spread=0.5)
    checked.settings = settings
    checked.critic = critic or _StubCritic()
    checked.norm.return_scale = 1.0
    checked.reset([0.01, 0.01], [0, 1], 5)
    for r in best_rows:
        checked.best[r] = True
    checked._choose_returns = lambda rows, t: None
    obs = np.zeros((2, 3), np.float32)
    rows = np.array([0, 1])
    checked.states[rows, 0] = checked.norm.states(obs)
    proposals = checked._propose(rows, 0, checked.candidates(rows))[:, 0].reshape(2, 6)
    acts = checked.act(rows, 0, obs)
    return np.array([a[0] for a in acts]) / checked.scale[0], proposals


def test_the_dts_own_action_plays_best_without_q_for_best():
    critic = _HighQCritic()
    by_q, proposals = _stub_step(CheckSettings(n=6, spread=0.5), critic=critic)
    assert by_q[1] == pytest.approx(proposals[1].max(), abs=1e-7)
    assert proposals[1].max() > proposals[1][0] + 1e-6  # (the premise: Q picks another)
    own, _ = _stub_step(CheckSettings(n=6, spread=0.5, q_for_best=False), critic=critic)
    assert own[1] == pytest.approx(proposals[1][0], abs=1e-7)  # the asked return's


def test_iqls_action_is_kept_for_numeric_asks_only_with_actor_asks():
    # The actor's action (0.0) has G 0.0, closer to the asked 0.01 than any proposal here.
    far = _stub_step(CheckSettings(n=6, spread=0.5, actor=True), best_rows=())[1]
    assert np.abs(far - 0.01).min() > 0.01  # (the premise: no proposal is that close)
    only_best, proposals = _stub_step(CheckSettings(n=6, spread=0.5, actor=True), ())
    assert only_best[0] != pytest.approx(0.0, abs=1e-7)
    asks, _ = _stub_step(CheckSettings(n=6, spread=0.5, actor=True, actor_asks=True), ())
    assert asks[0] == pytest.approx(0.0, abs=1e-7)
    assert only_best[0] == pytest.approx(
        proposals[0][np.abs(proposals[0] - 0.01).argmin()], abs=1e-6
    )
