"""Plotly figures for the playground: pure functions from results to `go.Figure`.

Nothing here touches Gradio or the file system. Every line a test or a reader
might look for is a named trace (``fig.data``), not a layout shape, so a figure
can be checked by its data: ``{t.name: t for t in fig.data}``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import plotly.graph_objects as go

from dt_playground.envs.episodes import Trace, returns_to_go
from dt_playground.rollout.metrics import spearman  # noqa: F401  (re-exported for the app)

TEMPLATE = "plotly_white"
HEIGHT = 350
COLORS = {
    "model": "#1f77b4",
    "ideal": "#7f7f7f",
    "target": "#d62728",
    "data": "#2ca02c",
    "top": "#ff7f0e",
    "ref": "#9467bd",
    "iql": "#8c564b",  # offline RL, beside DT and the BC references
}
_REF_DASHES = ("dash", "dot", "dashdot", "longdash")


def two_line_title(title: str) -> str:
    """ "Return-to-go (target 283.8, seed 7)" as a short title over a small second line, so
    titles fit a phone's width (plotly does not wrap them)."""
    head, sep, rest = title.partition(" (")
    if not sep or not rest.endswith(")"):
        return title
    return f"{head}<br><sup>{rest[:-1]}</sup>"


def styled(fig: go.Figure, title: str, x: str, y: str, height: int = HEIGHT) -> go.Figure:
    """The house style: a title that fits a phone, the legend below the plot (above it,
    legends collided with titles at 390 px)."""
    fig.update_layout(
        title={
            "text": two_line_title(title),
            "x": 0.02,
            "xanchor": "left",
            "y": 0.97,
            "yanchor": "top",
            "font": {"size": 15},
        },
        template=TEMPLATE,
        height=height,
        margin={"l": 56, "r": 12, "t": 56, "b": 40},
        xaxis_title=x,
        yaxis_title=y,
        legend={
            "orientation": "h",
            "yref": "container",
            "yanchor": "bottom",
            "y": 0.0,
            "xanchor": "left",
            "x": 0.0,
        },
        hovermode="closest",
        # Transparent: the page's own background shows through, light or dark (the page's
        # CSS sets the text and grid colours of dark mode).
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def ref_color(name: str) -> str:
    """A flat reference line's colour: IQL (offline RL) its own, BC and %BC the same."""
    return COLORS["iql"] if name == "IQL" else COLORS["ref"]


def empty_figure(title: str, message: str) -> go.Figure:
    fig = styled(go.Figure(), title, "", "")
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ---------------------------------------------------------------- one episode


def rtg_figure(trace: Trace) -> go.Figure:
    """The return-to-go the model was conditioned on vs the return actually still to come.

    The two meet at zero on the last step when the model delivered its target;
    a gap that opens early means the model stopped believing the request. When the
    trace carries the model's own predicted return-to-go (``return_band``: p10, p50,
    p90 of P(R_t | history), dt.return_head), it is drawn as a band: is the ask realistic
    from here? For target "best" the conditioned RTG is what the model sampled. A checked
    episode (``critic_value``, rollout.checked) adds the critic's value of each action it
    kept: does the critic believe the promise?
    """
    steps = np.arange(trace.length)
    best = isinstance(trace.target, str)
    fig = go.Figure(
        _return_band(steps, getattr(trace, "return_band", None))
        + [
            go.Scatter(
                x=steps,
                y=np.asarray(trace.rtg, dtype=float),
                name="sampled RTG (best)" if best else "conditioned RTG",
                mode="lines",
                line={"color": COLORS["model"]},
            ),
            go.Scatter(
                x=steps,
                y=returns_to_go(trace.rewards),
                name="actual return to go",
                mode="lines",
                line={"color": COLORS["data"], "dash": "dash"},
            ),
        ]
        + _critic_line(steps, getattr(trace, "critic_value", None))
    )
    return styled(
        fig,
        f"Return-to-go (target {_target_text(trace.target)}, seed {trace.seed})",
        "step",
        "return to go",
    )


def _target_text(target) -> str:
    return target if isinstance(target, str) else f"{target:g}"


def _critic_line(steps: np.ndarray, values) -> list[go.Scatter]:
    """A checked episode's critic: the return it expected from each chosen action, beside
    the asked and the achieved returns-to-go (does the critic believe the promise?)."""
    if values is None or not np.isfinite(np.asarray(values, dtype=float)).any():
        return []
    return [
        go.Scatter(
            x=steps,
            y=np.asarray(values, dtype=float),
            name="critic's value",
            mode="lines",
            line={"color": COLORS["ref"], "dash": "dot", "width": 1.5},
            hovertemplate="step %{x}: the critic expects %{y:.1f}<extra></extra>",
        )
    ]


def _return_band(steps: np.ndarray, band) -> list[go.Scatter]:
    """The model's predicted return-to-go: a p10-p90 band and its median (none if absent)."""
    if band is None or not np.isfinite(np.asarray(band, dtype=float)).any():
        return []
    band = np.asarray(band, dtype=float)
    color = COLORS["top"]
    edge = {"color": color, "width": 0}
    return [
        go.Scatter(
            x=steps,
            y=band[:, 0],
            name="predicted p10",
            mode="lines",
            line=edge,
            showlegend=False,
            hoverinfo="skip",
        ),
        go.Scatter(
            x=steps,
            y=band[:, 2],
            name="predicted return p10-p90",
            mode="lines",
            line=edge,
            fill="tonexty",
            fillcolor="rgba(255,127,14,0.18)",
        ),
        go.Scatter(
            x=steps,
            y=band[:, 1],
            name="predicted return (median)",
            mode="lines",
            line={"color": color, "dash": "dot"},
        ),
    ]


def reward_figure(trace: Trace) -> go.Figure:
    """Cumulative reward over the episode, with the requested return as a line."""
    steps = np.arange(1, trace.length + 1)
    cum = np.cumsum(np.asarray(trace.rewards, dtype=np.float64))
    x_end = max(trace.length, 1)
    fig = go.Figure(
        [
            go.Scatter(
                x=steps,
                y=cum,
                name="cumulative reward",
                mode="lines",
                line={"color": COLORS["model"]},
            ),
            go.Scatter(
                x=[0, x_end],
                y=[np.nan, np.nan] if isinstance(trace.target, str) else [trace.target] * 2,
                name="target",
                mode="lines",
                line={"color": COLORS["target"], "dash": "dash"},
            ),
        ]
    )
    return styled(
        fig,
        f"Return {trace.ret:.1f} of {_target_text(trace.target)} requested ({trace.length} steps)",
        "step",
        "cumulative reward",
    )


# ---------------------------------------------------------------- sweeps


def padded_range(values, frac: float = 0.03) -> tuple[float, float]:
    """(low, high) of ``values`` with a margin of ``frac`` of their span on each side."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = frac * (hi - lo or max(abs(hi), 1.0))
    return lo - pad, hi + pad


def data_band(x0: float, x1: float, y0: float, y1: float, name: str, color: str) -> go.Scatter:
    return go.Scatter(
        x=[x0, x1, x1, x0, x0],
        y=[y0, y0, y1, y1, y0],
        name=name,
        fill="toself",
        mode="lines",
        line={"width": 0},
        fillcolor=color,
        opacity=0.15,
        hoverinfo="name",
    )


def sweep_figure(
    rows: list[dict],
    dataset: dict | None = None,
    references: dict[str, float] | None = None,
    card: dict | None = None,
) -> go.Figure:
    """Achieved vs requested return over a sweep of targets x seeds.

    Args:
        rows: one dict per episode: ``{"target", "seed", "return", "length"}``.
        dataset: `data.windows.dataset_summary` of the training data; shades its return
            range and its top 10% (``return_p90`` to ``return_max``).
        references: flat lines for baselines, e.g. ``{"BC": 1100.0, "10%BC": 2300.0}``.
        card: the checkpoint's card; its per-target means stay drawn beside this run's,
            so a new sweep adds to the card's evidence instead of replacing it.

    A perfect return-conditioned model sits on the y = x line.
    """
    title = "Achieved vs requested return"
    if not rows:
        return empty_figure(title, "No episodes yet: run a sweep.")
    targets = np.array([r["target"] for r in rows], dtype=np.float64)
    achieved = np.array([r["return"] for r in rows], dtype=np.float64)
    by_target = defaultdict(list)
    for t, ret in zip(targets, achieved):
        by_target[float(t)].append(ret)
    xs = sorted(by_target)
    means = [float(np.mean(by_target[x])) for x in xs]
    stds = [float(np.std(by_target[x])) for x in xs]

    card_rows = (card or {}).get("per_target") or []
    values = [*targets, *achieved, *(references or {}).values(), *(r["mean"] for r in card_rows)]
    if dataset:
        values += [dataset["return_min"], dataset["return_max"]]
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.03 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    xlo, xhi = padded_range(targets)  # the x axis spans the targets asked for, no more

    fig = go.Figure()
    if dataset:
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
    for i, (name, value) in enumerate((references or {}).items()):
        fig.add_trace(
            go.Scatter(
                x=[xlo, xhi],
                y=[value, value],
                name=f"{name} ({value:.0f})",
                mode="lines",
                line={"color": ref_color(name), "dash": _REF_DASHES[i % 4]},
            )
        )
    seeds = [r.get("seed", "") for r in rows]
    lengths = [r.get("length", "") for r in rows]
    fig.add_trace(
        go.Scatter(
            x=targets,
            y=achieved,
            name="episodes",
            mode="markers",
            marker={"color": COLORS["model"], "size": 6, "opacity": 0.35},
            customdata=np.stack([seeds, lengths], axis=-1),
            hovertemplate="target %{x}<br>return %{y:.1f}<br>seed %{customdata[0]}"
            "<br>length %{customdata[1]}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=means,
            name="mean ± std",
            mode="lines+markers",
            error_y={"type": "data", "array": stds, "visible": True},
            line={"color": COLORS["model"]},
            marker={"size": 9},
        )
    )
    if card_rows:
        n = card_rows[0].get("n", len((card or {}).get("seeds") or []))
        fig.add_trace(
            go.Scatter(
                x=[r["target"] for r in card_rows],
                y=[r["mean"] for r in card_rows],
                name=f"card: mean of {n} held-out seeds",
                mode="lines+markers",
                line={"color": COLORS["ideal"], "dash": "dot"},
                marker={"size": 7, "symbol": "diamond"},
            )
        )
    rho = spearman(xs, means)  # per-target means, as the app's sweep summary reports
    if not math.isnan(rho):
        title += f" (Spearman ρ of means = {rho:.2f})"
    fig = styled(fig, title, "requested return", "achieved return")
    fig.update_xaxes(range=[xlo, xhi])
    fig.update_yaxes(range=[lo, hi])
    return fig


# ---------------------------------------------------------------- datasets


def compare_figure(results: dict[str, list[float]]) -> go.Figure:
    """Mean ± std return per named model (e.g. DT at several targets, BC, %BC)."""
    title = "Return by model"
    if not results:
        return empty_figure(title, "Nothing to compare yet.")
    names = list(results)
    rets = [np.asarray(results[n], dtype=np.float64) for n in names]
    means = [float(r.mean()) if len(r) else float("nan") for r in rets]
    stds = [float(r.std()) if len(r) else 0.0 for r in rets]
    fig = go.Figure(
        [
            go.Bar(
                x=names,
                y=means,
                name="mean ± std",
                marker={"color": COLORS["model"]},
                error_y={"type": "data", "array": stds, "visible": True},
                opacity=0.8,
            ),
            go.Scatter(
                x=[n for n, r in zip(names, rets) for _ in r],
                y=np.concatenate(rets) if rets else [],
                name="episodes",
                mode="markers",
                marker={"color": "black", "size": 5, "opacity": 0.5},
            ),
        ]
    )
    return styled(fig, title, "model", "return")
