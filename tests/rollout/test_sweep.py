"""rollout.sweep: sweeps over targets x seeds, references and comparisons."""

import numpy as np
import pytest

from dt_playground.checkpoints import cache
from dt_playground.errors import PlaygroundError
from dt_playground.rollout import sweep
from dt_playground.rollout.metrics import spearman


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


def test_sweep_and_references(zoo):
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    targets = sweep.sweep_targets(ck, 3)
    assert targets[0] == pytest.approx(ck.config["dataset"]["return_p10"], abs=0.1)
    res = sweep.run_sweep(ck, targets, 2, seed=10, max_steps=50)
    assert len(res["rows"]) == 6
    assert {(r["target"], r["seed"]) for r in res["rows"]} == {
        (t, s) for t in targets for s in (10, 11)
    }
    means = [np.mean([r["return"] for r in res["rows"] if r["target"] == t]) for t in targets]
    assert res["spearman"] == pytest.approx(spearman(targets, means), nan_ok=True)
    refs = sweep.references("CartPole-v1", [10, 11], 50)
    assert set(refs) == {"BC"}
    with pytest.raises(PlaygroundError, match="at most"):
        sweep.run_sweep(ck, targets, 50)  # 3 x 50 episodes
    with pytest.raises(PlaygroundError, match="between 1 and 100"):
        sweep.run_sweep(ck, targets, 1000)


def test_compare_models(zoo):
    res = sweep.compare_models("CartPole-v1", 2, seed=5, max_steps=30)
    assert len(res) == 2 and all(len(v) == 2 for v in res.values())
    with pytest.raises(PlaygroundError, match="No usable pretrained"):
        sweep.compare_models("Pendulum-v1", 2)
