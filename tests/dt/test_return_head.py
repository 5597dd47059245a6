"""The return-distribution head and the target "best" (dt.return_head)."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import tiny_model

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.checkpoints.layout import list_checkpoints
from dt_playground.cli.main import main as cli_main
from dt_playground.dt import return_head
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.media.plots.figures import rtg_figure
from dt_playground.rollout.evaluate import summarise, sweep
from dt_playground.rollout.policy import DTPolicy, run_episodes
from dt_playground.training.train import TrainConfig, train

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"


def _head_model(seed=0, K=6, bins=16) -> DecisionTransformer:
    return tiny_model(
        seed=seed,
        discrete=True,
        context_len=K,
        max_ep_len=500,
        n_heads=1,
        return_bins=bins,
        return_low=0.0,
        return_high=5.0,
        token_order="sra",
    )


def _window(B=3, K=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(B, K, 1, generator=g) * 5,
        torch.randn(B, K, 4, generator=g),
        torch.nn.functional.one_hot(torch.randint(0, 2, (B, K), generator=g), 2).float(),
        torch.arange(K).repeat(B, 1) + 3,
    )


@pytest.fixture(scope="module")
def head_ckpt(cartpole_dataset, tmp_path_factory):
    """A DT with a return head, trained a few steps on the small CartPole dataset."""
    path, _ = cartpole_dataset
    out = tmp_path_factory.mktemp("best") / "dt"
    cfg = TrainConfig(
        dataset=str(path),
        out=str(out),
        algo="dt",
        steps=30,
        batch_size=16,
        context_len=5,
        hidden=32,
        n_layers=2,
        warmup_steps=5,
        eval_episodes=0,
        threads=1,
        bf16=False,
        return_bins=12,
        resume=False,
    )
    train(cfg)
    return load_checkpoint(out)


def test_return_head_is_causal():
    m = _head_model()
    rtg, s, a, ts = _window()
    base = m.return_logits(rtg, s, a, ts)
    t = 3
    # R_t is not seen by the prediction of R_t (nor by anything earlier) ...
    r2 = rtg.clone()
    r2[:, t] += 2.0
    changed = m.return_logits(r2, s, a, ts)
    assert torch.equal(changed[:, : t + 1], base[:, : t + 1])
    # ... but it is by the next step's, and by the action at t (read from R_t's token).
    assert not torch.allclose(changed[:, t + 1], base[:, t + 1])
    assert not torch.allclose(m(r2, s, a, ts)[:, t], m(rtg, s, a, ts)[:, t])
    # Later states change nothing earlier; s_t itself does change the prediction at t.
    s2 = s.clone()
    s2[:, t:] += 1.0
    later = m.return_logits(rtg, s2, a, ts)
    assert torch.equal(later[:, :t], base[:, :t])
    assert not torch.allclose(later[:, t], base[:, t])


def test_token_order_and_kinds():
    assert _head_model().token_kinds == ["s", "R", "a"]
    plain = tiny_model()
    assert plain.token_kinds == ["R", "s", "a"] and plain.predict_return is None
    with pytest.raises(ValueError, match="no return model"):
        plain.return_logits(*_window(K=20))
    with pytest.raises(ValueError, match="token_order"):
        DTConfig(state_dim=4, act_dim=2, token_order="ras")
    with pytest.raises(ValueError, match="sra"):
        DTConfig(state_dim=4, act_dim=2, return_bins=8, return_low=0.0, return_high=1.0)
    with pytest.raises(ValueError, match="low < high"):
        DTConfig(state_dim=4, act_dim=2, return_bins=8, token_order="sra")


def test_fast_and_reference_engines_agree_on_returns():
    m = _head_model(K=6)
    from dt_playground.dt.acting import engine_for

    rtg, s, a, ts = _window(K=6)
    fast, ref = engine_for(m, "fast"), engine_for(m, "reference")
    feats = fast.token_features(rtg, s, a, ts)
    want = m.return_logits(rtg, s, a, ts)[:, -1]
    assert torch.allclose(fast.return_logits_from_features(feats), want, atol=1e-5)
    assert torch.allclose(ref.return_logits_last(rtg, s, a, ts), want, atol=1e-5)


def test_loss_includes_return_ce_and_decreases():
    m = _head_model(K=6)
    m.train()
    rtg, s, a, ts = _window(B=16, K=6, seed=3)
    mask = torch.ones(16, 6)
    mask[:4, :2] = 0  # some padding
    batch = {"rtg": rtg, "states": s, "actions": a, "timesteps": ts, "mask": mask}
    x = m.trunk(rtg, s, a, ts, mask)
    ce = return_head.return_loss(m.return_head(x), rtg, mask, m.cfg)
    assert ce.item() > 1.0  # ~log(16) at init: the head is really in the loss
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = m.loss(batch).item()
    for _ in range(40):
        opt.zero_grad()
        m.loss(batch).backward()
        opt.step()
    assert m.loss(batch).item() < 0.7 * first


def test_bins_and_kappa():
    cfg = SimpleNamespace(return_bins=10, return_low=0.0, return_high=1.0)
    assert return_head.bin_index(torch.tensor([-1.0, 0.0, 0.05, 0.5, 0.99, 2.0]), cfg).tolist() == [
        0,
        0,
        0,
        5,
        9,
        9,
    ]
    probs = return_head.softmax(np.random.default_rng(0).normal(size=(1, 10)))
    assert np.allclose(return_head.best_probs(probs, cfg, kappa=0.0), probs)
    centres = return_head.bin_centres(cfg)
    means = []
    for kappa in (0.0, 10.0, 30.0):
        p = return_head.best_probs(probs, cfg, kappa)
        assert np.isclose(p.sum(), 1.0)
        rngs = return_head.episode_rngs(range(2000))
        draws = return_head.sample_bins(np.repeat(p, 2000, 0), rngs)
        means.append(centres[draws].mean())
    assert means[0] < means[1] < means[2]
    q = return_head.quantiles(np.eye(10)[[2, 7]], cfg)
    assert np.allclose(q, [[0.25] * 3, [0.75] * 3])


def test_best_rollout_deterministic_and_batch_independent(head_ckpt):
    ck = head_ckpt

    def play(targets, seeds, **kw):
        return run_episodes(
            DTPolicy(ck.model, ck.norm, ck.spec, **kw), targets, seeds, max_steps=60
        )

    a = play(["best", 150.0, "best"], [11, 12, 13])
    b = play(["best", 150.0, "best"], [11, 12, 13])
    solo = play(["best"], [13])[0]
    for x, y in zip(a, b):
        assert np.array_equal(x.actions, y.actions) and np.array_equal(x.rtg, y.rtg)
    assert np.array_equal(a[2].actions, solo.actions) and np.allclose(a[2].rtg, solo.rtg)
    centres = return_head.bin_centres(ck.model.cfg) * ck.norm.return_scale
    assert np.isin(np.round(a[0].rtg, 6), np.round(centres, 6)).all()  # sampled bins
    assert a[1].rtg[0] == 150.0 and np.isnan(a[1].return_band).all()  # numeric: as before
    assert np.isfinite(a[0].return_band).all()
    assert (np.diff(a[0].return_band, axis=1) >= 0).all()  # p10 <= p50 <= p90
    d = a[0].to_dict()
    assert d["target"] == "best" and len(d["rtg"]) == a[0].length
    tracked = play([150.0], [12], track_returns=True)[0]
    assert np.array_equal(tracked.actions, a[1].actions)
    assert np.isfinite(tracked.return_band).all()
    ref = play(["best"], [13], engine="reference")[0]
    assert np.array_equal(ref.actions, solo.actions) and np.allclose(ref.rtg, solo.rtg)
    # Re-prompting to "best" mid-episode switches to sampled returns from that step.
    policy = DTPolicy(ck.model, ck.norm, ck.spec)
    tr = run_episodes(policy, [150.0], [12], max_steps=30, schedules=[{5: "best"}])[0]
    assert np.isnan(tr.return_band[:5]).all() and np.isfinite(tr.return_band[5:]).all()


def test_models_without_a_head_refuse_best():
    bc = load_checkpoint(PRETRAINED / "cartpole-bc")
    with pytest.raises(return_head.NoReturnHeadError, match="no return model"):
        sweep(bc, ["best"], 1, seed=3_000_000, max_steps=5)
    with pytest.raises(ValueError, match="no return model"):
        DTPolicy(bc.model, bc.norm, bc.spec).reset(["best"], [0], 5)


def _old_forward(m, rtg, s, a, ts):
    """The action prediction as the model computed it before the return head existed."""
    t = m.embed_timestep(ts)
    toks = [m.embed_state(s) + t, m.embed_action(a) + t]
    if m.cfg.use_returns:
        toks.insert(0, m.embed_return(rtg) + t)
    B, K, n, h = s.shape[0], s.shape[1], len(toks), m.cfg.hidden
    x = m.embed_ln(torch.stack(toks, 2)).reshape(B, n * K, h)
    for blk in m.blocks:
        x = blk(x, None)
    out = m.predict_action(m.ln_f(x.reshape(B, K, n, h)[:, :, n - 2]))
    return out if m.cfg.discrete else torch.tanh(out)


def test_shipped_checkpoints_load_and_act_unchanged():
    folders = list_checkpoints(PRETRAINED)
    assert len(folders) >= 18
    old_layout = 0
    for path in folders:
        raw = json.loads((path / "config.json").read_text())["model"]
        ck = load_checkpoint(path)
        cfg = ck.model.cfg
        if raw.get("return_bins"):  # a recipe with the head (CartPole's DT): order (s, R, a)
            assert cfg.return_bins == raw["return_bins"] and cfg.token_order == "sra"
            assert ck.model.predict_return is not None
            continue  # `_old_forward` describes the (R, s, a) layout only
        old_layout += 1
        if "return_bins" not in raw:  # made before the head: defaults, old layout
            assert cfg.return_bins == 0 and cfg.token_order == "rsa"
            assert ck.model.predict_return is None
            assert not any(k.startswith("predict_return") for k in ck.model.state_dict())
        g = torch.Generator().manual_seed(0)
        K = cfg.context_len
        s = torch.randn(2, K, cfg.state_dim, generator=g)
        a = torch.rand(2, K, cfg.act_dim, generator=g)
        rtg = torch.rand(2, K, 1, generator=g)
        ts = torch.arange(K).repeat(2, 1)
        with torch.no_grad():
            want = _old_forward(ck.model, rtg, s, a, ts)
            assert torch.allclose(ck.model(rtg, s, a, ts), want, atol=1e-6), path.name
    assert old_layout >= 18


def test_train_records_head_in_config(head_ckpt, cartpole_dataset, tmp_path):
    cfg = head_ckpt.model.cfg
    assert cfg.return_bins == 12 and cfg.token_order == "sra" and cfg.return_low < cfg.return_high
    saved = json.loads((head_ckpt.path / "config.json").read_text())
    assert saved["model"]["return_bins"] == 12 and saved["train"]["return_bins"] == 12
    assert cfg.return_high * head_ckpt.norm.return_scale == pytest.approx(
        max(e.ret for e in cartpole_dataset[1]), rel=1e-5
    )
    out = tmp_path / "bc"
    train(
        TrainConfig(
            dataset=str(cartpole_dataset[0]),
            out=str(out),
            algo="bc",
            steps=2,
            batch_size=4,
            context_len=5,
            hidden=16,
            n_layers=1,
            warmup_steps=1,
            eval_episodes=0,
            threads=1,
            bf16=False,
            resume=False,
        )
    )
    bc = load_checkpoint(out).model.cfg
    assert bc.return_bins == 0 and bc.token_order == "rsa"


def test_summarise_and_plot_with_best(head_ckpt):
    traces = sweep(
        head_ckpt, [100.0, "best", 20.0], 2, seed=3_000_000, max_steps=25, track_returns=True
    )
    s = summarise(traces)
    assert [r["target"] for r in s["per_target"]] == [20.0, 100.0, "best"]
    names = {t.name for t in rtg_figure(traces[2]).data}
    assert {"predicted return p10-p90", "predicted return (median)", "sampled RTG (best)"} <= names
    assert "best" in rtg_figure(traces[2]).layout.title.text
    traces[0].return_band = None
    assert "predicted return (median)" not in {t.name for t in rtg_figure(traces[0]).data}


def test_cli_best_json(head_ckpt, capsys):
    ck = str(head_ckpt.path)
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                ck,
                "--target",
                "best",
                "--episodes",
                "2",
                "--seed",
                "3000000",
                "--max-steps",
                "15",
                "--json",
            ]
        )
        == 0
    )
    eps = json.loads(capsys.readouterr().out)["episodes"]
    assert [e["target"] for e in eps] == ["best", "best"]
    assert all(len(e["rtg"]) == e["length"] for e in eps)
    assert (
        cli_main(
            [
                "sweep",
                "--checkpoint",
                ck,
                "--targets=best,50",
                "--seeds",
                "1",
                "--max-steps",
                "10",
                "--json",
            ]
        )
        == 0
    )
    eps = json.loads(capsys.readouterr().out)["episodes"]
    assert sorted(str(e["target"]) for e in eps) == ["50.0", "best"]
    assert (
        cli_main(
            ["sweep", "--checkpoint", ck, "--targets=best,50", "--seeds", "1", "--max-steps", "10"]
        )
        == 0
    )
    assert "best" in capsys.readouterr().out


def test_card_reports_best(head_ckpt, tmp_path):
    import shutil

    from dt_playground.checkpoints import hub_card
    from dt_playground.zoo.cards import card_evaluation, zoo_table

    root = tmp_path / "zoo"
    shutil.copytree(head_ckpt.path, root / "cartpole-dt")
    refs = {"bc": 20.0, "pbc": 1e6}
    card = card_evaluation(root / "cartpole-dt", refs, n_seeds=2, n_targets=2, max_steps=15)
    assert [r["target"] for r in card["per_target"]] == sorted(
        r["target"] for r in card["per_target"]
    )
    assert card["best_mean"] >= 0 and card["best_std"] >= 0
    assert card["bars"]["best_ge_pbc"] is False  # no run reaches 1e6
    assert isinstance(card["bars"]["best_shortfall_le_5pct"], bool)
    (root / "cartpole-dt" / "card.json").write_text(json.dumps(card))
    assert "Target `best`" in hub_card.render(root / "cartpole-dt")
    table = zoo_table(root)
    assert "DT at best" in table.splitlines()[0]
    assert f"{card['best_mean']:.1f} ± {card['best_std']:.1f}" in table
