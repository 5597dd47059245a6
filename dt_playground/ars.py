"""Linear behaviour policies for the MuJoCo tasks, trained with Augmented Random Search.

ARS V2-t (Mania, Guy & Recht 2018, "Simple random search provides a competitive
approach to reinforcement learning"): a linear policy ``a = clip(W (s - mu) / sigma, -1, 1)``
on online-normalised states. Each iteration draws ``N`` Gaussian directions
``delta``, plays ``W + nu delta`` and ``W - nu delta`` (both from the same reset
seed), keeps the ``b`` directions with the best ``max(r+, r-)`` and steps
``W += alpha / (b sigma_R) sum (r+ - r-) delta`` (``sigma_R``: std of the 2b
returns used). ``mu``/``sigma`` are running statistics of every state seen in
the rollouts, frozen within an iteration. During training the env spec's
``alive_bonus`` is subtracted from every reward (the paper's trick against the
"stand still and collect the bonus" optimum); ``shift_off_steps`` optionally
adds it back after that many env steps. Everything is driven by one
``numpy.random.Generator`` seeded with the training seed, so a run is
reproducible on the same machine/MuJoCo build.

Every iterate is kept in memory (a few hundred floats each). After training a
*grading* pass picks ~12 of them whose returns spread evenly from the initial
(zero) policy to the best one, evaluates each on ``eval_episodes`` episodes
(reset seeds ``eval_seed + k``, the same `data.run_episode` the datasets use)
and writes them under ``pretrained/experts/<EnvId>/`` as
``snap_<iter:04d>.safetensors`` (tensors ``weights``, ``obs_mean``, ``obs_std``,
float32) plus ``snapshots.json``. Gaussian-noise versions of the best snapshot
are evaluated too (``"noisy"`` in the JSON); `mujoco_behaviours` cycles through
all of them to build datasets whose returns spread from near-random to expert.

Training log (one CPU core of this 2-core machine, ~10k env steps/s)
---------------------------------------------------------------------
All runs: numpy ARS V2-t as below, seeded, one core. Returns are means +- std
over 10 evaluation episodes (reset seeds 1_000_000..1_000_009).

Hopper-v5: N=8, b=4, alpha=0.01, nu=0.025, alive bonus 1.0 subtracted, 1.5M steps
  (~2 CPU-minutes + ~1 minute of grading). Strong seed dependence:
  seed 0: best 2976 +- 36 (it 152; ~3000 at 0.8M steps, then a plateau);
  seed 1: stuck at ~300 (hopping in place) up to 1.2M steps, stopped;
  seed 2: best 2917 +- 4;
  seed 3: best 3329 +- 19 (it 192, 1.46M steps)  <- shipped.
HalfCheetah-v5: N=32, b=4, alpha=0.02, nu=0.03, no shift, 8M steps (~5.5 CPU-min),
  seed 0: 2505 after 5 iterations (0.3M steps), best 5126 +- 30 (it 63, 4.0M
  steps); later iterates are bimodal (some episodes flip over), e.g. it 48
  1814 +- 2248.
Walker2d-v5 (target 2500), seed 0 both times:
  W1: N=16, b=8, alpha=0.02, nu=0.025, alive bonus subtracted for the first 4M
      steps, then added back, 10M steps (~17 CPU-min). Lunge-and-fall (~600)
      until ~0.45M steps, 2087 at 0.68M, 3771 +- 80 at 1.6M, 4144 +- 54 at 3.8M
      (end of the shifted phase), 4232 at 4.4M, 4677 at 6.8M, best 5779 +- 109
      (it 412, 8.5M steps)  <- shipped. With only one run per setting we can't
      say how much the late alive bonus helped versus just training longer.
  W2: same but alive bonus never subtracted (shift 0), 4M steps (~7 CPU-min):
      the stand-still optimum, best 1006 +- 1 (it 239), proxy never above 900.
  (A trial reported before this file was written, ~16 min of ARS with
  N=40/b=30 or N=16/b=8, stayed at 450-840; W1 passed that level at ~0.5M
  steps. Both + and - of a direction start from the same reset seed here,
  which lowers the variance of r+ - r-; that may be the difference.)
Mixed datasets (`mujoco_behaviours`, 300 episodes, seed 0, one core):
  Hopper 169k steps in 12.7 s, return deciles
    104 404 621 1067 1159 1564 1752 2720 3054 3154 3353
  HalfCheetah 300k steps in 10.2 s, deciles
    -118 0 747 1370 2560 3286 3766 4178 4559 4946 5186
  Walker2d 207k steps in 18.0 s, deciles
    78 593 812 1141 1869 3475 3770 4224 4903 5681 6115
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .envs import EnvSpec, get_spec, make_env
from .experts import GaussianNoise, LinearPolicy

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERTS_ROOT = REPO_ROOT / "pretrained" / "experts"
EVAL_SEED = 1_000_000  # reset seeds for grading snapshots (datasets use small seeds)
# Gaussian-noise versions of the best snapshot (kept where they fill a gap)
NOISE_SIGMAS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ARSConfig:
    """ARS V2-t hyperparameters.

    Attributes:
        n_directions: N, directions sampled per iteration (2N rollouts).
        top_b: b, best directions used in the update.
        step_size: alpha.
        noise: nu, exploration noise std on the weights.
        max_steps: training budget in env steps (stops after the iteration
            that crosses it).
        shift: reward subtracted per step during training (the env's alive bonus).
        shift_off_steps: after this many env steps the shift is dropped
            (``None``: never).
    """

    n_directions: int
    top_b: int
    step_size: float
    noise: float
    max_steps: int
    shift: float = 0.0
    shift_off_steps: int | None = None


DEFAULT_CONFIGS: dict[str, ARSConfig] = {
    "Hopper-v5": ARSConfig(8, 4, 0.01, 0.025, max_steps=1_500_000, shift=1.0),
    "HalfCheetah-v5": ARSConfig(32, 4, 0.02, 0.03, max_steps=8_000_000),
    "Walker2d-v5": ARSConfig(16, 8, 0.02, 0.025, max_steps=10_000_000, shift=1.0,
                             shift_off_steps=4_000_000),
}
# Training seeds of the shipped snapshots (Hopper seeds 0-2 peaked at 2976, 300
# (stuck hopping in place), 2917; seed 3 reached 3329).
DEFAULT_SEEDS: dict[str, int] = {"Hopper-v5": 3, "HalfCheetah-v5": 0, "Walker2d-v5": 0}


def default_config(env_id: str | EnvSpec) -> ARSConfig:
    """The shipped hyperparameters for an env (``shift`` = the spec's alive bonus)."""
    spec = get_spec(env_id)
    if spec.env_id not in DEFAULT_CONFIGS:
        raise ValueError(f"No ARS configuration for {spec.env_id}; MuJoCo envs only: "
                         f"{', '.join(DEFAULT_CONFIGS)}")
    return DEFAULT_CONFIGS[spec.env_id]


# ---------------------------------------------------------------- training


class RunningStats:
    """Running mean/variance of states (Chan et al.'s parallel update)."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.size)
        if len(x) == 0:
            return
        n_b, mean_b = len(x), x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        n = self.n + n_b
        d = mean_b - self.mean
        self.mean = self.mean + d * n_b / n
        self.m2 = self.m2 + m2_b + d**2 * self.n * n_b / n
        self.n = n

    @property
    def std(self) -> np.ndarray:
        if self.n < 2:
            return np.ones_like(self.mean)
        std = np.sqrt(self.m2 / self.n)
        return np.where(std < 1e-8, 1.0, std)


@dataclass
class History:
    """Every iterate of a run: policy ``k`` is the one after ``k`` updates.

    ``proxy[k]`` is the mean (unshifted) return of the 2N perturbed rollouts
    around policy ``k`` (NaN for the last one, which was never played).
    """

    weights: np.ndarray  # (K, A, S)
    obs_mean: np.ndarray  # (K, S)
    obs_std: np.ndarray  # (K, S)
    env_steps: np.ndarray  # (K,) env steps used before policy k existed
    proxy: np.ndarray  # (K,)

    def save(self, path: Path | str) -> None:
        from safetensors.numpy import save_file

        _atomic(Path(path), lambda p: save_file(
            {k: np.ascontiguousarray(v) for k, v in asdict(self).items()}, str(p)))

    @classmethod
    def load(cls, path: Path | str) -> History:
        from safetensors.numpy import load_file

        return cls(**load_file(str(path)))


def _rollout(env, W, mu, sd, seed: int, shift: float, states: list) -> tuple[float, float, int]:
    """One episode of the linear policy: (shifted return, true return, steps)."""
    obs, _ = env.reset(seed=int(seed))
    total = shifted = 0.0
    steps = 0
    done = False
    while not done:
        states.append(obs)
        a = np.clip(W @ ((obs - mu) / sd), -1.0, 1.0)
        obs, r, term, trunc, _ = env.step(a)
        total += r
        shifted += r - shift
        steps += 1
        done = term or trunc
    return shifted, total, steps


def train_ars(env_id: str | EnvSpec, seed: int = 0, config: ARSConfig | None = None,
              progress: Progress | None = None, log: Callable[[str], None] | None = None,
              history_path: Path | str | None = None, init: History | None = None) -> History:
    """Run ARS V2-t and return every iterate (see `History`).

    ``progress(env_steps, max_steps)`` is called after each iteration; ``log``
    gets a one-line summary every 10 iterations. With ``history_path`` the
    history is also saved there every 10 iterations (so a killed run can still
    be graded with `save_snapshots`).
    """
    spec = get_spec(env_id)
    cfg = config or default_config(spec)
    env = make_env(spec)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    rng = np.random.default_rng(seed)
    stats = RunningStats(obs_dim)
    W = np.zeros((act_dim, obs_dim))
    hist_w, hist_mu, hist_sd, hist_steps, hist_proxy = [W.copy()], [stats.mean.copy()], \
        [stats.std.copy()], [0], []
    steps_used = 0
    t0 = time.perf_counter()
    it = 0
    while steps_used < cfg.max_steps:
        shift_on = cfg.shift_off_steps is None or steps_used < cfg.shift_off_steps
        shift = cfg.shift if shift_on else 0.0
        mu, sd = stats.mean.copy(), stats.std.copy()
        deltas = rng.standard_normal((cfg.n_directions, act_dim, obs_dim))
        seeds = rng.integers(0, 2**31 - 1, size=cfg.n_directions)
        r_pos, r_neg, true_rets, states = [], [], [], []
        for d, s in zip(deltas, seeds):
            for sign, out in ((1.0, r_pos), (-1.0, r_neg)):
                shifted, total, n = _rollout(env, W + sign * cfg.noise * d, mu, sd, s, shift,
                                             states)
                out.append(shifted)
                true_rets.append(total)
                steps_used += n
        r_pos, r_neg = np.array(r_pos), np.array(r_neg)
        top = np.argsort(-np.maximum(r_pos, r_neg), kind="stable")[: cfg.top_b]
        sigma_r = np.concatenate([r_pos[top], r_neg[top]]).std()
        if sigma_r < 1e-8:
            sigma_r = 1.0
        step = np.tensordot(r_pos[top] - r_neg[top], deltas[top], axes=1)
        W = W + cfg.step_size / (cfg.top_b * sigma_r) * step
        stats.update(np.asarray(states))
        hist_proxy.append(float(np.mean(true_rets)))
        hist_w.append(W.copy())
        hist_mu.append(stats.mean.copy())
        hist_sd.append(stats.std.copy())
        hist_steps.append(steps_used)
        it += 1
        if progress:
            progress(min(steps_used, cfg.max_steps), cfg.max_steps)
        if it % 10 == 0:
            if log:
                log(f"{spec.env_id} it {it} steps {steps_used} proxy {hist_proxy[-1]:.1f} "
                    f"best {max(hist_proxy):.1f} t {time.perf_counter() - t0:.0f}s")
            if history_path:
                _history(hist_w, hist_mu, hist_sd, hist_steps, hist_proxy).save(history_path)
    env.close()
    hist = _history(hist_w, hist_mu, hist_sd, hist_steps, hist_proxy)
    if history_path:
        hist.save(history_path)
    return hist


def _history(w, mu, sd, steps, proxy) -> History:
    proxy = list(proxy) + [float("nan")] * (len(w) - len(proxy))
    return History(np.asarray(w), np.asarray(mu), np.asarray(sd),
                   np.asarray(steps, dtype=np.int64), np.asarray(proxy))


# ---------------------------------------------------------------- snapshots


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temp file in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _policy(weights, obs_mean, obs_std) -> LinearPolicy:
    """The policy exactly as a snapshot file stores it (float32 tensors)."""
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    return LinearPolicy(f32(weights), f32(obs_mean), f32(obs_std))


def evaluate(env_id: str | EnvSpec, policy, episodes: int = 10, seed: int = EVAL_SEED,
             env=None) -> np.ndarray:
    """Returns of ``episodes`` episodes with reset seeds ``seed + k`` (and
    ``rng = default_rng([seed, k])`` for stochastic policies), played with
    `data.run_episode`, exactly as the datasets are recorded."""
    from .data import run_episode

    own = env is None
    env = env or make_env(env_id)
    rets = np.array([run_episode(env, policy, seed + k, np.random.default_rng([seed, k])).ret
                     for k in range(episodes)])
    if own:
        env.close()
    return rets


def _float_list(x) -> list[float]:
    return [round(float(v), 4) for v in x]


def save_snapshots(env_id: str | EnvSpec, history: History, config: ARSConfig, seed: int,
                   out_dir: Path | str | None = None, n_snapshots: int = 12,
                   eval_episodes: int = 10, eval_seed: int = EVAL_SEED,
                   n_best_candidates: int = 30, quick_episodes: int = 3, pool_size: int = 80,
                   log: Callable[[str], None] | None = None) -> list[dict]:
    """Grade a run's iterates and write ~``n_snapshots`` of them plus ``snapshots.json``.

    1. The ``n_best_candidates`` iterates with the highest smoothed proxy are
       evaluated on ``eval_episodes`` episodes; the best mean is the best snapshot.
    2. For return levels spaced evenly between the initial policy and the best,
       a pool of earlier iterates (``pool_size`` evenly spaced + the three whose proxy is
       nearest each level) is quick-evaluated on ``quick_episodes`` episodes and
       the one closest to each level is kept (none if no iterate is within half
       a level spacing: ARS often jumps; the noisy versions fill such gaps).
    3. Each is evaluated on ``eval_episodes`` episodes; Gaussian-noise versions of
       the best (``NOISE_SIGMAS``) too, and those whose mean return is at least half
       a level spacing from every kept behaviour are kept (they fill the gaps).
       Files are written atomically; stale ``snap_*.safetensors`` in ``out_dir``
       are removed.
    """
    from safetensors.numpy import save_file

    from .data import run_episode

    spec = get_spec(env_id)
    out = Path(out_dir) if out_dir is not None else EXPERTS_ROOT / spec.env_id
    env = make_env(spec)
    K = len(history.weights)
    played = np.isfinite(history.proxy)
    proxy = np.where(played, history.proxy, -np.inf)
    # Smooth over 3 iterates so one lucky batch of perturbations doesn't win.
    smooth = np.array([np.mean(history.proxy[max(0, k - 1):k + 2][np.isfinite(
        history.proxy[max(0, k - 1):k + 2])]) if played[k] else -np.inf for k in range(K)])
    evals: dict[int, np.ndarray] = {}

    def ev(k: int, n: int = eval_episodes) -> np.ndarray:
        """Returns of iterate k on eval episodes 0..n-1 (cached, extended on demand)."""
        have = evals.get(k, np.zeros(0))
        if len(have) < n:
            pol = _policy(history.weights[k], history.obs_mean[k], history.obs_std[k])
            more = [run_episode(env, pol, eval_seed + j, np.random.default_rng([eval_seed, j])).ret
                    for j in range(len(have), n)]
            evals[k] = have = np.concatenate([have, more])
        return have[:n]

    # 1. the best: fully evaluate the top iterates by smoothed proxy (and the last)
    cands = set(np.argsort(-smooth, kind="stable")[:n_best_candidates].tolist()) | {K - 1}
    best = max(sorted(cands), key=lambda k: (ev(k).mean(), -k))
    best_ret = ev(best).mean()
    lo = ev(0).mean()
    chosen = {0, best}
    # 2. graded levels. Pool: iterates before the best, evenly spaced in index
    # plus the three whose proxy is nearest each level; quick-evaluate the pool and
    # keep, per level, the iterate whose return is closest to it.
    levels = np.linspace(lo, best_ret, n_snapshots)[1:-1]
    spacing = (best_ret - lo) / max(n_snapshots - 1, 1)
    before = [k for k in range(1, best) if played[k]]
    pool = set(before[i] for i in np.unique(np.linspace(0, len(before) - 1, pool_size)
                                            .astype(int))) if before else set()
    for level in levels:
        pool |= set(sorted(before, key=lambda k: (abs(proxy[k] - level), k))[:3])
    for level in levels:
        free = sorted(pool - chosen)
        if not free:
            break
        k = min(free, key=lambda k: (abs(ev(k, quick_episodes).mean() - level), k))
        # no iterate near this level (ARS often jumps): leave the gap to the noisy best
        if abs(ev(k, quick_episodes).mean() - level) <= 0.5 * spacing:
            chosen.add(k)
    # a level pick can beat the candidates on the full evaluation: best = best evaluated
    best = max(chosen, key=lambda k: (ev(k).mean(), -k))
    entries = []
    for k in sorted(chosen):
        rets = ev(k)
        name = f"snap_{k:04d}.safetensors"
        tensors = {
            "weights": np.asarray(history.weights[k], dtype=np.float32),
            "obs_mean": np.asarray(history.obs_mean[k], dtype=np.float32),
            "obs_std": np.asarray(history.obs_std[k], dtype=np.float32),
        }
        _atomic(out / name, lambda p, t=tensors: save_file(t, str(p)))
        entries.append({
            "file": name, "iteration": int(k), "env_steps": int(history.env_steps[k]),
            "eval_return_mean": round(float(rets.mean()), 4),
            "eval_return_std": round(float(rets.std()), 4),
            "eval_seed": int(eval_seed), "eval_episodes": int(eval_episodes),
            "eval_returns": _float_list(rets), "best": bool(k == best),
        })
        if log:
            log(f"{spec.env_id} snapshot {k}: {rets.mean():.1f} +- {rets.std():.1f}")
    best_policy = _policy(history.weights[best], history.obs_mean[best], history.obs_std[best])
    noisy = []
    kept_rets = [ev(k).mean() for k in chosen]
    for sigma in NOISE_SIGMAS:
        rets = evaluate(spec, GaussianNoise(best_policy, env.action_space, sigma),
                        eval_episodes, eval_seed, env)
        keep = min(abs(rets.mean() - r) for r in kept_rets) >= 0.5 * spacing
        if keep:
            kept_rets.append(rets.mean())
            noisy.append({"sigma": sigma, "eval_return_mean": round(float(rets.mean()), 4),
                          "eval_return_std": round(float(rets.std()), 4)})
        if log:
            log(f"{spec.env_id} best + noise {sigma}: {rets.mean():.1f} +- {rets.std():.1f}"
                f"{'' if keep else ' (not kept)'}")
    env.close()
    meta = {
        "env_id": spec.env_id, "algorithm": "ARS V2-t (Mania et al. 2018), linear policy",
        "policy": "a = clip(weights @ ((obs - obs_mean) / obs_std), -1, 1)",
        "seed": int(seed), "hyperparameters": asdict(config),
        "iterations": int(K - 1), "env_steps": int(history.env_steps[-1]),
        "eval_seed": int(eval_seed), "eval_episodes": int(eval_episodes),
        "best": f"snap_{best:04d}.safetensors",
        "snapshots": entries, "noisy": noisy,
    }
    text = json.dumps(meta, indent=1)
    _atomic(out / "snapshots.json", lambda p: p.write_text(text))
    keep = {e["file"] for e in entries}
    for f in out.glob("snap_*.safetensors"):
        if f.name not in keep:
            f.unlink()
    return entries


def train_expert(env_id: str, seed: int | None = None, max_steps: int | None = None,
                 out_dir: Path | str | None = None, config: ARSConfig | None = None,
                 n_snapshots: int = 12, eval_episodes: int = 10,
                 progress: Progress | None = None,
                 log: Callable[[str], None] | None = None) -> list[dict]:
    """Train a linear ARS expert and write its graded snapshots.

    Args:
        env_id: a MuJoCo env of the registry (Hopper-v5, HalfCheetah-v5, Walker2d-v5).
        seed: training seed; ``None`` = the shipped snapshots' (`DEFAULT_SEEDS`,
            also recorded in ``snapshots.json``).
        max_steps: env-step budget; ``None`` uses the shipped config's.
        out_dir: where to write; ``None`` = ``pretrained/experts/<EnvId>/``.
        config: ARS hyperparameters; ``None`` = `default_config(env_id)`.
        n_snapshots: how many iterates to keep, spread over the learning curve.
        eval_episodes: episodes per snapshot evaluation.
        progress: ``progress(env_steps_done, max_steps)`` after each iteration.
        log: optional line logger.

    Returns:
        The snapshot entries written to ``snapshots.json``. With the shipped
        config and seed this reproduces the shipped snapshots (same machine
        type / MuJoCo build: physics is deterministic but not bit-identical
        across CPUs).
    """
    cfg = config or default_config(env_id)
    if seed is None:
        seed = DEFAULT_SEEDS.get(get_spec(env_id).env_id, 0)
    if max_steps is not None:
        cfg = replace(cfg, max_steps=int(max_steps))
    hist = train_ars(env_id, seed, cfg, progress=progress, log=log)
    return save_snapshots(env_id, hist, cfg, seed, out_dir, n_snapshots, eval_episodes, log=log)


def _env_dir(env_id: str | EnvSpec, root: Path | str | None) -> Path:
    return Path(root) if root is not None else EXPERTS_ROOT / get_spec(env_id).env_id


def read_snapshots_json(env_id: str | EnvSpec, root: Path | str | None = None) -> dict:
    """The whole ``snapshots.json`` of an env (hyperparameters, snapshots, noisy)."""
    path = _env_dir(env_id, root) / "snapshots.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No expert snapshots for {get_spec(env_id).env_id} at {path}. "
            "Train them with `python -m dt_playground train-expert`.")
    return json.loads(path.read_text())


def list_snapshots(env_id: str | EnvSpec, root: Path | str | None = None) -> list[dict]:
    """The kept snapshots of an env, in training order (entries of ``snapshots.json``)."""
    return read_snapshots_json(env_id, root)["snapshots"]


def load_snapshot(env_id: str | EnvSpec, file: str, root: Path | str | None = None) -> LinearPolicy:
    """A snapshot file as a `LinearPolicy` (safetensors only; nothing is unpickled)."""
    from safetensors.numpy import load_file

    t = load_file(str(_env_dir(env_id, root) / file))
    return LinearPolicy(t["weights"], t["obs_mean"], t["obs_std"])


def load_best_snapshot(env_id: str | EnvSpec, root: Path | str | None = None) -> LinearPolicy:
    """The snapshot with the highest recorded evaluation return."""
    best = max(list_snapshots(env_id, root), key=lambda e: e["eval_return_mean"])
    return load_snapshot(env_id, best["file"], root)


# ---------------------------------------------------------------- datasets


def behaviours(env_id: str | EnvSpec, root: Path | str | None = None) -> list[dict]:
    """The behaviours a mixed dataset cycles through, sorted worst to best
    expected return; an episode's ``Episode.behaviour`` is its index here.

    Each is ``{"file", "iteration", "sigma", "expected_return", "shortfall", "label"}``:
    a shipped snapshot (``sigma`` 0) or the best snapshot plus Gaussian action
    noise ``sigma`` (`experts.GaussianNoise`). ``expected_return`` is the recorded
    evaluation mean; ``shortfall = 1 - (expected - worst) / (best - worst)`` is
    its quality on a 0 (best snapshot) .. 1 (worst behaviour) scale.
    """
    meta = read_snapshots_json(env_id, root)
    snaps = meta["snapshots"]
    best = max(snaps, key=lambda e: e["eval_return_mean"])
    items = [{"file": e["file"], "iteration": e["iteration"], "sigma": 0.0,
              "expected_return": e["eval_return_mean"]} for e in snaps]
    items += [{"file": best["file"], "iteration": best["iteration"], "sigma": n["sigma"],
               "expected_return": n["eval_return_mean"]} for n in meta.get("noisy", [])]
    lo = min(i["expected_return"] for i in items)
    hi = best["eval_return_mean"]
    for i in items:
        i["shortfall"] = round(float(np.clip(
            1.0 - (i["expected_return"] - lo) / max(hi - lo, 1e-9), 0.0, 1.0)), 4)
        noise = f" + noise {i['sigma']:g}" if i["sigma"] else ""
        i["label"] = f"ARS iter {i['iteration']}{noise} (eval {i['expected_return']:.0f})"
    return sorted(items, key=lambda i: (i["expected_return"], i["file"], i["sigma"]))


def behaviour_labels(env_id: str | EnvSpec, root: Path | str | None = None) -> dict[int, str]:
    """Readable names of an env's behaviours, by index (see `behaviours`)."""
    return {i: b["label"] for i, b in enumerate(behaviours(env_id, root))}


def mujoco_behaviours(spec: str | EnvSpec, n_episodes: int, seed: int = 0,
                      progress: Progress | None = None,
                      root: Path | str | None = None) -> list:
    """Mixed-quality episodes from the shipped ARS snapshots.

    Episode ``i`` plays behaviour ``b = i % len(behaviours)`` (see `behaviours`:
    every kept snapshot plus Gaussian-noise versions of the best, sorted worst
    to best) from ``env.reset(seed=seed + i)`` with ``rng = default_rng([seed, i])``
    and records ``Episode.behaviour = b``, so a higher index is a better
    behaviour and the returns spread from near-random to the best policy.
    Same arguments, same data.
    """
    from .data import run_episode

    spec = get_spec(spec)
    env = make_env(spec)
    pols = []
    cache: dict[str, LinearPolicy] = {}
    for b in behaviours(spec, root):
        if b["file"] not in cache:
            cache[b["file"]] = load_snapshot(spec, b["file"], root)
        base = cache[b["file"]]
        pols.append(base if b["sigma"] == 0 else GaussianNoise(base, env.action_space, b["sigma"]))
    episodes = []
    for i in range(n_episodes):
        b = i % len(pols)
        episodes.append(run_episode(env, pols[b], seed + i, np.random.default_rng([seed, i]),
                                    behaviour=b))
        if progress:
            progress(i + 1, n_episodes)
    env.close()
    return episodes
