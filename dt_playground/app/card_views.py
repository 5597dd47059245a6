"""What the Sweep, Compare and Dataset tabs show on arrival, from files alone.

Every pretrained checkpoint carries ``card.json`` (its evaluation on held-out
seeds) and its ``config.json`` carries the dataset summary, so these views need
no model and no rollout: they read JSON (torch is never imported here, so the
page can show them before the library has loaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from dt_playground.app import critic_views
from dt_playground.app.formatting import card_markdown
from dt_playground.checkpoints.layout import (
    label_of,
    list_checkpoints,
    locate,
    parse_env,
    pretrained_of_env,
    read_json,
)
from dt_playground.data.summary import DatasetSummary
from dt_playground.envs.registry import get_spec
from dt_playground.errors import PlaygroundError
from dt_playground.media.plots import figures, glance, inspect


def read_card(path: str | Path) -> dict | None:
    """A checkpoint folder's ``card.json``, or None when it has none or it is unreadable."""
    path = Path(path) / "card.json"
    if not path.is_file():
        return None
    try:
        card = read_json(path, "card")
    except PlaygroundError:
        return None
    return card if isinstance(card, dict) else None


def env_cards(env_id: str, root: Path | None = None) -> dict[str, dict]:
    """The card of every pretrained checkpoint of ``env_id`` (by folder name);
    checkpoints without a readable card are left out."""
    cards = {}
    for path in list_checkpoints(root, parse_env(env_id), offline=True):  # IQL: a row too
        card = read_card(path)
        if card is not None:
            cards[path.name] = card
    return cards


def dataset_of(env_id: str, checkpoint, owned: dict[str, Path] | None = None) -> DatasetSummary:
    """The summary of the data a checkpoint learned from, from its config.json alone."""
    path = locate(checkpoint, env_id, owned)
    return DatasetSummary.from_dict(read_json(path / "config.json", "config").get("dataset"))


def _open(env_id: str, checkpoint, owned: dict[str, Path] | None) -> tuple[Path, dict]:
    """The checkpoint's folder and config, refusing another env's checkpoint."""
    env_id = parse_env(env_id)
    path = locate(checkpoint, env_id, owned)
    config = read_json(path / "config.json", "config")
    if config.get("env_id") != env_id:
        raise PlaygroundError(
            f"Checkpoint {checkpoint} was trained on {config.get('env_id')}, not {env_id}."
        )
    return path, config


def card_of(env_id: str, checkpoint, owned: dict[str, Path] | None = None) -> dict | None:
    """The checkpoint's card (None for one without, e.g. an upload)."""
    return read_card(_open(env_id, checkpoint, owned)[0]) if checkpoint else None


def sweep_view(env_id: str, checkpoint, owned: dict[str, Path] | None = None):
    """(figure, markdown, card) for the Sweep tab: the checkpoint's card sweep over its
    dataset's band, or an empty figure saying a sweep will measure it."""
    if not checkpoint:
        return glance.card_sweep_figure(None), card_markdown(None), {}
    path, config = _open(env_id, checkpoint, owned)
    card = read_card(path)
    dataset = DatasetSummary.from_dict(config.get("dataset")).as_dict()
    shown = critic_views.with_iql_reference(card, env_id)  # IQL's flat line beside BC's
    return glance.card_sweep_figure(shown, dataset), card_markdown(card), card or {}


def compare_view(env_id: str, root: Path | None = None) -> tuple[go.Figure, dict]:
    """(figure, table) for the Compare tab: every pretrained checkpoint's card at
    its top target (the card's own seeds, the same for all of an env's checkpoints)."""
    cards = env_cards(env_id, root)
    table = {
        name: {
            "mean": c.get("top_target_mean"),
            "std": c.get("top_target_std"),
            "target": c.get("top_target"),
            "episodes": len(c.get("seeds") or []),
            "source": "card",
        }
        for name, c in cards.items()
    }
    return glance.cards_compare_figure(cards), table


def compare_table(results: dict[str, list[float]], notes: tuple | list[str] = ()) -> dict:
    """The /compare JSON: mean, std and episode count per checkpoint, rounded for people
    (and what was skipped)."""
    table = {
        k: {
            "mean": round(float(np.mean(v)), 1),
            "std": round(float(np.std(v)), 1),
            "episodes": len(v),
        }
        for k, v in results.items()
    }
    return {**table, **({"skipped": list(notes)} if notes else {})}


def compare_run_view(
    env_id: str, results: dict[str, list[float]], notes: tuple | list[str] = ()
) -> tuple[go.Figure, dict]:
    """(figure, table) after a Compare run: the arrival's figure, with this run's
    episodes (results: label -> returns, labelled as the checkpoint list labels them)."""
    env_id = parse_env(env_id)
    cards = env_cards(env_id)
    rows = []
    for info in pretrained_of_env(env_id):
        rets = results.get(label_of(info, info.name))
        if not rets:
            continue
        card = cards.get(info.name) or {}
        rows.append(
            {
                "name": info.name,
                "algo": info.algo,
                "context_len": info.context_len,
                "mean": float(np.mean(rets)),
                "std": float(np.std(rets)),
                "episodes": rets,
                "dataset_max": card.get("dataset_max"),
            }
        )
    figure = glance.compare_figure(
        rows, f"Return by model ({len(rows)} checkpoints, the same new seeds)"
    )
    return figure, compare_table(results, notes)


def dataset_view(env_id: str, checkpoint, owned: dict[str, Path] | None = None):
    """(histogram, lengths, behaviour levels, headline numbers) of the checkpoint's data."""
    summary = {}
    if checkpoint:
        _, config = _open(env_id, checkpoint, owned)
        summary = DatasetSummary.from_dict(config.get("dataset")).as_dict()
    if not summary.get("histogram"):
        empty = figures.empty_figure("Dataset", "This checkpoint records no dataset summary.")
        return empty, empty, empty, {}
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
    info = {k: round(v, 1) if isinstance(v, float) else v for k, v in summary.items() if k in keys}
    return (
        inspect.dataset_figure(summary),
        inspect.lengths_figure(summary),
        inspect.quality_figure(summary),
        info,
    )


def schedule_example(env_id: str, checkpoint, owned: dict[str, Path] | None = None) -> str:
    """A high-to-low re-prompt for this checkpoint: its dataset's best return from
    step 0, then its p10 from a third of the way into a full-length episode."""
    env_id = parse_env(env_id)
    d = {}
    if checkpoint:
        _, config = _open(env_id, checkpoint, owned)
        d = DatasetSummary.from_dict(config.get("dataset")).as_dict()
    presets = get_spec(env_id).target_presets
    hi = d.get("return_max", max(presets))
    lo = d.get("return_p10", d.get("return_min", min(presets)))
    step = min(300, get_spec(env_id).max_ep_len // 3)

    def num(x: float) -> str:
        return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"

    return f"0:{num(hi)},{step}:{num(lo)}"
