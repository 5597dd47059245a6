"""Every range of environment reset seeds, in one place.

Each use owns a block of seeds that no other use touches, so a number is never
reported on seeds that chose the model, the behaviour or the budget behind it:

| range | first seed | what uses it |
|---|---:|---|
| dataset collection | 0 | episode ``i`` of a dataset resets with ``DATASET_SEED + i`` |
| training-time evaluation | 500 000 | `train`'s periodic evaluation (model selection) |
| model cards | 1 000 000 | `pretrain`'s cards; `evaluate`/`sweep`'s default, to reproduce a card |
| trials | 1 500 000 | choosing budgets and hyperparameters (never the card seeds) |
| app defaults | 2 000 000 | the app's sweep and compare tabs |
| ARS grading | 3 000 000 | grading ARS iterates into behaviour snapshots |
| critic rollouts | 3 500 000 | the episodes a critic's G is refit on (`training/critic_refit.py`) |

The ARS snapshots shipped in ``pretrained/experts`` were graded on seeds
1 000 000.. before these ranges were separated; each ``snapshots.json``
records its ``eval_seed``, and the datasets depend only on those files.
"""

from __future__ import annotations

SEED_BLOCK = 500_000  # every range holds this many seeds

DATASET_SEED = 0
TRAIN_EVAL_SEED = 500_000
CARD_SEED = 1_000_000
TRIAL_SEED = 1_500_000
APP_SEED = 2_000_000
ARS_GRADING_SEED = 3_000_000
CRITIC_SEED = 3_500_000

RANGES: dict[str, range] = {
    name: range(start, start + SEED_BLOCK)
    for name, start in (
        ("dataset", DATASET_SEED),
        ("train_eval", TRAIN_EVAL_SEED),
        ("card", CARD_SEED),
        ("trial", TRIAL_SEED),
        ("app", APP_SEED),
        ("ars_grading", ARS_GRADING_SEED),
        ("critic", CRITIC_SEED),
    )
}


def seed_range(name: str, n: int) -> list[int]:
    """The first ``n`` seeds of range ``name``; refuses ``n`` beyond the block, where
    the seeds would spill into the next use's range."""
    r = RANGES[name]
    if not 0 <= n <= len(r):
        raise ValueError(f"{n} seeds do not fit the {name!r} range ({len(r)} seeds)")
    return list(r[:n])
