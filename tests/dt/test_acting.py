"""The acting engine computes the model's forward(...)[:, -1], on every path."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model

from dt_playground.dt import runtime
from dt_playground.dt.acting import Acting, Reference, engine_for


def _inputs(B, K, S, A, discrete, seed=0):
    """Random model inputs (rtg, states, actions, timesteps, mask): every step real."""
    g = torch.Generator().manual_seed(seed)
    if discrete:
        actions = F.one_hot(torch.randint(A, (B, K), generator=g), A).float()
    else:
        actions = torch.rand(B, K, A, generator=g) * 2 - 1
    return (
        torch.randn(B, K, 1, generator=g),
        torch.randn(B, K, S, generator=g),
        actions,
        torch.arange(K).repeat(B, 1) + 7,
        torch.ones(B, K),
    )


onednn = pytest.mark.skipif(runtime._ONEDNN_LINEAR is None, reason="torch built without oneDNN")


def _model(hidden, use_returns=True, discrete=False, K=6):
    return tiny_model(
        state_dim=5,
        act_dim=3,
        discrete=discrete,
        hidden=hidden,
        n_layers=3,
        context_len=K,
        use_returns=use_returns,
    )


# hidden 32 stays on ATen's matmuls; hidden 128 with K=20 sends the large ones
# through packed oneDNN weights with fused ReLU and residual adds where oneDNN
# takes fp32 (`runtime.ONEDNN_FP32`: AVX-512 CPUs; forced here), else through ATen.
@pytest.mark.parametrize(
    "hidden,K,fp32_onednn",
    [(32, 6, False), (128, 20, True), (128, 20, False)],
    ids=["aten", "onednn", "aten-large"],
)
@pytest.mark.parametrize("use_returns", [True, False], ids=["dt", "bc"])
@pytest.mark.parametrize("pad", [0, 2, "mixed"])
def test_predict_last_equals_forward_last(hidden, K, fp32_onednn, use_returns, pad, monkeypatch):
    if fp32_onednn and runtime._ONEDNN_LINEAR is None:
        pytest.skip("torch built without oneDNN")
    monkeypatch.setattr(runtime, "ONEDNN_FP32", fp32_onednn)
    model = _model(hidden, use_returns, K=K)
    rtg, s, a, t, m = _inputs(3, K, 5, 3, False)
    if pad == "mixed":
        m[0, :3] = 0
    elif pad:
        m[:, :pad] = 0
    with torch.no_grad():
        full = model(rtg, s, a, t, m)[:, -1]
    torch.testing.assert_close(
        Acting(model).predict_last(rtg, s, a, t, m), full, rtol=1e-5, atol=1e-5
    )


def test_discrete_logits_and_frozen_weights():
    model = _model(128, discrete=True, K=20)
    rtg, s, a, t, m = _inputs(4, 20, 5, 3, True)
    engine = Acting(model)
    with torch.no_grad():
        full = model(rtg, s, a, t, m)[:, -1]
        torch.testing.assert_close(engine.predict_last(rtg, s, a, t, m), full, rtol=1e-5, atol=1e-5)
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
def test_onednn_linear_matches_aten(dtype, packed, monkeypatch):
    if dtype == torch.bfloat16 and not runtime.ONEDNN_BF16:
        pytest.skip("oneDNN has no bf16 kernels for this CPU")
    monkeypatch.setattr(runtime, "ONEDNN_FP32", True)  # fp32 through oneDNN on any CPU
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, 128, generator=g).to(dtype)
    w = (torch.randn(512, 128, generator=g) * 0.05).to(dtype)
    b = torch.randn(512, generator=g).to(dtype)
    res = torch.randn(2, 40, 512, generator=g).to(dtype)
    assert 80 * 128 * 512 >= runtime.ONEDNN_MIN_MACS  # this size takes the oneDNN path
    p = runtime.pack_weight(w) if packed else None
    assert (p is not None) == packed
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=0.02, atol=0.05)
    ref = F.linear(x.float(), w.float(), b.float())
    torch.testing.assert_close(runtime.linear(x, w, b, packed=p).float(), ref, **tol)
    relu = runtime.linear(x, w, b, relu=True, packed=p)
    torch.testing.assert_close(relu.float(), ref.relu(), **tol)
    torch.testing.assert_close(
        runtime.linear(x, w, b, residual=res, packed=p).float(), ref + res.float(), **tol
    )


def test_engine_reused_until_weights_change():
    model = _model(32)
    a = engine_for(model)
    assert engine_for(model) is a
    assert engine_for(model, dtype=torch.bfloat16) is not a
    assert isinstance(engine_for(model, "reference"), Reference)
    rtg, s, act, t, m = _inputs(2, 6, 5, 3, False)
    before = a.predict_last(rtg, s, act, t, m)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model.loss({"rtg": rtg, "states": s, "actions": act, "timesteps": t, "mask": m}).backward()
    opt.step()
    model.weights_changed()  # what the trainer does after its steps
    model.eval()
    b = engine_for(model)
    assert b is not a
    torch.testing.assert_close(a.predict_last(rtg, s, act, t, m), before)  # a kept its weights
    with torch.no_grad():
        now = model(rtg, s, act, t, m)[:, -1]
    torch.testing.assert_close(b.predict_last(rtg, s, act, t, m), now, rtol=1e-5, atol=1e-5)
    model.load_state_dict(copy.deepcopy(model.state_dict()))  # a load is a new engine too
    assert engine_for(model) is not b
    with pytest.raises(ValueError, match="engine"):
        engine_for(model, "turbo")


@pytest.mark.parametrize("pad", [0, 2, "mixed"])
def test_reference_engine_is_forward_last(pad):
    model = _model(32)
    rtg, s, a, t, m = _inputs(3, 6, 5, 3, False)
    if pad == "mixed":
        m[0, :3] = 0
    elif pad:
        m[:, :pad] = 0
    with torch.no_grad():
        full = model(rtg, s, a, t, m)[:, -1]
    torch.testing.assert_close(Reference(model).predict_last(rtg, s, a, t, m), full)


@onednn
def test_onednn_failure_falls_back_to_plain_matmuls(monkeypatch):
    """If a private oneDNN op raises (a torch build without it), the engine warns once
    and computes the same actions with ATen's matmuls."""
    monkeypatch.setattr(runtime, "ONEDNN_FP32", True)
    model = _model(128, K=20)
    rtg, s, a, t, m = _inputs(3, 20, 5, 3, False)
    with torch.no_grad():
        full = model(rtg, s, a, t, m)[:, -1]
    engine = Acting(model)  # packed weights, made while oneDNN works

    class Broken:
        def __call__(self, *args):
            raise RuntimeError("mkldnn op not supported")

        binary = __call__

    monkeypatch.setattr(runtime, "_ONEDNN_LINEAR", Broken())
    with pytest.warns(UserWarning, match="oneDNN"):
        out = engine.predict_last(rtg, s, a, t, m)
    assert runtime._ONEDNN_LINEAR is None  # off for the rest of the process (monkeypatch restores)
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        Acting(model).predict_last(rtg, s, a, t, m), full, rtol=1e-5, atol=1e-5
    )


