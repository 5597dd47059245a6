"""Value-checked acting: the DT proposes, its critic picks (offline/critic.py).

At each step `CheckedPolicy` asks the DT for ``n`` actions in one batched forward: the
same window, with the current return-to-go replaced by ``n`` values in a band of
``spread`` times the data's return range around the one asked for (clipped to the
returns-to-go the data holds: the critic exploits returns the data never saw). The
critic then keeps, per episode,

- numeric target: the action whose G(s, a, t) is closest to the return still asked for
  (Doctor);
- `best`: the action of highest min(Q1, Q2)(s, a) (QT), or the DT's own where the
  critic's settings say Q picks worse (``q_for_best`` false).

IQL's own action is one more candidate where ``actor`` (for `best`) or ``actor_asks``
(for numeric asks) says so. `act` is `propose`, `choose`, `play`: the critic's refit
(`training/critic_refit.py`) explores by overriding `choose` alone.

Candidates are ordered by distance from the asked return, so a tie keeps the plain DT's
action. The history keeps the asked returns-to-go (what the DT was promised), so an
unchecked step and a checked one see the same window. The critic's G of each chosen
action is recorded (``critic_values``) for the RTG plot: does the critic believe the
promise? Rows are independent: batched episodes equal single ones.
"""

from __future__ import annotations

import numpy as np
import torch

from dt_playground.data.windows import encode_actions
from dt_playground.dt.acting import Acting
from dt_playground.offline.critic import CheckSettings
from dt_playground.offline.store import IQLCheckpoint
from dt_playground.rollout.policy import DTPolicy


