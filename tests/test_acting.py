"""The acting engine computes the model's forward(...)[:, -1], on every path."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_model import _inputs

from dt_playground import cpu
from dt_playground.acting import Acting
from dt_playground.model import DecisionTransformer, DTConfig

onednn = pytest.mark.skipif(cpu._ONEDNN_LINEAR is None, reason="torch built without oneDNN")


def _model(hidden, use_returns=True, discrete=False, K=6):
    torch.manual_seed(0)
    cfg = DTConfig(5, 3, discrete, hidden=hidden, n_layers=3, n_heads=2, context_len=K,
                   max_ep_len=50, dropout=0.0, use_returns=use_returns)
    return DecisionTransformer(cfg).eval()


# hidden 32 stays on ATen's matmuls; hidden 128 with K=20 sends the large ones
# through packed oneDNN weights with fused ReLU and residual adds.
@pytest.mark.parametrize("hidden,K", [(32, 6), (128, 20)], ids=["aten", "onednn"])
@pytest.mark.parametrize("use_returns", [True, False], ids=["dt", "bc"])
@pytest.mark.parametrize("pad", [0, 2, "mixed"])
def test_predict_last_equals_forward_last(hidden, K, use_returns, pad):
    model = _model(hidden, use_returns, K=K)
    rtg, s, a, t, m = _inputs(3, K, 5, 3, False)
    if pad == "mixed":
        m[0, :3] = 0
    elif pad:
        m[:, :pad] = 0
    with torch.no_grad():
        full = model(rtg, s, a, t, m)[:, -1]
    torch.testing.assert_close(Acting(model).predict_last(rtg, s, a, t, m), full,
                               rtol=1e-5, atol=1e-5)


def test_discrete_logits_and_frozen_weights():
    model = _model(128, discrete=True, K=20)
    rtg, s, a, t, m = _inputs(4, 20, 5, 3, True)
    engine = Acting(model)
    with torch.no_grad():
        full = model(rtg, s, a, t, m)[:, -1]
        torch.testing.assert_close(engine.predict_last(rtg, s, a, t, m), full,
                                   rtol=1e-5, atol=1e-5)
        model.predict_action.bias.add_(1.0)  # the engine keeps the weights it was made with
    torch.testing.assert_close(engine.predict_last(rtg, s, a, t, m), full, rtol=1e-5, atol=1e-5)


def test_bf16_engine_is_close_to_fp32():
    model = _model(128, K=20)
    rtg, s, a, t, m = _inputs(4, 20, 5, 3, False)
    ref = Acting(model).predict_last(rtg, s, a, t, m)
    bf = Acting(model, torch.bfloat16)
    out = bf.predict_last(rtg.bfloat16(), s.bfloat16(), a.bfloat16(), t, m)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.03, rtol=0.05)
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched


@onednn
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("packed", [False, True])
def test_onednn_linear_matches_aten(dtype, packed):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, 128, generator=g).to(dtype)
    w = (torch.randn(512, 128, generator=g) * 0.05).to(dtype)
    b = torch.randn(512, generator=g).to(dtype)
    res = torch.randn(2, 40, 512, generator=g).to(dtype)
    assert 80 * 128 * 512 >= cpu.ONEDNN_MIN_MACS  # this size takes the oneDNN path
    p = cpu.pack_weight(w) if packed else None
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=0.02, atol=0.05)
    ref = F.linear(x.float(), w.float(), b.float())
    torch.testing.assert_close(cpu.linear(x, w, b, packed=p).float(), ref, **tol)
    torch.testing.assert_close(cpu.linear(x, w, b, relu=True, packed=p).float(), ref.relu(),
                               **tol)
    torch.testing.assert_close(cpu.linear(x, w, b, residual=res, packed=p).float(),
                               ref + res.float(), **tol)


def test_retain_freed_memory_is_idempotent():
    first = cpu.retain_freed_memory()
    assert cpu.retain_freed_memory() == first


def test_engine_reused_until_weights_change():
    model = _model(32)
    a = Acting.for_model(model)
    assert Acting.for_model(model) is a
    assert Acting.for_model(model, torch.bfloat16) is not a
    rtg, s, act, t, m = _inputs(2, 6, 5, 3, False)
    before = a.predict_last(rtg, s, act, t, m)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model.loss({"rtg": rtg, "states": s, "actions": act, "timesteps": t, "mask": m}).backward()
    opt.step()
    model.eval()
    b = Acting.for_model(model)
    assert b is not a
    torch.testing.assert_close(a.predict_last(rtg, s, act, t, m), before)  # a kept its weights
    with torch.no_grad():
        now = model(rtg, s, act, t, m)[:, -1]
    torch.testing.assert_close(b.predict_last(rtg, s, act, t, m), now, rtol=1e-5, atol=1e-5)
    copy.deepcopy(model)  # the model holds nothing that can't be copied
