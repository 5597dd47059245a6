"""What the app does, without the UI: every Gradio handler in app.py is a thin
wrapper over one function here, so each is testable without a browser.

Errors meant for the user are `PlaygroundError`s (a ValueError) with a message
that can be shown as is.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoints import (
    Checkpoint,
    CheckpointError,
    extract_upload,
    list_checkpoints,
    load_checkpoint,
    pretrained_dir,
)
from .data import spearman
from .envs import UnknownEnvError, get_spec
from .evaluate import check_target, summarise, sweep
from .rollout import Trace

MAX_EPISODE_STEPS = 1000  # every registered env ends by then
MAX_VIDEO_FRAMES = 1001  # a full 1000-step episode at render_every=1 (HalfCheetah)
MAX_SWEEP_EPISODES = 100
ALGO_LABELS = {"dt": "DT", "bc": "BC", "pbc": "%BC"}


class PlaygroundError(ValueError):
    """A problem with the user's request, phrased for the user."""


# ---------------------------------------------------------------- checkpoints

_CACHE: OrderedDict[str, Checkpoint] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def get_checkpoint(path: str | Path, env_id: str | None = None) -> Checkpoint:
    """Load (and cache) a checkpoint, refusing one that doesn't match ``env_id``."""
    if not path:
        raise PlaygroundError("Pick a checkpoint first.")
    if env_id is not None:
        try:
            get_spec(env_id)
        except UnknownEnvError as exc:
            raise PlaygroundError(str(exc)) from None
    path = Path(path)
    if not path.is_absolute():  # a pretrained checkpoint's name
        path = pretrained_dir() / path
    key = str(path.resolve())
    with _CACHE_LOCK:
        ck = _CACHE.get(key)
        if ck is not None:
            _CACHE.move_to_end(key)
    if ck is None:
        try:
            ck = load_checkpoint(path)
        except CheckpointError as exc:
            raise PlaygroundError(f"Can't use this checkpoint: {exc}") from None
        with _CACHE_LOCK:
            _CACHE[key] = ck
            while len(_CACHE) > 32:
                _CACHE.popitem(last=False)
    if env_id is not None and ck.spec.env_id != env_id:
        raise PlaygroundError(
            f"Checkpoint {ck.name} was trained on {ck.spec.env_id}, not {env_id}. "
            "Pick one of this environment's checkpoints."
        )
    return ck


def sessions_root() -> Path:
    """Where per-session (and API) folders live; `user_checkpoint` allows paths only here."""
    return Path(tempfile.gettempdir()) / "dt_playground_sessions"


def user_checkpoint(value, env_id: str) -> Checkpoint:
    """The checkpoint a user named, from the dropdown or an API call: a pretrained
    checkpoint's name (``lunarlander-dt``) or a folder under a session's directory
    (one trained or uploaded in the app). Nothing else on the server is reachable."""
    if not value:
        raise PlaygroundError("Pick a checkpoint first.")
    text = str(value)
    path = Path(text)
    if path.is_absolute():
        if not path.resolve().is_relative_to(sessions_root().resolve()):
            raise PlaygroundError(f"Unknown checkpoint {text!r}: pick one from the list.")
    elif len(path.parts) != 1 or text in (".", "..") or not (pretrained_dir() / text).is_dir():
        try:
            names = [v for _, v in checkpoint_choices(env_id)]
        except UnknownEnvError as exc:
            raise PlaygroundError(str(exc)) from None
        raise PlaygroundError(
            f"Unknown checkpoint {text!r}. {env_id}'s pretrained checkpoints: "
            + (", ".join(names) or "none")
        )
    return get_checkpoint(path, env_id)


def checkpoint_label(path: Path) -> str:
    import json

    cfg = json.loads((Path(path) / "config.json").read_text())
    algo = ALGO_LABELS.get(cfg.get("algo"), cfg.get("algo", "?"))
    return f"{Path(path).name} ({algo}, K={cfg.get('context_len')})"


