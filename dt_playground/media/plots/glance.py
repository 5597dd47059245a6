"""Figures for seeing return conditioning at a glance (pure, as `plots`).

* The target grid's cumulative rewards, one line per tile in the tile's colour.
* Re-prompt markers on an episode's return-to-go and reward figures.
* Figures from checkpoint cards alone, for tabs that show something before
  anything runs: every pretrained checkpoint carries ``card.json`` (its
  evaluation on 30 held-out seeds: per-target mean and std, BC / %BC
  references) and its config carries the dataset summary.

Traces are named, as in `plots`, so tests can find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from dt_playground.media.plots.figures import (
    _REF_DASHES,
    COLORS,
    data_band,
    empty_figure,
    padded_range,
    ref_color,
    reward_figure,
    rtg_figure,
    styled,
    two_line_title,
)

if TYPE_CHECKING:  # rollout imports torch; a figure only needs the Trace's arrays
    from dt_playground.envs.episodes import Trace

# The tiles' colours in the grid video (`tiles.TILE_COLORS`), so a line and its
# tile match.
TILE_COLORS = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
)


def grid_reward_figure(traces: Sequence[Trace], labels: Sequence[str] | None = None) -> go.Figure:
    """Cumulative reward of every tile of a grid, each with its target as a dotted
    line of the same colour."""
    labels = list(labels) if labels else [f"target {t.target}" for t in traces]
    fig = go.Figure()
    x_end = max((t.length for t in traces), default=1)
    for i, (tr, label) in enumerate(zip(traces, labels)):
        color = TILE_COLORS[i % len(TILE_COLORS)]
        cum = np.cumsum(np.asarray(tr.rewards, dtype=np.float64))
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, tr.length + 1),
                y=cum,
                mode="lines",
                line={"color": color},
                name=f"{label} → {tr.ret:.0f}",
                legendgroup=str(i),
            )
        )
        if isinstance(tr.target, str):  # "best": no number was asked for
            continue
        fig.add_trace(
            go.Scatter(
                x=[0, x_end],
                y=[tr.target, tr.target],
                mode="lines",
                showlegend=False,
                line={"color": color, "dash": "dot", "width": 1},
                name=f"{label} (target)",
                legendgroup=str(i),
                hoverinfo="name",
            )
        )
    seed = traces[0].seed if traces else ""
    return styled(
        fig,
        f"Cumulative reward at each target (seed {seed})",
        "step",
        "cumulative reward",
        height=400,
    )


def mark_switches(fig: go.Figure, switches: dict[int, float | str]) -> go.Figure:
    """Add a vertical line at every re-prompt after step 0 (named "re-prompt at
    step s → R"), spanning the figure's data. Returns ``fig``."""
    ys = [np.asarray(t.y, dtype=np.float64) for t in fig.data if t.y is not None and len(t.y)]  # pyright: ignore[reportAttributeAccessIssue]
    ys = [y[np.isfinite(y)] for y in ys]
    ys = [y for y in ys if len(y)]
    lo = float(min(y.min() for y in ys)) if ys else 0.0
    hi = float(max(y.max() for y in ys)) if ys else 1.0
    for step, target in sorted(switches.items()):
        if step == 0:
            continue
        value = f"{target:g}" if isinstance(target, (int, float)) else str(target)
        fig.add_trace(
            go.Scatter(
                x=[step, step],
                y=[lo, hi],
                mode="lines",
                name=f"re-prompt at step {step} → {value}",
                line={"color": "#444444", "dash": "dashdot", "width": 1.5},
            )
        )
    return fig


# ---------------------------------------------------------------- cards

REF_LABELS = {"bc": "BC", "pbc": "%BC", "iql": "IQL"}
ALGO_LABELS = {"dt": "DT", "bc": "BC", "pbc": "%BC", "iql": "IQL"}


def card_sweep_figure(card: dict | None, dataset: dict | None = None) -> go.Figure:
    """The card's sweep: per-target mean ± std over its seeds against the
    requested return, the data's return band and top 10%, BC and %BC lines."""
    title = "Achieved vs requested return (checkpoint card)"
    rows = (card or {}).get("per_target") or []
    if not rows:
        return empty_figure(title, "This checkpoint has no card yet: run a sweep.")
    xs = np.array([r["target"] for r in rows], dtype=np.float64)
    means = np.array([r["mean"] for r in rows], dtype=np.float64)
    stds = np.array([r.get("std", 0.0) for r in rows], dtype=np.float64)
    refs = {REF_LABELS.get(k, k): float(v) for k, v in (card.get("references") or {}).items()}  # pyright: ignore[reportOptionalMemberAccess]
    values = [*xs, *(means - stds), *(means + stds), *refs.values()]
    if dataset and "return_min" in dataset:
        values += [dataset["return_min"], dataset["return_max"]]
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.03 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    xlo, xhi = padded_range(xs)  # the x axis spans the targets asked for, no more
    fig = go.Figure()
    if dataset and "return_min" in dataset:
        fig.add_trace(
            data_band(
                xlo,
                xhi,
                dataset["return_min"],
                dataset["return_max"],
                "dataset return range",
                COLORS["data"],
            )
        )
        if "return_p90" in dataset:
            fig.add_trace(
                data_band(
                    xlo,
                    xhi,
                    dataset["return_p90"],
                    dataset["return_max"],
                    "dataset top 10%",
                    COLORS["top"],
                )
            )
    fig.add_trace(
        go.Scatter(
            x=[xlo, xhi],
            y=[xlo, xhi],
            name="y = x",
            mode="lines",
            line={"color": COLORS["ideal"], "dash": "dash"},
        )
    )
    for i, (name, value) in enumerate(refs.items()):
        fig.add_trace(
            go.Scatter(
                x=[xlo, xhi],
                y=[value, value],
                name=f"{name} ({value:.0f})",
                mode="lines",
                line={"color": ref_color(str(name)), "dash": _REF_DASHES[i % 4]},
            )
        )
    n = rows[0].get("n", len(card.get("seeds") or []))  # pyright: ignore[reportOptionalMemberAccess]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=means,
            name=f"card: mean ± std of {n} seeds",
            mode="lines+markers",
            error_y={"type": "data", "array": stds, "visible": True},
            line={"color": COLORS["model"]},
            marker={"size": 9},
        )
    )
    rho = card.get("spearman")  # pyright: ignore[reportOptionalMemberAccess]
    if rho is not None:
        title = title[:-1] + f", Spearman ρ = {rho:.2f})"  # one bracket: one subtitle
    fig = styled(fig, title, "requested return", "achieved return")
    fig.update_xaxes(range=[xlo, xhi])
    fig.update_yaxes(range=[lo, hi])
    return fig


