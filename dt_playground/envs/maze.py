"""StitchMaze-v0: a small grid maze where the best path exists only in pieces.

Four corridors meet at one junction cell, the *middle* ``M``::

    ###########
    #BB...#####      B: where the `halves` data's good episodes begin
    #BB##.#####
    #####.#####
    #O..<M...G#      west: over a ledge (<) to a pit O; east: the goal G
    #####.#####
    ####SSS####      S: where every real episode begins (the reset seed picks the cell)
    ##$.SSS####      $: a small prize near S
    ###########

The agent moves up, right, down or left (into a wall: it stays put). Every
step costs 1 (`STEP_REWARD`). Three cells end the episode: the goal (the step
onto it earns `GOAL_REWARD`), the prize (`PRIZE_REWARD`) and the pit (an
ordinary -1: the episode is simply over). The ledge ``<`` is one-way: the
agent can step down onto it from M but never climb back east, so the west
corridor leads only to the pit. Success means reaching the goal
(`reached_goal`). Episodes are cut at `MAX_STEPS`. The observation is the
agent's (row, col) as two floats: a vector, and also an exact cell index, so
the dataset's empirical MDP (stitch/dp.py) is a table.

Why this shape: from S the best return is S -> M -> G (6-8 steps, return
13-15); the prize is worth at most 7 from S. Behaviour data can reach M from
S, and G from M, without any one episode doing both. The dynamics are
deterministic (no slip): what an offline method gets right here it gets right
by stitching, not by luck.

Only gymnasium and numpy are imported: the env can be made without the model stack.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "StitchMaze-v0"
MAX_STEPS = 40
GOAL_REWARD = 20.0
PRIZE_REWARD = 8.0
STEP_REWARD = -1.0
CELL_PX = 32  # frames are 11 x 9 cells of 32 px: 352 x 288

LAYOUT = (
    "###########",
    "#BB...#####",
    "#BB##.#####",
    "#####.#####",
    "#O..<M...G#",
    "#####.#####",
    "####SSS####",
    "##$.SSS####",
    "###########",
)
# up, right, down, left as (d_row, d_col)
MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)
ACTION_NAMES = ("up", "right", "down", "left")


RIGHT = 1
LEDGE_CHAR = "<"  # a one-way cell: entered from the east, never left eastward


def cells(char: str) -> list[tuple[int, int]]:
    """The (row, col) cells marked ``char`` in `LAYOUT`, row-major."""
    return [(r, c) for r, row in enumerate(LAYOUT) for c, ch in enumerate(row) if ch == char]


WALLS = np.array([[ch == "#" for ch in row] for row in LAYOUT])
HEIGHT, WIDTH = WALLS.shape
START_CELLS = cells("S")
B_CELLS = cells("B")
MIDDLE = cells("M")[0]
GOAL = cells("G")[0]
LEDGE = cells(LEDGE_CHAR)[0]
PIT = cells("O")[0]
PRIZE = cells("$")[0]

_COLOURS = {
    "wall": (46, 52, 64),
    "floor": (236, 239, 244),
    "start": (163, 190, 230),
    "goal": (120, 200, 120),
    "middle": (235, 203, 139),
    "ledge": (94, 60, 40),
    "pit": (20, 20, 24),
    "prize": (235, 190, 60),
    "agent": (191, 50, 60),
    "grid": (200, 205, 215),
}


def step_cell(cell: tuple[int, int], action: int) -> tuple[int, int]:
    """Where ``action`` leads from ``cell`` (a wall, the border or up the ledge: nowhere)."""
    if action == RIGHT and tuple(cell) == LEDGE:
        return (int(cell[0]), int(cell[1]))
    r, c = int(cell[0] + MOVES[action][0]), int(cell[1] + MOVES[action][1])
    if not (0 <= r < HEIGHT and 0 <= c < WIDTH) or WALLS[r, c]:
        return (int(cell[0]), int(cell[1]))
    return (r, c)


def distances(target: tuple[int, int]) -> np.ndarray:
    """Shortest-path steps from every cell to ``target`` (-1: walls, and cells that
    cannot reach it), by BFS over the moves that lead into the frontier (the ledge
    makes moves one-way)."""
    dist = np.full(WALLS.shape, -1, dtype=np.int64)
    dist[target] = 0
    frontier = [target]
    open_cells = [(r, c) for r in range(HEIGHT) for c in range(WIDTH) if not WALLS[r, c]]
    while frontier:
        nxt = []
        for cell in frontier:
            for n in open_cells:
                if dist[n] < 0 and any(step_cell(n, a) == cell for a in range(4)):
                    dist[n] = dist[cell] + 1
                    nxt.append(n)
        frontier = nxt
    return dist


def background(px: int = CELL_PX) -> np.ndarray:
    """The maze without the agent, (H*px, W*px, 3) uint8: walls, start cells, middle, goal."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for r, row in enumerate(LAYOUT):
        for c, ch in enumerate(row):
            key = {
                "#": "wall",
                "S": "start",
                "G": "goal",
                "M": "middle",
                "O": "pit",
                "$": "prize",
            }.get(ch, "floor")
            img[r, c] = _COLOURS[key]
    big = np.repeat(np.repeat(img, px, 0), px, 1)
    big[::px, :] = _COLOURS["grid"]
    big[:, ::px] = _COLOURS["grid"]
    r, c = LEDGE  # the ledge: a thick bar on its east edge (no way back up)
    big[r * px : (r + 1) * px, (c + 1) * px - px // 6 : (c + 1) * px] = _COLOURS["ledge"]
    return big


def draw_agent(frame: np.ndarray, cell: tuple[int, int], px: int = CELL_PX) -> np.ndarray:
    """``frame`` with the agent drawn as a disc in ``cell`` (in place; also returned)."""
    yy, xx = np.mgrid[0:px, 0:px]
    disc = (yy - px / 2 + 0.5) ** 2 + (xx - px / 2 + 0.5) ** 2 <= (px * 0.36) ** 2
    r, c = cell
    tile = frame[r * px : (r + 1) * px, c * px : (c + 1) * px]
    tile[disc] = _COLOURS["agent"]
    return frame


class StitchMaze(gym.Env):
    """The stitching maze (module docstring). ``reset(seed=s)`` puts the agent on one of
    the six start cells, chosen by the seed; ``options={"start": (row, col)}`` starts
    it on any open cell instead (how the `halves` data's other family is recorded)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 6}

    def __init__(self, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(
            0.0, float(max(HEIGHT, WIDTH) - 1), shape=(2,), dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(4)
        self.cell = START_CELLS[0]
        self._background = None

    def _obs(self) -> np.ndarray:
        return np.array(self.cell, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        start = (options or {}).get("start")
        if start is None:
            self.cell = START_CELLS[int(self.np_random.integers(len(START_CELLS)))]
        else:
            r, c = (int(x) for x in start)
            inside = 0 <= r < HEIGHT and 0 <= c < WIDTH
            if not inside or WALLS[r, c] or (r, c) in (GOAL, PIT, PRIZE):
                raise ValueError(f"start {start!r} is not an open cell of the maze")
            self.cell = (r, c)
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action must be 0..3, got {action!r}")
        self.cell = step_cell(self.cell, int(action))
        at_goal = self.cell == GOAL
        reward = {GOAL: GOAL_REWARD, PRIZE: PRIZE_REWARD}.get(self.cell, STEP_REWARD)
        ends = self.cell in (GOAL, PRIZE, PIT)
        return self._obs(), reward, ends, False, {"goal": at_goal}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._background is None:
            self._background = background()
        return draw_agent(self._background.copy(), self.cell)


def reached_goal(rewards, terminated: bool) -> bool:
    """Whether an episode with these ``rewards`` ended at the goal (not in the pit,
    nor on the prize, nor out of time): only the goal pays `GOAL_REWARD`."""
    return bool(terminated) and len(rewards) > 0 and float(rewards[-1]) == GOAL_REWARD


def register() -> None:
    """Register `ENV_ID` with gymnasium (once; importing twice is harmless)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:StitchMaze", max_episode_steps=MAX_STEPS)
