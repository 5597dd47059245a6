"""What the app does, without the UI: every Gradio handler in app.py is a thin
wrapper over one function here, so each is testable without a browser.

Errors meant for the user are `PlaygroundError`s (a ValueError) with a message
that can be shown as is.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from dt_playground.checkpoints.checkpoint import Checkpoint
from dt_playground.checkpoints.layout import (
    ALGO_LABELS,
    choices,
    label_of,
    list_checkpoints,
    parse_env,
    peek_checkpoint,
    read_json,
)
from dt_playground.data.summary import TargetRange
from dt_playground.data.summary import target_range as summary_target_range
from dt_playground.dt.return_head import BEST, is_best
from dt_playground.envs.episodes import Trace
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.paths import pretrained_dir
from dt_playground.rollout.evaluate import check_target, summarise, sweep
from dt_playground.rollout.metrics import spearman
from dt_playground.serve import catalogue

MAX_EPISODE_STEPS = 1000  # every registered env ends by then
MAX_VIDEO_FRAMES = 1001  # a full 1000-step episode at render_every=1 (HalfCheetah)
MAX_SWEEP_EPISODES = 100
__all__ = ["ALGO_LABELS", "PlaygroundError", "TargetRange", "parse_env"]  # re-exported for the app


def get_checkpoint(path: str | Path, env_id: str | None = None) -> Checkpoint:
    """Load (and cache) a checkpoint by trusted path or pretrained name, refusing one that
    doesn't match ``env_id``. For the library and tests: user input goes through
    `catalogue.resolve` / `SessionStore.resolve`, which accept names and owned ids only."""
    if not path:
        raise PlaygroundError("Pick a checkpoint first.")
    if env_id is not None:
        env_id = parse_env(env_id)
    path = Path(path)
    if not path.is_absolute():  # a pretrained checkpoint's name
        path = pretrained_dir() / path
    if not path.is_dir():
        raise PlaygroundError(f"Checkpoint {path.name} does not exist")
    ck = catalogue.load_cached(path)
    if env_id is not None and ck.spec.env_id != env_id:
        raise PlaygroundError(
            f"Checkpoint {ck.name} was trained on {ck.spec.env_id}, not {env_id}. "
            "Pick one of this environment's checkpoints."
        )
    return ck


def checkpoint_choices(env_id: str, owned: dict[str, Path] | None = None):
    """(label, value) pairs for the checkpoint dropdown (see `folders.choices`)."""
    return choices(env_id, owned)


def target_range(ck: Checkpoint) -> TargetRange:
    """Slider range from the checkpoint's dataset (see `summary.target_range`)."""
    return summary_target_range(ck.dataset, ck.spec.target_presets)


# ---------------------------------------------------------------- play


def parse_target(value, ck: Checkpoint) -> float:
    try:
        return check_target(value, ck.spec)
    except ValueError as exc:
        raise PlaygroundError(str(exc)) from None


def play_target(value, ck: Checkpoint) -> float | str:
    """A checked target: a number, or "best" for a DT with a return model (dt.return_head)."""
    if not is_best(value):
        return parse_target(value, ck)
    if not ck.offers_best:
        raise PlaygroundError(
            f"{ck.name} has no return model, so it can't pick its own 'best' "
            "target: ask for a number"
        )
    return BEST


def parse_seed(value) -> int:
    """A reset seed: a whole number in [0, 2**31)."""
    return parse_count(value, "Seed", 0, 2**31 - 1)


def play_episode(
    ck: Checkpoint,
    target,
    seed,
    sample: bool = False,
    max_steps: int = MAX_EPISODE_STEPS,
    progress=None,
) -> Trace:
    """One return-conditioned episode (no rendering). ``target`` may be "best" for a
    DT with a return head, whose predicted return-to-go band the trace then carries
    whatever the target (the RTG plot draws it)."""
    target = play_target(target, ck)
    seed = parse_seed(seed)
    steps = int(min(max(1, max_steps), MAX_EPISODE_STEPS))
    sample = bool(sample) and ck.spec.discrete
    return sweep(ck, [target], 1, seed, sample=sample, max_steps=steps, progress=progress,
                 track_returns=ck.offers_best)[0]