def cards_compare_figure(cards: dict[str, dict]) -> go.Figure:
    """Each checkpoint's card at its top target (the Compare tab on arrival)."""
    rows = [
        {
            "name": name,
            "algo": c.get("algo"),
            "context_len": c.get("context_len"),
            "mean": c["top_target_mean"],
            "std": c.get("top_target_std") or 0.0,
            "spearman": c.get("spearman"),
            "dataset_max": c.get("dataset_max"),
        }
        for name, c in cards.items()
        if c and c.get("top_target_mean") is not None
    ]
    return compare_figure(rows, "Return by model (checkpoint cards, same seeds)")


def compare_figure(rows: list[dict], title: str = "Return by model (same seeds)") -> go.Figure:
    """The Compare tab's one figure, on arrival (from cards) and after a run: mean ± std
    return per checkpoint (DT first, in the model colour; BC and %BC in the reference
    colour), each episode as a dot when a run has them, the data's best return as a line.
    A row: name, algo, context_len, mean, std, and optionally spearman, episodes,
    dataset_max."""
    if not rows:
        return empty_figure(title, "No checkpoint of this environment has a card yet.")
    rows = sorted(
        rows,
        key=lambda r: (
            r.get("algo") != "dt",
            r.get("algo") == "iql",
            r.get("algo") or "",
            r["name"],
        ),
    )
    names = [r["name"] for r in rows]
    text = [_bar_text(r) for r in rows]
    colors = [
        COLORS["model"]
        if r.get("algo") == "dt"
        else COLORS["iql"]
        if r.get("algo") == "iql"
        else COLORS["ref"]
        for r in rows
    ]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[float(r["mean"]) for r in rows],
            name="mean ± std",
            # The model's kind goes under its name on the axis: inside the bars it shrank to
            # an unreadable size on a phone.
            text=text,
            textposition="none",
            marker={"color": colors},
            opacity=0.85,
            error_y={
                "type": "data",
                "array": [float(r.get("std") or 0.0) for r in rows],
                "visible": True,
            },
            hovertemplate="%{x} (%{text}): %{y:.1f}<extra></extra>",
        )
    )
    dots = [(r["name"], float(e)) for r in rows for e in r.get("episodes") or ()]
    if dots:
        fig.add_trace(
            go.Scatter(
                x=[d[0] for d in dots],
                y=[d[1] for d in dots],
                name="episodes",
                mode="markers",
                marker={"color": "black", "size": 5, "opacity": 0.5},
                hovertemplate="%{y:.1f}<extra></extra>",
            )
        )
    best = next((r["dataset_max"] for r in rows if r.get("dataset_max") is not None), None)
    if best is not None:
        fig.add_trace(
            go.Scatter(
                x=[names[0], names[-1]],
                y=[best, best],
                mode="lines",
                name=f"dataset max ({best:.0f})",
                line={"color": COLORS["data"], "dash": "dash"},
            )
        )
    fig = styled(fig, title, "checkpoint", "return")
    fig.update_xaxes(
        type="category", tickvals=names, ticktext=[f"{n}<br>{t}" for n, t in zip(names, text)]
    )
    return fig


