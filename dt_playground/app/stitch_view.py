"""What the Stitching tab shows: pure library functions, no Gradio.

`stitching_view(data, seed, history)` plays every shipped method once from the
seed's start cell (tiny models, at most 40 steps: well under a second) and
returns a `StitchView`: the maze with the data's visits as a heat map and each
method's path overlaid, an MP4 of the DT's episode, the success table over the
card seeds (read from the shipped cards) and three sentences on why.
`arrival_view(data)` builds the same from the cards alone (the tab's first
state): every path is replayed from actions stored in ``lab.json``.
"""

from __future__ import annotations

import functools
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from dt_playground.envs import maze
from dt_playground.envs.episodes import Trace
from dt_playground.errors import PlaygroundError
from dt_playground.media.plots.figures import two_line_title
from dt_playground.stitch import datasets
from dt_playground.stitch.lab import LAB_FILE, LABELS, METHODS, folder, lab_root

MAX_SEED = 2**31 - 1
COLOURS = {"dt": "#d62728", "pbc": "#ff7f0e", "offline_rl": "#2ca02c", "qdt": "#1f77b4"}
TABLE_HEADERS = ["method", "success (card seeds)", "mean return", "target"]


@dataclass
class StitchView:
    """Everything the tab shows, in the order it lays it out: ``figure`` (plotly),
    ``video`` (MP4 path of the DT's episode, or None), ``table`` (rows under
    `TABLE_HEADERS`), ``markdown`` (the explanation)."""

    figure: go.Figure
    video: str | None
    table: list[list]
    markdown: str
    headers: tuple[str, ...] = tuple(TABLE_HEADERS)

    def outputs(self) -> tuple:
        """(figure, video, table, markdown): the tab's output components, in order."""
        return self.figure, self.video, self.table, self.markdown


def _lab() -> dict:
    f = lab_root() / LAB_FILE
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        raise PlaygroundError(
            "The stitching lab has no shipped results yet: build them with "
            "`python -m dt_playground pretrain --stitch`."
        ) from None


def _card(data: str, method: str) -> dict:
    try:
        return json.loads((folder(data, method) / "card.json").read_text())
    except (OSError, ValueError):
        raise PlaygroundError(
            f"The stitching lab's {data} {LABELS[method]} card is missing: "
            "rebuild it with `python -m dt_playground pretrain --stitch`."
        ) from None


def check_inputs(data, seed, history, context_len: int = 20) -> tuple[str, int, int]:
    """The tab's inputs, validated: a dataset name, a seed in 0..2^31-1 and a history
    length in 1..K. Anything else is a `PlaygroundError` that says what to give."""
    try:
        data = datasets.check_data(data)
    except ValueError as exc:
        raise PlaygroundError(str(exc)) from None

    def whole(x, name: str, lo: int, hi: int) -> int:
        ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
        if not ok or not np.isfinite(x) or int(x) != x or not lo <= int(x) <= hi:
            raise PlaygroundError(f"The {name} must be a whole number from {lo} to {hi}.")
        return int(x)

    return data, whole(seed, "seed", 0, MAX_SEED), whole(history, "history length", 1, context_len)


def replay(seed: int, actions) -> Trace:
    """The maze episode of ``actions`` from reset seed ``seed``, as a `Trace`."""
    env = maze.StitchMaze()
    env.reset(seed=int(seed))
    rewards, term = [], False
    for a in actions:
        _, r, term, _, _ = env.step(int(a))
        rewards.append(r)
        if term:
            break
    n = len(rewards)
    return Trace(
        maze.ENV_ID,
        int(seed),
        0.0,
        np.asarray(actions[:n], dtype=np.int64),
        np.asarray(rewards, np.float64),
        np.zeros(n),
        bool(term),
    )


def path_cells(trace: Trace) -> list[tuple[int, int]]:
    """The cells an episode stands on, from its reset cell to its last."""
    env = maze.StitchMaze()
    env.reset(seed=int(trace.seed))
    cells = [env.cell]
    for a in trace.actions:
        env.step(int(a))
        cells.append(env.cell)
    return cells