def attention_at(ck: Checkpoint, target, seed, step, sample: bool = False) -> dict:
    """What the action at ``step`` of this episode attended to.

    Replays the (deterministic) episode up to ``step`` (or its end, if sooner)
    and returns, per block and head, the attention of the state token that chose
    that action over the tokens of its window, oldest first, with labels such as
    ``"R t-3"``, ``"s t"``, ``"a t-1"``.
    """
    import torch

    from dt_playground.rollout.policy import DTPolicy, run_episodes

    target = parse_target(target, ck)
    seed = parse_seed(seed)
    step = parse_count(step, "Step", 0, MAX_EPISODE_STEPS - 1)
    policy = DTPolicy.for_checkpoint(ck, sample=bool(sample) and ck.spec.discrete)
    trace = run_episodes(policy, [target], [seed], max_steps=step + 1)[0]
    t = trace.length - 1
    win = policy.window(np.array([0]), t)
    real = int(win["mask"][0].sum())  # steps in the window (fewer than K early on)
    x = {k: torch.from_numpy(v[:, -real:]) for k, v in win.items()}
    maps = ck.model.attention_maps(x["rtg"], x["states"], x["actions"], x["timesteps"])
    n = ck.model.n_tokens
    kinds = ck.model.token_kinds  # (R, s, a), (s, a) for BC, (s, R, a) with a return head
    labels = [f"{kind} t-{real - 1 - i}" if i < real - 1 else f"{kind} t"
              for i in range(real) for kind in kinds]
    query = n * (real - 1) + n - 2  # the token the action is read from (before a_t)
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
    d = ck.dataset.as_dict()
    rets = np.asarray(d.get("returns", []), dtype=float)
    asked = not is_best(trace.target) and len(rets)  # "best": the model picks its own
    pct = float((rets < trace.target).mean() * 100) if asked else float("nan")
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
        **({"best_on_card": best_on_card(ck)} if is_best(trace.target) else {}),
    }


def best_on_card(ck: Checkpoint) -> dict | None:
    """How target best scores on the checkpoint's card (held-out seeds): one episode is
    one draw from this."""
    try:  # an upload's card is the uploader's: size-capped, every value checked
        card = read_json(ck.path / "card.json", "card") if ck.path else {}
        mean, std = float(card["best_mean"]), float(card.get("best_std") or 0.0)
        seeds = card.get("seeds") or []
        if not (math.isfinite(mean) and math.isfinite(std) and isinstance(seeds, list)):
            return None
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None
    return {"mean": round(mean, 1), "std": round(std, 1), "seeds": len(seeds)}


def normalised_score(ret: float, ck: Checkpoint) -> float:
    """0 = random, 100 = expert: the dataset's own ``ref_min_score``/``ref_max_score``
    when it has them (Minari's datasets do), else the env's reference returns."""
    d = ck.dataset.as_dict()
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
    if is_best(s["requested"]):
        asked, where = "**best**", "the model's own pick, step by step (its best of the data)"
        card = s.get("best_on_card")
        if card:
            where += (f". On its card best scores **{card['mean']:.0f} ± {card['std']:.0f}** "
                      f"over {card['seeds']} held-out seeds: one episode is one draw from that")
    else:
        asked, where = f"{s['requested']:.1f}", f"the request is {where}"
    return (
        f"**Requested** {asked} → **achieved** {s['achieved']:.1f}{note} in "
        f"{s['length']} steps · normalised score **{s['normalised_score']:.0f}** "
        f"(0 = random, 100 = expert) · {where}."
    )


def dataset_overview(ck: Checkpoint) -> dict:
    """The headline numbers of the dataset behind a checkpoint (rounded for reading)."""
    d = ck.dataset.as_dict()
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
    d = ck.dataset.as_dict()
    lo = float(d.get("return_p10", d.get("return_min", 0.0))) if lo is None else lo
    hi = float(d.get("return_max", 1.0)) if hi is None else hi
    n = parse_count(n_targets, "Number of targets", 2, 20)
    return np.linspace(lo, hi, n).round(1).tolist()


def references(
    env_id: str, seeds: list[int], max_steps: int, notes: list[str] | None = None
) -> dict[str, float]:
    """Mean return of the env's pretrained BC and %BC checkpoints at the same seeds
    (a broken one is skipped, with a line in ``notes``)."""
    out = {}
    for path in list_checkpoints(None, parse_env(env_id)):
        try:
            ck = get_checkpoint(path)
        except PlaygroundError as exc:
            _note(notes, exc)
            continue
        if ck.algo in ("bc", "pbc") and ALGO_LABELS[ck.algo] not in out:
            tr = sweep(ck, [0.0], len(seeds), seeds[0], max_steps=max_steps)  # target unused
            out[ALGO_LABELS[ck.algo]] = float(np.mean([t.ret for t in tr]))
    return out


