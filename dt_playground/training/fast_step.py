"""The training loss with fewer, cheaper ops: `DecisionTransformer.loss`'s maths through
the model's own forward (`dt.model.block_forward`, `DecisionTransformer.embed_tokens`,
`dt.model.attention`), each piece run cheaper. `training.step.TrainStep` uses it unless
asked for the plain path (``fast=False``: the model's own ``loss`` under autocast, kept as
the yardstick; the tests train both and compare).

What the plain bf16 step spends its time on, besides the matmuls (torch profiler,
one thread), and what this does instead:

* **Autocast casts** every matmul's input, weight and bias to bf16 as the op runs.
  Here the casts are explicit: each weight once per step, an input only where it is
  fp32 (a LayerNorm output); without native bf16 they are roundings (below).
* **Dropout masks**: a ``torch.rand`` float per element at each of the 1 + 2L sites,
  then compare, convert, two multiplies. Here one draw of random bits per step
  serves every site: 15 random bits per element, compared with ``p * 32768`` (so the
  drop rate is ``p`` to within 2^-16), made once into a scaled float mask, and applied
  with the residual add in one ``addcmul``.
* **The token interleave** stacked three (B, K, h) embeddings. Here the three
  embeddings are one matmul with a block-diagonal weight on the concatenated
  (R, s, a) inputs, whose output is already interleaved.
* **The last block** computed every token, but the loss reads only the state
  tokens' outputs (and s_t's for a return head): there only those get queries, the
  projection and the MLP, as `acting.Acting` does for the final token. A third of
  the rows, so 19% fewer FLOPs in the paper's 3-layer model; the loss and its
  gradients are unchanged, since the skipped outputs were never used.
* **Attention's scale and mask** were two more passes over the scores. Here they
  are ``baddbmm``'s alpha and an additive bias made once per step.

**bf16 on CPUs without native bf16.** ATen's bf16 matmul without AVX-512 BF16 or
AMX falls back to a reference kernel ~20x slower than fp32 (measured on an AVX2
EPYC: 3.7 against 70 GFLOP/s). There this computes the same bf16 maths with fp32
matmuls: operands and results are rounded to bf16 exactly where autocast would
hold them in bf16 (a product of two bf16 numbers is exact in fp32 and both
accumulate in fp32, so only the summation order differs). Gradients stay fp32
(`_RoundBF16`). `matmul_precision` says which applies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dt_playground.dt.model import attention, attention_bias, block_forward
from dt_playground.dt.return_head import return_loss

# How matmuls run: "fp32"; "bf16" (native kernels: CUDA, or a CPU oneDNN can run
# bf16 on); "bf16-emulated" (bf16 rounding around fp32 matmuls, other CPUs).
MATMUL_PRECISIONS = ("fp32", "bf16", "bf16-emulated")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls on ``device`` run on fast kernels (CUDA, or a CPU with
    AVX-512 or AMX that oneDNN takes bf16 on)."""
    if device.type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def matmul_precision(device: torch.device, bf16: bool) -> str:
    """What a bf16 (or fp32) training step's matmuls compute in on ``device``."""
    if not bf16:
        return "fp32"
    return "bf16" if native_bf16(torch.device(device)) else "bf16-emulated"


