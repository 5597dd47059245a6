"""The app's longer texts: the About tab and the one-line captions under plots.

Kept apart from the layout so `app.py` stays wiring, and so the wording can be read
(and reviewed) in one place."""

ABOUT = """
### What you are looking at
A **Decision Transformer** (Chen et al., 2021) treats control as sequence modelling. An episode
is written as a sequence of (return-to-go, state, action) tokens, and a GPT-style causal
transformer learns to predict each action from the recent past: the last *K* steps.

**The return-to-go is a prompt.** Like an LLM told "write a great essay", the model is told
"from here, collect *R* more reward". At each step the prompt shrinks by the reward just
received. Ask for a low return and a well-trained DT plays like the poor episodes in its
data; ask for a high one and it plays like the best.

**What it cannot do.** The model imitates what is in its data, conditioned on outcome. Ask
for more than any episode ever achieved and it saturates near the best behaviour it has seen
(the *Dataset* tab shows that ceiling). And unlike value-based offline RL it does not
reliably *stitch* good pieces of different bad episodes into a better one: it learns which
behaviour went with which outcome, not how to improve on it.

**Baselines.** *BC* clones every action in the data regardless of outcome; *%BC* clones only
the best 10% of episodes. If DT at its top target is no better than %BC, return conditioning
bought nothing but control.

### DT beside offline RL, live
| | Decision Transformer | Offline RL (IQL) |
|---|---|---|
| Learns | the actions that went with an outcome | a value function (Bellman backups) |
| Stitching | no: it replays what it saw | yes: values cross shared states (*Stitching*) |
| Conditioning | on any return you ask for | fixed: one objective, the most return |
| Live here | each env's `-dt` | its `-iql`: a flat line in **Sweep**, a bar in **Compare** |

**Check with critic.** A DT with a critic (IQL's value nets, trained on the DT's own data)
can be checked: at each step the DT proposes actions for several returns-to-go around the
one asked for, and the critic keeps the one whose value matches the return still asked for
(Doctor, 2025), or the highest-valued one for `best` (QT, 2024). Tick *check with critic* in
Play, Target grid or Sweep; the return-to-go plot then shows what the critic expected.

All checkpoints were trained by this project on datasets generated from shipped behaviour
policies and seeds; nothing is downloaded.
"""

TRAIN_NOTE = (
    "Train a small model on this environment's dataset (every env's data collects in under a "
    "minute; the first job of an env collects it, as its own stage). One job runs at a time "
    "on the server; others wait in the queue with their position shown. The checkpoint "
    "belongs to this browser session only, and is selected when it is done."
)

HEADER = (
    "# DT Playground\nPick an environment, a checkpoint and a target return; watch the "
    "Decision Transformer try to collect exactly that much reward."
)
REPROMPT_NOTE = (
    "Rows of `step:target`. At each step the model is prompted anew: its return-to-go is "
    "reset to the new target, whatever it has collected. `best` lets a checkpoint with a "
    "return head pick its own."
)
GRID_NOTE = (
    "One seed, several targets, played side by side in one batched rollout. Leave the "
    "targets empty for the dataset's p10, median and max, and one beyond anything in the data."
)
COMPARE_NOTE = (
    "Every pretrained checkpoint of this environment on the same seeds: DT at its dataset's "
    "best return, BC and %BC, and DTs with other context lengths K (how many recent steps "
    "the model sees) where they exist, and IQL (offline RL: its objective is fixed, so no "
    "target is asked of it)."
)

STITCH_NOTE = (
    "**What a DT cannot do: stitch.** In `halves`, one family of episodes goes from the start "
    "to the middle of the maze and then astray; another starts elsewhere, passes the same "
    "middle cell and reaches the goal. No episode runs from the start to the goal. A DT only "
    "reproduces behaviour that went with a return in its data; offline RL that backs values up "
    "through the middle cell joins the two halves, and QDT (a DT trained on returns relabelled "
    "with those values) inherits part of that. Each method plays from the same start cell."
)
STITCH_HEADERS = ["method", "success (card seeds)", "mean return", "target"]

CAPTIONS = {
    "rtg": "How to read it: the solid line is the return the model was asked for at each "
    "step, the dashed one what the episode actually went on to collect from there; close "
    "lines mean it kept its promise. A shaded band is the model's own forecast of the "
    "return still to come, from its p10 to its p90 (8 guesses in 10 fall inside); a "
    "dotted line, when checked, is what the critic expected from each chosen action.",
    "reward": "How to read it: reward collected so far against the target (dashed). Ending "
    "on the dashed line means the model delivered exactly the return it was asked for.",
    "grid": "How to read it: one line per tile, the same seed at each target; lines that fan "
    "out in the order of their targets are return conditioning at work.",
    "sweep": "How to read it: each point is a target's mean return over seeds; on the diagonal "
    "the model gets what it is asked for; the green band is the data's return range, "
    "the orange one its top 10%. Flat lines (BC, %BC, IQL) ignore the target.",
    "attention": "How to read it: each row is a block (and head) of the transformer; dark cells "
    "are the tokens, oldest on the left, that the action at this step attended to.",
    "loss": "How to read it: the training loss per step; it should fall fast, then flatten.",
    "dataset": "How to read it: the returns and lengths of the episodes the checkpoint learned "
    "from, and the behaviour policies that played them; a DT can only reproduce what "
    "is in here.",
    "stitch": "How to read it: the shading is how often the dataset's episodes visit each cell; "
    "each line is one method's path from the same start cell (S) towards the goal (G).",
    "compare": "How to read it: bars are mean ± std return at each checkpoint's best target; the "
    "dashed line is the best episode in the data.",
}