def maze_figure(
    heat: np.ndarray, paths: dict[str, list[tuple[int, int]]], title: str = ""
) -> go.Figure:
    """The maze: walls dark, the data's visits as a heat map (log scale), each
    method's path a named line (slightly offset so overlapping paths stay visible),
    start cells and goal marked."""
    z = np.log1p(np.asarray(heat, np.float64))
    z[maze.WALLS] = np.nan
    fig = go.Figure(
        go.Heatmap(
            z=z,
            colorscale="Greys",
            showscale=False,
            name="data visits",
            hovertemplate="row %{y}, col %{x}<extra>data visits</extra>",
        )
    )
    walls = np.where(maze.WALLS, 1.0, np.nan)
    fig.add_trace(
        go.Heatmap(
            z=walls,
            colorscale=[[0, "#2e3440"], [1, "#2e3440"]],
            showscale=False,
            name="walls",
            hoverinfo="skip",
        )
    )
    starts = np.array(maze.START_CELLS)
    fig.add_trace(
        go.Scatter(
            x=starts[:, 1],
            y=starts[:, 0],
            mode="markers",
            name="start cells",
            marker={"symbol": "square-open", "size": 22, "color": "#5e81ac"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[maze.GOAL[1]],
            y=[maze.GOAL[0]],
            mode="markers+text",
            name="goal",
            text=["G"],
            textposition="middle center",
            marker={"symbol": "square", "size": 26, "color": "#a3be8c"},
        )
    )
    for k, (method, cells) in enumerate(paths.items()):
        off = (k - (len(paths) - 1) / 2) * 0.09
        c = np.array(cells, np.float64)
        fig.add_trace(
            go.Scatter(
                x=c[:, 1] + off,
                y=c[:, 0] + off,
                mode="lines+markers",
                name=LABELS[method],
                line={"color": COLOURS[method], "width": 3},
                marker={"size": 5},
            )
        )
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    fig.update_layout(
        template="plotly_white",
        height=380,
        title={"text": two_line_title(title), "x": 0.02, "font": {"size": 15}},
        margin={"l": 10, "r": 10, "t": 56, "b": 10},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
    )
    return fig


def table_rows(data: str, history: int) -> list[list]:
    """The success table from the shipped cards; the DT's row at ``history`` (its card's
    history sweep) beside its full context when they differ."""
    rows = []
    for m in METHODS:
        c = _card(data, m)
        tgt = "-" if m in ("pbc", "offline_rl") else f"{c['target']:g}"
        if m == "dt":
            K = int(c["history"])
            rows.append(
                [f"DT (history {K})", round(c["success"], 2), round(c["return_mean"], 1), tgt]
            )
            if history != K:
                s = c.get("history_sweep", {}).get(str(history))
                rows.append(
                    [f"DT (history {history})", None if s is None else round(s, 2), "-", tgt]
                )
            continue
        rows.append([LABELS[m], round(c["success"], 2), round(c["return_mean"], 1), tgt])
    return rows


def explanation(data: str) -> str:
    """Three sentences on why DT fails here (or not) and why the fixes work, with the
    measured card numbers."""
    s = {m: _card(data, m)["success"] for m in METHODS}
    if data == "halves":
        return (
            "No episode in `halves` runs from a start cell to the goal: from the start the "
            "data shows only the prize (return up to 7) and the walk to the middle that ends "
            "in the pit (about -8), so a DT asked for more plays the prize, and asked for "
            f"-8 follows the walk into the pit (DT success {s['dt']:.0%}; %BC, which copies "
            f"the best episodes that begin in another room, {s['pbc']:.0%}). "
            "The offline RL table backs the goal's value up through the middle cell, where "
            "the two halves meet, and so joins *start -> middle* to *middle -> goal* "
            f"({s['offline_rl']:.0%}). "
            "QDT relabels the DT's returns-to-go with those values, so its data now says that "
            f"the walk to the middle is worth 13-15 from the start ({s['qdt']:.0%})."
        )
    return (
        "In `random-walks` about 4% of the random walks reach the goal from a start cell, "
        "but only 0.4% with a higher return than the prize's (7): whole good trajectories exist, "
        "as in the DT paper's graph toy, yet far fewer of them "
        f"(DT success here {s['dt']:.0%}; a DT twice as wide and as deep, trained for twice the "
        "steps, 7–8 times the CPU, reached the goal in half of the trial episodes). "
        f"%BC clones the best tenth of the walks ({s['pbc']:.0%}) and the offline RL table "
        f"finds the shortest known path ({s['offline_rl']:.0%}). "
        f"QDT relabels with the table's values ({s['qdt']:.0%}) and, at the lab's size, does "
        "no better than the DT."
    )


def _video(trace: Trace, video_path=None) -> str | None:
    """The DT's episode as an MP4 at ``video_path`` (the app passes a session's bounded
    video path; default: a fresh name under the temp folder)."""
    from dt_playground.media.replay import render_trace

    if video_path is None:
        out = Path(tempfile.gettempdir()) / "dtp-stitch"
        out.mkdir(parents=True, exist_ok=True)
        video_path = out / f"stitch-dt-{uuid.uuid4().hex[:12]}.mp4"
    return str(render_trace(trace, Path(video_path)).path)


@functools.lru_cache(maxsize=16)
def _loaded(path: str):
    from dt_playground.checkpoints.checkpoint import load_checkpoint

    return load_checkpoint(path)


@functools.lru_cache(maxsize=4)
def _table(path: str):
    from dt_playground.stitch import dp

    return dp.load(path)[0]


def warm_up() -> None:
    """Load every shipped lab model into this process's caches (the first
    `stitching_view` otherwise pays ~2 s for loading and torch's first calls)."""
    from dt_playground.stitch import dp
    from dt_playground.stitch.lab import play_checkpoint

    for data in datasets.DATA_NAMES:
        for m in METHODS:
            if m == "offline_rl":
                dp.play(_table(str(folder(data, m))), maze.ENV_ID, [0])
            else:
                play_checkpoint(_loaded(str(folder(data, m))), 0.0, [0])


def _title(data: str, seed: int) -> str:
    return f"Each method's path from one start cell ({data}, seed {seed})"


def stitching_view(data: str, seed: float, history: float, video_path=None) -> StitchView:
    """Play DT (with ``history`` steps of context), %BC, the offline RL table and QDT
    once from reset seed ``seed`` on dataset ``data``'s shipped checkpoints."""
    from dt_playground.stitch import dp
    from dt_playground.stitch.lab import play_checkpoint

    K = int(_card(data, "dt")["history"]) if data in datasets.DATA_NAMES else 20
    data, seed, history = check_inputs(data, seed, history, K)
    lab = _lab()["data"].get(data)
    if lab is None:
        raise PlaygroundError(f"The stitching lab has no {data} results yet.")
    traces = {}
    for m in METHODS:
        if m == "offline_rl":
            traces[m] = dp.play(_table(str(folder(data, m))), maze.ENV_ID, [seed])[0]
            continue
        ck = _loaded(str(folder(data, m)))
        traces[m] = play_checkpoint(
            ck, _card(data, m).get("target", 0.0), [seed], history if m == "dt" else None
        )[0]
    paths = {m: path_cells(t) for m, t in traces.items()}
    fig = maze_figure(np.array(lab["heat"]), paths, _title(data, seed))
    return StitchView(
        fig, _video(traces["dt"], video_path), table_rows(data, history), explanation(data)
    )


def arrival_view(data: str = "halves", video_path=None) -> StitchView:
    """The tab's first state, from shipped files only (no model is run): the paths of
    the first card seed, replayed from the actions stored in ``lab.json``."""
    data, _, _ = check_inputs(data, 0, 1)
    lab = _lab()["data"].get(data)
    if lab is None:
        raise PlaygroundError(f"The stitching lab has no {data} results yet.")
    arrival = lab["arrival"]
    seed = int(arrival["seed"])
    traces = {m: replay(seed, arrival["actions"][m]) for m in METHODS}
    fig = maze_figure(
        np.array(lab["heat"]), {m: path_cells(t) for m, t in traces.items()}, _title(data, seed)
    )
    K = int(_card(data, "dt")["history"])
    return StitchView(fig, _video(traces["dt"], video_path), table_rows(data, K), explanation(data))
