import dataclasses

import numpy as np
import pytest
import torch
from helpers import tiny_model

from dt_playground.dt.acting import engine_for
from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.training import fast_step


def _inputs(B, K, S, A, discrete, seed=0):
    g = torch.Generator().manual_seed(seed)
    if discrete:
        actions = torch.nn.functional.one_hot(torch.randint(A, (B, K), generator=g), A).float()
    else:
        actions = torch.rand(B, K, A, generator=g) * 2 - 1
    return (
        torch.randn(B, K, 1, generator=g),
        torch.randn(B, K, S, generator=g),
        actions,
        torch.arange(K).repeat(B, 1) + 7,
        torch.ones(B, K),
    )


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "discrete"])
def test_shapes_and_output_range(discrete):
    model = tiny_model(
        state_dim=11,
        act_dim=3,
        discrete=discrete,
        hidden=64,
        context_len=6,
        max_ep_len=100,
        dropout=0.1,
    )
    with torch.no_grad():
        model.predict_action.weight.mul_(100.0)  # pre-activations far outside [-1, 1]
        out = model(*_inputs(4, 6, 11, 3, discrete))
    assert out.shape == (4, 6, 3)
    if not discrete:
        assert out.abs().max() <= 1.0  # tanh head
    else:
        assert out.abs().max() > 1.0  # raw logits: neither squashed nor probabilities


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "discrete"])
@pytest.mark.parametrize("what", ["rtg", "state", "action"])
def test_causality(discrete, what):
    """Changing step j's tokens leaves every prediction before j unchanged."""
    model = tiny_model(state_dim=5, act_dim=3, discrete=discrete, n_layers=3, context_len=8)
    rtg, s, a, t, m = _inputs(2, 8, 5, 3, discrete)
    base = model(rtg, s, a, t, m)
    j = 5
    rtg2, s2, a2 = rtg.clone(), s.clone(), a.clone()
    {"rtg": rtg2, "state": s2, "action": a2}[what][:, j:] += 3.0
    out = model(rtg2, s2, a2, t, m)
    torch.testing.assert_close(out[:, :j], base[:, :j])
    if what == "action":  # a_j comes after s_j: prediction j unchanged too
        torch.testing.assert_close(out[:, j], base[:, j])
    else:
        assert not torch.allclose(out[:, j], base[:, j])


def test_padding_is_ignored():
    """A left-padded window gives the same predictions as the unpadded one."""
    model = tiny_model(context_len=6, n_heads=1)
    rtg, s, a, t, m = _inputs(2, 6, 4, 2, False)
    m[0, :3] = 0  # row 0 has 3 real steps, row 1 is full
    rtg[0, :3], s[0, :3], a[0, :3] = 5.0, -7.0, 0.3  # junk in the padding
    out = model(rtg, s, a, t, m)
    alone = model(rtg[:1, 3:], s[:1, 3:], a[:1, 3:], t[:1, 3:], m[:1, 3:])
    torch.testing.assert_close(out[0, 3:], alone[0])
    rtg[0, :3] = -99.0  # different padding junk: same result
    torch.testing.assert_close(model(rtg, s, a, t, m), out)


def test_bc_ignores_returns():
    model = tiny_model(use_returns=False, n_heads=1, dropout=0.1)
    rtg, s, a, t, m = _inputs(2, 5, 4, 2, False)
    torch.testing.assert_close(model(rtg, s, a, t, m), model(rtg * 10 + 3, s, a, t, m))


def test_dt_depends_on_returns():
    model = tiny_model(n_heads=1, dropout=0.1)
    rtg, s, a, t, m = _inputs(2, 5, 4, 2, False)
    assert not torch.allclose(model(rtg, s, a, t, m), model(rtg + 1.0, s, a, t, m))


def test_loss_is_masked():
    model = tiny_model(act_dim=3, discrete=True, n_layers=1, context_len=4, n_heads=1)
    rtg, s, a, t, m = _inputs(3, 4, 4, 3, True)
    m[:, :2] = 0
    batch = {"rtg": rtg, "states": s, "actions": a, "timesteps": t, "mask": m}
    loss = model.loss(batch)
    a2 = a.clone()
    a2[:, :2] = torch.nn.functional.one_hot(torch.zeros(3, 2, dtype=torch.long), 3).float()
    # Targets at padded positions don't count (inputs there are masked too).
    assert np.isclose(float(model.loss({**batch, "actions": a2}).detach()), float(loss.detach()))


