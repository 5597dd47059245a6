"""A DT's separate return model (training.return_model): target "best" without a head on the DT."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_model
from safetensors.torch import load_file, save_file

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.checkpoints.uploads import extract_upload
from dt_playground.cli.main import main as cli_main
from dt_playground.dt import return_head
from dt_playground.errors import CheckpointError
from dt_playground.rollout.evaluate import sweep
from dt_playground.rollout.policy import DTPolicy, run_episodes
from dt_playground.training.return_model import ReturnModelRecipe, train_return_model
from dt_playground.training.train import TrainConfig, train
from dt_playground.zoo.pretrain import already_trained

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"
TINY = ReturnModelRecipe(steps=20, hidden=16, n_layers=1, bins=12)  # as the CLI call below


@pytest.fixture(scope="module")
def dt_with_returns(cartpole_dataset, tmp_path_factory):
    """A tiny (R, s, a) DT without a head, then given a return model through the CLI:
    (the DT's folder, its model.safetensors bytes before the return model came)."""
    out = tmp_path_factory.mktemp("rm") / "cartpole-dt"
    train(
        TrainConfig(
            dataset=str(cartpole_dataset[0]),
            out=str(out),
            algo="dt",
            steps=30,
            batch_size=16,
            context_len=5,
            hidden=32,
            n_layers=1,
            warmup_steps=5,
            eval_episodes=0,
            threads=1,
            bf16=False,
            resume=False,
        )
    )
    before = (out / "model.safetensors").read_bytes()
    assert (
        cli_main(
            [
                "returns",
                "--checkpoint",
                str(out),
                "--dataset",
                str(cartpole_dataset[0]),
                "--steps",
                "20",
                "--hidden",
                "16",
                "--n-layers",
                "1",
                "--bins",
                "12",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    return out, before


def test_cli_writes_a_checked_return_model_and_leaves_the_dt_alone(dt_with_returns):
    out, before = dt_with_returns
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in (out / "returns").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    ck = load_checkpoint(out)
    assert ck.offers_best and ck.returns is not None and not return_head.has_head(ck.model.cfg)
    rcfg = ck.returns.model.cfg
    assert rcfg.return_bins == 12 and not rcfg.use_returns and rcfg.context_len == 5
    saved = json.loads((out / "returns" / "config.json").read_text())
    assert saved["complete"] and not Path(saved["train"]["out"]).is_absolute()
    assert saved["train"]["out"].endswith("returns")
    assert ck.returns.config["state_mean"] == ck.config["state_mean"]


def test_keep_check(dt_with_returns, cartpole_dataset):
    out, _ = dt_with_returns
    config = json.loads((out / "config.json").read_text())
    sha = json.loads((out / "returns" / "config.json").read_text())["dataset"]["sha256"]
    cfg = TINY.train_config(config, out / "returns", threads=1, dataset="anywhere")
    assert already_trained(cfg, sha)
    assert not already_trained(cfg, "another hash")
    cfg.steps += 1
    assert not already_trained(cfg, sha)


def test_return_model_ignores_returns_and_reads_the_past():
    m = tiny_model(
        discrete=True,
        hidden=16,
        n_heads=1,
        context_len=6,
        max_ep_len=1000,
        use_returns=False,
        return_bins=8,
        return_low=0.0,
        return_high=1.0,
    )
    g = torch.Generator().manual_seed(1)
    rtg, s = torch.rand(2, 6, 1, generator=g), torch.randn(2, 6, 4, generator=g)
    a = torch.nn.functional.one_hot(torch.randint(0, 2, (2, 6), generator=g), 2).float()
    ts = torch.arange(6).repeat(2, 1)
    base = m.return_logits(rtg, s, a, ts)
    assert torch.equal(m.return_logits(rtg * 7, s, a, ts), base)  # no return tokens
    a2 = a.clone()
    a2[:, 3] = 1 - a2[:, 3]
    changed = m.return_logits(rtg, s, a2, ts)
    assert torch.equal(changed[:, :4], base[:, :4])  # a_t is not seen by P(R_t | ...)
    assert not torch.allclose(changed[:, 4], base[:, 4])


def test_best_with_a_return_model(dt_with_returns):
    ck = load_checkpoint(dt_with_returns[0])

    def play(targets, seeds, engine="fast"):
        policy = DTPolicy.for_checkpoint(ck, engine=engine)
        return run_episodes(policy, targets, seeds, max_steps=40)

    a = play(["best", 150.0, "best"], [11, 12, 13])
    solo = play(["best"], [13])[0]
    assert np.array_equal(a[2].actions, solo.actions) and np.allclose(a[2].rtg, solo.rtg)
    ref = play(["best"], [13], engine="reference")[0]
    assert np.array_equal(ref.actions, solo.actions) and np.allclose(ref.rtg, solo.rtg)
    centres = return_head.bin_centres(ck.returns.model.cfg) * ck.norm.return_scale
    assert np.isin(np.round(a[0].rtg, 6), np.round(centres, 6)).all()
    assert np.isfinite(a[0].return_band).all()
    # A numeric target plays exactly as the DT without its return model.
    plain = run_episodes(DTPolicy(ck.model, ck.norm, ck.spec), [150.0], [12], max_steps=40)[0]
    assert np.array_equal(plain.actions, a[1].actions) and np.array_equal(plain.rtg, a[1].rtg)
    # The app's play (numeric target) carries the predicted band.
    tracked = sweep(ck, [150.0], 1, seed=12, max_steps=40, track_returns=True)[0]
    assert np.array_equal(tracked.actions, a[1].actions)
    assert np.isfinite(tracked.return_band).all()


def test_reprompt_to_best_refills_the_return_models_window(dt_with_returns):
    """Rows asked for "best" only from a later step on (K=5): the return model never saw
    their earlier steps, and must still read the window the plain forward reads."""
    from dt_playground.dt.acting import engine_for

    ck = load_checkpoint(dt_with_returns[0])
    reference = engine_for(ck.returns.model, "reference")
    gaps = []

    class Checked(DTPolicy):
        def _predict(self, rows, t, returns=False):
            out = super()._predict(rows, t, returns)
            if returns:
                w = self.window(rows, t)
                want = reference.return_logits_last(
                    *(
                        torch.from_numpy(w[k])
                        for k in ("rtg", "states", "actions", "timesteps", "mask")
                    )
                )
                gaps.append(float(np.abs(out - want.numpy()).max()))
            return out

    sched = [{0: 120.0, 9: "best"}, {0: "best"}, {0: 80.0, 3: "best", 6: 60.0, 14: "best"}]
    traces = run_episodes(
        Checked.for_checkpoint(ck),
        [s[0] for s in sched],
        [21, 22, 23],
        max_steps=30,
        schedules=sched,
    )
    assert len(gaps) >= 25 and max(gaps) < 1e-4
    assert np.isnan(traces[0].return_band[:9]).all()
    assert np.isfinite(traces[0].return_band[9:]).all()


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_return_models_that_do_not_fit_are_refused(dt_with_returns, tmp_path):
    out, _ = dt_with_returns
    # Another normalisation: trained on other data.
    d = _copy(out, tmp_path / "a")
    cfg = json.loads((d / "returns" / "config.json").read_text())
    cfg["state_mean"] = [x + 1.0 for x in cfg["state_mean"]]
    (d / "returns" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="normalises states or returns differently"):
        load_checkpoint(d)
    # No head.
    d = _copy(out, tmp_path / "b")
    cfg = json.loads((d / "returns" / "config.json").read_text())
    cfg["model"]["return_bins"] = 0
    (d / "returns" / "config.json").write_text(json.dumps(cfg))
    state = load_file(str(d / "returns" / "model.safetensors"))
    save_file(
        {k: v for k, v in state.items() if not k.startswith("predict_return")},
        str(d / "returns" / "model.safetensors"),
    )
    with pytest.raises(CheckpointError, match="no return-distribution head"):
        load_checkpoint(d)
    # Broken weights are named as the return model's.
    d = _copy(out, tmp_path / "c")
    (d / "returns" / "model.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError, match=r"return model \(returns/\) is invalid"):
        load_checkpoint(d)
    # A BC checkpoint can't have one.
    d = _copy(out, tmp_path / "d")
    cfg = json.loads((d / "config.json").read_text())
    cfg["algo"] = "bc"
    cfg["model"]["use_returns"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="Only a DT"):
        load_checkpoint(d)


def test_failed_training_leaves_the_old_return_model(dt_with_returns, tmp_path):
    d = _copy(dt_with_returns[0], tmp_path / "dt")
    before = (d / "returns" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="No Minari dataset"):
        train_return_model(d, TINY, threads=1, dataset=str(tmp_path / "no-such-dataset"))
    assert (d / "returns" / "model.safetensors").read_bytes() == before
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]


def test_upload_with_a_return_model(dt_with_returns, tmp_path):
    out, _ = dt_with_returns
    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in (
            "config.json",
            "model.safetensors",
            "returns/config.json",
            "returns/model.safetensors",
        ):
            zf.write(out / name, f"cartpole-dt/{name}")
        zf.writestr("cartpole-dt/returns/notes.txt", "ignored")
    dest = extract_upload(z, tmp_path / "unz")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "config.json",
        "model.safetensors",
        "returns/config.json",
        "returns/model.safetensors",
    ]
    assert load_checkpoint(dest).offers_best


def test_no_return_model_no_best(tiny_zoo):
    ck = load_checkpoint(tiny_zoo / "cartpole-dt")
    assert not ck.offers_best
    with pytest.raises(return_head.NoReturnHeadError, match="no return model"):
        sweep(ck, ["best"], 1, seed=3_000_000, max_steps=5)


def test_kappa_is_the_checkpoints_and_checked(dt_with_returns, tmp_path):
    from dt_playground.training.return_model import attach

    d = _copy(dt_with_returns[0], tmp_path / "dt")
    assert load_checkpoint(d).best_kappa == return_head.DEFAULT_KAPPA
    attach(d, d / "returns", kappa=100.0)
    ck = load_checkpoint(d)
    assert ck.best_kappa == 100.0 and DTPolicy.for_checkpoint(ck).kappa == 100.0
    assert DTPolicy.for_checkpoint(ck, kappa=3.0).kappa == 3.0
    for bad in (-1, "10", 1e9):
        cfg = json.loads((d / "returns" / "config.json").read_text())
        cfg["kappa"] = bad
        (d / "returns" / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match="kappa"):
            load_checkpoint(d)


def test_best_probs_survive_a_large_kappa():
    from types import SimpleNamespace

    cfg = SimpleNamespace(return_bins=4, return_low=0.0, return_high=1.0)
    probs = np.array([[0.7, 0.3, 0.0, 0.0]])  # all the mass far below the top
    p = return_head.best_probs(probs, cfg, kappa=1000.0)
    assert np.isfinite(p).all() and np.allclose(p, [[0, 1, 0, 0]])


def test_band_after_the_episode_is_the_band_step_by_step(dt_with_returns, monkeypatch):
    """Numeric targets get their band after the episode, in batches (`fill_band`); a best
    episode's band, made step by step while sampling, is what that gives too."""
    from dt_playground.rollout import policy as policy_module  # `policy` is a DTPolicy here

    ck = load_checkpoint(dt_with_returns[0])
    policy = DTPolicy.for_checkpoint(ck, track_returns=True)
    best, numeric = run_episodes(policy, ["best", 120.0], [31, 32], max_steps=40)
    assert np.isfinite(best.return_band).all() and np.isfinite(numeric.return_band).all()
    step_by_step = policy.band[0, : best.length].copy()
    policy.band[:] = np.nan
    monkeypatch.setattr(policy_module, "BAND_BATCH", 7)  # several batches, split mid-episode
    policy.fill_band([best.length, numeric.length])
    assert np.allclose(policy.band[0, : best.length], step_by_step)
    assert np.allclose(policy.band[1, : numeric.length], numeric.return_band)


def test_whole_windows_are_embedded_only_for_skipped_rows(dt_with_returns, monkeypatch):
    """The refill is for rows the return model skipped; it must not run every step (an own
    head's two passes at one step, or a row that is "best" throughout)."""
    refills = []
    original = DTPolicy._write_features

    def spy(self, engine, cache, rows, t, steps, length):
        if length > 2:
            refills.append((t, list(rows)))
        return original(self, engine, cache, rows, t, steps, length)

    monkeypatch.setattr(DTPolicy, "_write_features", spy)
    ck = load_checkpoint(dt_with_returns[0])
    run_episodes(
        DTPolicy.for_checkpoint(ck),
        [100.0, "best"],
        [41, 42],
        max_steps=30,
        schedules=[{0: 100.0, 9: "best"}, {0: "best"}],
    )
    assert refills == [(9, [0])]
    head = load_checkpoint(PRETRAINED / "cartpole-dt")  # MGDT's head: one engine, two passes
    run_episodes(DTPolicy.for_checkpoint(head), ["best"], [43], max_steps=30)
    assert refills == [(9, [0])]
