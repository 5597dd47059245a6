"""The lab: build every method on the same data, play them on the same seeds, write cards.

Methods (`METHODS`), each a folder under ``pretrained/stitch/<data>-<method>/``:

- ``dt``: our Decision Transformer, K=20, on the data as recorded.
- ``pbc``: %BC, behaviour cloning of the best 10% of episodes.
- ``offline_rl``: conservative DP on the empirical MDP (dp.py), a Q table.
- ``qdt``: the same DT recipe on returns-to-go relabelled with that table (qdt.py).

A DT needs a target return. Each return-conditioned method plays a few
candidate targets, drawn from its own training labels, on *trial* seeds and
keeps the one that reaches the goal most often; the card then reports that
target on the held-out *card* seeds (seeds.py). The DT is also played with a
shorter history (1..K steps of context at inference: Elastic DT's idea by hand).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dt_playground.atomic import write_json_atomic
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.data.storage import load_episodes
from dt_playground.data.windows import OfflineDataset, dataset_summary
from dt_playground.envs import maze
from dt_playground.envs.episodes import Trace
from dt_playground.envs.registry import get_spec
from dt_playground.envs.seeds import CARD_SEED, TRIAL_SEED, seed_range
from dt_playground.paths import pretrained_dir
from dt_playground.rollout.policy import DTPolicy, run_episodes
from dt_playground.stitch import datasets, dp, qdt

METHODS = ("dt", "pbc", "offline_rl", "qdt")
LABELS = {"dt": "DT", "pbc": "%BC", "offline_rl": "offline RL (conservative DP)", "qdt": "QDT"}
LAB_FILE = "lab.json"
CARD_EPISODES = 100  # card seeds per method (the maze has six start cells)
TRIAL_EPISODES = 60  # trial seeds per candidate target


@dataclass(frozen=True)
class NetRecipe:
    """The networks' recipe (DT, %BC and QDT alike): small, so the six networks train in
    under two minutes of CPU (fp32: bf16 autocast is emulated, 7x slower, on CPUs without
    native bf16)."""

    context_len: int = 20
    hidden: int = 32
    n_layers: int = 1
    steps: int = 600
    pbc_steps: int = 300  # %BC clones a tenth of the data: it needs fewer steps
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 60
    pbc_fraction: float = 0.1
    seed: int = 0


# The random walks hold few good steps (3% of them reach the goal): their DTs get more steps.
RECIPES: dict[str, NetRecipe] = {"halves": NetRecipe(), "random-walks": NetRecipe(steps=1500)}


def lab_root() -> Path:
    """Where the lab's folders live: ``<pretrained>/stitch``."""
    return pretrained_dir() / "stitch"


def folder(data: str, method: str, root: Path | None = None) -> Path:
    return (root or lab_root()) / f"{data}-{method}"


class HistoryPolicy(DTPolicy):
    """A DT that sees only the last ``history`` steps of its context at inference
    (the older ones are masked as padding, exactly as at an episode's start)."""

    def __init__(self, ck, history: int | None = None):
        super().__init__(ck.model, ck.norm, ck.spec, engine="reference")
        self.history = history or self.cfg.context_len

    def window(self, rows, t, K=None):
        w = super().window(rows, t, K)
        cut = w["mask"].shape[1] - self.history
        if cut > 0:
            for k in ("states", "actions", "rtg", "timesteps", "mask"):
                w[k][:, :cut] = 0
        return w


def play_checkpoint(ck, target: float, seeds, history: int | None = None) -> list[Trace]:
    """Greedy episodes of a DT/%BC checkpoint from ``seeds`` at ``target``."""
    policy = HistoryPolicy(ck, history)
    return run_episodes(policy, [float(target)] * len(seeds), list(seeds))


def success(traces: list[Trace]) -> float:
    """The fraction of episodes that reached the goal (not the pit, not the time limit)."""
    return float(np.mean([maze.reached_goal(t.rewards, t.terminated) for t in traces]))


def candidate_targets(first_labels: np.ndarray) -> list[float]:
    """Targets worth trying: the labels' median, p75, p90 and max, and two asks above
    the max (a DT may extrapolate; here it is the only way to ask for a stitched path)."""
    q = np.quantile(first_labels, [0.5, 0.75, 0.9, 1.0])
    top = float(q[-1])
    return sorted({float(np.round(x)) for x in [*q, top + 2.0, top + 4.0]})