def test_engine_on_explicit_device_and_bad_device():
    model = _model(32)
    rtg, s, a, t, m = _inputs(2, 6, 5, 3, False)
    engine = engine_for(model, device="cpu")
    assert engine.device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        runtime.resolve_device("tpu")
    assert runtime.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            runtime.resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["fast", "reference"])
def test_cuda_engines_match_cpu(kind):
    model = _model(128, K=20)
    rtg, s, a, t, m = _inputs(4, 20, 5, 3, False)
    m[0, :5] = 0
    ref = Reference(model).predict_last(rtg, s, a, t, m)
    gpu = engine_for(model, kind, device="cuda")
    out = gpu.predict_last(*(x.cuda() for x in (rtg, s, a, t, m)))
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)


def test_threads_block_restores_the_count():
    before = torch.get_num_threads()
    with runtime.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    # Overlapping blocks (two trainings in a server's threads) ending out of order.
    a, b = runtime.torch_threads(1), runtime.torch_threads(2)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert torch.get_num_threads() == 2  # b still runs
    b.__exit__(None, None, None)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "discrete"])
def test_fast_and_reference_policies_agree_at_every_step(discrete):
    """Lock-step rollouts through both engines: at every step, for every live row
    (rows leave as their episodes end), the fast engine's output is the reference's."""
    from dt_playground.data.windows import Normaliser
    from dt_playground.envs.registry import get_spec
    from dt_playground.rollout.policy import DTPolicy

    spec = get_spec("CartPole-v1" if discrete else "Hopper-v5")
    S, A = (4, 2) if discrete else (11, 3)
    model = _model(32, discrete=discrete, K=6)
    model = tiny_model(
        **{**model.cfg.to_dict(), "state_dim": S, "act_dim": A, "max_ep_len": spec.max_ep_len}
    )
    norm = Normaliser(np.zeros(S, np.float32), np.ones(S, np.float32), 100.0)
    fast = DTPolicy(model, norm, spec, engine="fast")
    ref = DTPolicy(model, norm, spec, engine="reference")
    n, T = 5, 14
    for p in (fast, ref):
        p.reset([1.0, 50.0, 100.0, 150.0, 200.0], range(n), T)
    rng = np.random.default_rng(0)
    rows = np.arange(n)
    for t in range(T):
        if t in (4, 9):  # an episode ends: its row leaves
            rows = rows[1:]
        obs = rng.normal(size=(len(rows), S)).astype(np.float32)
        for p in (fast, ref):  # the same inputs for both
            p.states[rows, t] = norm.states(obs)
            p.rtg[rows, t] = norm.returns(p.next_rtg[rows])
        out_f, out_r = fast._predict(rows, t), ref._predict(rows, t)
        np.testing.assert_allclose(out_f, out_r, rtol=1e-4, atol=1e-5, err_msg=f"step {t}")
        acts = rng.uniform(-1, 1, size=(len(rows), A)).astype(np.float32)
        for p in (fast, ref):
            p.actions[rows, t] = acts
            p.observe(rows, rng.normal(size=len(rows)))


