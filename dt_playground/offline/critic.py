"""A DT's critic: IQL's nets, trained on the DT's own data, kept in ``<dt>/critic/``.

The checked DT (`rollout/checked.py`) proposes ``n`` actions per step, one per
return-to-go in a band of ``spread`` (a fraction of the data's return range) around the
one asked for, and the critic picks:

- for a numeric target, the action whose G(s, a, t), the undiscounted return the data
  went on to collect after such a step, is closest to the return still asked for
  (Doctor, Pei et al. 2025);
- for target `best`, the action of highest min(Q1, Q2)(s, a) (QT, Hu et al. 2024).

``check`` in its config.json holds ``n`` and ``spread``, chosen on trial seeds per env
(docs/critic.md), and three switches: ``actor`` (IQL's own action joins the candidates
where a row plays `best`), ``actor_asks`` (for numeric asks too) and ``q_for_best``
(false: `best` plays the DT's own action). After the IQL run, G is refit on the DT's
own rollouts (`training/critic_refit.py`); ``refit`` in config.json records how.
A critic must see states and returns exactly as its DT does: a folder with other
normalisation statistics, another env or other sizes is refused before it is used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dt_playground.data.summary import is_number
from dt_playground.errors import CheckpointError
from dt_playground.offline.store import CRITIC_DIR, IQLCheckpoint, load_iql, save_iql

MAX_CANDIDATES = 64  # the checked DT's forward is (episodes x n) windows
MAX_SPREAD = 2.0  # in data return ranges; the support ends well before
HOW_TO_MAKE = "python -m dt_playground critic --checkpoint {}"
MAX_REFIT_SEEDS = 50  # critic-rollout seeds a target for G's refit: 400 episodes at most


CHECK_KEYS = ("n", "spread", "actor", "actor_asks", "q_for_best")


@dataclass(frozen=True)
class CheckSettings:
    """How the checked DT proposes candidates and picks among them (config.json's
    ``check``). Only ``n`` and ``spread`` are required; the rest default as below, so a
    critic written before a key existed reads as it always did."""

    n: int = 5  # candidate returns-to-go (the asked one among them when n is odd)
    spread: float = 0.1  # half-width of the band, as a fraction of the data's return range
    actor: bool = False  # IQL's own action as one more candidate where a row plays `best`
    actor_asks: bool = False  # ... and for numeric asks too (judged by G, as the DT's)
    q_for_best: bool = True  # `best` keeps the highest Q; false: the DT's own action

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, raw) -> CheckSettings:
        """``check`` from config.json (or a caller), refused with a sentence if bad."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - set(CHECK_KEYS):
            raise CheckpointError(
                "critic config.json 'check' must hold only " + ", ".join(CHECK_KEYS)
            )
        n, spread = raw.get("n", cls.n), raw.get("spread", cls.spread)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CANDIDATES:
            raise CheckpointError(
                f"The critic's candidate count n must be an integer in "
                f"[1, {MAX_CANDIDATES}], got {n!r:.40}"
            )
        if not is_number(spread) or not 0 <= spread <= MAX_SPREAD:
            raise CheckpointError(
                f"The critic's spread must be a finite number in "
                f"[0, {MAX_SPREAD}], got {spread!r:.40}"
            )
        flags = {k: raw.get(k, getattr(cls, k)) for k in CHECK_KEYS[2:]}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise CheckpointError(
                    f"The critic's {key!r} must be true or false, got {value!r:.40}"
                )
        return cls(int(n), float(spread), **flags)


RHO_GOAL = 0.95  # the goal for the checked DT's Spearman rho (docs/critic.md)


TIE = 0.01  # a relative difference this small in an error or a `best` is a tie


def default_of(card: dict) -> str:
    """ "checked" where checking is at least as good on every measure and better on one,
    else "unchecked": the better of the two is each env's default. At least as good: the
    mean error to the asked return within 1% (or lower), rho within 0.01 of the unchecked
    DT's (or at or above the goal's 0.95), `best` within 1% (or higher). Better: a lower
    error, or a `best` more than 1% higher."""
    if card.get("abs_err_plain") is None:
        return "checked"
    err_c, err_p = card["abs_err_checked"], card["abs_err_plain"]
    rho = card["spearman_checked"] or 0
    rho_ok = rho >= (card["spearman_plain"] or 0) - 0.01 or rho >= RHO_GOAL
    best_c, best_p = card.get("best_checked"), card.get("best_plain")
    best_ok, best_better = True, False
    if best_c is not None and best_p is not None:  # (DTs without a return model: none)
        best_ok = best_c >= best_p - TIE * abs(best_p)
        best_better = best_c > best_p + TIE * abs(best_p)
    better = err_c < err_p or best_better
    ok = err_c <= err_p * (1 + TIE) and rho_ok and best_ok
    return "checked" if ok and better else "unchecked"