class CheckedPolicy(DTPolicy):
    """A `DTPolicy` whose every action is chosen by a critic among ``n`` candidates."""

    def __init__(self, *args, critic: IQLCheckpoint, settings: CheckSettings, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.cfg.use_returns:
            raise ValueError("Checking needs a DT: this model has no return input")
        self.critic = critic.model
        self.settings = settings
        lo, hi = critic.config.get("support") or [None, None]
        summary = critic.dataset
        self.support = (
            float(lo if lo is not None else summary.return_min or 0.0),
            float(hi if hi is not None else summary.return_max or 0.0),
        )
        span = (summary.return_max or 0.0) - (summary.return_min or 0.0)
        n = settings.n
        offsets = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        offsets = offsets[np.argsort(np.abs(offsets), kind="stable")]  # the asked one first
        self.offsets = offsets * settings.spread * span
        self.r_slot = 1 if self.cfg.token_order == "sra" else 0

    @classmethod
    def for_checkpoint(cls, ck, critic=None, settings=None, kappa=None, **kwargs):
        returns = getattr(ck, "returns", None)
        return cls(
            ck.model,
            ck.norm,
            ck.spec,
            kappa=ck.best_kappa if kappa is None else kappa,
            returns_model=None if returns is None else returns.model,
            critic=critic,  # pyright: ignore[reportArgumentType] (a checked policy needs both)
            settings=settings,  # pyright: ignore[reportArgumentType]
            **kwargs,
        )

    def reset(self, targets, seeds, max_steps: int | None = None) -> None:
        super().reset(targets, seeds, max_steps)
        self.critic_values = np.full(self.rtg.shape, np.nan)

    def candidates(self, rows: np.ndarray) -> np.ndarray:
        """(B, n) returns-to-go to propose with, raw units, inside the data's support."""
        lo, hi = self.support
        return np.clip(self.next_rtg[rows][:, None] + self.offsets[None, :], lo, hi)

    @torch.inference_mode()
    def _propose(self, rows: np.ndarray, t: int, cand: np.ndarray) -> np.ndarray:
        """The DT's outputs (B * n, A) for every row's ``n`` candidate returns-to-go, in
        one forward: row-major, candidate j of row i at ``i * n + j``."""
        n = cand.shape[1]
        rtg = self.norm.returns(cand).reshape(-1)  # (B n,)
        engine = self.engine
        if engine.name != "fast":
            w = self.window(rows, t)
            w = {k: np.repeat(v, n, axis=0) for k, v in w.items()}
            w["rtg"][:, -1, 0] = rtg
            out = engine.predict_last(
                self._tensor(w["rtg"]),
                self._tensor(w["states"]),
                self._tensor(w["actions"]),
                self._tensor(w["timesteps"], False),
                self._tensor(w["mask"], False),
            )
            return out.float().cpu().numpy()
        assert isinstance(engine, Acting)  # the fast engine: it keeps per-token features
        K = engine.cfg.context_len
        cache, called = self.feats[id(engine)]
        first = max(0, t - K + 1)
        # Step t's features into the cache, as `DTPolicy._predict_cached` does.
        stale = rows[called[rows] < t - 1] if t > 1 else rows[:0]
        if len(stale):
            self._write_features(engine, cache, stale, t, range(first, t + 1), K)
        self._write_features(engine, cache, rows, t, [t - 1, t] if t > 0 else [t], 2)
        called[rows] = t
        window = cache[self._index(rows, cache), slice(first % K, first % K + t - first + 1)]
        step = np.full(len(rtg), min(t, self.spec.max_ep_len - 1))  # as the window's
        cand_feats = engine.return_token_features(  # the candidates' return tokens
            self._tensor(rtg[:, None]), self._tensor(step, False)
        ).reshape(len(rows), n, -1)
        # The window up to the return token runs once per row, the rest once per candidate.
        out = engine.predict_candidates(window, cand_feats, self.r_slot)
        return out.reshape(len(rows) * n, -1).float().cpu().numpy()

    @torch.inference_mode()
    def act(self, rows: np.ndarray, t: int, obs: np.ndarray) -> list:
        self.states[rows, t] = self.norm.states(obs)
        self._choose_returns(rows, t)
        self.rtg_raw[rows, t] = self.next_rtg[rows]
        self.rtg[rows, t] = self.norm.returns(self.next_rtg[rows])
        enc = self.propose(rows, t)
        pick, g = self.choose(rows, t, enc)
        return self.play(rows, t, enc, pick, g)

    def actor_allowed(self, rows: np.ndarray) -> np.ndarray:
        """(B,) whether IQL's action may be kept for each row: where it plays `best`
        with ``actor``, where it plays a numeric ask with ``actor_asks``."""
        best = self.best[rows]
        return (best & self.settings.actor) | (~best & self.settings.actor_asks)

    @property
    def with_actor(self) -> bool:
        """Whether IQL's action is proposed at all (as the last candidate)."""
        return self.settings.actor or self.settings.actor_asks

    def propose(self, rows: np.ndarray, t: int) -> np.ndarray:
        """(B, m, A) encoded candidate actions: the DT's ``n`` (the asked return's
        first), then IQL's own when `with_actor`."""
        cand = self.candidates(rows)
        B, n = cand.shape
        out = self._propose(rows, t, cand)  # (B n, A)
        if self.spec.discrete:
            enc = encode_actions(out.argmax(-1), self.cfg.act_dim, True)
        else:
            enc = out.astype(np.float32)
        enc = enc.reshape(B, n, -1)
        if self.with_actor:
            own = self.critic.act(torch.from_numpy(self.states[rows, t])).numpy()
            own = encode_actions(own, self.cfg.act_dim, True) if self.spec.discrete else own
            enc = np.concatenate([enc, own[:, None].astype(np.float32)], 1)
        return enc

    def _scored(self, rows: np.ndarray, t: int, enc: np.ndarray):
        """The critic's inputs for every candidate: states and actions (B m, ...), B, m."""
        B, m, _ = enc.shape
        s = torch.from_numpy(np.repeat(self.states[rows, t], m, axis=0))
        a = torch.from_numpy(enc.reshape(B * m, -1).astype(np.float32))
        return s, a, B, m

    def choose(self, rows: np.ndarray, t: int, enc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) the candidate each row keeps, and (B, m) the critic's G of every one (raw
        return units): nearest G to the return still asked for; for `best`, highest Q
        (or, without ``q_for_best``, the DT's own action)."""
        s, a, B, m = self._scored(rows, t, enc)
        tt = torch.full((len(s),), t / self.spec.max_ep_len)
        g = self.critic.return_value(s, a, tt).numpy().reshape(B, m) * self.norm.return_scale
        allowed = self.actor_allowed(rows)
        dist = np.abs(g - self.next_rtg[rows][:, None])
        if self.with_actor:
            dist[~allowed, -1] = np.inf
        pick = dist.argmin(1)
        best = self.best[rows]
        if best.any() and self.settings.q_for_best:  # Q only where a row plays `best`
            q = self.critic.q_value(s, a).numpy().reshape(B, m)  # (most of the critic's cost)
            if self.with_actor:
                q[~allowed, -1] = -np.inf
            pick = np.where(best, q.argmax(1), pick)
        elif best.any():  # the DT's own action: candidate 0, at the return it sampled
            pick = np.where(best, 0, pick)  # (exactly that return when n is odd)
        return pick, g

    def play(
        self, rows: np.ndarray, t: int, enc: np.ndarray, pick: np.ndarray, g: np.ndarray
    ) -> list:
        """Keep each row's picked candidate: the history's action, the critic's value
        for the plot, and the env's action."""
        B = len(rows)
        chosen = enc[np.arange(B), pick]
        self.actions[rows, t] = chosen
        self.critic_values[rows, t] = g[np.arange(B), pick]  # pyright: ignore[reportOptionalSubscript]
        if self.spec.discrete:
            return chosen.argmax(-1).tolist()
        return list((chosen * self.scale).astype(np.float32))  # pyright: ignore[reportOperatorIssue] (continuous: a scale)
