"""The fast training step (`fast_step`) against the plain one (the model's own loss
under autocast): the same loss and gradients in fp32, the same within bf16 noise in
bf16 (native casts, or emulated by rounding), and the same loss curve in training."""

import numpy as np
import pytest
import torch
from helpers import tiny_model

from dt_playground.data.storage import load_episodes
from dt_playground.data.windows import OfflineDataset
from dt_playground.dt.model import DTConfig
from dt_playground.envs.registry import get_spec
from dt_playground.training import fast_step
from dt_playground.training.step import TrainStep, make_optimizer

VARIANTS = {
    "dt": {},
    "two-heads": dict(n_heads=2),
    "bc": dict(use_returns=False),
    "discrete": dict(discrete=True),
    "return-head": dict(return_bins=8, return_low=-2.0, return_high=2.0, token_order="sra"),
    "return-model": dict(use_returns=False, return_bins=8, return_low=-2.0, return_high=2.0),
}


def _model(dropout=0.0, seed=0, **kw):
    fields = {"n_heads": 1, **kw}
    return tiny_model(
        seed=seed, state_dim=5, act_dim=3, context_len=6, max_ep_len=100, dropout=dropout, **fields
    ).train()


def _batch(cfg: DTConfig, B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    K, A = cfg.context_len, cfg.act_dim
    if cfg.discrete:
        actions = torch.nn.functional.one_hot(torch.randint(A, (B, K), generator=g), A).float()
    else:
        actions = torch.rand(B, K, A, generator=g) * 2 - 1
    mask = torch.ones(B, K)
    mask[0, :3] = 0  # episode starts: left padding
    mask[1, :1] = 0
    return {
        "rtg": torch.randn(B, K, 1, generator=g),
        "states": torch.randn(B, K, 5, generator=g),
        "actions": actions,
        "timesteps": torch.randint(0, 90, (B, 1)) + torch.arange(K),
        "mask": mask,
    }


def _loss_and_grads(model, loss):
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), grads


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_fast_loss_equals_plain_in_fp32(kw):
    model = _model(**kw)
    batch = _batch(model.cfg)
    loss, grads = _loss_and_grads(model, model.loss(batch))
    fast_loss, fast_grads = _loss_and_grads(model, fast_step.loss(model, batch, "fp32"))
    torch.testing.assert_close(fast_loss, loss, rtol=1e-6, atol=1e-6)
    for (name, _), g, f in zip(model.named_parameters(), grads, fast_grads):
        assert (g is None) == (f is None), name  # BC's return embedding: no gradient
        if g is not None:
            torch.testing.assert_close(f, g, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("precision", ["bf16", "bf16-emulated"])
def test_fast_bf16_loss_is_autocast_loss(kw, precision):
    model = _model(**kw)
    batch = _batch(model.cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model.loss(batch).detach()
    fast = fast_step.loss(model, batch, precision).detach()
    assert fast.dtype == torch.float32
    assert abs(fast - plain) <= 2e-4 * abs(plain)


def _rel(a, b) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_fast_bf16_rounds_where_autocast_does(kw):
    """Trunk outputs with trained-size weights (x10), where rounding shows: emulated
    bf16 is native bf16's maths (fp32 products of bf16 operands are exact), not
    fp32's; native bf16 is autocast's within bf16 noise, and exactly where the
    attention scale is a power of two (autocast rounds before scaling, `baddbmm`
    after)."""
    model = _model(**kw)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    b = _batch(model.cfg)
    native, emulated, fp32 = (
        fast_step.trunk(model, b, p) for p in ("bf16", "bf16-emulated", "fp32")
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model.trunk(b["rtg"], b["states"], b["actions"], b["timesteps"], b["mask"])
    assert _rel(fp32, native) > 2e-3  # bf16's rounding is visible at this scale
    assert _rel(emulated, native) < 1e-4
    assert _rel(native, plain) < 3 * _rel(fp32, plain)
    if model.cfg.hidden // model.cfg.n_heads == 16:
        assert _rel(native, plain) < 1e-4


def test_matmul_precision():
    cpu = torch.device("cpu")
    assert fast_step.matmul_precision(cpu, bf16=False) == "fp32"
    native = fast_step.native_bf16(cpu)
    assert fast_step.matmul_precision(cpu, bf16=True) == ("bf16" if native else "bf16-emulated")
    assert fast_step.matmul_precision(torch.device("meta"), bf16=True) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        fast_step.loss(_model(), _batch(_model().cfg), "fp16")


def test_dropout_masks_drop_at_rate_p_from_one_draw():
    torch.manual_seed(0)
    sizes = [200_000, 100_000, 100_000]
    masks = fast_step.dropout_masks(0.1, sizes, "cpu")
    assert [m.numel() for m in masks] == sizes
    for m in masks:
        assert torch.unique(m).tolist() == [0.0, pytest.approx(1 / 0.9)]
        keep = (m > 0).float().mean().item()
        assert abs(keep - 0.9) < 4 * (0.09 / m.numel()) ** 0.5  # 4 sigma
    assert not torch.equal(masks[1], masks[2])  # sites get different masks
    # Neighbouring elements are independent (each 16-bit piece of a draw is its own).
    a, b = (masks[0][:-1] > 0).float(), (masks[0][1:] > 0).float()
    assert abs((a * b).mean().item() - 0.81) < 0.01
    assert fast_step.dropout_masks(0.5, [8], "cpu")[0].dtype == torch.float32


def test_fast_loss_applies_dropout_in_train_mode_only():
    model = _model(dropout=0.1)
    batch = _batch(model.cfg)
    a, b = (fast_step.loss(model, batch, "fp32").item() for _ in range(2))
    assert a != b  # fresh masks per call
    model.eval()
    torch.testing.assert_close(fast_step.loss(model, batch, "fp32"), model.loss(batch))


@pytest.mark.parametrize("precision", ["fp32", "bf16-emulated", "bf16"])
def test_fast_loss_has_no_host_sync(precision):
    """As the plain loss (test_model): nothing in it reads a value on the host, so a
    CUDA graph can capture the fast step too."""
    model = _model(dropout=0.1, n_heads=2).to("meta")
    batch = {k: v.to("meta") for k, v in _batch(_model().cfg).items()}
    loss = fast_step.loss(model, batch, precision)
    loss.backward()
    assert loss.shape == () and model.embed_state.weight.grad is not None


def _curve(ds, fast: bool, bf16: bool, steps: int = 80) -> np.ndarray:
    model = tiny_model(
        state_dim=ds.state_dim, act_dim=ds.act_dim, discrete=True, n_heads=1, max_ep_len=500
    ).train()
    opt = make_optimizer(model, 3e-3, 1e-4, torch.device("cpu"), graph=False)
    step = TrainStep(model, opt, device="cpu", bf16=bf16, grad_clip=0.25, fast=fast)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        batch = {k: torch.from_numpy(v) for k, v in ds.sample(32, 5, rng).items()}
        losses.append(float(step(batch, 3e-3)))
    return np.array(losses)


def test_fast_and_plain_steps_give_the_same_loss_curve(cartpole_dataset):
    """The trainer's step, fast against plain, in bf16, on the same batches: the loss
    curves agree within bf16 noise (measured: 0.5% after smoothing, where plain fp32
    against plain bf16 is 0.25%). Without dropout, so that the noise is rounding alone;
    the next test covers dropout."""
    eps, env_id, _ = load_episodes(cartpole_dataset[0])
    ds = OfflineDataset(eps, get_spec(env_id), 2)
    plain, fast = _curve(ds, False, True), _curve(ds, True, True)

    def smooth(x):
        return np.convolve(x, np.ones(10) / 10, mode="valid")

    assert np.mean(fast[-10:]) < 0.5 * np.mean(fast[:5])  # it learns
    gap = np.abs(smooth(fast) - smooth(plain)) / smooth(plain)
    assert gap.max() < 0.02, gap.max()


def test_fast_dropout_has_the_plain_expected_loss():
    """Over many dropout draws at fixed weights, the fast loss's mean is the plain
    loss's (the same drop rate and scale), and both differ from the loss without
    dropout (so a wrong rate or scale would show)."""
    model = _model(dropout=0.1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5)  # trained-size weights: dropout moves the loss
    batch = _batch(model.cfg, B=16)
    n = 200
    with torch.no_grad():
        plain = np.array([model.loss(batch).item() for _ in range(n)])
        fast = np.array([fast_step.loss(model, batch, "fp32").item() for _ in range(n)])
        model.eval()
        no_dropout = model.loss(batch).item()
    sigma = np.sqrt(plain.var() / n + fast.var() / n)
    assert abs(fast.mean() - plain.mean()) < 4 * sigma
    assert abs(plain.mean() - no_dropout) > 4 * sigma


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_last_block_on_read_slots_alone_is_the_full_trunk(kw):
    """The loss's trunk runs the last block for the slots it reads alone: their
    outputs are the full trunk's."""
    model = _model(**kw).eval()
    batch = _batch(model.cfg)
    read = fast_step.read_slots(model)
    full = fast_step.trunk(model, batch, "fp32")
    cut = fast_step.trunk(model, batch, "fp32", read)
    assert cut.shape[2] == len(read) <= model.n_tokens - 1
    torch.testing.assert_close(cut, full[:, :, read], rtol=1e-5, atol=1e-5)
