"""A DT's critic: made by the `critic` verb on the DT's own data, loaded only when it
fits its DT, refused with a sentence otherwise; --check refuses what cannot be checked."""

import json
import shutil

import pytest

from dt_playground.cli.main import main
from dt_playground.errors import CheckpointError
from dt_playground.offline.critic import default_of, load_critic
from dt_playground.rollout.evaluate import sweep
from dt_playground.zoo.offline_zoo import make_critic


@pytest.fixture(scope="module")
def checked_dt(tiny_zoo, tmp_path_factory, cartpole_dataset):
    """A copy of the tiny zoo's CartPole DT with a briefly trained critic."""
    dt = tmp_path_factory.mktemp("checked") / "cartpole-dt"
    shutil.copytree(tiny_zoo / "cartpole-dt", dt)
    make_critic(dt, steps=40, dataset=str(cartpole_dataset[0]), log=lambda m: None)
    return dt


def _config(dt):
    return json.loads((dt / "config.json").read_text())


def test_the_critic_verb_makes_a_critic_that_fits_its_dt(checked_dt):
    ck, settings = load_critic(checked_dt, _config(checked_dt))
    assert ck.config["state_mean"] == _config(checked_dt)["state_mean"]
    assert settings.n >= 1 and settings.spread >= 0
    lo, hi = ck.config["support"]
    assert lo <= hi
    traces = sweep(checked_dt, [50.0, 150.0], 2, seed=1_500_000, max_steps=60, check=True)
    assert all(t.checked and t.critic_value is not None for t in traces)


def test_check_without_a_critic_says_how_to_make_one(tiny_zoo, capsys):
    with pytest.raises(CheckpointError, match="python -m dt_playground critic --checkpoint"):
        sweep(tiny_zoo / "cartpole-dt", [50.0], 1, check=True)
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(tiny_zoo / "cartpole-dt"),
            "--target",
            "50",
            "--episodes",
            "1",
            "--check",
        ]
    )
    assert code == 1
    assert "python -m dt_playground critic --checkpoint cartpole-dt" in capsys.readouterr().err


def test_check_with_bc_is_refused_with_the_reason(tiny_zoo):
    with pytest.raises(CheckpointError, match="Checking needs a DT.*no return input"):
        sweep(tiny_zoo / "cartpole-bc", [50.0], 1, check=True)
    with pytest.raises(CheckpointError, match="no return input"):
        make_critic(tiny_zoo / "cartpole-bc", steps=1)


def _broken(checked_dt, tmp_path, **changes):
    dt = tmp_path / "cartpole-dt"
    shutil.copytree(checked_dt, dt)
    path = dt / "critic" / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if "." in key:
            a, b = key.split(".")
            config[a][b] = value
        else:
            config[key] = value
    path.write_text(json.dumps(config))
    return dt


@pytest.mark.parametrize(
    "change, message",
    [
        ({"check.n": 0}, "candidate count n must be an integer"),
        ({"check.n": 10**9}, "candidate count n must be an integer"),
        ({"check.spread": float("nan")}, "spread must be a finite number"),
        ({"check.spread": float("inf")}, "spread must be a finite number"),
        ({"check.spread": "wide"}, "spread must be a finite number"),
        ({"support": [5.0, 1.0]}, "'support' must be two finite numbers"),
        ({"state_mean": [0.0, 0.0, 0.0, 0.0]}, "normalises states or returns differently"),
        ({"return_scale": 7.0}, "normalises states or returns differently"),
        ({"iql.hidden": 8}, "critic \\(critic/\\) is invalid.*shape"),
        ({"env_id": "Pendulum-v1"}, "trained on Pendulum-v1, not CartPole-v1"),
        ({"algo": "iql"}, "'algo' must be 'critic'"),
    ],
)
def test_a_critic_that_does_not_fit_is_refused(checked_dt, tmp_path, change, message):
    dt = _broken(checked_dt, tmp_path, **change)
    with pytest.raises(CheckpointError, match=message):
        load_critic(dt, _config(dt))
    with pytest.raises(CheckpointError, match=message):
        sweep(dt, [50.0], 1, check=True)


def test_an_upload_with_a_broken_critic_is_refused_before_it_is_adopted(checked_dt, tmp_path):
    import zipfile

    from dt_playground.checkpoints.uploads import extract_upload
    from dt_playground.offline.critic import validate_folder

    dt = _broken(checked_dt, tmp_path, **{"check.spread": float("nan")})
    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (
            "config.json",
            "model.safetensors",
            "critic/config.json",
            "critic/model.safetensors",
        ):
            zf.write(dt / f, f"cartpole-dt/{f}")
    stage = extract_upload(z, tmp_path / "stage")
    assert (stage / "critic" / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="spread must be a finite number"):
        validate_folder(stage)
    shutil.copy(checked_dt / "critic" / "config.json", stage / "critic" / "config.json")
    assert validate_folder(stage).algo == "dt"


def _card(err=(100.0, 80.0), rho=(0.9, 0.9), best=(1000.0, 1000.0)):
    return {
        "abs_err_plain": err[0],
        "abs_err_checked": err[1],
        "spearman_plain": rho[0],
        "spearman_checked": rho[1],
        "best_plain": best[0],
        "best_checked": best[1],
    }


@pytest.mark.parametrize(
    "card,default",
    [
        (_card(), "checked"),  # a lower error, the rest kept
        (_card(err=(100.0, 100.5), best=(1000.0, 1200.0)), "checked"),  # a tie, a better best
        (_card(err=(100.0, 100.5)), "unchecked"),  # ties everywhere: nothing gained
        (_card(err=(100.0, 103.0), best=(1000.0, 1200.0)), "unchecked"),  # worse matching
        (_card(rho=(0.98, 0.96)), "checked"),  # rho fell, but stays at the goal's 0.95
        (_card(rho=(0.93, 0.9)), "unchecked"),  # rho fell below the goal
        (_card(best=(1000.0, 950.0)), "unchecked"),  # `best` fell
        ({**_card(), "best_plain": None, "best_checked": None}, "checked"),  # no `best`
    ],
)
def test_the_default_is_checked_only_where_it_is_as_good_everywhere_and_better_once(card, default):
    assert default_of(card) == default
