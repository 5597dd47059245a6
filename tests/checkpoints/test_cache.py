"""checkpoints.cache (with layout.choices and summary.target_range): checkpoints by name."""

import pytest

from dt_playground.checkpoints import cache, layout
from dt_playground.data.summary import target_range


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


def test_choices_and_target_range(zoo):
    choices = layout.choices("CartPole-v1")
    assert [c[1] for c in choices] == ["cartpole-dt", "cartpole-bc"]  # names in pretrained/
    assert cache.get_checkpoint("cartpole-dt").path == zoo / "cartpole-dt"
    assert "DT, K=5" in choices[0][0]
    assert layout.choices("Pendulum-v1") == []
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    r = target_range(ck.dataset, ck.spec.target_presets)
    d = ck.config["dataset"]
    assert r.minimum < d["return_min"] and r.maximum > d["return_max"]
    assert r.marks["median"] == d["return_median"]