# One line under a control, where its term is used (the About tab explains at length).
INFO = {
    "target": "Return-to-go: the reward the model is asked to collect in the episode.",
    "best": "At each step the model samples a high return from its own forecast "
    "(Multi-Game Decision Transformers §3.3).",
    "grid": "p10: the return that 10% of the dataset's episodes stay below (p90: 90%); "
    "max: its best episode.",
    "K": "How many recent steps (return-to-go, state, action) the model sees at once.",
}

# System fonts: Gradio 6.31's bundled "Source Sans 3" holds only the glyphs "A" and "B".
FONTS = [
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Noto Sans",
    "Liberation Sans",
    "DejaVu Sans",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
]

APP_CSS = """
/* Phone: controls stack full width; tabs wrap instead of hiding behind an overflow menu. */
@media (max-width: 640px) {
  .gradio-container { padding: 6px !important; }
  .tab-container, [role="tablist"] { flex-wrap: wrap !important; overflow: visible !important; }
  [role="tablist"] button { flex: 1 1 auto; }
  .row, .form { flex-direction: column !important; }
  .row > *, .form > * { width: 100% !important; min-width: 0 !important; }
  /* The first screen holds the Play button and the start of the result: a compact header,
     the two pickers side by side, tighter tabs, seed and switches two to a line. */
  .dtp-header h1 { font-size: 1.3rem !important; margin: 0 !important; }
  .dtp-header p { font-size: 0.85rem !important; margin: 2px 0 0 !important; line-height: 1.3; }
  .dtp-pickers, .dtp-pickers .form { flex-direction: row !important;
    flex-wrap: nowrap !important; }
  .dtp-pickers .form > * { flex: 1 1 0 !important; width: auto !important;
    padding: 6px !important; }
  .dtp-pickers .wrap { padding-left: 6px !important; padding-right: 0 !important; }
  .dtp-pickers .wrap-inner input { font-size: 0.9rem; }
  [role="tablist"] button { padding: 4px 6px !important; font-size: 0.9rem; }
  .dtp-play-controls .form { display: grid !important;
    grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }
  .dtp-play-controls .form > :first-child, .dtp-play-controls .form > :last-child {
    grid-column: 1 / -1; }
  .dtp-play-controls .form > * { width: auto !important; }
  /* No empty cell beside a lone control: on continuous envs "Sample actions" is hidden
     and the seed takes its line; the critic's box always takes its own. */
  .dtp-play-controls .form > .dtp-seed:not(:has(+ .dtp-sampled)),
  .dtp-play-controls .form > .dtp-check { grid-column: 1 / -1; }
  .dtp-play-controls .form > .dtp-check { margin: 0 !important; justify-self: stretch; }
  .dtp-play-controls [data-testid="block-info"], .dtp-play-controls .info,
  .dtp-play-controls .info-text { font-size: 0.75rem !important; }
  .dtp-marks p { font-size: 0.8rem !important; margin: 0 !important; }
  /* A checkbox's info line is a div.info-text (Gradio 6); the critic's is desktop-only. */
  .dtp-check .info-text { display: none !important; }
}
.caption p { font-size: 0.85rem !important; opacity: 0.8; margin-top: -4px; }
/* The dropdown's arrow sits beside the text, never over it. */
.wrap-inner input { padding-right: 28px !important; text-overflow: ellipsis; }
/* Videos fill their column. */
video { width: 100% !important; height: auto !important; max-height: 70vh; }
/* A media label ("Episode", "Tiles") sits above its content, never over it. */
label[data-testid="block-label"].float { position: static !important; margin: 0 0 4px !important; }
/* Plot toolbars appear on hover or tap only, where they would otherwise cover the title. */
.js-plotly-plot .modebar-container { visibility: hidden; }
.js-plotly-plot:hover .modebar-container,
.js-plotly-plot:focus-within .modebar-container { visibility: visible; }
/* Tables scroll inside their box, the first column staying in view. */
.virtual-row > .body-cell:first-child, .header-table th:first-child {
  position: sticky !important; left: 0; z-index: 3;
  background: var(--table-odd-background-fill, var(--background-fill-primary)); }
/* Dark mode: plots (transparent, see media/plots) take the page's text and grid colours. */
.dark .js-plotly-plot .main-svg text { fill: var(--body-text-color) !important; }
.dark .js-plotly-plot .gridlayer path, .dark .js-plotly-plot .zerolinelayer path {
  stroke: rgba(255, 255, 255, 0.15) !important; }
.dark .js-plotly-plot .legend .bg { fill: transparent !important; }
/* Keyboard focus is visible on every input and button. */
input:focus-visible, textarea:focus-visible, select:focus-visible, button:focus-visible,
[role="tab"]:focus-visible, [role="option"]:focus-visible {
  outline: 2px solid var(--color-accent, #f97316) !important; outline-offset: 2px; }
"""