def critic_dir(dt_dir: Path | str) -> Path:
    return Path(dt_dir) / CRITIC_DIR


def write_critic(
    dt_dir: Path | str,
    model,
    dt_config: dict,
    base: dict,
    check: CheckSettings,
    support: tuple[float, float],
) -> Path:
    """Save ``model`` (an `IQL`) as the critic of the DT in ``dt_dir``. ``base``: the
    config keys of its training run (`train_iql.base_config`); the DT's statistics must
    be the run's, to the bit. ``support``: the lowest and highest return-to-go in the
    data (raw units): candidates stay inside it."""
    for key in ("state_mean", "state_std", "return_scale"):
        if not np.array_equal(np.asarray(base[key]), np.asarray(dt_config[key])):
            raise CheckpointError(
                f"The critic's {key} differs from its DT's: train it on the DT's own dataset"
            )
    config = {**base, "algo": "critic", "check": check.to_dict(), "support": list(support)}
    return save_iql(critic_dir(dt_dir), model, config)


def load_critic(dt_dir: Path | str, dt_config: dict) -> tuple[IQLCheckpoint, CheckSettings]:
    """The critic of the DT in ``dt_dir`` (config ``dt_config``) and its check settings;
    refused with how to make one when missing, or with the mismatch when it does not fit."""
    folder = critic_dir(dt_dir)
    if dt_config.get("algo") != "dt":
        raise CheckpointError(
            f"Checking needs a DT: a {dt_config.get('algo')!r:.20} "
            "checkpoint has no return input to propose candidates with"
        )
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{Path(dt_dir).name} has no critic. Make one with: "
            + HOW_TO_MAKE.format(Path(dt_dir).name)
        )
    try:
        ck = load_iql(folder, dt_config.get("env_id"), kind="critic")
    except CheckpointError as exc:
        raise CheckpointError(f"The critic (critic/) is invalid: {exc}") from None
    same = all(
        ck.config[k] == dt_config.get(k) for k in ("state_mean", "state_std", "return_scale")
    )
    if not same:
        raise CheckpointError(
            "The critic (critic/) normalises states or returns differently "
            "from its DT: it must be trained on the DT's own data"
        )
    support = ck.config.get("support")
    if not (
        isinstance(support, list)
        and len(support) == 2
        and all(map(is_number, support))
        and support[0] <= support[1]
    ):
        raise CheckpointError("The critic's 'support' must be two finite numbers, low then high")
    return ck, CheckSettings.parse(ck.config.get("check"))


def validate_folder(path: Path | str, allow_iql: bool = True):
    """Check any checkpoint folder as a stranger's (an upload): an IQL folder (unless not
    ``allow_iql``: then it is refused as not a DT/BC/%BC), or a DT/BC/%BC one with its
    return model and, when it has one, its critic. Returns the loaded checkpoint; refuses
    with a `CheckpointError` naming the problem."""
    from dt_playground.checkpoints.checkpoint import load_checkpoint
    from dt_playground.checkpoints.layout import read_json

    path = Path(path)
    config = read_json(path / "config.json", "The checkpoint's config")
    if allow_iql and config.get("algo") == "iql":
        return load_iql(path)
    ck = load_checkpoint(path)
    if (critic_dir(path) / "config.json").exists() or critic_dir(path).is_dir():
        load_critic(path, ck.config)
    return ck


def attach_check(dt_dir: Path | str, check: CheckSettings) -> None:
    """Store the candidate settings chosen on trial seeds in the critic's config.json
    (the weights stay as they are)."""
    from dt_playground.atomic import write_json_atomic
    from dt_playground.checkpoints.layout import read_json

    path = critic_dir(dt_dir) / "config.json"
    config = read_json(path, "The critic's config")
    config["check"] = CheckSettings.parse(check.to_dict()).to_dict()
    write_json_atomic(path, config)