def checkpoint_choices(
    env_id: str, extra_dirs: list[str | Path] = (), root: Path | None = None
) -> list[tuple[str, str]]:
    """(label, value) for the env's pretrained checkpoints (value: the folder name, e.g.
    ``lunarlander-dt``), then the session's own (value: the folder's path)."""

    def order(p: Path):  # DT first (K=20 before its ablations), then BC, %BC
        name = p.name
        return ("-dt" not in name, "-k" in name, name)

    choices = [
        (checkpoint_label(p), p.name) for p in sorted(list_checkpoints(root, env_id), key=order)
    ]
    for d in extra_dirs:
        choices += [(checkpoint_label(p), str(p)) for p in list_checkpoints(d, env_id)]
    return choices


def envs_with_checkpoints(root: Path | None = None) -> list[str]:
    from .envs import env_ids

    have = {get_spec_safe(p) for p in list_checkpoints(root)}
    return [e for e in env_ids() if e in have] or env_ids()


def get_spec_safe(path: Path) -> str | None:
    import json

    try:
        return json.loads((path / "config.json").read_text()).get("env_id")
    except ValueError:
        return None


def import_upload(file_path: str | Path, session_dir: str | Path) -> Checkpoint:
    """Validate an uploaded checkpoint (zip of a checkpoint folder) into the session's folder."""
    if not file_path:
        raise PlaygroundError("No file uploaded.")
    dest = Path(session_dir) / "uploads" / f"upload-{uuid.uuid4().hex[:8]}"
    try:
        extract_upload(file_path, dest)
        ck = load_checkpoint(dest)
    except CheckpointError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise PlaygroundError(f"That upload is not a valid checkpoint: {exc}") from None
    return ck


@dataclass
class TargetRange:
    minimum: float
    maximum: float
    value: float
    marks: dict[str, float]

    def describe(self) -> str:
        return " · ".join(f"{k} {v:.0f}" for k, v in self.marks.items())


def target_range(ck: Checkpoint) -> TargetRange:
    """Slider range from the checkpoint's dataset: a bit below its min to well above its max."""
    d = ck.config.get("dataset") or {}
    lo = float(d.get("return_min", min(ck.spec.target_presets)))
    hi = float(d.get("return_max", max(ck.spec.target_presets)))
    span = max(hi - lo, 1.0)
    marks = {"min": lo, "median": float(d.get("return_median", (lo + hi) / 2)), "max": hi}
    if "return_top10_mean" in d:
        marks["top-10% mean"] = float(d["return_top10_mean"])
    return TargetRange(
        math.floor(lo - 0.1 * span),
        math.ceil(hi + 0.5 * span),
        round(float(d.get("return_p90", hi)), 1),
        marks,
    )


# ---------------------------------------------------------------- play


def parse_target(value, ck: Checkpoint) -> float:
    try:
        return check_target(value, ck.spec)
    except ValueError as exc:
        raise PlaygroundError(str(exc)) from None


def parse_seed(value) -> int:
    try:
        seed = int(value)
        if seed != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise PlaygroundError(f"Seed must be a whole number, got {value!r}") from None
    if not 0 <= seed < 2**31:
        raise PlaygroundError(f"Seed must be between 0 and {2**31 - 1}, got {seed}")
    return seed


def play_episode(
    ck: Checkpoint,
    target,
    seed,
    sample: bool = False,
    max_steps: int = MAX_EPISODE_STEPS,
    progress=None,
) -> Trace:
    """One return-conditioned episode (no rendering)."""
    target = parse_target(target, ck)
    seed = parse_seed(seed)
    steps = int(min(max(1, max_steps), MAX_EPISODE_STEPS))
    sample = bool(sample) and ck.spec.discrete
    return sweep(ck, [target], 1, seed, sample=sample, max_steps=steps, progress=progress)[0]