def choose_target(ck, candidates: list[float]) -> tuple[float, dict]:
    """The candidate with the best success (then mean return) on trial seeds."""
    seeds = seed_range("trial", TRIAL_EPISODES)
    assert seeds[0] == TRIAL_SEED
    scores = {}
    for t in candidates:
        tr = play_checkpoint(ck, t, seeds)
        scores[t] = (success(tr), float(np.mean([x.ret for x in tr])))
    best = max(candidates, key=lambda t: (scores[t], -t))
    return best, {f"{t:g}": {"success": s, "return": r} for t, (s, r) in scores.items()}


def card_of(traces: list[Trace], **extra) -> dict:
    rets = np.array([t.ret for t in traces])
    return {
        "env_id": maze.ENV_ID,
        "seeds": {"first": CARD_SEED, "n": len(traces)},
        "success": success(traces),
        "return_mean": float(rets.mean()),
        "return_std": float(rets.std()),
        **extra,
    }


def train_net(ds: OfflineDataset, summary: dict, algo: str, out: Path, recipe: NetRecipe):
    """Train one of the lab's networks (``algo`` "dt" or "pbc") on ``ds`` into ``out``."""
    from dt_playground.training.train import TrainConfig, train

    cfg = TrainConfig(
        dataset=summary["dataset_id"],
        env_id=maze.ENV_ID,
        out=str(out),
        algo=algo,
        pbc_fraction=recipe.pbc_fraction,
        steps=recipe.pbc_steps if algo == "pbc" else recipe.steps,
        batch_size=recipe.batch_size,
        context_len=recipe.context_len,
        hidden=recipe.hidden,
        n_layers=recipe.n_layers,
        lr=recipe.lr,
        warmup_steps=recipe.warmup_steps,
        eval_episodes=0,
        save_every=0,
        resume=False,
        seed=recipe.seed,
        threads=1,
        bf16=False,
    )
    data = ds.top_fraction(recipe.pbc_fraction) if algo == "pbc" else ds
    return train(cfg, dataset=(data, summary, maze.ENV_ID))


def build_data(
    data: str,
    root: Path | None = None,
    data_root: Path | None = None,
    recipe: NetRecipe | None = None,
    log=print,
) -> dict:
    """Collect (or reuse) dataset ``data``, train its four methods and write their
    folders and cards under ``root`` (default `lab_root`). Returns this dataset's
    part of ``lab.json``."""
    datasets.check_data(data)
    recipe = recipe or RECIPES[data]
    spec = get_spec(maze.ENV_ID)
    path = datasets.ensure(data, data_root, log=log)
    episodes, _, _ = load_episodes(path)
    summary = {**dataset_summary(episodes), "dataset_id": datasets.RECIPES[data].dataset_id(data)}
    act_dim = 4
    seconds: dict[str, float] = {}
    card_seeds = seed_range("card", CARD_EPISODES)

    t0 = time.process_time()
    table = dp.fit(episodes, act_dim, spec.max_ep_len)
    seconds["offline_rl"] = time.process_time() - t0
    tab_card = card_of(dp.play(table, maze.ENV_ID, card_seeds), data=data, method="offline_rl")
    dp.save(
        table,
        folder(data, "offline_rl", root),
        {"env_id": maze.ENV_ID, "dataset": summary, "data": data},
        tab_card,
    )

    full = OfflineDataset(episodes, spec, act_dim)
    relabelled, labels = qdt.relabelled_dataset(episodes, table, maze.ENV_ID, act_dim)
    firsts = {"dt": np.array([e.ret for e in episodes]), "qdt": np.array([x[0] for x in labels])}
    cards = {"offline_rl": tab_card}
    for method, algo, ds in (("dt", "dt", full), ("pbc", "pbc", full), ("qdt", "dt", relabelled)):
        out = folder(data, method, root)
        t0 = time.process_time()
        train_net(ds, summary, algo, out, recipe)
        seconds[method] = time.process_time() - t0
        ck = load_checkpoint(out)
        extra = {"data": data, "method": method, "history": recipe.context_len}
        if method == "pbc":
            target, trials = 0.0, {}  # BC has no return input
        else:
            target, trials = choose_target(ck, candidate_targets(firsts[method]))
            sweep = {
                h: success(play_checkpoint(ck, target, card_seeds, h))
                for h in range(1, recipe.context_len + 1)
            }
            extra["history_sweep"] = {str(h): s for h, s in sweep.items()}
        card = card_of(
            play_checkpoint(ck, target, card_seeds), target=target, target_trials=trials, **extra
        )
        if method == "qdt":
            cfg = json.loads((out / "config.json").read_text())
            cfg["relabelled_by"] = f"{data}-offline_rl"  # the table whose values relabel
            write_json_atomic(out / "config.json", cfg)
        write_json_atomic(out / "card.json", card)
        cards[method] = card
        log(
            f"  {data}-{method}: success {card['success']:.2f} (target {target:g}) "
            f"in {seconds[method]:.0f} CPU-s"
        )
    arrival = arrival_paths(data, card_seeds[0], root, cards)
    return {
        "sha256": summary["sha256"],
        "episodes": len(episodes),
        "starts_to_goal": datasets.starts_to_goal(episodes),
        "heat": visits(episodes).tolist(),
        "train_cpu_seconds": seconds,
        "success": {m: cards[m]["success"] for m in METHODS},
        "arrival": arrival,
    }


