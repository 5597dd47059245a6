"""Cards: a checkpoint's evaluation on held-out seeds (`card.json`) and docs/zoo.md's zoo
table drawn from every card (a folder's README.md is its Hub card: `checkpoints/hub_card.py`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.dt.return_head import BEST
from dt_playground.envs.seeds import CARD_SEED
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.rollout.evaluate import summarise, sweep

CARD_TARGETS = 8
CARD_SEEDS = 30


def card_evaluation(
    ckpt_dir: Path,
    refs: dict | None = None,
    n_seeds: int = CARD_SEEDS,
    n_targets: int = CARD_TARGETS,
    max_steps: int | None = None,
) -> dict:
    """The card: 8 targets from the dataset's p10 to its max, CARD_SEEDS held-out seeds each."""
    ck = load_checkpoint(ckpt_dir)
    d = ck.config["dataset"]
    seeds = list(range(CARD_SEED, CARD_SEED + n_seeds))
    if ck.algo == "dt":
        targets = np.linspace(d["return_p10"], d["return_max"], n_targets).round(2).tolist()
    else:
        targets = [d["return_max"]]  # BC ignores the target
    # DTs with a return head also play target "best", in the same lock-step run.
    best = ck.offers_best
    t0 = time.perf_counter()
    traces = sweep(ck, targets + [BEST] * best, n_seeds, seed=CARD_SEED, max_steps=max_steps)
    s = summarise(traces)
    best_row = s["per_target"].pop() if best else None  # summarise puts "best" last
    top = s["per_target"][-1]
    card = {
        "env_id": ck.spec.env_id,
        "algo": ck.algo,
        "context_len": ck.config["context_len"],
        "seeds": seeds,
        "per_target": s["per_target"],
        "spearman": s["spearman"] if ck.algo == "dt" else None,
        "top_target": top["target"],
        "top_target_mean": top["mean"],
        "top_target_std": top["std"],
        "dataset_top10_mean": d["return_top10_mean"],
        "dataset_max": d["return_max"],
        "normalised_top": ck.spec.normalised_score(top["mean"]),
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }
    if best_row is not None:
        span = d["return_top10_mean"] - d["return_min"]
        card["best_mean"], card["best_std"] = best_row["mean"], best_row["std"]
        card["best_kappa"] = ck.best_kappa
        # The gap: top-10% mean - achieved, as a fraction of top-10% mean - min.
        card["best_shortfall"] = (d["return_top10_mean"] - best_row["mean"]) / max(span, 1e-9)
    if refs:
        card["references"] = refs
    if ck.algo == "dt":
        bc = (refs or {}).get("bc")
        card["bars"] = {
            "spearman_ge_0.9": bool(card["spearman"] >= 0.9),
            "top_ge_dataset_top10": bool(top["mean"] >= d["return_top10_mean"]),
            "dt_ge_bc": None if bc is None else bool(top["mean"] >= bc),
        }
        if best_row is not None:
            pbc = (refs or {}).get("pbc")
            card["bars"]["best_ge_pbc"] = None if pbc is None else bool(card["best_mean"] >= pbc)
            card["bars"]["best_shortfall_le_5pct"] = bool(card["best_shortfall"] <= 0.05)
    return card


README_START, README_END = "<!-- zoo:start -->", "<!-- zoo:end -->"


def zoo_table(root: Path = PRETRAINED_DIR) -> str:
    """Markdown table of every DT checkpoint's card, with its env's BC and %BC."""
    cards = {}
    for card_path in sorted(Path(root).glob("*/card.json")):
        cards[card_path.parent.name] = json.loads(card_path.read_text())
    lines = [
        "| checkpoint | env | K | Spearman rho | top target | DT at top | data top-10% | "
        "BC | %BC | bars (rho, top, >=BC) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    # A "best" column once any card has one (the table is unchanged until then).
    with_best = any("best_mean" in c for c in cards.values())
    if with_best:
        lines = [lines[0] + " DT at best |", lines[1] + "---:|"]
    for name, c in cards.items():
        if c["algo"] != "dt":
            continue
        refs = c.get("references") or {}
        bars = c.get("bars") or {}
        marks = " ".join(
            {True: "yes", False: "no", None: "-"}[bars.get(k)]
            for k in ("spearman_ge_0.9", "top_ge_dataset_top10", "dt_ge_bc")
        )
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        lines.append(
            f"| {name} | {c['env_id']} | {c['context_len']} | {c['spearman']:.3f} | "
            f"{c['top_target']:.1f} | {c['top_target_mean']:.1f} ± {c['top_target_std']:.1f} | "
            f"{c['dataset_top10_mean']:.1f} | {fmt(refs.get('bc'))} | {fmt(refs.get('pbc'))} | "
            f"{marks} |"
            + (
                ""
                if not with_best
                else " - |"
                if c.get("best_mean") is None
                else f" {c['best_mean']:.1f} ± {c['best_std']:.1f} |"
            )
        )
    return "\n".join(lines)


def update_readme(readme: Path, root: Path = PRETRAINED_DIR) -> bool:
    """Replace the table between the zoo markers in the README or doc page; True if it changed."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{zoo_table(root)}\n{README_END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text
