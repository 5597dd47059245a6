"""Decision Transformer (Chen et al. 2021) and its BC baseline.

Follows the official gym implementation (kzl/decision-transformer,
``gym/decision_transformer/models/decision_transformer.py``): linear
return/state/action embeddings, a learned timestep embedding added to all three
tokens, LayerNorm on the embedded sequence, interleaved (R_1, s_1, a_1, R_2, ...)
tokens, a GPT trunk with causal attention, and the action predicted from each
state token. GPT-2 here has no position embedding (the timestep embedding plays
that role), as in the original's modified GPT-2.

Deviations: attention is ``F.scaled_dot_product_attention`` (one fused kernel
instead of GPT-2's explicit softmax); discrete envs use one-hot action inputs and
logits out (as d3rlpy's DiscreteDecisionTransformer); ``use_returns=False``
drops the return tokens, giving behaviour cloning on the same trunk.
``return_bins > 0`` adds Multi-Game DT's return-distribution head (Lee et al.
2022, §3.3): tokens then go (s_t, R_t, a_t) so that the s_t token can predict
R_t without having seen it, and the action is read from the R_t token
(dt.return_head explains the design; models without the head keep (R, s, a)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from dt_playground.dt.return_head import check_head_config, require_head, return_loss


@dataclass(kw_only=True)
class DTConfig:
    """The constructor arguments of a `DecisionTransformer`, saved as config.json's
    ``model`` (its keys are a public format). Keyword-only: nine positional numbers
    are too easy to swap."""

    state_dim: int
    act_dim: int  # number of actions when discrete
    discrete: bool = False
    hidden: int = 128
    n_layers: int = 3
    n_heads: int = 1
    context_len: int = 20  # K, in timesteps (3K tokens)
    max_ep_len: int = 1000  # size of the timestep embedding
    dropout: float = 0.1
    use_returns: bool = True  # False: BC on the same trunk (tokens s, a only)
    # Return-distribution head (Multi-Game DT §3.3; see dt.return_head). 0 bins: none.
    # The bin range is in the model's return units (return / return_scale).
    return_bins: int = 0
    return_low: float = 0.0
    return_high: float = 0.0
    token_order: str = "rsa"  # per step: (R, s, a) as Chen et al.; "sra": (s, R, a) as MGDT

    def __post_init__(self):
        check_head_config(self)

    def to_dict(self) -> dict:
        return asdict(self)


class Dropout(nn.Module):
    """Inverted dropout from a uniform mask: same maths as `nn.Dropout`, but ~3x faster
    on CPU, where `bernoulli_` dominates a small model's training step."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


def attention_bias(allowed: torch.Tensor | None, Tq: int, Tk: int, dtype, device) -> torch.Tensor:
    """The additive attention mask: 0 where a query may attend, -inf where it may not.
    ``allowed`` is a boolean mask (True = may attend, as `attention_mask` makes), or None
    for causal attention of the last ``Tq`` of ``Tk`` tokens (Tq, Tk)."""
    if allowed is None:
        allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril(Tk - Tq)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return bias.masked_fill_(~allowed, float("-inf"))


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _flat_bias(bias: torch.Tensor, B: int, nh: int) -> torch.Tensor:
    """An additive mask (B, 1, Tq, Tk), (B, Tq, Tk), (Tq, Tk) or () as ``baddbmm`` takes
    it for (B nh) batched scores."""
    if bias.dim() == 4:
        bias = bias.expand(B, nh, *bias.shape[-2:]).flatten(0, 1)
    elif bias.dim() == 3 and nh > 1:
        bias = bias[:, None].expand(B, nh, *bias.shape[-2:]).flatten(0, 1)
    return bias


