"""Return-conditioned rollouts.

`DTPolicy` keeps, for each of N episodes, the states, actions and
returns-to-go seen so far, builds the model's input with
`data.windows.gather_windows` (the trainer's own function) and decrements the
return-to-go by every reward. Each step it embeds only the new tokens and
keeps the last K steps' per-token features (`acting.Acting`).
`run_episodes` plays any mix of targets and seeds in lock-step, one model
forward per step for all live episodes.

A rollout never renders (docs/ARCHITECTURE.md, "Simulate first, render after"):
`media/replay.py` replays a `Trace`'s actions from the same seed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from dt_playground.data.windows import Normaliser, encode_actions, gather_windows
from dt_playground.dt.acting import engine_for
from dt_playground.dt.model import DecisionTransformer
from dt_playground.dt.return_head import (
    BAND_QUANTILES,
    DEFAULT_KAPPA,
    NO_BEST,
    as_target,
    best_probs,
    bin_centres,
    episode_rngs,
    has_head,
    is_best,
    quantiles,
    sample_bins,
    softmax,
)
from dt_playground.dt.runtime import resolve_device
from dt_playground.envs.episodes import Trace  # noqa: F401  (defined in the torch-free leaf; re-exported)
from dt_playground.envs.registry import EnvSpec, action_scale, make_env
from dt_playground.errors import NoReturnHeadError

if TYPE_CHECKING:  # IQL acts through the same runner (rollout/iql_policy.py)
    from dt_playground.rollout.iql_policy import IQLPolicy

BAND_BATCH = 256  # windows per batch of `DTPolicy.fill_band`


class DTPolicy:
    """A checkpointed model acting in N episodes at once."""

    def __init__(
        self,
        model: DecisionTransformer,
        norm: Normaliser,
        spec: EnvSpec,
        sample: bool = False,
        precision: str = "fp32",
        engine: str = "fast",
        device: str | torch.device = "cpu",
        kappa: float = DEFAULT_KAPPA,
        track_returns: bool = False,
        returns_model: DecisionTransformer | None = None,
    ):
        """``engine``: "fast" (cached token features; oneDNN on the CPU) or "reference"
        (the model's forward on the whole window each step). ``device``: "cpu",
        "cuda" (pays for hundreds of episodes in lock-step) or "auto".
        ``returns_model``: a separate return model (dt.return_head) that gives P(R_t | history)
        for target "best" and the band; by default the model's own head, if it has one."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.model = model
        self.norm, self.spec, self.sample = norm, spec, sample
        if returns_model is not None and not has_head(returns_model.cfg):
            raise ValueError("returns_model has no return-distribution head")
        # What gives P(R_t | history): the separate model, the policy's own head, or nothing.
        own = has_head(model.cfg) and model.cfg.use_returns  # MGDT's head on the DT itself
        self.returns_model = returns_model or (model if own else None)
        # kappa: how hard target "best" leans to high returns (dt.return_head). track_returns:
        # record P(R_t | history) for numeric targets too (after the episode: `fill_band`), for
        # the band on the RTG plot; "best" episodes always record it.
        self.kappa = float(kappa)
        self.track_returns = bool(track_returns) and self.returns_model is not None
        self.cfg = model.cfg
        self.scale = action_scale(spec.env_id)
        # bf16: ~2x faster matmuls on AVX-512 BF16 CPUs; per-row results don't
        # depend on the batch.
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.device = resolve_device(device)
        self.engine = engine_for(model, engine, self.dtype, self.device)
        self.returns_engine = (
            None
            if self.returns_model is None
            else engine_for(self.returns_model, engine, self.dtype, self.device)
        )

    @classmethod
    def for_checkpoint(cls, ck, kappa: float | None = None, **kwargs) -> DTPolicy:
        """The policy of a loaded `checkpoints.checkpoint.Checkpoint`, with its return model if it
        ships one (``ck.returns``) and its kappa unless one is given."""
        returns = getattr(ck, "returns", None)
        return cls(
            ck.model,
            ck.norm,
            ck.spec,
            kappa=ck.best_kappa if kappa is None else kappa,
            returns_model=None if returns is None else returns.model,
            **kwargs,
        )

    @property
    def offers_best(self) -> bool:
        return self.returns_model is not None

    def _require_best(self) -> None:
        if self.returns_model is None:
            raise NoReturnHeadError(NO_BEST)

    def reset(self, targets, seeds, max_steps: int | None = None) -> None:
        n = len(targets)
        T = max_steps or self.spec.max_ep_len
        S, A = self.cfg.state_dim, self.cfg.act_dim
        self.states = np.zeros((n, T, S), np.float32)
        self.actions = np.zeros((n, T, A), np.float32)
        self.rtg = np.zeros((n, T), np.float32)
        self.rtg_raw = np.zeros((n, T), np.float64)
        self.best = np.array([is_best(x) for x in targets], bool)
        if self.best.any():
            self._require_best()
        self.next_rtg = np.array([np.nan if b else float(x) for x, b in zip(targets, self.best)])
        self.return_rngs = episode_rngs(seeds)
        self.band = np.full((n, T, len(BAND_QUANTILES)), np.nan)
        self.rngs = [np.random.default_rng(s) for s in seeds]
        # `Acting.token_features` of the last K steps, each step written at slot
        # t % K and again at t % K + K, so any K consecutive steps are one slice.
        # One buffer per engine (a separate return model has its own).
        self.feats = {}
        if self.engine.name == "fast":
            for eng in {id(e): e for e in (self.engine, self.returns_engine) if e}.values():
                c = eng.cfg
                self.feats[id(eng)] = (
                    torch.zeros(
                        n,
                        2 * c.context_len,
                        eng.n_tokens,
                        4 * c.hidden,
                        dtype=self.dtype,
                        device=self.device,
                    ),
                    np.full(n, -1),
                )  # features; last step each row asked

    def window(self, rows: np.ndarray, t: int, K: int | None = None) -> dict:
        """The model input for episodes ``rows`` at step ``t`` (exactly as in training)."""
        return gather_windows(
            self.states,
            self.actions,
            self.rtg,
            rows,
            np.full(len(rows), t),
            K or self.cfg.context_len,
            self.spec.max_ep_len,
        )

    def _tensor(self, x: np.ndarray, float_: bool = True) -> torch.Tensor:
        out = torch.from_numpy(x)
        return out.to(self.device, self.dtype if float_ else None, non_blocking=True)

    @torch.inference_mode()
    def _predict(self, rows: np.ndarray, t: int, returns: bool = False) -> np.ndarray:
        """The model's output for the last step of `window(rows, t)`: actions (B, A), or
        with ``returns`` the return model's bin logits (B, bins), by the chosen engine."""
        engine = self.returns_engine if returns else self.engine
        if engine.name == "fast":  # pyright: ignore[reportOptionalMemberAccess]
            return self._predict_cached(engine, rows, t, returns)
        w = self.window(rows, t, K=engine.cfg.context_len)  # pyright: ignore[reportOptionalMemberAccess]
        last = engine.return_logits_last if returns else engine.predict_last  # pyright: ignore[reportAttributeAccessIssue, reportOptionalMemberAccess]
        out = last(
            self._tensor(w["rtg"]),
            self._tensor(w["states"]),
            self._tensor(w["actions"]),
            self._tensor(w["timesteps"], False),
            self._tensor(w["mask"], False),
        )
        return out.float().cpu().numpy()

    @torch.inference_mode()
    def _predict_cached(self, engine, rows: np.ndarray, t: int, returns: bool) -> np.ndarray:
        """The model's output for the last step of `window(rows, t)`: actions or logits
        (B, A), from cached per-token features, embedding only the new tokens.

        Step t's return and state tokens are new; step t-1's action token became
        known when that action was chosen. Their features come from the last two
        steps of the same training-layout window; earlier steps' are reused. A row
        this engine skipped at step t-1 (a separate return model is asked only for
        "best" rows, and a re-prompt can make a row "best") has its whole window
        embedded first.
        """
        K = engine.cfg.context_len
        cache, called = self.feats[id(engine)]
        first = max(0, t - K + 1)  # the window's first step
        stale = rows[called[rows] < t - 1] if t > 1 else rows[:0]  # step t-1 not seen
        if len(stale):
            self._write_features(engine, cache, stale, t, range(first, t + 1), K)
        self._write_features(engine, cache, rows, t, [t - 1, t] if t > 0 else [t], 2)
        called[rows] = t
        r = self._index(rows, cache)
        span = slice(first % K, first % K + t - first + 1)
        window = cache[r, span]
        if returns:  # return-bin logits from s_t: step t's R token is not read
            return engine.return_logits_from_features(window).float().cpu().numpy()
        return engine.predict_from_features(window).float().cpu().numpy()

    def _write_features(self, engine, cache, rows, t: int, steps, length: int) -> None:
        """Cache ``engine``'s token features of ``steps`` (the last ones of the
        ``length``-step window ending at step t) for episodes ``rows``."""
        steps, K = list(steps), engine.cfg.context_len
        w = self.window(rows, t, K=length)
        feats = engine.token_features(
            self._tensor(w["rtg"]),
            self._tensor(w["states"]),
            self._tensor(w["actions"]),
            self._tensor(w["timesteps"], False),
        )
        r = self._index(rows, cache)
        for j, f in zip(steps, feats[:, -len(steps) :].unbind(1)):
            cache[r, j % K] = f
            cache[r, j % K + K] = f

    def _index(self, rows: np.ndarray, cache: torch.Tensor):
        """``rows`` as an index into ``cache`` (a slice when every episode is live)."""
        return slice(None) if len(rows) == len(cache) else torch.from_numpy(rows).to(self.device)

    def _choose_returns(self, rows: np.ndarray, t: int) -> None:
        """The first of best mode's two passes (dt.return_head): P(R_t | history) from the
        s_t token, recorded as percentiles; "best" rows sample their R_t from it."""
        sub = rows[self.best[rows]]  # numeric rows' band comes after the episode (`fill_band`)
        if len(sub) == 0:
            return
        self.rtg[sub, t] = 0.0  # a placeholder: s_t's prediction never sees it
        probs = softmax(self._predict(sub, t, returns=True))
        scale, rcfg = self.norm.return_scale, self.returns_model.cfg  # pyright: ignore[reportOptionalMemberAccess]
        self.band[sub, t] = quantiles(probs, rcfg) * scale
        b = self.best[sub]
        if b.any():
            p = best_probs(probs[b], rcfg, self.kappa)
            idx = sample_bins(p, [self.return_rngs[r] for r in sub[b]])
            self.next_rtg[sub[b]] = bin_centres(rcfg)[idx] * scale

    @torch.inference_mode()
    def fill_band(self, lengths) -> None:
        """With ``track_returns``, the band at every step not yet given one (numeric
        targets), for episodes of these ``lengths``: P(R_t | history) depends only on the
        states and actions, so it is read after the episode, every step's window in a few
        large batches (one pass per step would add about a third to a Hopper play)."""
        if not self.track_returns:
            return
        pairs = [
            (r, t) for r, n in enumerate(lengths) for t in range(n) if np.isnan(self.band[r, t, 0])
        ]
        engine = engine_for(self.returns_model, "reference", self.dtype, self.device)  # pyright: ignore[reportArgumentType]
        for i in range(0, len(pairs), BAND_BATCH):
            rows, ts = (np.array(x) for x in zip(*pairs[i : i + BAND_BATCH]))
            w = gather_windows(
                self.states,
                self.actions,
                self.rtg,
                rows,
                ts,
                engine.cfg.context_len,
                self.spec.max_ep_len,
            )
            logits = engine.return_logits_last(  # pyright: ignore[reportAttributeAccessIssue]
                self._tensor(w["rtg"]),
                self._tensor(w["states"]),
                self._tensor(w["actions"]),
                self._tensor(w["timesteps"], False),
                self._tensor(w["mask"], False),
            )
            probs = softmax(logits.float().cpu().numpy())
            self.band[rows, ts] = quantiles(probs, self.returns_model.cfg) * self.norm.return_scale  # pyright: ignore[reportOptionalMemberAccess]

    def act(self, rows: np.ndarray, t: int, obs: np.ndarray) -> list:
        """Record observations of episodes ``rows`` at step ``t`` and choose their actions.

        Every row acts at every step from 0 until it leaves ``rows`` for good
        (its episode ended), as `run_episodes` drives it.
        """
        self.states[rows, t] = self.norm.states(obs)
        self._choose_returns(rows, t)
        self.rtg_raw[rows, t] = self.next_rtg[rows]
        self.rtg[rows, t] = self.norm.returns(self.next_rtg[rows])
        out = self._predict(rows, t)
        if not self.spec.discrete:
            self.actions[rows, t] = out  # the model's own scale, as in training
            return list((out * self.scale).astype(np.float32))
        if not self.sample:
            acts = out.argmax(-1).tolist()
        else:
            p = np.exp(out - out.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            acts = [
                int(min(np.searchsorted(np.cumsum(pi), self.rngs[r].random()), len(pi) - 1))
                for pi, r in zip(p, rows)
            ]
        self.actions[rows, t] = encode_actions(np.array(acts), self.cfg.act_dim, True)
        return acts

    def observe(self, rows: np.ndarray, rewards: np.ndarray) -> None:
        """Return-to-go decreases by each reward received."""
        self.next_rtg[rows] -= rewards

    def reprompt(self, row: int, target: float | str) -> None:
        """Prompt episode ``row`` anew: its next return-to-go is ``target``, whatever
        it has collected so far (earlier steps keep the values they were given);
        "best" switches it to sampling its own (dt.return_head)."""
        if is_best(target):
            self._require_best()
        self.best[row] = is_best(target)
        self.next_rtg[row] = np.nan if self.best[row] else float(target)


def run_episodes(
    policy: DTPolicy | IQLPolicy,
    targets,
    seeds,
    max_steps: int | None = None,
    progress=None,
    schedules: list[dict[int, float | str]] | None = None,
) -> list[Trace]:
    """Play ``len(targets)`` episodes (target i from reset seed i) in lock-step.

    Episode i's trace depends only on (model, target i, seed i): batching
    does not change results beyond float rounding. ``schedules[i]`` (step ->
    target) re-prompts episode i: at those steps its return-to-go is reset to
    the new target (`DTPolicy.reprompt`); the trace's ``switches`` records them.
    """
    targets = [as_target(x) for x in targets]
    seeds = [int(s) for s in seeds]
    if len(targets) != len(seeds):
        raise ValueError("targets and seeds must have the same length")
    spec = policy.spec
    T = min(max_steps or spec.max_ep_len, spec.max_ep_len)
    n = len(targets)
    envs = [make_env(spec) for _ in range(n)]
    try:  # the envs close whatever happens (a bad schedule, a model error)
        obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
        policy.reset(targets, seeds, T)
        schedules = [dict(s or {}) for s in schedules] if schedules is not None else [{}] * n
        if len(schedules) != n:
            raise ValueError("schedules and targets must have the same length")
        switches = [{} for _ in range(n)]
        actions = [[] for _ in range(n)]
        rewards = [[] for _ in range(n)]
        done = np.zeros(n, bool)
        terminated = np.zeros(n, bool)
        start = time.perf_counter()
        for t in range(T):
            rows = np.flatnonzero(~done)
            if len(rows) == 0:
                break
            for r in rows:
                if t in schedules[r]:
                    policy.reprompt(r, schedules[r][t])  # pyright: ignore[reportArgumentType]
                    switches[r][t] = schedules[r][t]
            acts = policy.act(rows, t, np.stack([obs[r] for r in rows]))
            r_step = np.zeros(len(rows))
            for j, (r, a) in enumerate(zip(rows, acts)):
                obs[r], rew, term, trunc, _ = envs[r].step(a)
                actions[r].append(a)
                rewards[r].append(rew)
                r_step[j] = rew
                if term or trunc or t == T - 1:
                    done[r], terminated[r] = True, term
            policy.observe(rows, r_step)
            if progress:
                progress(t + 1, T)
        wall = time.perf_counter() - start
    finally:
        for env in envs:
            env.close()
    policy.fill_band([len(r) for r in rewards])
    return [
        Trace(
            spec.env_id,
            seeds[i],
            targets[i],
            np.asarray(actions[i]),
            np.asarray(rewards[i], dtype=np.float64),
            policy.rtg_raw[i, : len(rewards[i])].copy(),
            bool(terminated[i]),
            wall,
            switches[i],
            policy.band[i, : len(rewards[i])].copy() if policy.offers_best else None,
            *_critic_of(policy, i, len(rewards[i])),
        )
        for i in range(n)
    ]


def _critic_of(policy, row: int, n: int) -> tuple:
    """The trace's critic values and checked flag (a checked policy keeps them)."""
    values = getattr(policy, "critic_values", None)
    return (None, False) if values is None else (values[row, :n].copy(), True)


def run_grid(
    policy: DTPolicy | IQLPolicy, targets, seeds, max_steps: int | None = None, progress=None
) -> list[Trace]:
    """Every target with every seed (target-major order) in one lock-step run."""
    ts = [as_target(t) for t in targets for _ in seeds]
    ss = [int(s) for _ in targets for s in seeds]
    return run_episodes(policy, ts, ss, max_steps=max_steps, progress=progress)
