"""The critic's G refit on its DT's rollouts: the exploring DT's picks are per episode
(batching does not change them), the refit moves G alone and fits what the DT
collected, the same recipe gives the same G, and a critic records its refit and is not
refit twice."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_model, tiny_norm

from dt_playground.cli.main import main
from dt_playground.envs.registry import get_spec
from dt_playground.errors import CheckpointError
from dt_playground.offline.critic import CheckSettings, critic_dir, load_critic
from dt_playground.offline.iql import IQL, IQLConfig
from dt_playground.offline.store import IQLCheckpoint
from dt_playground.offline.transitions import Transitions
from dt_playground.rollout.policy import run_episodes
from dt_playground.training.critic_refit import (
    ExploringPolicy,
    RefitSettings,
    Rollouts,
    grid_targets,
    is_refit,
    refit_critic,
    refit_done,
    refit_return,
)
from dt_playground.zoo.offline_zoo import CHECKS, REFITS, make_critic, refit_recipe


def _exploring(env="Pendulum-v1", seed=0):
    model = tiny_model(env)
    cfg = model.cfg
    torch.manual_seed(1)
    iql = IQL(
        IQLConfig(state_dim=cfg.state_dim, act_dim=cfg.act_dim, discrete=cfg.discrete, hidden=16)
    ).eval()
    critic = IQLCheckpoint(
        Path("critic"),
        iql,
        {"support": [-2000.0, 2000.0], "dataset": {"return_min": -1500.0, "return_max": 500.0}},
    )
    return ExploringPolicy(
        model,
        tiny_norm(model),
        get_spec(env),
        critic=critic,
        settings=CheckSettings(n=5, spread=0.3, actor=True, actor_asks=True),
        seed=seed,
    )


@pytest.mark.parametrize("env", ["Pendulum-v1", "CartPole-v1"])
def test_the_exploring_dts_picks_do_not_depend_on_batching(env):
    both = _exploring(env)
    a = run_episodes(both, [-900.0, -300.0, 40.0], [5, 6, 7], max_steps=30)
    alone = _exploring(env)
    b = run_episodes(alone, [-300.0], [6], max_steps=30)[0]
    n = len(b.actions)
    assert np.array_equal(both.picks[1, :n], alone.picks[0, :n])
    np.testing.assert_allclose(
        np.asarray(a[1].actions, float), np.asarray(b.actions, float), atol=1e-5
    )
    picks = both.picks[both.picks >= 0]
    assert set(picks.tolist()) == set(range(6))  # it explores every candidate, IQL's too
    other = _exploring(env, seed=1)
    run_episodes(other, [-300.0], [6], max_steps=30)
    assert not np.array_equal(other.picks[0, :n], alone.picks[0, :n])  # the recipe's seed


def _pools(seed=0, n=4000):
    """Data whose return-to-go is one function of (s, a) and rollouts whose is another:
    a G fit to the data is wrong on the rollouts until it is refit."""
    g = np.random.default_rng(seed)
    s, a = g.normal(size=(n, 3)).astype(np.float32), g.uniform(-1, 1, (n, 1)).astype(np.float32)
    t = g.uniform(0, 1, n).astype(np.float32)
    data = Transitions(
        s, a, np.zeros(n, np.float32), s, np.zeros(n, np.float32), t,
        (s[:, 0] + a[:, 0]).astype(np.float32), tiny_norm(tiny_model("Pendulum-v1")),
        np.zeros(3),
    )  # fmt: skip
    roll = Rollouts(s, a, t, (s[:, 0] - 2 * a[:, 0] + 1).astype(np.float32), np.zeros(3), t * 0)
    return data, roll


def _iql():
    torch.manual_seed(0)
    return IQL(IQLConfig(state_dim=3, act_dim=1, hidden=32))


def _mse(model, x) -> float:
    s, a, t = (torch.from_numpy(v) for v in (x.s, x.a, x.t))
    with torch.no_grad():
        return float(((model.return_value(s, a, t) - torch.from_numpy(x.rtg)) ** 2).mean())


def test_the_refit_moves_g_alone_and_fits_what_the_dt_collected():
    data, roll = _pools()
    fit_to_data = _iql()
    refit_return(fit_to_data, data, roll, RefitSettings(steps=600, mix=0.0))  # data alone
    model = _iql()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refit_return(model, data, roll, RefitSettings(steps=600, mix=0.5))
    after = model.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"ret"}  # Q, V, the target twins and the actor are as IQL left them
    assert _mse(model, roll) < 0.5 * _mse(fit_to_data, roll)


def test_the_same_recipe_gives_the_same_g():
    data, roll = _pools()
    a, b = _iql(), _iql()
    settings = RefitSettings(steps=50)
    refit_return(a, data, roll, settings)
    refit_return(b, data, roll, settings)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_the_grid_is_the_goals_eight_targets_from_p10_to_max():
    t = grid_targets({"return_p10": 100.0, "return_max": 800.0})
    assert len(t) == 8 and t[0] == 100.0 and t[-1] == 800.0 and t == sorted(t)


@pytest.fixture(scope="module")
def refit_dt(tiny_zoo, tmp_path_factory, cartpole_dataset):
    """The tiny zoo's CartPole DT with a briefly trained critic, G as IQL left it."""
    dt = tmp_path_factory.mktemp("refit") / "cartpole-dt"
    shutil.copytree(tiny_zoo / "cartpole-dt", dt)
    make_critic(dt, steps=40, dataset=str(cartpole_dataset[0]), log=lambda m: None, refit_seeds=0)
    return dt