def test_bench_interleaves_rounds_and_reports_spread():
    """`bench`'s A/B rounds alternate which side runs first, and each side's figure is
    the median of its rounds with their min-max spread."""
    from dt_playground.cli.bench_cases import interleave

    calls = []

    def side(name, values):
        it = iter(values)

        def block():
            calls.append(name)
            return next(it)

        return block

    a, b = interleave(side("a", [3.0, 1.0, 2.0, 9.0]), side("b", [5.0, 6.0, 4.0, 5.0]), 4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert a.median == 2.5 and a.spread == (1.0, 9.0) and b.median == 5.0
    only, none = interleave(side("c", [1.0, 2.0]), None, 2)
    assert none is None and only.rounds == [1.0, 2.0]


@pytest.mark.parametrize("n", [1, 32])
def test_fast_policy_is_the_reference_at_the_paper_config(n):
    """At the benchmark's sizes (K=20, h=128, 3 layers; batch 1 and 32, fp32), with
    trained-size weights, the fast engine's actions are the reference engine's at every
    step of a lock-step rollout: equal to fp32 rounding (the two sum in different
    orders, so bit-equality is not promised)."""
    from dt_playground.cli import bench_cases
    from dt_playground.data.windows import Normaliser
    from dt_playground.envs.registry import get_spec
    from dt_playground.rollout.policy import DTPolicy

    torch.manual_seed(0)
    model = bench_cases.ours_model().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    S = model.cfg.state_dim
    norm = Normaliser(np.zeros(S), np.ones(S), 1000.0)
    fast, ref = (
        DTPolicy(model, norm, get_spec("Hopper-v5"), engine=e) for e in ("fast", "reference")
    )
    T = 30  # the window fills at step 20
    obs = np.random.default_rng(0).normal(size=(T, n, S)).astype(np.float32)
    rows = np.arange(n)
    for p in (fast, ref):
        p.reset([3000.0] * n, list(range(n)), T)
    for t in range(T):
        a, b = (np.array(p.act(rows, t, obs[t])) for p in (fast, ref))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=f"step {t}")
        ref.actions[rows, t] = fast.actions[rows, t]  # the same history on both sides
        for p in (fast, ref):
            p.observe(rows, np.ones(n))


def test_bench_counts_the_training_step_flops():
    """`bench_cases.train_flops` at the paper config, written out: per layer the linears
    (qkv 3h + proj h + MLP 8h per token) and attention (scores and values), the last
    layer on the state tokens alone (keys and values 2h from every token); forward
    2 MKN, backward twice that; embeddings without an input gradient."""
    from dt_playground.cli import bench_cases

    B, K, h, T = 64, 20, 128, 60
    full = B * T * h * 12 * h + 2 * B * T * T * h
    last = B * K * h * 10 * h + B * T * h * 2 * h + 2 * B * K * T * h
    head = B * K * h * 3
    embed = B * K * (11 + 3 + 1) * h
    expected = 6 * (2 * full + last + head) + 4 * embed
    assert bench_cases.train_flops(bench_cases.ours_model().cfg, B) == expected


def test_interleave_all_rotates_the_first_block():
    from dt_playground.cli.bench_cases import interleave_all

    calls = []

    def side(name):
        def block():
            calls.append(name)
            return 1.0

        return block

    out = interleave_all([side("a"), None, side("c")], 3)
    assert calls == ["a", "c", "c", "a", "c", "a"] and out[1] is None
    assert out[0].rounds == [1.0] * 3


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("token_order", ["rsa", "sra"])
@pytest.mark.parametrize("steps", [1, 4])
def test_candidates_share_the_prefix_and_equal_one_window_each(token_order, n_layers, steps):
    """`Acting.predict_candidates` (the prefix once, n suffixes) == `predict_from_features`
    on each candidate's own window, for either token order and any depth."""
    model = tiny_model(token_order=token_order, n_layers=n_layers, seed=3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights far from the init's 0.02: every token's effect shows
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    eng = Acting(model)
    B, n, S, A = 2, 4, model.cfg.state_dim, model.cfg.act_dim
    feats = eng.token_features(
        torch.randn(B, steps, 1, generator=g),
        torch.randn(B, steps, S, generator=g),
        torch.randn(B, steps, A, generator=g),
        torch.arange(steps).repeat(B, 1),
    )
    slot = int(token_order == "sra")
    rtg = torch.randn(B * n, 1, 1, generator=g)
    cand = eng.token_features(
        rtg, torch.randn(B * n, 1, S, generator=g), torch.zeros(B * n, 1, A),
        torch.full((B * n, 1), steps - 1),
    )[:, 0, slot].reshape(B, n, -1)  # fmt: skip
    alone = eng.return_token_features(rtg[:, 0], torch.full((B * n,), steps - 1))
    torch.testing.assert_close(alone.reshape(B, n, -1), cand)  # the return token alone
    got = eng.predict_candidates(feats, cand, slot)
    for j in range(n):
        w = feats.clone()
        w[:, -1, slot] = cand[:, j]
        torch.testing.assert_close(got[:, j], eng.predict_from_features(w), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[:, 0], got[:, 1])  # (the candidates do differ)
