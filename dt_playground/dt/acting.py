"""The inference engine a rollout calls once per step.

`Acting` is a frozen copy of a `DecisionTransformer`'s weights laid out for
choosing actions fast on a CPU: matmul weights prepacked for oneDNN
(`runtime.linear`), optionally in bfloat16, and the computation cut to what the
next action needs:

* the final action token of a window is a placeholder nothing earlier attends
  to, so it is dropped;
* the last block runs its query, projection and MLP for the final state token
  alone (keys and values still come from every token);
* `token_features` (the embedding and the first block's query/key/value) depend
  on a token's own step alone, so `rollout.policy.DTPolicy` computes them once per step
  and keeps the last K steps; each action then embeds three tokens, not 3K.

The maths is the model's ``forward(...)[:, -1]``; tests check they agree.
Dropout is off, as in ``eval()``.

`Reference` is the plain twin (as nanoGPT keeps manual attention beside
``flash``): ``model(...)[:, -1]`` on the training window, nothing cached or
fused. Both take a ``device``; on CUDA the fast engine's matmuls are plain
``F.linear`` (oneDNN is the CPU fast path). `engine_for` gives one engine per
loaded set of weights.
"""

from __future__ import annotations

import copy
import threading
import weakref

import torch
import torch.nn.functional as F

from dt_playground.dt import runtime
from dt_playground.dt.model import (
    DecisionTransformer,
    attention,
    attention_bias,
    block_forward,
)
from dt_playground.dt.return_head import require_head

ENGINES = ("fast", "reference")

# Engines by model (weakly: a model that is gone takes its engines with it), each
# with the `DecisionTransformer.weights_version` it was made from.
_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


class _Linear:
    """``F.linear`` with this weight, through a prepacked oneDNN copy when it pays."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, pack: bool = True):
        self.weight, self.bias = weight.contiguous(), bias.contiguous()
        self.packed = runtime.pack_weight(self.weight) if pack else None

    def __call__(self, x, relu: bool = False, residual=None) -> torch.Tensor:
        return runtime.linear(x, self.weight, self.bias, relu, residual, packed=self.packed)


class _LayerNorm:
    def __init__(self, ln: torch.nn.LayerNorm):
        self.shape, self.weight, self.bias, self.eps = (
            ln.normalized_shape,
            ln.weight,
            ln.bias,
            ln.eps,
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class _Block:
    """One pre-LN block (`model.block_forward`) for inference. The first block's full
    q/k/v feeds `Acting.token_features`; the last block needs one query and every key
    and value; blocks in between need the full q/k/v. Only what is used is packed."""

    def __init__(self, block, first: bool, last: bool):
        attn = block.attn
        C = attn.qkv.in_features
        W, b = attn.qkv.weight, attn.qkv.bias
        self.n_heads = attn.n_heads
        self.ln1, self.ln2 = _LayerNorm(block.ln1), _LayerNorm(block.ln2)
        self.layers = {
            "proj": _Linear(attn.proj.weight, attn.proj.bias),
            "fc1": _Linear(block.mlp[0].weight, block.mlp[0].bias),
            "fc2": _Linear(block.mlp[2].weight, block.mlp[2].bias),
        }
        if first or not last:
            self.layers["qkv"] = _Linear(W, b)
        if last:
            self.layers["q"] = _Linear(W[:C], b[:C], pack=False)  # one row: ATen is faster
            self.layers["kv"] = _Linear(W[C:], b[C:])

    def linear(self, name, x, relu=False, residual=None, keep=None) -> torch.Tensor:
        return self.layers[name](x, relu=relu, residual=residual)

    def attend(self, q, k, v, mask: tuple[torch.Tensor | None, bool]) -> torch.Tensor:
        return _attention(q, k, v, *mask)

    def __call__(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        last_only: bool,
        qkv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The block's output (B, T, C), or with ``last_only`` the final token's
        alone (B, 1, C). ``qkv`` (B, T, 3C) may come precomputed."""
        if not last_only:
            return block_forward(self, x, (attn_mask, attn_mask is None), qkv)
        # One query: the last token may attend to every earlier one, so no causal mask.
        attn_mask = attn_mask[..., -1:, :] if attn_mask is not None else None
        return block_forward(self, x, (attn_mask, False), qkv, rows=_last_row)


def _last_row(t: torch.Tensor) -> torch.Tensor:
    return t[:, -1:]


_CAUSAL: dict = {}  # (Tq, Tk, dtype) -> the additive causal mask (Tq, Tk), on the CPU


