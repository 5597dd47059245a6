"""Figures that inspect a checkpoint rather than an episode: its data (return
histogram, episode lengths, behaviour levels), its training (loss curve) and what
its actions attended to. Pure functions to `go.Figure`, styled as `plots`."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import plotly.graph_objects as go

from dt_playground.media.plots.figures import COLORS, HEIGHT, empty_figure, styled


def dataset_figure(summary: dict) -> go.Figure:
    """Histogram of episode returns in the dataset, with its median and 90th percentile."""
    counts = np.asarray(summary["histogram"]["counts"])
    edges = np.asarray(summary["histogram"]["edges"], dtype=np.float64)
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    bar_style = {"color": COLORS["data"], "line": {"width": 0.5, "color": "white"}}
    fig = go.Figure(
        go.Bar(
            x=centers,
            y=counts,
            width=widths,
            name="episodes",
            marker=bar_style,
            customdata=np.stack([edges[:-1], edges[1:]], axis=-1),
            hovertemplate="%{customdata[0]:.0f} to %{customdata[1]:.0f}: "
            "%{y} episodes<extra></extra>",
        )
    )
    ymax = float(counts.max()) if len(counts) else 1.0
    for key, label, color in (
        ("return_median", "median", COLORS["ideal"]),
        ("return_p90", "90th percentile", COLORS["top"]),
    ):
        if key in summary:
            v = summary[key]
            fig.add_trace(
                go.Scatter(
                    x=[v, v],
                    y=[0, ymax],
                    name=f"{label} ({v:.0f})",
                    mode="lines",
                    line={"color": color, "dash": "dash"},
                )
            )
    n = summary.get("episodes", int(counts.sum()))
    return styled(fig, f"Dataset returns ({n} episodes)", "episode return", "episodes")


def lengths_figure(summary: dict) -> go.Figure:
    """Histogram of episode lengths in the dataset."""
    lengths = np.asarray(summary["lengths"])
    fig = go.Figure(
        go.Histogram(x=lengths, nbinsx=30, name="episodes", marker={"color": COLORS["model"]})
    )
    return styled(
        fig,
        f"Episode lengths (mean {lengths.mean():.0f})" if len(lengths) else "Episode lengths",
        "length (steps)",
        "episodes",
    )


def quality_figure(summary: dict) -> go.Figure:
    """Mean return per behaviour policy: how the dataset's quality was graded."""
    behaviours = summary.get("behaviours") or {}
    title = "Mean return by behaviour policy"
    if not behaviours:
        return empty_figure(title, "No behaviour policies recorded for this dataset.")
    keys = sorted(behaviours, key=lambda k: -behaviours[k]["return_mean"])
    means = [behaviours[k]["return_mean"] for k in keys]
    fig = go.Figure(
        go.Bar(
            x=distinct_labels([str(behaviours[k].get("label", k)) for k in keys]),
            y=means,
            name="mean return",
            text=[f"{behaviours[k]['episodes']} eps" for k in keys],
            textposition="outside",
            cliponaxis=False,  # a label above the tallest bar stays whole
            marker={"color": COLORS["data"]},
        )
    )
    fig = styled(fig, title, "behaviour policy", "mean return")
    lo, hi = min(0.0, *means), max(0.0, *means)
    pad = 0.15 * ((hi - lo) or 1.0)  # room for the "N eps" labels above and below
    fig.update_yaxes(range=[lo - (pad if lo < 0 else 0), hi + pad])
    fig.update_xaxes(type="category")
    return fig


def distinct_labels(labels: list[str]) -> list[str]:
    """Labels made unique in order ("expert", "expert #2"): a category axis draws equal
    labels as one bar, stacking two behaviours into a bar above the data's max."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


# ---------------------------------------------------------------- training


def loss_figure(curve: list[dict], evals: list[dict] | None = None) -> go.Figure:
    """Training loss (and learning rate, right axis) over steps.

    Eval points ``{"step", "target", "return"}`` may come in ``evals`` or mixed
    into ``curve``; they add a second panel with one line per target.
    """
    from plotly.subplots import make_subplots

    points = list(curve) + list(evals or [])
    losses = [p for p in points if "loss" in p]
    ev = [p for p in points if "return" in p]
    if not losses and not ev:
        return empty_figure("Training", "No training steps logged yet.")
    rows = 2 if ev else 1
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        specs=[[{"secondary_y": True}]] + [[{}]] * (rows - 1),
    )
    steps = [p["step"] for p in losses]
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=[p["loss"] for p in losses],
            name="train/loss",
            mode="lines",
            line={"color": COLORS["model"]},
        ),
        row=1,
        col=1,
    )
    if any("lr" in p for p in losses):
        lr = [p for p in losses if "lr" in p]
        fig.add_trace(
            go.Scatter(
                x=[p["step"] for p in lr],
                y=[p["lr"] for p in lr],
                name="train/lr",
                mode="lines",
                line={"color": COLORS["ideal"], "dash": "dot", "width": 1},
            ),
            row=1,
            col=1,
            secondary_y=True,
        )
        fig.update_yaxes(
            title_text="learning rate",
            secondary_y=True,
            row=1,
            col=1,
            showgrid=False,
            exponentformat="e",
        )
    by_target = defaultdict(list)
    for p in ev:
        by_target[float(p["target"])].append((p["step"], p["return"]))
    for target in sorted(by_target):
        pts = sorted(by_target[target])
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in pts],
                y=[r for _, r in pts],
                mode="lines+markers",
                name=f"eval/return (target {target:g})",
            ),
            row=2,
            col=1,
        )
    fig = styled(fig, "Training", "", "", height=HEIGHT + 150 * (rows - 1))
    fig.update_yaxes(title_text="loss", secondary_y=False, row=1, col=1)
    fig.update_xaxes(title_text="step", row=rows, col=1)
    if ev:
        fig.update_yaxes(title_text="eval return", row=2, col=1)
    return fig


def attention_figure(att: dict) -> go.Figure:
    """Heatmap of `rollout.episode.attention_at`: one row per block and head, one column
    per token of the window, the weight the acting state token gives it."""
    title = f"Attention of the action at step {att['step']}"
    if not att.get("weights"):
        return empty_figure(title, "No attention to show.")
    rows, z = [], []
    for b, heads in enumerate(att["weights"]):
        for h, w in enumerate(heads):
            rows.append(f"block {b + 1}" + (f" head {h + 1}" if len(heads) > 1 else ""))
            z.append(w)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(len(att["tokens"]))),
            y=rows,
            customdata=[att["tokens"]] * len(rows),
            hovertemplate="%{y}, %{customdata}: %{z:.3f}<extra></extra>",
            colorscale="Blues",
            zmin=0.0,
            zmax=max(max(row) for row in z),
            name="attention",
        )
    )
    fig = styled(fig, title, "token (oldest first)", "", height=max(220, 60 + 40 * len(rows)))
    ticks = attention_ticks(len(att["tokens"]))
    fig.update_xaxes(
        tickmode="array", tickvals=ticks, ticktext=[att["tokens"][i] for i in ticks], tickangle=-60
    )
    return fig


MAX_TOKEN_LABELS = 12  # 60 labels blurred into one grey bar on a phone


def attention_ticks(n: int) -> list[int]:
    """Which of ``n`` tokens get a label: all up to `MAX_TOKEN_LABELS`, else every k-th
    counted back from the newest (the acting token's own step); hover names every one."""
    every = max(1, -(-n // MAX_TOKEN_LABELS))
    return sorted(range(n - 1, -1, -every))
