import json

import numpy as np
import pytest

from dt_playground.checkpoints import load_checkpoint
from dt_playground.data import OfflineDataset, load_episodes
from dt_playground.envs import get_spec
from dt_playground.train import TrainConfig, train


def _cfg(path, out, **kw):
    base = dict(
        dataset=str(path),
        out=str(out),
        steps=60,
        batch_size=32,
        context_len=5,
        hidden=32,
        n_layers=2,
        n_heads=1,
        lr=3e-3,
        warmup_steps=10,
        eval_episodes=0,
        save_every=0,
        dropout=0.0,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_short_training_lowers_loss(cartpole_dataset, tmp_path):
    path, _ = cartpole_dataset
    losses = []
    res = train(_cfg(path, tmp_path / "ck"), on_step=lambda s, loss, lr: losses.append(loss))
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    ck = load_checkpoint(res.checkpoint)
    assert ck.config["algo"] == "dt" and ck.config["env_id"] == "CartPole-v1"
    assert ck.config["dataset"]["episodes"] == 24
    assert ck.config["curve"][-1]["step"] == 60
    assert not (res.checkpoint / "train_state.json").exists()  # final: no optimizer state


def test_resume_matches_uninterrupted(cartpole_dataset, tmp_path):
    path, _ = cartpole_dataset
    full = train(_cfg(path, tmp_path / "a", steps=40))
    # Interrupted at step 20 (cancelled), then resumed to 40.
    calls = []
    train(
        _cfg(path, tmp_path / "b", steps=40),
        should_stop=lambda: len(calls) >= 20,
        on_step=lambda *a: calls.append(a),
    )
    half = json.loads((tmp_path / "b" / "config.json").read_text())
    assert half["steps_done"] == 20 and half["complete"] is False
    assert (tmp_path / "b" / "train_state.safetensors").exists()
    resumed = train(_cfg(path, tmp_path / "b", steps=40))
    a = [c["loss"] for c in full.curve]
    b = [c["loss"] for c in resumed.curve]
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_resume_refuses_other_config(cartpole_dataset, tmp_path):
    path, _ = cartpole_dataset
    train(_cfg(path, tmp_path / "c", steps=20), should_stop=lambda: True)
    # A cancelled run leaves resume state; another config must not silently continue it.
    with pytest.raises(ValueError, match="different configuration"):
        train(_cfg(path, tmp_path / "c", steps=20, hidden=64))


def test_pbc_trains_on_top_episodes(cartpole_dataset, tmp_path):
    path, episodes = cartpole_dataset
    res = train(_cfg(path, tmp_path / "p", algo="pbc", pbc_fraction=0.25, steps=5))
    ck = load_checkpoint(res.checkpoint)
    assert ck.config["algo"] == "pbc" and ck.model.cfg.use_returns is False
    eps, env_id, _ = load_episodes(path)
    top = OfflineDataset(eps, get_spec(env_id), 2).top_fraction(0.25)
    assert len(top.episodes) == 6
    assert min(e.ret for e in top.episodes) >= np.quantile([e.ret for e in eps], 0.7)
    np.testing.assert_allclose(ck.config["state_mean"], top.norm.state_mean, rtol=1e-5)