def attention_probs(q, k, bias: torch.Tensor, rounded=_same) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + bias) (B nh, Tq, Tk) for (B, nh, T, hs) queries and
    keys: scale and mask in one ``baddbmm``. ``rounded`` is applied to each result (the
    fast training step's bf16 rounding)."""
    B, nh, Tq, hs = q.shape
    Tk = k.shape[2]
    scores = torch.baddbmm(
        _flat_bias(bias, B, nh),
        q.reshape(B * nh, Tq, hs),
        k.reshape(B * nh, Tk, hs).mT,
        alpha=hs**-0.5,
    )
    return rounded(rounded(scores).softmax(-1))


def attention(q, k, v, bias: torch.Tensor, rounded=_same) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + bias) v (B, nh, Tq, hs), written out: what
    ``F.scaled_dot_product_attention`` computes, ~2x faster than its CPU kernel for
    short windows at inference and ~3x in a bf16 backward pass."""
    B, nh, Tq, hs = q.shape
    probs = attention_probs(q, k, bias, rounded)
    return rounded(torch.bmm(probs, v.reshape(B * nh, -1, hs))).view(B, nh, Tq, hs)


def _heads(x: torch.Tensor, parts: int, nh: int) -> torch.Tensor:
    """(B, T, parts C) -> (parts, B, nh, T, hs): queries, keys and values by head."""
    B, T, _ = x.shape
    return x.view(B, T, parts, nh, -1).permute(2, 0, 3, 1, 4)


class BlockOps(Protocol):
    """How one engine runs a block's pieces (`block_forward` is the maths they make).

    ``linear(name, x, relu, residual, keep)``: the block's linear ``name`` (``qkv``;
    ``q`` and ``kv``, its query and key/value rows; ``proj``, ``fc1``, ``fc2``) on
    ``x``, then ReLU, or ``residual +`` the output (times the dropout mask ``keep``).
    ``attend(q, k, v, mask)``: attention of (B, nh, T, hs) heads under the engine's
    ``mask``."""

    @property
    def n_heads(self) -> int: ...

    def ln1(self, x: torch.Tensor) -> torch.Tensor: ...

    def ln2(self, x: torch.Tensor) -> torch.Tensor: ...

    def linear(
        self,
        name: str,
        x: torch.Tensor,
        relu: bool = False,
        residual: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor: ...

    def attend(self, q, k, v, mask) -> torch.Tensor: ...


def block_forward(
    ops: BlockOps,
    x: torch.Tensor,
    mask,
    qkv: torch.Tensor | None = None,
    rows=None,
    keep=(None, None),
) -> torch.Tensor:
    """A pre-LN transformer block, as GPT-2: ``x + proj(attention(ln1 x))``, then
    ``+ fc2(relu(fc1(ln2 x)))``; the model, the acting engine and the fast training step
    each run it through their own `BlockOps`.

    ``qkv`` (B, T, 3C): the first layer's queries, keys and values, precomputed.
    ``rows``: a function picking the token rows whose outputs are used, (B, T, ...) ->
    (B, Tq, ...): only they get queries, the projection and the MLP (keys and values
    still come from every token; ``mask`` is then the engine's for those rows).
    ``keep``: the two residual dropout masks (or None)."""
    nh = ops.n_heads
    if qkv is None and rows is not None:  # one query per row read, keys and values for all
        h = ops.ln1(x)
        q = _heads(ops.linear("q", rows(h)), 1, nh)[0]
        k, v = _heads(ops.linear("kv", h), 2, nh)
    else:
        qkv = ops.linear("qkv", ops.ln1(x)) if qkv is None else qkv
        q, k, v = _heads(qkv, 3, nh)
        if rows is not None:
            q = _heads(rows(qkv), 3, nh)[0]
    if rows is not None:
        x = rows(x)
    B, Tq, C = x.shape
    y = ops.attend(q, k, v, mask).transpose(1, 2).reshape(B, Tq, C)
    x = ops.linear("proj", y, residual=x, keep=keep[0])
    return ops.linear("fc2", ops.linear("fc1", ops.ln2(x), relu=True), residual=x, keep=keep[1])


class CausalSelfAttention(nn.Module):
    """The attention layer's weights (``attn.qkv``, ``attn.proj``: the state dict's names)."""

    def __init__(self, cfg: DTConfig):
        super().__init__()
        assert cfg.hidden % cfg.n_heads == 0, "hidden must be divisible by n_heads"
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.resid_drop = Dropout(cfg.dropout)

    def probs(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """The attention probabilities (B, nh, T, T) this layer applies to ``x``."""
        B, T, _ = x.shape
        q, k, _ = _heads(self.qkv(x), 3, self.n_heads)
        bias = attention_bias(attn_mask, T, T, q.dtype, q.device)
        return attention_probs(q, k, bias).view(B, self.n_heads, T, T)


class Block(nn.Module):
    """Pre-LN transformer block, as GPT-2 (`block_forward`, with torch modules)."""

    def __init__(self, cfg: DTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.mlp = nn.Sequential(
            # ReLU, as the official gym experiments configure GPT-2 (and cheaper than GELU).
            nn.Linear(cfg.hidden, 4 * cfg.hidden),
            nn.ReLU(),
            nn.Linear(4 * cfg.hidden, cfg.hidden),
            Dropout(cfg.dropout),
        )

    @property
    def n_heads(self) -> int:
        return self.attn.n_heads

    def linear(self, name, x, relu=False, residual=None, keep=None) -> torch.Tensor:
        if name == "qkv":
            return self.attn.qkv(x)
        if name == "proj":
            return residual + self.attn.resid_drop(self.attn.proj(x))
        if name == "fc1":
            return self.mlp[1](self.mlp[0](x))
        return residual + self.mlp[3](self.mlp[2](x))  # fc2

    def attend(self, q, k, v, mask: torch.Tensor | None) -> torch.Tensor:
        # mask is (B, 1, T, T) bool, or None for plain causal. No dropout on attention
        # probabilities (GPT-2 has 0.1): on CPU it forces the slow explicit path. When a
        # backward pass will follow, the maths written out (`attention`) is ~3x faster
        # than SDPA's fused CPU kernel under bf16 (its backward is slow for short
        # sequences); inference uses SDPA.
        if q.requires_grad:
            T = q.shape[-2]
            return attention(q, k, v, attention_bias(mask, T, T, q.dtype, q.device))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        return block_forward(self, x, attn_mask)


class DecisionTransformer(nn.Module):
    def __init__(self, cfg: DTConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.embed_timestep = nn.Embedding(cfg.max_ep_len, h)
        self.embed_return = nn.Linear(1, h)
        self.embed_state = nn.Linear(cfg.state_dim, h)
        self.embed_action = nn.Linear(cfg.act_dim, h)
        self.embed_ln = nn.LayerNorm(h)
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(h)
        self.predict_action = nn.Linear(h, cfg.act_dim)
        # Logits of R_t's bin, read from the s_t token (absent without a head, so
        # checkpoints made before it have exactly the same tensors).
        self.predict_return = nn.Linear(h, cfg.return_bins) if cfg.return_bins else None
        self.n_tokens = 3 if cfg.use_returns else 2
        self.weights_version = 0  # bumped by `weights_changed` (acting engines key on it)
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(m: nn.Module):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def load_state_dict(self, *args, **kwargs):
        out = super().load_state_dict(*args, **kwargs)
        self.weights_changed()
        return out

    def weights_changed(self) -> None:
        """Say that the weights were changed in place (an optimiser step, a load): acting
        engines made from the old weights (`acting.engine_for`) are then rebuilt."""
        self.weights_version = getattr(self, "weights_version", 0) + 1

    def token_inputs(self, returns_to_go, states, actions) -> list[tuple[torch.Tensor, nn.Linear]]:
        """Each step's token inputs and their embedding layers, in sequence order:
        (R, s, a); (s, R, a) for a model with a return head; (s, a) for BC."""
        parts = [(states, self.embed_state), (actions, self.embed_action)]
        if self.cfg.use_returns:
            parts.insert(int(self.cfg.token_order == "sra"), (returns_to_go, self.embed_return))
        return parts

    def embed_tokens(self, returns_to_go, states, actions, timesteps, project=None):
        """Each step's tokens (B, K, n, h): embedded, timestep added, LayerNormed. Every
        token depends on its own inputs alone. ``project(token_inputs) -> (B, K, n, h)``
        replaces the n embedding layers (the fast training step makes them one matmul)."""
        parts = self.token_inputs(returns_to_go, states, actions)
        if project is None:
            tokens = torch.stack([layer(x) for x, layer in parts], dim=2)
        else:
            tokens = project(parts)
        return self.embed_ln(tokens + self.embed_timestep(timesteps)[:, :, None])

    def attention_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The (B, 1, nK, nK) boolean attention mask for step mask (B, K) (1 = real
        step), or None (plain causal attention) when there is no mask. Built by
        arithmetic, never by looking at the values: no host sync, so a CUDA graph
        can capture it."""
        if mask is None:
            return None
        n, K = self.n_tokens, mask.shape[1]
        # Causal and key-padding mask; every token may see itself so that
        # padded rows are never fully masked (their outputs are ignored).
        # (B, nK): each step's flag for its n tokens. expand + reshape, not
        # repeat_interleave, whose CUDA kernel copies the repeat count from the host.
        keys = mask.bool()[:, :, None].expand(-1, K, n).reshape(mask.shape[0], n * K)
        causal = torch.ones(n * K, n * K, dtype=torch.bool, device=mask.device).tril()
        eye = torch.eye(n * K, dtype=torch.bool, device=mask.device)
        return ((causal & keys[:, None, :]) | eye)[:, None]

    @staticmethod
    def strip_common_padding(returns_to_go, states, actions, timesteps, mask):
        """The five inputs without the leading steps padded in every row, and the mask
        replaced by None when no padding is left (plain causal attention, the fast
        kernel). For inference only: it reads the mask on the host. Dropped steps
        influence nothing (masked, and there is no position embedding), so
        ``model(*stripped)`` equals the last ``K - pad`` steps of ``model(*inputs)``."""
        if mask is None:
            return returns_to_go, states, actions, timesteps, None
        real = mask > 0
        pad = int((~real.any(0)).long().cumprod(0).sum())
        if pad:
            keep = slice(pad, None)
            returns_to_go, states = returns_to_go[:, keep], states[:, keep]
            actions, timesteps = actions[:, keep], timesteps[:, keep]
            mask, real = mask[:, keep], real[:, keep]
        return returns_to_go, states, actions, timesteps, None if bool(real.all()) else mask

    def _tokens(self, returns_to_go, states, actions, timesteps, mask):
        """Embedded, interleaved tokens (B, n*K, h) and the attention mask (or None)."""
        B, K, _ = states.shape
        # (B, K, n, h) -> (B, n*K, h): R_1, s_1, a_1, R_2, s_2, a_2, ...
        x = self.embed_tokens(returns_to_go, states, actions, timesteps)
        x = self.drop(x.reshape(B, self.n_tokens * K, self.cfg.hidden))
        return x, self.attention_mask(mask)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        out = self.predict_action(self.ln_f(x))
        return out if self.cfg.discrete else torch.tanh(out)

    def forward(
        self,
        returns_to_go: torch.Tensor,  # (B, K, 1), scaled
        states: torch.Tensor,  # (B, K, S), normalised
        actions: torch.Tensor,  # (B, K, A), one-hot when discrete; in [-1, 1] otherwise
        timesteps: torch.Tensor,  # (B, K) int64
        mask: torch.Tensor | None = None,  # (B, K), 1 = real step, 0 = padding
    ) -> torch.Tensor:
        """Action predictions (B, K, A): tanh-squashed, or logits when discrete.
        Outputs at padded steps are meaningless. No host syncs (see `attention_mask`);
        inference may call `strip_common_padding` first."""
        x = self.trunk(returns_to_go, states, actions, timesteps, mask)
        return self._head(x[:, :, self.n_tokens - 2])  # the token before a_t: s_t, or R_t (sra)

    def trunk(self, returns_to_go, states, actions, timesteps, mask=None) -> torch.Tensor:
        """The last block's output per token (B, K, n, h), before the final LayerNorm."""
        B, K, _ = states.shape
        x, attn_mask = self._tokens(returns_to_go, states, actions, timesteps, mask)
        for block in self.blocks:
            x = block(x, attn_mask)
        return x.reshape(B, K, self.n_tokens, self.cfg.hidden)

    def return_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return-bin logits (..., bins) from trunk outputs (..., n, h): the s_t token,
        which in (s, R, a) order has seen s_t but not R_t (dt.return_head)."""
        if self.predict_return is None:
            require_head(self.cfg)
        return self.predict_return(self.ln_f(x[..., 0, :]))  # pyright: ignore[reportOptionalCall]

    def return_logits(self, returns_to_go, states, actions, timesteps, mask=None) -> torch.Tensor:
        """Logits (B, K, bins) of each step's return-to-go bin, P(R_t | history up to s_t)."""
        return self.return_head(self.trunk(returns_to_go, states, actions, timesteps, mask))

    @property
    def token_kinds(self) -> list[str]:
        """Each step's token kinds in sequence order, e.g. ["R", "s", "a"]."""
        if not self.cfg.use_returns:
            return ["s", "a"]
        return ["s", "R", "a"] if self.cfg.token_order == "sra" else ["R", "s", "a"]

    @torch.no_grad()
    def attention_maps(
        self, returns_to_go, states, actions, timesteps, mask=None
    ) -> list[torch.Tensor]:
        """Per block, the attention probabilities (B, n_heads, nK, nK) over the
        interleaved tokens (R_1, s_1, a_1, ...), as ``forward`` applies them."""
        x, attn_mask = self._tokens(returns_to_go, states, actions, timesteps, mask)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.probs(block.ln1(x), attn_mask))  # pyright: ignore[reportAttributeAccessIssue, reportCallIssue]
            x = block(x, attn_mask)
        return maps

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy (discrete) or MSE (continuous) averaged over real steps.

        Padded steps are weighted out by the mask, not indexed away: no data-dependent
        shapes, so the whole training step can be captured in a CUDA graph."""
        x = self.trunk(
            batch["rtg"], batch["states"], batch["actions"], batch["timesteps"], batch["mask"]
        )
        pred = self._head(x[:, :, self.n_tokens - 2])
        w = batch["mask"].reshape(-1).float()  # (B*K,)
        A = self.cfg.act_dim
        target = batch["actions"].reshape(-1, A)
        if self.cfg.discrete:
            per_step = F.cross_entropy(
                pred.reshape(-1, A).float(), target.argmax(-1), reduction="none"
            )
        else:
            per_step = (pred.reshape(-1, A).float() - target.float()).square().mean(-1)
        loss = (per_step * w).sum() / w.sum().clamp_min(1.0)
        if self.predict_return is not None:  # MGDT: return and action losses, summed
            loss = loss + return_loss(self.return_head(x), batch["rtg"], batch["mask"], self.cfg)
        return loss
