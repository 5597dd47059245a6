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


def _attention_probs(
    q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) (B, nh, T, T) under a causal (or given boolean) mask."""
    T = q.shape[-2]
    if attn_mask is None:
        attn_mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    att = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    return att.masked_fill(~attn_mask, float("-inf")).softmax(-1)


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with a causal (or given boolean) mask: what SDPA computes."""
    return _attention_probs(q, k, attn_mask) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: DTConfig):
        super().__init__()
        assert cfg.hidden % cfg.n_heads == 0, "hidden must be divisible by n_heads"
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.resid_drop = Dropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor) -> torch.Tensor:
        """Queries, keys and values (3, B, nh, T, hs)."""
        B, T, C = x.shape
        return self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)

    def probs(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """The attention probabilities (B, nh, T, T) this layer applies to ``x``."""
        q, k, _ = self._qkv(x)
        return _attention_probs(q, k, attn_mask)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._qkv(x)
        # (B, nh, T, hs) each. attn_mask is (B, 1, T, T) bool, or None for plain causal.
        # No dropout on attention probabilities (GPT-2 has 0.1): on CPU it forces
        # the slow explicit path. When a backward pass will follow, the same maths
        # written out is ~3x faster than SDPA's fused CPU kernel under bf16 (its
        # backward is slow for short sequences); inference uses SDPA.
        if x.requires_grad:
            y = _attention(q, k, v, attn_mask)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None
            )
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-LN transformer block, as GPT-2."""

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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_mask)
        return x + self.mlp(self.ln2(x))


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

    def embed_tokens(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """Each step's tokens (B, K, n, h): (R, s, a), or (s, a) for BC; embedded,
        timestep added, LayerNormed. Every token depends on its own inputs alone."""
        t = self.embed_timestep(timesteps)  # (B, K, h)
        tokens = [self.embed_state(states) + t, self.embed_action(actions) + t]
        if self.cfg.use_returns:  # (R, s, a), or (s, R, a) for a model with a return head
            tokens.insert(int(self.cfg.token_order == "sra"), self.embed_return(returns_to_go) + t)
        return self.embed_ln(torch.stack(tokens, dim=2))

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
        return self.predict_return(self.ln_f(x[..., 0, :]))

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
            maps.append(block.attn.probs(block.ln1(x), attn_mask))
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
