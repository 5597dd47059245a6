import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from helpers import tiny_model

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.data.storage import load_episodes
from dt_playground.data.windows import OfflineDataset, gather_windows
from dt_playground.envs.registry import get_spec
from dt_playground.training.step import (
    DeviceWindows,
    TrainStep,
    World,
    choose_mode,
    eager_capture,
    make_optimizer,
)
from dt_playground.training.train import TrainConfig, train


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
        return_bins=0,  # the action loss alone: the return head's test is its own
        device="cpu",  # the same numbers wherever the suite runs; CUDA tests say so
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


def _tiny(seed=0, use_returns=True):
    return tiny_model(
        seed=seed, discrete=True, n_layers=1, n_heads=1, max_ep_len=500, use_returns=use_returns
    ).train()


def _batches(ds, n, share=8, seed=0):
    rng = np.random.default_rng(seed)
    return [{k: torch.from_numpy(v) for k, v in ds.sample(share, 5, rng).items()} for _ in range(n)]


def _dataset(path):
    eps, env_id, _ = load_episodes(path)
    return OfflineDataset(eps, get_spec(env_id), 2)


def test_device_windows_gather_what_gather_windows_does(cartpole_dataset):
    ds = _dataset(cartpole_dataset[0])
    windows = DeviceWindows(ds, torch.device("cpu"))
    rng = np.random.default_rng(3)
    pick = rng.integers(len(ds.window_rows), size=64)
    pick[:3] = [0, 1, 2]  # episode starts: left padding
    rows, ends = ds.window_rows[pick], ds.window_ends[pick]
    ref = gather_windows(ds.states, ds.actions, ds.rtg, rows, ends, 5, ds.spec.max_ep_len)
    got = windows.gather(torch.from_numpy(rows), torch.from_numpy(ends), 5)
    assert (ref["mask"] == 0).any()
    for k, v in ref.items():
        np.testing.assert_array_equal(got[k].numpy(), v, err_msg=k)
    g = torch.Generator().manual_seed(0)
    batch = windows.sample(16, 5, g)
    assert batch["states"].shape == (16, 5, 4) and batch["timesteps"].dtype == torch.int64


def test_graph_step_logic_matches_eager_on_cpu(cartpole_dataset):
    """The graph step (warm-up steps, then one capture and replays from static input
    buffers, a learning rate read from a tensor) takes the same steps as the eager
    one. An eager stand-in plays the CUDA graph, so this runs on the CPU."""
    ds = _dataset(cartpole_dataset[0])
    batches = _batches(ds, 7)
    lrs = [1e-3 * (i + 1) for i in range(7)]
    eager_model, graph_model = _tiny(), _tiny()
    eager = TrainStep(
        eager_model,
        torch.optim.AdamW(eager_model.parameters(), foreach=False),
        device="cpu",
        bf16=False,
        grad_clip=0.25,
        mode="eager",
    )
    opt = torch.optim.AdamW(graph_model.parameters(), lr=torch.tensor(0.0), foreach=False)
    graph = TrainStep(
        graph_model,
        opt,
        device="cpu",
        bf16=False,
        grad_clip=0.25,
        mode="graph",
        capture=eager_capture,
    )
    for b, lr in zip(batches, lrs):
        torch.testing.assert_close(graph(b, lr), eager(b, lr))
    assert graph.replay is not None and graph.calls == 7  # captured after the warm-up
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(lrs[-1])
    for (name, p), q in zip(eager_model.named_parameters(), graph_model.parameters()):
        torch.testing.assert_close(q, p, msg=name)


def test_step_mode_and_optimizer_choice():
    cpu_dev = torch.device("cpu")
    assert choose_mode("auto", cpu_dev, World()) == "eager"
    assert choose_mode("compile", cpu_dev, World()) == "compile"
    with pytest.warns(UserWarning, match="DDP"):
        assert choose_mode("graph", cpu_dev, World(rank=0, size=2)) == "eager"
    with pytest.raises(ValueError, match="step mode"):
        choose_mode("jit", cpu_dev, World())
    opt = make_optimizer(_tiny(), 1e-3, 1e-4, cpu_dev, graph=True)
    assert opt.defaults.get("fused") and not torch.is_tensor(opt.param_groups[0]["lr"])
    assert not opt.defaults.get("capturable")  # a graph's tensor lr is for CUDA only
    assert [World(r, 3).batch_share(64) for r in range(3)] == [22, 21, 21]
    with pytest.raises(ValueError, match="world size"):
        World(0, 4).batch_share(2)