def _bar_text(row: dict) -> str:
    """A bar's label: the algo, its K (IQL has none: its objective is fixed) and ρ."""
    algo = str(row.get("algo") or "")
    k = "fixed objective" if algo == "iql" else f"K={row.get('context_len')}"
    rho = f", ρ={row['spearman']:.2f}" if row.get("spearman") is not None else ""
    return f"{ALGO_LABELS.get(algo, algo)}, {k}{rho}"


def schedule_text(switches: dict[int, float | str]) -> str:
    """ "0:3000 → 300:500": a schedule as people read it."""

    def value(t):
        return f"{t:g}" if isinstance(t, (int, float)) else str(t)

    return " → ".join(f"{s}:{value(t)}" for s, t in sorted(switches.items()))


def schedule_target_line(trace: Trace) -> tuple[list[float], list[float]]:
    """The cumulative return the schedule asks for, step by step: a re-prompt at step s
    to R asks for R more than was collected by s, so the line steps at every switch
    (None where the ask is `best`: the model picks its own)."""
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(trace.rewards, dtype=np.float64))])
    switches = sorted(trace.switches.items()) or [(0, trace.target)]
    xs: list[float] = []
    ys: list[float] = []
    for i, (start, target) in enumerate(switches):
        end = switches[i + 1][0] if i + 1 < len(switches) else max(trace.length, 1)
        start = min(start, trace.length)
        y = (cum[start] + target) if isinstance(target, (int, float)) else None
        xs += [start, end, None]
        ys += [y, y, None]
    return xs, ys


def schedule_figures(trace: Trace) -> tuple[go.Figure, go.Figure]:
    """The return-to-go and cumulative-reward figures of a re-prompted episode, each
    with its switches marked (`mark_switches`); the reward figure's target line steps at
    each switch and its title names the schedule."""
    reward = reward_figure(trace)
    xs, ys = schedule_target_line(trace)
    reward.update_traces(
        selector={"name": "target"}, x=xs, y=ys, name="target (cumulative, per the schedule)"
    )
    text = schedule_text(trace.switches) if trace.switches else str(trace.target)
    reward.update_layout(
        title={
            "text": two_line_title(  # the schedule on its own line
                f"Return {trace.ret:.1f} (schedule {text}, {trace.length} steps)"
            )
        }
    )
    return (mark_switches(rtg_figure(trace), trace.switches), mark_switches(reward, trace.switches))