def attention_at(ck: Checkpoint, target, seed, step, sample: bool = False) -> dict:
    """What the action at ``step`` of this episode attended to.

    Replays the (deterministic) episode up to ``step`` (or its end, if sooner)
    and returns, per block and head, the attention of the state token that chose
    that action over the tokens of its window, oldest first, with labels such as
    ``"R t-3"``, ``"s t"``, ``"a t-1"``.
    """
    import torch

    from .rollout import DTPolicy, run_episodes

    target = parse_target(target, ck)
    seed = parse_seed(seed)
    try:
        step = int(step)
    except (TypeError, ValueError, OverflowError):
        raise PlaygroundError(f"Step must be a whole number, got {step!r}") from None
    if not 0 <= step < MAX_EPISODE_STEPS:
        raise PlaygroundError(f"Step must be between 0 and {MAX_EPISODE_STEPS - 1}, got {step}")
    policy = DTPolicy(ck.model, ck.norm, ck.spec, sample=bool(sample) and ck.spec.discrete)
    trace = run_episodes(policy, [target], [seed], max_steps=step + 1)[0]
    t = trace.length - 1
    win = policy.window(np.array([0]), t)
    real = int(win["mask"][0].sum())  # steps in the window (fewer than K early on)
    x = {k: torch.from_numpy(v[:, -real:]) for k, v in win.items()}
    maps = ck.model.attention_maps(x["rtg"], x["states"], x["actions"], x["timesteps"])
    n = ck.model.n_tokens
    kinds = ["R", "s", "a"][3 - n:]
    labels = [f"{kind} t-{real - 1 - i}" if i < real - 1 else f"{kind} t"
              for i in range(real) for kind in kinds]
    query = n * (real - 1) + n - 2  # the last state token
    weights = [[m[0, h, query, : query + 1].tolist() for h in range(m.shape[1])] for m in maps]
    return {
        "step": t,
        "requested_step": step,
        "return_to_go": float(trace.rtg[t]),
        "tokens": labels[: query + 1],
        "weights": weights,  # [block][head][token]
    }


def episode_summary(trace: Trace, ck: Checkpoint) -> dict:
    """Requested vs achieved, normalised score, where the request sits in the data."""
    d = ck.config.get("dataset") or {}
    rets = np.asarray(d.get("returns", []), dtype=float)
    pct = float((rets < trace.target).mean() * 100) if len(rets) else float("nan")
    return {
        "env_id": ck.spec.env_id,
        "checkpoint": ck.name,
        "algo": ck.algo,
        "seed": trace.seed,
        "requested": trace.target,
        "achieved": round(trace.ret, 3),
        "length": trace.length,
        "terminated": trace.terminated,
        "normalised_score": round(normalised_score(trace.ret, ck), 1),
        "target_percentile_in_dataset": round(pct, 1),
        "dataset_max": d.get("return_max"),
        "sim_seconds": round(trace.wall_time, 3),
    }


def normalised_score(ret: float, ck: Checkpoint) -> float:
    """0 = random, 100 = expert: the dataset's own ``ref_min_score``/``ref_max_score``
    when it has them (Minari's datasets do), else the env's reference returns."""
    d = ck.config.get("dataset") or {}
    lo, hi = d.get("ref_min_score"), d.get("ref_max_score")
    if lo is None or hi is None or hi == lo:
        return ck.spec.normalised_score(ret)
    return 100.0 * (ret - lo) / (hi - lo)


def summary_markdown(s: dict) -> str:
    where = s["target_percentile_in_dataset"]
    if not math.isnan(where):
        where = (
            "above every episode in the data: expect saturation"
            if where >= 100
            else f"above {where:.0f}% of the dataset's episodes"
        )
    note = " (BC ignores the target)" if s["algo"] != "dt" else ""
    return (
        f"**Requested** {s['requested']:.1f} → **achieved** {s['achieved']:.1f}{note} in "
        f"{s['length']} steps · normalised score **{s['normalised_score']:.0f}** "
        f"(0 = random, 100 = expert) · the request is {where}."
    )