class _RoundBF16(torch.autograd.Function):
    """``x`` rounded to the nearest bf16, kept in its dtype. The gradient passes
    through unrounded: autocast's bf16 gradients would be rounded too, but that is
    two more passes per rounding for a difference within bf16's noise."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def _round_bf16(x: torch.Tensor) -> torch.Tensor:
    return _RoundBF16.apply(x)


class _Casts:
    """Where the bf16 maths rounds: matmul operands and outputs."""

    def __init__(self, precision: str):
        if precision not in MATMUL_PRECISIONS:
            raise ValueError(f"precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
        self.native = precision == "bf16"
        self.emulated = precision == "bf16-emulated"

    def operand(self, x: torch.Tensor) -> torch.Tensor:
        """A matmul input or weight as the bf16 kernel sees it."""
        if self.native:
            return x.to(torch.bfloat16)
        return _round_bf16(x) if self.emulated and x.dtype != torch.bfloat16 else x

    def result(self, y: torch.Tensor) -> torch.Tensor:
        """A matmul's (or softmax's) result as bf16 holds it."""
        return _round_bf16(y) if self.emulated else y

    def linear(self, x: torch.Tensor, lin: torch.nn.Linear, cast_input: bool = True):
        """``lin(x)`` as autocast computes it. ``cast_input=False``: ``x`` is already a
        bf16 result (of an earlier matmul, a ReLU or a softmax)."""
        return self.matmul(x, lin.weight, lin.bias, cast_input)

    def matmul(self, x, weight, bias, cast_input: bool = True) -> torch.Tensor:
        """``F.linear(x, weight, bias)`` as autocast computes it."""
        x = self.operand(x) if cast_input else x
        return self.result(F.linear(x, self.operand(weight), self.operand(bias)))


def dropout_masks(p: float, sizes: list[int], device, dtype=torch.float32) -> list[torch.Tensor]:
    """Inverted-dropout masks (values 0 or 1/(1-p)), flat, one per size, from one draw
    of random bits: each element keeps with probability 1 - round(p * 32768) / 32768."""
    n = sum(sizes)
    # random_() fills [0, 2^63) (the full 64-bit range is ~3x slower to draw); doubled,
    # each of an int64's four 16-bit pieces holds 15 random bits and a fixed one, so
    # an even threshold splits it as a 16-bit uniform would.
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    r = bits.add_(bits).view(torch.int16)[:n]
    keep = r >= 2 * round(p * 32768) - 32768
    mask = keep.to(dtype).mul_(1.0 / (1.0 - p))
    return list(mask.split(sizes))


def _project(c: _Casts):
    """The n token embeddings as one block-diagonal matmul on the concatenated inputs,
    whose output (B, K, n, h) is already interleaved (for `DecisionTransformer.embed_tokens`)."""

    def project(parts: list) -> torch.Tensor:
        inputs = torch.cat([x for x, _ in parts], dim=-1)  # (B, K, 1 + S + A): small
        w = torch.block_diag(*(c.operand(lin.weight) for _, lin in parts))  # (n h, 1 + S + A)
        b = torch.cat([c.operand(lin.bias) for _, lin in parts])
        B, K, _ = inputs.shape
        return c.result(F.linear(c.operand(inputs), w, b)).view(B, K, len(parts), -1)

    return project


def _attention_bias(model, mask, T: int, dtype, device) -> torch.Tensor:
    """The additive mask (B, T, T) or (T, T) of `DecisionTransformer.attention_mask`."""
    allowed = model.attention_mask(mask)
    return attention_bias(None if allowed is None else allowed[:, 0], T, T, dtype, device)


class _FastBlock:
    """A `model.Block`'s pieces for `model.block_forward`: matmuls through `_Casts`, the
    residual dropout applied with the residual add in one ``addcmul``."""

    def __init__(self, block, c: _Casts):
        self.block, self.c = block, c
        self.n_heads = block.attn.n_heads
        self.ln1, self.ln2 = block.ln1, block.ln2

    def linear(self, name, x, relu=False, residual=None, keep=None) -> torch.Tensor:
        attn, mlp, c = self.block.attn, self.block.mlp, self.c
        if name in ("q", "kv"):
            C = attn.qkv.in_features
            rows = slice(None, C) if name == "q" else slice(C, None)
            return c.matmul(x, attn.qkv.weight[rows], attn.qkv.bias[rows])
        if name == "qkv":
            return c.linear(x, attn.qkv)
        if name == "fc1":
            # Not relu_: F.linear's 3-d output is a view, and autograd would copy around it.
            return torch.relu(c.linear(x, mlp[0]))
        # proj and fc2 take a bf16 result (attention's, a ReLU's) and add the residual.
        y = c.linear(x, attn.proj if name == "proj" else mlp[2], cast_input=False)
        assert residual is not None
        return residual + y if keep is None else torch.addcmul(residual, y, keep.view(y.shape))

    def attend(self, q, k, v, mask) -> torch.Tensor:
        return attention(q, k, v, mask, rounded=self.c.result)  # mask: the additive bias


def _block(
    block, c: _Casts, x, bias, m_attn, m_mlp, read: list[int] | None = None, n: int = 1
) -> torch.Tensor:
    """`model.block_forward` with `_Casts` matmuls, dropout masks given (flat, or None).

    ``read``: the token slots (of ``n`` per step) whose outputs are used, for the last
    block: only they get queries, the projection and the MLP (keys and values still
    come from every token), and the output is theirs alone (B, K * len(read), C)."""
    ops = _FastBlock(block, c)
    if read is None:
        return block_forward(ops, x, bias, keep=(m_attn, m_mlp))
    K = x.shape[1] // n
    # A slice, not a list index: a view, and no index tensor made from the host
    # (which a CUDA graph could not capture). `read_slots` are consecutive.
    span = slice(read[0], read[-1] + 1)
    assert list(range(n))[span] == list(read), read

    def rows(t):  # (B, T, ...) -> the read slots (B, Tq, ...)
        return t.unflatten(1, (K, n))[:, :, span].flatten(1, 2)

    bias = bias.unflatten(-2, (K, n))[..., span, :].flatten(-3, -2)  # (..., Tq, T)
    return block_forward(ops, x, bias, rows=rows, keep=(m_attn, m_mlp))


def read_slots(model) -> list[int]:
    """The token slots per step the loss reads: the action head's (s_t, or R_t in
    (s, R, a) order) and the return head's s_t (slot 0; a return head comes with the
    (s, R, a) order or without return tokens, so the slots are consecutive)."""
    n = model.n_tokens
    return sorted({n - 2} | ({0} if model.predict_return is not None else set()))


def trunk(
    model, batch: dict[str, torch.Tensor], precision: str, read: list[int] | None = None
) -> torch.Tensor:
    """`DecisionTransformer.trunk` (B, K, n, h) in training mode (dropout on when the
    model's rate is above 0 and it is in ``train()``); with ``read``, the last block
    computes those slots alone (B, K, len(read), h): the same values, less work."""
    c = _Casts(precision)
    cfg, n = model.cfg, model.n_tokens
    states = batch["states"]
    B, K, _ = states.shape
    T, h = n * K, cfg.hidden
    x = model.embed_tokens(
        batch["rtg"], states, batch["actions"], batch["timesteps"], project=_project(c)
    )
    x = x.reshape(B, T, h)
    bias_dtype = torch.bfloat16 if c.native else x.dtype
    bias = _attention_bias(model, batch["mask"], T, bias_dtype, x.device)
    p = cfg.dropout if model.training else 0.0
    L = len(model.blocks)
    last = B * K * (n if read is None else len(read)) * h
    sizes = [B * T * h] * (2 * L - 1) + [last] * 2
    masks = dropout_masks(p, sizes, x.device) if p > 0 else [None] * (2 * L + 1)
    if masks[0] is not None:
        x = x * masks[0].view(B, T, h)
    for i, block in enumerate(model.blocks):
        cut = read if i == L - 1 else None
        x = _block(block, c, x, bias, masks[1 + 2 * i], masks[2 + 2 * i], cut, n)
    return x.view(B, K, -1, h)


def loss(model, batch: dict[str, torch.Tensor], precision: str = "fp32") -> torch.Tensor:
    """`DecisionTransformer.loss` with the fast trunk, its matmuls in ``precision``
    (`MATMUL_PRECISIONS`). Call it outside autocast: it makes its own casts."""
    c = _Casts(precision)
    read = read_slots(model)  # the last block computes only the tokens read here
    x = trunk(model, batch, precision, read)
    pred = c.linear(model.ln_f(x[:, :, read.index(model.n_tokens - 2)]), model.predict_action)
    if not model.cfg.discrete:
        pred = torch.tanh(pred)
    w = batch["mask"].reshape(-1).float()  # (B*K,)
    A = model.cfg.act_dim
    target = batch["actions"].reshape(-1, A)
    if model.cfg.discrete:
        per_step = F.cross_entropy(pred.reshape(-1, A).float(), target.argmax(-1), reduction="none")
    else:
        per_step = (pred.reshape(-1, A).float() - target.float()).square().mean(-1)
    out = (per_step * w).sum() / w.sum().clamp_min(1.0)
    if model.predict_return is not None:  # MGDT: return and action losses, summed
        logits = c.linear(model.ln_f(x[:, :, read.index(0)]), model.predict_return)
        out = out + return_loss(logits, batch["rtg"], batch["mask"], model.cfg)
    return out