def _note(notes: list[str] | None, exc: Exception) -> None:
    if notes is not None:
        notes.append(f"skipped: {exc}")


def parse_count(value, what: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] from a form field or API argument."""
    try:
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise PlaygroundError(f"{what} must be a whole number, got {str(value)[:30]!r}") from None
    if not lo <= n <= hi:
        raise PlaygroundError(f"{what} must be between {lo} and {hi}, got {n}")
    return n


def run_sweep(
    ck: Checkpoint,
    targets: list[float],
    n_seeds: int,
    seed: int = 0,
    max_steps: int = MAX_EPISODE_STEPS,
    progress=None,
) -> dict:
    """Targets x seeds in one batched run; the DT paper's return-conditioning figure."""
    n_seeds = parse_count(n_seeds, "Seeds per target", 1, MAX_SWEEP_EPISODES)
    if n_seeds * len(targets) > MAX_SWEEP_EPISODES:
        raise PlaygroundError(
            f"A sweep is at most {MAX_SWEEP_EPISODES} episodes (targets x seeds); "
            f"got {len(targets)} x {n_seeds}"
        )
    targets = [parse_target(t, ck) for t in targets]
    seed = parse_seed(seed)
    t0 = time.perf_counter()
    traces = sweep(ck, targets, n_seeds, seed, max_steps=max_steps, progress=progress)
    s = summarise(traces)
    d = ck.dataset.as_dict()
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
    max_steps: int = MAX_EPISODE_STEPS,
    notes: list[str] | None = None,
    progress=None,
) -> dict[str, list[float]]:
    """Every pretrained checkpoint of an env on the same seeds (DT at ``target``,
    default its dataset's max). Returns label -> list of returns; a checkpoint that
    can't be loaded is skipped with a line in ``notes``."""
    env_id = parse_env(env_id)
    n = parse_count(n_seeds, "Seeds", 1, 50)
    first = parse_seed(seed)
    results = {}
    paths = list_checkpoints(None, env_id)
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i, len(paths))  # per checkpoint: a sweep of one is quick
        try:
            ck = get_checkpoint(path, env_id)
        except PlaygroundError as exc:
            _note(notes, exc)
            continue
        t = ck.dataset.return_max or 0.0 if target is None else target
        traces = sweep(ck, [parse_target(t, ck)], n, first, max_steps=max_steps)
        results[label_of(peek_checkpoint(path), path.name)] = [tr.ret for tr in traces]
    if not results:
        raise PlaygroundError(f"No usable pretrained checkpoints for {env_id} yet.")
    return results


def sweep_with_references(
    ck: Checkpoint, targets: list[float], n_seeds, seed, progress=None
) -> tuple[dict, dict[str, float]]:
    """`run_sweep` and the BC / %BC `references` at the same seeds: the Sweep tab's run."""
    res = run_sweep(ck, targets, n_seeds, seed, progress=progress)
    seeds = sweep_seeds(seed, n_seeds)
    return res, references(ck.spec.env_id, seeds, MAX_EPISODE_STEPS)


def compare_report(env_id: str, n_seeds, seed,
                   progress=None) -> tuple[dict[str, list[float]], list[str]]:
    """`compare_models` with its notes returned (for a call in another process)."""
    notes: list[str] = []
    return compare_models(env_id, n_seeds, seed, notes=notes, progress=progress), notes


def sweep_seeds(seed, n_seeds) -> list[int]:
    """The seeds a sweep of ``n_seeds`` from ``seed`` plays (shared with its baselines)."""
    return [parse_seed(seed) + i for i in range(parse_count(n_seeds, "Seeds", 1, 50))]


def sweep_markdown(res: dict) -> str:
    """One line under the sweep figure."""
    return (
        f"Spearman ρ(target, mean achieved) = **{res['spearman']:.2f}** over all targets, "
        f"**{res['spearman_in_data_range']:.2f}** within the dataset's range "
        f"({len(res['rows'])} episodes in {res['seconds']:.1f} s)."
    )