def dataset_overview(ck: Checkpoint) -> dict:
    """The headline numbers of the dataset behind a checkpoint (rounded for reading)."""
    d = ck.config.get("dataset") or {}
    keys = (
        "dataset_id",
        "episodes",
        "steps",
        "return_min",
        "return_p10",
        "return_median",
        "return_p90",
        "return_max",
        "return_top10_mean",
    )
    return {k: round(d[k], 1) if isinstance(d.get(k), float) else d.get(k) for k in keys}


# ---------------------------------------------------------------- sweep / compare


def sweep_targets(ck: Checkpoint, n_targets: int, lo=None, hi=None) -> list[float]:
    d = ck.config.get("dataset") or {}
    lo = float(d.get("return_p10", d.get("return_min", 0.0))) if lo is None else lo
    hi = float(d.get("return_max", 1.0)) if hi is None else hi
    n = int(n_targets)
    if not 2 <= n <= 20:
        raise PlaygroundError("Number of targets must be between 2 and 20")
    return np.linspace(lo, hi, n).round(1).tolist()


def references(
    env_id: str, seeds: list[int], max_steps: int, root: Path | None = None, progress=None
) -> dict[str, float]:
    """Mean return of the env's pretrained BC and %BC checkpoints at the same seeds."""
    out = {}
    for path in list_checkpoints(root, env_id):
        ck = get_checkpoint(path)
        if ck.algo in ("bc", "pbc") and ALGO_LABELS[ck.algo] not in out:
            tr = sweep(ck, [0.0], len(seeds), seeds[0], max_steps=max_steps)  # target unused
            out[ALGO_LABELS[ck.algo]] = float(np.mean([t.ret for t in tr]))
    return out