def test_training_attention_path_matches_sdpa():
    """With gradients on, attention is written out (faster backward on CPU); it must
    compute exactly what the SDPA inference path computes, padding included."""
    model = tiny_model(context_len=6).train()
    model.train()  # dropout 0: train mode differs only in the attention path
    rtg, s, a, t, m = _inputs(3, 6, 4, 2, False)
    m[0, :2] = 0
    with torch.no_grad():
        ref = model(rtg, s, a, t, m)
    s.requires_grad_(True)
    out = model(rtg, s, a, t, m)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_returns", [True, False], ids=["dt", "bc"])
def test_attention_maps_are_what_forward_applies(use_returns):
    model = tiny_model(state_dim=5, act_dim=3, context_len=6, use_returns=use_returns)
    rtg, s, a, t, m = _inputs(2, 6, 5, 3, False)
    m[1, :2] = 0  # row 1 is padded at the start
    maps = model.attention_maps(rtg, s, a, t, m)
    n = model.n_tokens
    assert len(maps) == 2 and maps[0].shape == (2, 2, 6 * n, 6 * n)
    for p in maps:
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
        assert torch.all(p.triu(1) == 0)  # causal
        assert torch.all(p[1, :, 2 * n :, : 2 * n] == 0)  # real tokens ignore the padding
    # The first block's probabilities, applied to its values, give its attention output.
    x, attn_mask = model._tokens(rtg, s, a, t, m)
    block = model.blocks[0]
    B, T, _ = x.shape
    q, k, v = block.attn.qkv(block.ln1(x)).view(B, T, 3, 2, -1).permute(2, 0, 3, 1, 4)
    with torch.no_grad():
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    torch.testing.assert_close(maps[0] @ v.detach(), sdpa, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "discrete"])
def test_training_step_has_no_host_sync(discrete):
    """Forward, loss and backward run on the meta device, where any data-dependent
    host read (``bool(t)``, ``int(t)``, boolean-mask indexing) raises: so nothing in
    the step waits on the GPU and a CUDA graph can capture it."""
    model = tiny_model(act_dim=3, discrete=discrete, dropout=0.1).to("meta").train()
    rtg, s, a, t, m = (x.to("meta") for x in _inputs(3, 5, 4, 3, discrete))
    batch = {"rtg": rtg, "states": s, "actions": a, "timesteps": t, "mask": m}
    loss = model.loss(batch)
    loss.backward()
    assert loss.shape == () and model.predict_action.weight.grad is not None
    # The meta device does catch a sync: the old boolean-indexed loss could not run here.
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(m.all())


def test_loss_is_the_mean_over_real_steps():
    model = tiny_model(n_layers=1, context_len=4, n_heads=1)
    rtg, s, a, t, m = _inputs(3, 4, 4, 2, False)
    m[0, :2] = 0
    m[2, :1] = 0
    with torch.no_grad():
        pred = model(rtg, s, a, t, m)
        keep = m.bool()
        expected = torch.nn.functional.mse_loss(pred[keep], a[keep])
        loss = model.loss({"rtg": rtg, "states": s, "actions": a, "timesteps": t, "mask": m})
    torch.testing.assert_close(loss, expected)


def test_strip_common_padding():
    model = tiny_model(context_len=6, n_heads=1)
    rtg, s, a, t, m = _inputs(2, 6, 4, 2, False)
    m[:, :2] = 0
    m[0, 2] = 0  # row 0 has one more padded step than row 1
    out = DecisionTransformer.strip_common_padding(rtg, s, a, t, m)
    assert out[1].shape[1] == 4 and out[4] is not None and out[4].shape == (2, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(*out)[:, -1], model(rtg, s, a, t, m)[:, -1])
    m[0, 2] = 1
    out = DecisionTransformer.strip_common_padding(rtg, s, a, t, m)
    assert out[1].shape[1] == 4 and out[4] is None  # nothing padded is left
    assert DecisionTransformer.strip_common_padding(rtg, s, a, t, None)[1] is s