def _attention(q, k, v, attn_mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=causal)`` for
    (B, nh, T, hs) inputs. On the CPU written out (`model.attention`: ``baddbmm`` with
    scale and additive mask in one op, softmax and ``bmm``): for 60-token windows ~2x
    faster than SDPA's flash kernel at batch 1 and ~1.4x at batch 32 (AVX2 EPYC, one
    thread)."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
    Tq, Tk = q.shape[2], k.shape[2]
    if attn_mask is not None and attn_mask.dtype == q.dtype:  # an additive mask, made once
        bias = attn_mask
    elif attn_mask is not None:  # (B, 1, Tq, Tk) boolean, True = may attend
        bias = attention_bias(attn_mask, Tq, Tk, q.dtype, q.device)
    elif causal:
        key = (Tq, Tk, q.dtype)
        bias = _CAUSAL.get(key)
        if bias is None:
            bias = _CAUSAL[key] = attention_bias(None, Tq, Tk, q.dtype, q.device)
    else:
        bias = torch.zeros((), dtype=q.dtype)
    return attention(q, k, v, bias)


_CANDIDATE_MASKS: dict = {}  # (prefix, suffix, n, dtype, device) -> (masks, last rows)


def candidate_mask(
    prefix: int, suffix: int, n: int, dtype, device
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The additive attention masks (1, 1, T, T) and, for each candidate's last token
    alone, (1, 1, n, T) of a shared ``prefix`` followed by ``n`` candidates' ``suffix``
    tokens each (T = prefix + n suffix): the prefix is causal; a candidate's token sees
    the prefix and its own earlier tokens, never another candidate's. Also the rows of
    each candidate's last token."""
    key = (prefix, suffix, n, dtype, str(device))
    hit = _CANDIDATE_MASKS.get(key)
    if hit is None:
        T = prefix + n * suffix
        allowed = torch.ones(T, T, dtype=torch.bool, device=device).tril()
        block = torch.arange(T, device=device)
        owner = torch.where(block < prefix, -1, (block - prefix) // max(suffix, 1))
        other = (owner[:, None] != owner[None, :]) & (owner[None, :] >= 0)
        allowed &= ~other  # no candidate sees another's tokens
        rows = [prefix + c * suffix + suffix - 1 for c in range(n)]
        bias = attention_bias(allowed, T, T, dtype, device)[None, None]
        hit = _CANDIDATE_MASKS[key] = (bias, bias[..., rows, :].contiguous(), rows)
    return hit


class _Engine:
    """What both engines hold: a frozen copy of the model's weights (in ``dtype``, on
    ``device``) and its config."""

    def __init__(
        self,
        model: DecisionTransformer,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        self.model = _frozen_copy(model, dtype, device)
        self.cfg, self.n_tokens, self.dtype = model.cfg, model.n_tokens, dtype
        self.device = torch.device(device)


class Acting(_Engine):
    """A frozen copy of ``model`` for choosing actions (see the module docstring).

    The weights are those of ``model`` when this is made: make a new one after
    training further. ``dtype=torch.bfloat16`` halves the matmul work on CPUs with
    native bf16 (per-row results don't depend on the batch).
    """

    name = "fast"

    def __init__(
        self,
        model: DecisionTransformer,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        super().__init__(model, dtype, device)
        n = len(self.model.blocks)
        self.blocks = [
            _Block(b, first=i == 0, last=i == n - 1) for i, b in enumerate(self.model.blocks)
        ]
        self.ln_f = _LayerNorm(self.model.ln_f)
        head = self.model.predict_action
        self.head = _Linear(head.weight, head.bias, pack=False)

    @torch.inference_mode()
    def token_features(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """What each token contributes on its own (B, K, n, 4h): the embedded token
        (h) and the first block's query, key and value (3h)."""
        x = self.model.embed_tokens(returns_to_go, states, actions, timesteps)
        first = self.blocks[0]
        return torch.cat([x, first.linear("qkv", first.ln1(x))], dim=-1)

    @torch.inference_mode()
    def return_token_features(self, returns_to_go, timesteps) -> torch.Tensor:
        """`token_features` of return tokens alone (N, 4h), for returns-to-go (N, 1) at
        timesteps (N,): a token depends on its own inputs only, so the checked DT's
        candidate returns need neither the state nor the action embedded."""
        m, first = self.model, self.blocks[0]
        x = m.embed_ln(m.embed_return(returns_to_go) + m.embed_timestep(timesteps))
        return torch.cat([x, first.linear("qkv", first.ln1(x))], dim=-1)

    @torch.inference_mode()
    def predict_from_features(
        self, feats: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The last step's action (B, A) from the `token_features` of a window
        (B, K, n, 4h); ``mask`` (B, K) marks real steps when rows are padded."""
        # Drop the placeholder action token of the last step.
        out = self.head(self.ln_f(self._last_output(feats, mask, drop=1)))
        return out if self.cfg.discrete else torch.tanh(out)

    @torch.inference_mode()
    def predict_candidates(self, feats: torch.Tensor, cand: torch.Tensor, slot: int):
        """The last step's action (B, n, A) for ``n`` versions of the window's final step
        that differ in its token ``slot`` alone (the checked DT's candidate returns).

        ``feats`` (B, K, tokens, 4h): the window's `token_features`, unpadded; ``cand``
        (B, n, 4h): token ``slot`` of the final step, one per candidate. Every token
        before it attends to nothing after it, so this shared prefix is laid out once,
        followed by each candidate's own last tokens: one sequence of ``Tp + n Ts``
        tokens per row, run through the blocks as one window under a mask
        (`candidate_mask`) that lets each candidate's tokens see the prefix and
        themselves only. The maths is `predict_from_features` on each candidate's window
        (a test checks they agree); the work is about one window's."""
        B, L, nt, _ = feats.shape
        n, h = cand.shape[1], self.cfg.hidden
        f = feats.reshape(B, L * nt, 4 * h)[:, :-1]  # the final action token dropped
        cut = (L - 1) * nt + slot  # the shared prefix's length
        Ts = f.shape[1] - cut  # each candidate's own tokens
        suf = f[:, None, cut:].repeat(1, n, 1, 1)  # (B, n, Ts, 4h), a copy
        suf[:, :, 0] = cand
        x = torch.cat([f[:, :cut], suf.reshape(B, n * Ts, 4 * h)], 1)
        mask, last_mask, rows = candidate_mask(cut, Ts, n, x.dtype, x.device)
        last = len(self.blocks) - 1
        y = x[..., :h]
        for i, block in enumerate(self.blocks):
            qkv = x[..., h:] if i == 0 else None
            if i < last:
                y = block_forward(block, y, (mask, False), qkv)
            else:  # queries for each candidate's last token only
                y = block_forward(block, y, (last_mask, False), qkv, rows=lambda t: t[:, rows])
        out = self.head(self.ln_f(y))  # (B, n, A)
        return out if self.cfg.discrete else torch.tanh(out)

    @torch.inference_mode()
    def return_logits_from_features(
        self, feats: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The last step's return-bin logits (B, bins), P(R_t | history up to s_t), from
        the `token_features` of a (s, R, a) window, or of a (s, a) return model's: the
        tokens after s_t (R_t's, a placeholder here, and a_t's) are dropped and the s_t
        token is read (dt.return_head)."""
        require_head(self.cfg)
        drop = self.n_tokens - 1
        return self.model.predict_return(self.ln_f(self._last_output(feats, mask, drop=drop)))  # pyright: ignore[reportOptionalCall]

    def _last_output(self, feats: torch.Tensor, mask: torch.Tensor | None, drop: int):
        """The last block's output (B, C) for the final token once the window's last
        ``drop`` tokens are dropped."""
        B, K, n, _ = feats.shape
        h = self.cfg.hidden
        f = feats.reshape(B, n * K, 4 * h)[:, :-drop]  # interleaved tokens
        attn_mask = self.model.attention_mask(mask)
        if attn_mask is not None:
            attn_mask = attn_mask[..., :-drop, :-drop]
        x = f[..., :h]
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, last_only=i == last, qkv=f[..., h:] if i == 0 else None)
        return x[:, -1]

    @torch.inference_mode()
    def predict_last(self, returns_to_go, states, actions, timesteps, mask=None) -> torch.Tensor:
        """``model(...)[:, -1]`` (B, A): the action for the last step of each window."""
        returns_to_go, states, actions, timesteps, mask = DecisionTransformer.strip_common_padding(
            returns_to_go, states, actions, timesteps, mask
        )
        feats = self.token_features(returns_to_go, states, actions, timesteps)
        return self.predict_from_features(feats, mask)


class Reference(_Engine):
    """The plain engine: ``model(...)[:, -1]`` on the whole training window, through
    the model's own forward (a frozen copy, like `Acting`). Slower, and the yardstick
    the fast engine is tested against."""

    name = "reference"

    @torch.inference_mode()
    def predict_last(self, returns_to_go, states, actions, timesteps, mask=None) -> torch.Tensor:
        """``model(...)[:, -1]`` (B, A)."""
        inputs = DecisionTransformer.strip_common_padding(
            returns_to_go, states, actions, timesteps, mask
        )
        return self.model(*inputs)[:, -1]

    @torch.inference_mode()
    def return_logits_last(self, returns_to_go, states, actions, timesteps, mask=None):
        """``model.return_logits(...)[:, -1]`` (B, bins): P(R_t | history up to s_t)."""
        inputs = DecisionTransformer.strip_common_padding(
            returns_to_go, states, actions, timesteps, mask
        )
        return self.model.return_logits(*inputs)[:, -1]


def _frozen_copy(model: DecisionTransformer, dtype, device) -> DecisionTransformer:
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval().requires_grad_(False)


def engine_for(
    model: DecisionTransformer,
    engine: str = "fast",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Acting | Reference:
    """The ``engine`` ("fast" or "reference") for ``model``'s current weights, reused
    while they are unchanged (building one copies and packs the weights: tens of
    milliseconds). The key is the model's explicit `weights_version`, which
    ``load_state_dict`` and the trainer bump; code that changes weights in place
    otherwise must call ``model.weights_changed()``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    device = torch.device(device)
    key = (engine, dtype, str(device))
    version = model.weights_version
    with _ENGINES_LOCK:
        hit = _ENGINES.get(model, {}).get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    made = (Acting if engine == "fast" else Reference)(model, dtype, device)
    with _ENGINES_LOCK:
        _ENGINES.setdefault(model, {})[key] = (version, made)
    return made