def run_sweep(
    ck: Checkpoint,
    targets: list[float],
    n_seeds: int,
    seed: int = 0,
    max_steps: int = MAX_EPISODE_STEPS,
    progress=None,
) -> dict:
    """Targets x seeds in one batched run; the DT paper's return-conditioning figure."""
    n_seeds = int(n_seeds)
    if n_seeds < 1 or n_seeds * len(targets) > MAX_SWEEP_EPISODES:
        raise PlaygroundError(
            f"A sweep is at most {MAX_SWEEP_EPISODES} episodes (targets x seeds); "
            f"got {len(targets)} x {n_seeds}"
        )
    targets = [parse_target(t, ck) for t in targets]
    seed = parse_seed(seed)
    t0 = time.perf_counter()
    traces = sweep(ck, targets, n_seeds, seed, max_steps=max_steps, progress=progress)
    s = summarise(traces)
    d = ck.config.get("dataset") or {}
    lo, hi = d.get("return_min", -math.inf), d.get("return_max", math.inf)
    in_band = [r for r in s["per_target"] if lo <= r["target"] <= hi]  # the data's range
    return {
        "rows": [t.to_dict() for t in traces],
        "per_target": s["per_target"],
        "spearman": s["spearman"],
        "spearman_in_data_range": spearman(
            [r["target"] for r in in_band], [r["mean"] for r in in_band]
        ),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def compare_models(
    env_id: str,
    n_seeds: int,
    seed: int = 0,
    target=None,
    root: Path | None = None,
    max_steps: int = MAX_EPISODE_STEPS,
) -> dict:
    """Every pretrained checkpoint of an env on the same seeds (DT at ``target``,
    default its dataset's max). Returns name -> list of returns."""
    seeds = [parse_seed(seed) + i for i in range(int(n_seeds))]
    if not 1 <= len(seeds) <= 50:
        raise PlaygroundError("Seeds must be between 1 and 50")
    results = {}
    for path in list_checkpoints(root, env_id):
        ck = get_checkpoint(path, env_id)
        t = (ck.config.get("dataset") or {}).get("return_max", 0.0) if target is None else target
        traces = sweep(ck, [parse_target(t, ck)], len(seeds), seeds[0], max_steps=max_steps)
        results[checkpoint_label(path)] = [tr.ret for tr in traces]
    if not results:
        raise PlaygroundError(f"No pretrained checkpoints for {env_id} yet.")
    return results


# ---------------------------------------------------------------- sessions & training


def new_session_dir() -> Path:
    d = sessions_root() / uuid.uuid4().hex
    d.mkdir(parents=True, exist_ok=True)
    return d


def shared_dir(max_age_s: float = 3600.0) -> Path:
    """A folder for requests without a browser session (API calls); files older than
    ``max_age_s`` are removed on each use, so it can't grow without bound."""
    d = sessions_root() / "shared"
    d.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for f in d.rglob("*"):
        if f.is_file() and now - f.stat().st_mtime > max_age_s:
            f.unlink(missing_ok=True)
    return d


def cleanup_session_dir(path: str | Path | None) -> None:
    if path and Path(path).parent.name == "dt_playground_sessions":
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class TrainJob:
    """A training run in a background thread, observable and cancellable."""

    config: object
    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    done: bool = False
    error: str | None = None
    result: object = None
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> TrainJob:
        from .train import train

        def run():
            try:
                self.result = train(
                    self.config, on_step=self._on_step, should_stop=self.stop.is_set
                )
            except Exception as exc:  # reported to the user, the server keeps going
                self.error = str(exc)
            finally:
                self.done = True

        threading.Thread(target=run, daemon=True).start()
        return self

    def _on_step(self, step: int, loss: float, lr: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)

    def curve(self) -> list[dict]:
        return [{"step": s, "loss": v} for s, v in zip(list(self.steps), list(self.losses))]


TRAINABLE_ENVS = ("CartPole-v1", "Pendulum-v1", "LunarLander-v3")
_DATASET_LOCK = threading.Lock()


def training_config(env_id: str, algo: str, steps, context_len, lr, session_dir: str | Path):
    """Validated `TrainConfig` for a browser training job on a small env."""
    from .pretrain import RECIPES, ensure_dataset
    from .train import TrainConfig

    if env_id not in TRAINABLE_ENVS:
        raise PlaygroundError(f"In-browser training is offered for {', '.join(TRAINABLE_ENVS)}")
    if algo not in ("dt", "bc", "pbc"):
        raise PlaygroundError(f"Unknown algorithm {algo!r}")
    try:
        steps, context_len, lr = int(steps), int(context_len), float(lr)
    except (TypeError, ValueError):
        raise PlaygroundError("Steps, context length and learning rate must be numbers") from None
    if not 10 <= steps <= 5000:
        raise PlaygroundError("Steps must be between 10 and 5000")
    if not 1 <= context_len <= 50:
        raise PlaygroundError("Context length must be between 1 and 50")
    if not (math.isfinite(lr) and 1e-6 <= lr <= 1e-1):
        raise PlaygroundError("Learning rate must be between 1e-6 and 0.1")
    with _DATASET_LOCK:  # first use builds the dataset from the shipped experts (seconds)
        dataset = ensure_dataset(env_id, RECIPES[env_id], log=lambda m: None)
    name = f"{get_spec(env_id).short_name}-{algo}-k{context_len}-{uuid.uuid4().hex[:6]}"
    out = Path(session_dir) / "trained" / name
    return TrainConfig(
        dataset=dataset,
        env_id=env_id,
        algo=algo,
        steps=steps,
        context_len=context_len,
        lr=lr,
        hidden=64,
        out=str(out),
        eval_episodes=0,
        save_every=0,
        warmup_steps=min(200, steps // 5),
        threads=1,
        resume=False,
    )