def test_a_critic_records_its_refit_and_is_not_refit_twice(refit_dt, cartpole_dataset):
    config = json.loads((refit_dt / "critic" / "config.json").read_text())
    assert not is_refit(config)  # --refit-seeds 0
    from dt_playground.offline.train_iql import load_transitions

    data, _, _ = load_transitions(str(cartpole_dataset[0]), "CartPole-v1")
    settings = RefitSettings(seeds=1, steps=30)
    refit_critic(refit_dt, settings, dataset=data, log=lambda m: None)
    config = json.loads((refit_dt / "critic" / "config.json").read_text())
    assert refit_done(config, settings) and not refit_done(config)  # not the zoo's recipe
    assert config["refit"]["episodes"] == 8 and config["refit"]["transitions"] > 8
    load_critic(refit_dt, json.loads((refit_dt / "config.json").read_text()))  # still fits
    with pytest.raises(CheckpointError, match="refit already"):
        refit_critic(refit_dt, settings, dataset=data, log=lambda m: None)


@pytest.mark.parametrize("seeds", ["-1", "51"])
def test_the_critic_verb_refuses_refit_seeds_out_of_range(refit_dt, seeds, capsys):
    assert main(["critic", "--checkpoint", str(refit_dt), f"--refit-seeds={seeds}"]) == 2
    assert "--refit-seeds must be in [0, 50]" in capsys.readouterr().err


@pytest.mark.parametrize("env_id", sorted(REFITS))
def test_every_shipped_critic_is_refit_and_checks_as_its_recipe_says(env_id):
    """What `pretrain` would keep is what ships: each K=20 DT's critic was refit with its
    env's `REFITS` recipe and holds its env's `CHECKS` settings."""
    from dt_playground.paths import PRETRAINED_DIR

    dt = PRETRAINED_DIR / f"{get_spec(env_id).short_name}-dt"
    config = json.loads((dt / "critic" / "config.json").read_text())
    assert refit_done(config, refit_recipe(env_id)), config.get("refit")
    _, settings = load_critic(dt, json.loads((dt / "config.json").read_text()))
    assert settings == CHECKS[env_id]


@pytest.mark.parametrize("env_id", sorted(CHECKS))
def test_every_shipped_iql_is_its_recipes_run_with_its_snapshot_picked(env_id):
    """What `pretrain` would keep is what ships: each IQL folder is a complete run of its
    env's recipe, its actor the snapshot picked on trial seeds, and it is the same run as
    its DT's critic."""
    from dt_playground.offline.train_iql import already_trained
    from dt_playground.paths import PRETRAINED_DIR
    from dt_playground.zoo.offline_zoo import IQL_RECIPES, iql_name, selection_done

    folder = PRETRAINED_DIR / iql_name(env_id)
    config = json.loads((folder / "config.json").read_text())
    sha = config["dataset"]["sha256"]
    assert already_trained(folder, IQL_RECIPES[env_id], sha) and selection_done(folder)
    sel = config["selected"]
    assert [sel["step"], max(m for _, m in sel["means"])] in sel["means"]
    dt = PRETRAINED_DIR / f"{get_spec(env_id).short_name}-dt"
    assert already_trained(critic_dir(dt), IQL_RECIPES[env_id], sha, "critic")
