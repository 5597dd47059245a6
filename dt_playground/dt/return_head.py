"""The return-distribution head and the ``best`` target (Multi-Game DT, Lee et al. 2022, §3.3).

A DT with ``return_bins > 0`` also predicts, at every step t, the distribution of the
return-to-go R_t over ``return_bins`` equal bins spanning the training data's range of
returns-to-go (``return_low .. return_high``, in the model's return units, i.e. raw
return / ``return_scale``; stored in config.json's ``model`` section). It is trained
with cross-entropy beside the action loss.

Causality. Chen et al. order each step's tokens (R_t, s_t, a_t). No token there has seen
s_t without also seeing R_t, so R_t can't be predicted from the state. Multi-Game DT
orders them (s_t, R_t, a_t) for exactly this reason, and so do we, but only for models
with the head: ``DTConfig.token_order`` is "rsa" (the default: every checkpoint made
before the head existed loads and plays exactly as before) or "sra". In "sra" the
distribution of R_t is read from the s_t token (which has seen s_<=t, R_<t, a_<t, not
R_t) and the action from the R_t token (which has seen s_t and R_t, as the state token
did in "rsa"). Both orders read the action from the token just before a_t.

Acting with ``best`` (MGDT's expert-return inference). Each step takes two passes:
the s_t token gives P(R_t | history); we sample R_t from
P(R_t | history) * exp(kappa * (R - R_max) / (R_max - R_min)) (kappa = 10 as the
paper), the bin's centre becomes R_t's token, and the second pass reads the action.
No target needs to be known; what is realistic depends on where the episode stands.
Sampling uses one generator per episode seeded from its reset seed, so a best-mode
episode is the same whatever else is in the batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dt_playground.errors import NoReturnHeadError

BEST = "best"
DEFAULT_KAPPA = 10.0
DEFAULT_BINS = 60
MAX_BINS = 1024
# Percentiles of P(R_t | history) a trace records (the band on the RTG plot).
BAND_QUANTILES = (0.1, 0.5, 0.9)
# Second component of each episode's sampling seed: [reset seed, _STREAM] keeps the
# return draws apart from the action-sampling stream seeded by the reset seed alone.
_STREAM = 0xBE57


def is_best(target) -> bool:
    return isinstance(target, str) and target.strip().lower() == BEST


def as_target(target) -> float | str:
    """``"best"`` (any case) or the target as a float (ValueError otherwise)."""
    return BEST if is_best(target) else float(target)


def has_head(cfg) -> bool:
    return int(getattr(cfg, "return_bins", 0) or 0) > 0


NO_BEST = (
    "This checkpoint has no return model, so it can't pick the 'best' target: give a "
    "number, or give the DT one with `python -m dt_playground returns --checkpoint DIR`."
)


def require_head(cfg) -> None:
    if not has_head(cfg):
        raise NoReturnHeadError(NO_BEST)


def check_head_config(cfg) -> None:
    """ValueError unless the head fields of a `DTConfig` make sense (checked on load)."""
    bins, order = cfg.return_bins, cfg.token_order
    if order not in ("rsa", "sra"):
        raise ValueError(f"model.token_order must be 'rsa' or 'sra', got {order!r}")
    if not isinstance(bins, int) or isinstance(bins, bool) or not 0 <= bins <= MAX_BINS:
        raise ValueError(f"model.return_bins must be an integer in 0..{MAX_BINS}, got {bins!r}")
    if bins and cfg.use_returns and order != "sra":
        raise ValueError("a return head needs return tokens in (s, R, a) order (token_order 'sra')")
    lo, hi = float(cfg.return_low), float(cfg.return_high)
    if bins and not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"model.return_low/high must be finite with low < high, got {lo}, {hi}")


def head_config(rtg_per_episode: list[np.ndarray], bins: int) -> dict:
    """`DTConfig` keyword arguments for a head of ``bins`` bins over these returns-to-go
    (model units, real steps only); ``bins == 0`` gives the plain (R, s, a) model."""
    if bins <= 0:
        return {"return_bins": 0, "token_order": "rsa"}
    allr = np.concatenate([np.asarray(r, np.float64) for r in rtg_per_episode])
    lo, hi = float(allr.min()), float(allr.max())
    if hi - lo < 1e-6:  # constant returns: any non-empty range will do
        lo, hi = lo - 0.5, hi + 0.5
    return {"return_bins": int(bins), "return_low": lo, "return_high": hi, "token_order": "sra"}


def dataset_head_config(ds, bins: int) -> dict:
    """`head_config` over an `data.windows.OfflineDataset`'s returns-to-go (real steps only)."""
    return head_config([ds.rtg[i, :n] for i, n in enumerate(ds.lengths)], bins)


def bin_centres(cfg) -> np.ndarray:
    """The ``return_bins`` bin centres (model units)."""
    lo, hi, n = float(cfg.return_low), float(cfg.return_high), int(cfg.return_bins)
    return lo + (np.arange(n) + 0.5) * (hi - lo) / n


def bin_index(rtg: torch.Tensor, cfg) -> torch.Tensor:
    """The bin (int64) each return-to-go (model units) falls in; clamped to the range."""
    n = cfg.return_bins
    pos = (rtg.float() - cfg.return_low) * (n / (cfg.return_high - cfg.return_low))
    return pos.floor().clamp(0, n - 1).long()


def return_loss(logits: torch.Tensor, rtg: torch.Tensor, mask: torch.Tensor, cfg) -> torch.Tensor:
    """Mean cross-entropy over real steps of logits (B, K, bins) for rtg (B, K, 1).
    Mask-weighted, not boolean-indexed: no data-dependent shapes, no host sync."""
    target = bin_index(rtg.reshape(rtg.shape[0], -1), cfg)  # (B, K)
    ce = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), reduction="none")
    m = mask.reshape(-1).to(ce.dtype)
    return (ce * m).sum() / m.sum().clamp_min(1.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def best_probs(probs: np.ndarray, cfg, kappa: float = DEFAULT_KAPPA) -> np.ndarray:
    """P(R | history) reweighted by exp(kappa (R - R_max) / (R_max - R_min)), per row."""
    c = bin_centres(cfg)
    # In logs, so that a large kappa can't underflow every weight to 0.
    with np.errstate(divide="ignore"):
        logp = np.log(np.asarray(probs, np.float64))
    logp = logp + kappa * (c - cfg.return_high) / (cfg.return_high - cfg.return_low)
    p = np.exp(logp - logp.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def sample_bins(probs: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """One bin per row of ``probs`` (B, bins), row i drawn with ``rngs[i]``."""
    cdf = np.cumsum(probs, -1)
    u = np.array([g.random() for g in rngs]) * cdf[:, -1]
    idx = [int(np.searchsorted(c, x, side="right")) for c, x in zip(cdf, u)]
    return np.minimum(idx, probs.shape[-1] - 1)


def quantiles(probs: np.ndarray, cfg, qs=BAND_QUANTILES) -> np.ndarray:
    """Per row, the bin centres (model units) at the given quantiles of ``probs`` (B, len(qs))."""
    cdf = np.cumsum(probs, -1)
    cdf /= cdf[:, -1:]
    idx = np.stack([(cdf < q).sum(-1) for q in qs], -1)
    return bin_centres(cfg)[np.minimum(idx, probs.shape[-1] - 1)]


def episode_rngs(seeds) -> list[np.random.Generator]:
    """The return-sampling generator of each episode, from its reset seed."""
    return [np.random.default_rng([int(s) % 2**63, _STREAM]) for s in seeds]
