"""IQL: its losses fall, its folders round-trip exactly, bad folders are refused with a
sentence before anything is allocated, and it plays through the DT's lock-step runner."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dt_playground.behaviour.collect import collect_episodes
from dt_playground.data.storage import write_minari
from dt_playground.errors import CheckpointError
from dt_playground.offline.iql import IQL, IQLConfig
from dt_playground.offline.store import load_iql
from dt_playground.offline.train_iql import already_trained, train_iql, write_iql
from dt_playground.rollout.iql_policy import IQLPolicy
from dt_playground.rollout.policy import run_episodes

TINY = dict(hidden=32, batch_size=64)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, cartpole_dataset):
    """A discrete (CartPole) and a continuous (Pendulum) dataset."""
    root = tmp_path_factory.mktemp("iql-data")
    pend = write_minari(
        collect_episodes("Pendulum-v1", 6, seed=0), "dtp/pendulum/test-v0", "Pendulum-v1", root=root
    )
    return {"CartPole-v1": str(cartpole_dataset[0]), "Pendulum-v1": str(pend)}


@pytest.fixture(scope="module")
def trained(datasets):
    return {
        env: train_iql(ds, env, IQLConfig(steps=300, return_steps=300, **TINY))
        for env, ds in datasets.items()
    }


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_losses_fall_in_a_few_steps(trained, env):
    curve = trained[env].curve
    first, last = curve[0], curve[-1]
    assert len(curve) == 3
    for key in ("q", "return"):
        assert last[key] < first[key], (key, first, last)
    cfg = trained[env].model.cfg
    assert cfg.discrete == (env == "CartPole-v1") and cfg.reward_scale > 0


def test_the_value_loss_is_an_upper_expectile():
    """V trained by `IQL.losses` on Q values {0, 0, 0, 10} settles at their 0.9-expectile
    (7.5), far above their mean (2.5): tau > 0.5 leans to the best actions the data shows."""
    torch.manual_seed(0)
    model = IQL(IQLConfig(state_dim=1, act_dim=1, hidden=8, expectile=0.9))
    del model.q_target
    model.q_target = lambda s, a: torch.cat([a, a], -1)  # Q(s, a) = a, for both twins
    b = {
        "s": torch.zeros(4, 1),
        "a": torch.tensor([[0.0], [0.0], [0.0], [10.0]]),
        "r": torch.zeros(4),
        "s2": torch.zeros(4, 1),
        "terminal": torch.ones(4),
        "t": torch.zeros(4),
        "rtg": torch.zeros(4),
    }
    opt = torch.optim.Adam(model.v.parameters(), lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        model.losses(b, with_return=False)["value"].backward()
        opt.step()
    v = model.v(torch.zeros(1, 1)).item()
    assert abs(v - 7.5) < 0.3, v


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_save_load_round_trip_gives_identical_actions(trained, env, tmp_path, datasets):
    res = trained[env]
    out = write_iql(tmp_path / "x-iql", res, env)
    ck = load_iql(out)
    s = torch.from_numpy(res.data.s[:50])
    assert torch.equal(ck.model.act(s), res.model.act(s))
    assert ck.config["state_mean"] == res.data.norm.state_mean.tolist()
    assert already_trained(out, res.model.cfg, res.summary["sha256"])
    assert not already_trained(out, res.model.cfg, "another-hash")


def test_iql_plays_batched_as_single(trained, tmp_path):
    ck = load_iql(write_iql(tmp_path / "p-iql", trained["Pendulum-v1"], "Pendulum-v1"))
    both = run_episodes(IQLPolicy(ck), [0.0, "best"], [7, 8], max_steps=40)
    one = run_episodes(IQLPolicy(ck), [0.0], [8], max_steps=40)
    np.testing.assert_allclose(both[1].actions, one[0].actions, atol=1e-5)  # float rounding
    assert both[0].length == 40 and both[0].return_band is None


def _folder(trained, tmp_path, env="Pendulum-v1"):
    return write_iql(tmp_path / "bad-iql", trained[env], env)


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if "." in key:
            a, b = key.split(".")
            config[a][b] = value
        else:
            config[key] = value
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"iql.hidden": 64}, "has shape"),
        ({"iql.hidden": "wide"}, "must be an integer"),
        ({"iql.hidden": 10**6}, "must be an integer in"),
        ({"iql.expectile": float("nan")}, "must be a number"),
        ({"iql.act_dim": 2}, "do not fit Pendulum-v1"),
        ({"iql.colour": 1}, "unknown fields"),
        ({"algo": "dt"}, "'algo' must be 'iql'"),
        ({"state_mean": [0.0]}, "state_mean/state_std have shape"),
        ({"env_id": "Nope-v0"}, "unknown environment"),
    ],
)
def test_a_bad_config_is_refused_with_a_sentence(trained, tmp_path, change, message):
    folder = _folder(trained, tmp_path)
    _edit_config(folder, **change)
    with pytest.raises(CheckpointError, match=message):
        load_iql(folder)


def test_missing_or_non_finite_tensors_are_refused(trained, tmp_path):
    folder = _folder(trained, tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if k != "log_std"}, str(folder / "model.safetensors")
    )
    with pytest.raises(CheckpointError, match="missing tensors"):
        load_iql(folder)
    weights["log_std"] = torch.full_like(weights["log_std"], float("nan"))
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_iql(folder)
    (folder / "model.safetensors").write_bytes(b"\xff" * 12)
    with pytest.raises(CheckpointError, match="corrupt|truncated"):
        load_iql(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_iql(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_iql(tmp_path / "nowhere")


def test_the_cli_trains_evaluates_and_sweeps_iql_saying_once_it_ignores_targets(
    datasets, tmp_path, capsys
):
    from dt_playground.cli.main import main

    out = tmp_path / "cp-iql"
    assert (
        main(
            [
                "train",
                "--algo",
                "iql",
                "--dataset",
                datasets["CartPole-v1"],
                "--steps",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert load_iql(out).config["iql"]["steps"] == 20
    capsys.readouterr()
    assert (
        main(
            [
                "sweep",
                "--checkpoint",
                str(out),
                "--targets",
                "10,20,best",
                "--seeds",
                "2",
                "--max-steps",
                "15",
                "--json",
            ]
        )
        == 0
    )
    io = capsys.readouterr()
    assert io.err.count("IQL ignores the target return") == 1
    episodes = json.loads(io.out)["episodes"]
    assert len(episodes) == 6 and len({e["return"] for e in episodes[::2]}) == 1
    assert (
        main(["evaluate", "--checkpoint", str(out), "--target", "5", "--episodes", "1", "--check"])
        == 1
    )
    assert "IQL is not checked" in capsys.readouterr().err


def test_snapshots_say_how_far_the_run_got(datasets, tmp_path):
    seen = []

    def snap(res):
        seen.append(res.steps_done)
        write_iql(tmp_path / "s-iql", res, res.env_id)

    train_iql(
        datasets["CartPole-v1"],
        "CartPole-v1",
        IQLConfig(steps=25, return_steps=25, **TINY),
        snapshot_every=10,
        on_snapshot=snap,
    )
    assert seen == [10, 20]
    config = load_iql(tmp_path / "s-iql").config
    assert config["steps_done"] == 20 and config["complete"] is False
    assert not already_trained(
        tmp_path / "s-iql",
        IQLConfig(steps=25, return_steps=25, **TINY),
        config["dataset"]["sha256"],
    )


def _zoo_run(datasets, tmp_path, monkeypatch, score=None):
    """`ensure_iql` on CartPole with a tiny recipe: snapshots at 40, 80 and 120 steps,
    each played on 3 trial seeds (or scored by ``score``)."""
    from dt_playground.zoo import offline_zoo

    recipe = IQLConfig(steps=120, return_steps=120, **TINY)
    monkeypatch.setitem(offline_zoo.IQL_RECIPES, "CartPole-v1", recipe)
    monkeypatch.setattr(offline_zoo, "SNAPSHOT_EVERY", 40)
    monkeypatch.setattr(offline_zoo, "SELECT_SEEDS", 3)
    if score is not None:
        monkeypatch.setattr(offline_zoo.SnapshotPicker, "score", score)
    logs: list[str] = []
    out = offline_zoo.ensure_iql(
        "CartPole-v1", datasets["CartPole-v1"], None, tmp_path, log=logs.append
    )
    final = train_iql(datasets["CartPole-v1"], "CartPole-v1", recipe)  # the same run, to its end
    return load_iql(out), final, logs


def _same_actor(ck, final) -> bool:
    a, b = ck.model.actor.state_dict(), final.model.actor.state_dict()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_iql_checkpoint_is_the_snapshot_that_played_best(datasets, tmp_path, monkeypatch):
    from dt_playground.envs.seeds import TRIAL_SEED
    from dt_playground.zoo.offline_zoo import selection_done

    ck, final, logs = _zoo_run(datasets, tmp_path, monkeypatch)
    sel = ck.config["selected"]
    steps, means = zip(*sel["means"])
    assert steps == (40, 80, 120) and sel["trial_seeds"] == 3 and sel["every"] == 40
    assert sel["step"] == steps[int(np.argmax(means))]  # the first of equals
    # what ships plays exactly the mean its snapshot was picked for
    traces = run_episodes(IQLPolicy(ck), [0.0] * 3, list(range(TRIAL_SEED, TRIAL_SEED + 3)))
    assert round(float(np.mean([t.ret for t in traces])), 3) == max(means)
    assert _same_actor(ck, final) == (sel["step"] == 120)
    assert ck.config["complete"] and ck.config["steps_done"] == 120  # the run's, complete
    assert any("its actor is step" in m for m in logs)
    assert not selection_done(tmp_path / "nothing-here")


def test_an_earlier_snapshot_that_plays_better_is_shipped(datasets, tmp_path, monkeypatch):
    ck, final, _ = _zoo_run(
        datasets, tmp_path, monkeypatch, score=lambda self, res: -res.steps_done
    )
    assert ck.config["selected"]["step"] == 40
    assert ck.config["selected"]["means"] == [[40, -40], [80, -80], [120, -120]]
    assert not _same_actor(ck, final)  # not the run's last actor