def test_config_is_keyword_only():
    with pytest.raises(TypeError):
        DTConfig(4, 2)  # nine positional numbers were too easy to swap
    cfg = DTConfig(state_dim=4, act_dim=2)
    assert DTConfig(**cfg.to_dict()) == cfg


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_step_has_no_host_sync_on_cuda():
    """What a CUDA graph needs, checked by CUDA itself: any synchronising call raises."""
    model = tiny_model(act_dim=3, dropout=0.1).cuda().train()
    rtg, s, a, t, m = (x.cuda() for x in _inputs(3, 5, 4, 3, False))
    m[0, :2] = 0
    batch = {"rtg": rtg, "states": s, "actions": a, "timesteps": t, "mask": m}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(batch)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(loss).item()


HEAD = {"return_bins": 8, "return_low": -1.0, "return_high": 2.0}
# `helpers.tiny_model`'s config with one thing changed in each: together, every field.
VARIANTS = {
    "default": {},
    "state_dim=1": {"state_dim": 1},
    "act_dim=1": {"act_dim": 1},
    "discrete": {"discrete": True, "act_dim": 3},
    "hidden=48": {"hidden": 48},
    "n_layers=1": {"n_layers": 1},
    "n_layers=3": {"n_layers": 3},
    "n_heads=1": {"n_heads": 1},
    "n_heads=4": {"n_heads": 4},
    "context_len=1": {"context_len": 1},
    "max_ep_len=20": {"max_ep_len": 20},
    "dropout=0.1": {"dropout": 0.1},
    "use_returns=False": {"use_returns": False},
    "return head (s, R, a)": {**HEAD, "token_order": "sra"},
    "return model (s, a)": {**HEAD, "use_returns": False},
}


def test_the_variants_change_every_config_field():
    assert {k for v in VARIANTS.values() for k in v} == {
        f.name for f in dataclasses.fields(DTConfig)
    }


@pytest.mark.parametrize("fields", VARIANTS.values(), ids=list(VARIANTS))
def test_one_forward_for_every_engine(fields):
    """`model.block_forward` is the one DT forward: the model's (SDPA at inference, the
    written-out attention when a backward follows), the acting engine's (prepacked, the
    last block for one token) and the fast training step's (one embedding matmul, the
    last block for the slots the loss reads) agree on every config."""
    model = tiny_model(**fields)
    cfg = model.cfg
    B, K = 3, cfg.context_len
    rtg, s, a, t, m = _inputs(B, K, cfg.state_dim, cfg.act_dim, cfg.discrete)
    t = t % cfg.max_ep_len
    m[0, : K - 1] = 0  # padded rows: masks and biases take part
    batch = {"rtg": rtg, "states": s, "actions": a, "timesteps": t, "mask": m}
    real = m > 0
    with torch.no_grad():
        sdpa, trunk, loss = model(rtg, s, a, t, m), model.trunk(rtg, s, a, t, m), model.loss(batch)
    close = {"atol": 2e-5, "rtol": 2e-5}
    written_out = model(rtg, s, a, t, m)  # with gradients: the explicit attention
    assert written_out.requires_grad
    torch.testing.assert_close(written_out.detach()[real], sdpa[real], **close)
    fast = engine_for(model, "fast")
    torch.testing.assert_close(fast.predict_last(rtg, s, a, t, m), sdpa[:, -1], **close)
    with torch.no_grad():
        fast_trunk = fast_step.trunk(model, batch, "fp32")
        torch.testing.assert_close(fast_trunk[real], trunk[real], **close)
        torch.testing.assert_close(fast_step.loss(model, batch), loss, **close)
    if cfg.return_bins:
        feats = fast.token_features(rtg, s, a, t)
        with torch.no_grad():
            want = model.return_logits(rtg, s, a, t, m)[:, -1]
        torch.testing.assert_close(fast.return_logits_from_features(feats, m), want, **close)
