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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DTConfig:
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
        self.n_tokens = 3 if cfg.use_returns else 2
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

    def _embed(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """Each step's tokens (B, K, n, h): (R, s, a), or (s, a) for BC; embedded,
        timestep added, LayerNormed. Every token depends on its own inputs alone."""
        t = self.embed_timestep(timesteps)  # (B, K, h)
        tokens = [self.embed_state(states) + t, self.embed_action(actions) + t]
        if self.cfg.use_returns:
            tokens.insert(0, self.embed_return(returns_to_go) + t)
        return self.embed_ln(torch.stack(tokens, dim=2))

    def _attn_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The (B, 1, nK, nK) boolean attention mask for step mask (B, K), or None
        when plain causal attention is right."""
        if mask is None or bool(mask.all()):
            return None
        n, K = self.n_tokens, mask.shape[1]
        # Causal and key-padding mask; every token may see itself so that
        # padded rows are never fully masked (their outputs are ignored).
        keys = mask.bool().repeat_interleave(n, dim=1)  # (B, nK)
        causal = torch.ones(n * K, n * K, dtype=torch.bool, device=mask.device).tril()
        eye = torch.eye(n * K, dtype=torch.bool, device=mask.device)
        return ((causal & keys[:, None, :]) | eye)[:, None]

    def _tokens(self, returns_to_go, states, actions, timesteps, mask):
        """Embedded, interleaved tokens (B, n*K, h) and the attention mask (or None)."""
        B, K, _ = states.shape
        # (B, K, n, h) -> (B, n*K, h): R_1, s_1, a_1, R_2, s_2, a_2, ...
        x = self._embed(returns_to_go, states, actions, timesteps)
        x = self.drop(x.reshape(B, self.n_tokens * K, self.cfg.hidden))
        return x, self._attn_mask(mask)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        out = self.predict_action(self.ln_f(x))
        return out if self.cfg.discrete else torch.tanh(out)

    @staticmethod
    def _common_padding(mask: torch.Tensor | None) -> int:
        """Leading columns padded in every row. They influence nothing (masked, and
        there is no position embedding), so inference drops them; lock-step rollouts
        then never need an explicit mask."""
        if mask is None:
            return 0
        return int((mask.sum(0) == 0).long().cumprod(0).sum())

    def forward(
        self,
        returns_to_go: torch.Tensor,  # (B, K, 1), scaled
        states: torch.Tensor,  # (B, K, S), normalised
        actions: torch.Tensor,  # (B, K, A), one-hot when discrete; in [-1, 1] otherwise
        timesteps: torch.Tensor,  # (B, K) int64
        mask: torch.Tensor | None = None,  # (B, K), 1 = real step, 0 = padding
    ) -> torch.Tensor:
        """Action predictions (B, K, A): tanh-squashed, or logits when discrete."""
        pad = 0 if self.training else self._common_padding(mask)
        if pad:
            keep = slice(pad, None)
            out = self(returns_to_go[:, keep], states[:, keep], actions[:, keep],
                       timesteps[:, keep], mask[:, keep])
            return torch.cat([out.new_zeros(out.shape[0], pad, out.shape[2]), out], dim=1)
        B, K, _ = states.shape
        n = self.n_tokens
        x, attn_mask = self._tokens(returns_to_go, states, actions, timesteps, mask)
        for block in self.blocks:
            x = block(x, attn_mask)
        x = x.reshape(B, K, n, self.cfg.hidden)
        return self._head(x[:, :, n - 2])  # from the state token

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
        """Masked cross-entropy (discrete) or MSE (continuous) over real steps."""
        pred = self(
            batch["rtg"], batch["states"], batch["actions"], batch["timesteps"], batch["mask"]
        )
        m = batch["mask"].reshape(-1) > 0
        A = self.cfg.act_dim
        if self.cfg.discrete:
            return F.cross_entropy(
                pred.reshape(-1, A)[m].float(), batch["actions"].reshape(-1, A)[m].argmax(-1)
            )
        return F.mse_loss(pred.reshape(-1, A)[m].float(), batch["actions"].reshape(-1, A)[m])