def test_identity_ignores_run_only_keys():
    a = TrainConfig(env_id="CartPole-v1", steps=100)
    b = TrainConfig(
        env_id="CartPole-v1",
        steps=100,
        out="elsewhere",
        device="cpu",
        threads=3,
        step_mode="eager",
        eval_every=5,
        save_every=1,
        dataset="/abs/path",
        fast_step=False,
    )
    assert a.identity() == b.identity()
    assert a.identity() != TrainConfig(env_id="CartPole-v1", steps=200).identity()
    assert a.identity(steps=False) == TrainConfig(env_id="CartPole-v1", steps=200).identity(
        steps=False
    )
    assert a.identity() != TrainConfig(env_id="CartPole-v1", steps=100, lr=2e-3).identity()
    saved = {k: v for k, v in asdict(a).items() if k != "batch_size"}  # an older run's keys
    assert TrainConfig.identity_of(saved) != a.identity()


def test_train_leaves_process_settings_alone(cartpole_dataset, tmp_path, monkeypatch):
    from dt_playground.dt import runtime

    def no(*_a):
        raise AssertionError("train() must not change process-wide settings")

    monkeypatch.setattr(runtime, "retain_freed_memory", no)
    monkeypatch.setattr(runtime, "setup_process", no)
    before = torch.get_num_threads()
    seen = []
    train(
        _cfg(cartpole_dataset[0], tmp_path / "t", steps=3, threads=1),
        on_step=lambda *a: seen.append(torch.get_num_threads()),
    )
    assert seen == [1, 1, 1] and torch.get_num_threads() == before
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            train(_cfg(cartpole_dataset[0], tmp_path / "g", steps=3, device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_cuda_training_writes_a_cpu_checkpoint(cartpole_dataset, tmp_path, mode):
    import warnings

    losses = []
    with warnings.catch_warnings():  # a capture that falls back to eager fails the test
        warnings.filterwarnings("error", message="CUDA graph capture failed")
        res = train(
            _cfg(cartpole_dataset[0], tmp_path / mode, device="cuda", step_mode=mode),
            on_step=lambda s, loss, lr: losses.append(loss),
        )
    assert len(losses) == 60 and np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    ck = load_checkpoint(res.checkpoint)
    assert next(ck.model.parameters()).device.type == "cpu"


def test_device_batch_path_runs_and_resumes_on_cpu(cartpole_dataset, tmp_path, monkeypatch):
    """The CUDA branch of the loop (windows gathered by `DeviceWindows` from a torch
    generator, losses read back in bursts, the generator's state saved for resume),
    run on the CPU: a run cancelled at step 13 and resumed equals an uninterrupted one."""
    import dt_playground.training.train as train_mod

    monkeypatch.setattr(train_mod, "gathers_on_device", lambda device: True)
    path = cartpole_dataset[0]
    seen = []
    full = train(_cfg(path, tmp_path / "a", steps=25), on_step=lambda s, loss, lr: seen.append(s))
    assert seen == list(range(1, 26))  # bursts of 10, then the rest: every step reported once
    asked = []  # should_stop is asked before every step; on_step comes in bursts here
    train(
        _cfg(path, tmp_path / "b", steps=25), should_stop=lambda: asked.append(1) or len(asked) > 13
    )
    state = json.loads((tmp_path / "b" / "train_state.json").read_text())
    assert state["step"] == 13 and "numpy_rng" not in state
    resumed = train(_cfg(path, tmp_path / "b", steps=25))
    np.testing.assert_allclose(
        [c["loss"] for c in resumed.curve], [c["loss"] for c in full.curve], rtol=1e-4
    )