def visits(episodes) -> np.ndarray:
    """How often the data stands on each cell: (H, W) counts (the tab's heat map)."""
    heat = np.zeros((maze.HEIGHT, maze.WIDTH), np.int64)
    for ep in episodes:
        cells = ep.observations.astype(np.int64)
        np.add.at(heat, (cells[:, 0], cells[:, 1]), 1)
    return heat


def arrival_paths(data: str, seed: int, root: Path | None, cards: dict) -> dict:
    """Every method's actions from one card seed (the tab's first view, replayable
    without a model)."""
    out = {"seed": seed, "actions": {}}
    table, _ = dp.load(folder(data, "offline_rl", root))
    out["actions"]["offline_rl"] = dp.play(table, maze.ENV_ID, [seed])[0].actions.tolist()
    for m in ("dt", "pbc", "qdt"):
        ck = load_checkpoint(folder(data, m, root))
        tr = play_checkpoint(ck, cards[m].get("target", 0.0), [seed])[0]
        out["actions"][m] = [int(a) for a in tr.actions]
    return out


def build_lab(
    root: Path | None = None,
    data_root: Path | None = None,
    recipe: NetRecipe | None = None,
    names=datasets.DATA_NAMES,
    log=print,
) -> dict:
    """Build the whole lab (both datasets) and write ``lab.json``; returns it."""
    import torch

    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    lab = {
        "recipes": {n: asdict(recipe or RECIPES[n]) for n in names},
        "card_seeds": {"first": CARD_SEED, "n": CARD_EPISODES},
        "trial_seeds": {"first": TRIAL_SEED, "n": TRIAL_EPISODES},
        "data": {},
    }
    for name in names:
        log(f"[stitch] {name}")
        lab["data"][name] = build_data(name, root, data_root, recipe, log)
    lab["train_cpu_seconds"] = round(
        sum(sum(d["train_cpu_seconds"].values()) for d in lab["data"].values()), 1
    )
    lab["build_cpu_seconds"] = round(time.process_time() - c0, 1)
    lab["build_wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic((root or lab_root()) / LAB_FILE, lab)
    return lab


def verify_rows(root: Path | None = None, log=print) -> list:
    """``pretrain --verify --stitch``: recollect each lab dataset into a temp folder,
    read it back and compare its sha256 with every shipped lab folder's
    (`verify.Verified` rows; nothing is trained or written under ``root``)."""
    import tempfile

    from dt_playground.envs.episodes import dataset_sha256
    from dt_playground.zoo.verify import Verified

    rows = []
    for name in datasets.DATA_NAMES:
        with tempfile.TemporaryDirectory(prefix="dtp-verify-") as tmp:
            path = datasets.ensure(name, tmp, log=lambda m: None)
            fresh = dataset_sha256(load_episodes(path)[0])
        log(f"  {name}: recollected {datasets.RECIPES[name].episodes} episodes")
        for m in METHODS:
            f = folder(name, m, root) / "config.json"
            d = json.loads(f.read_text()).get("dataset", {}) if f.is_file() else {}
            rows.append(
                Verified(
                    maze.ENV_ID,
                    f"stitch/{name}-{m}",
                    int(d.get("episodes") or 0),
                    d.get("sha256"),
                    fresh,
                )
            )
    return rows
