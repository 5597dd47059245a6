"""Does this clone rebuild the shipped zoo's data? ``pretrain --verify``.

Each shipped checkpoint records its dataset's content hash
(``config.json`` → ``dataset.sha256``, `episodes.dataset_sha256`). Here each
env's dataset is recollected from the shipped behaviour policies and its
recipe's seed into a temporary folder, read back, and hashed; nothing is
trained and nothing under ``pretrained/`` or the data root changes.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dt_playground.behaviour.collect import DATASETS, collect_dataset
from dt_playground.data.storage import load_episodes
from dt_playground.envs.episodes import dataset_sha256
from dt_playground.envs.registry import get_spec
from dt_playground.paths import pretrained_dir


@dataclass
class Verified:
    """One shipped checkpoint against its recollected dataset."""

    env_id: str
    checkpoint: str  # folder name under pretrained/
    episodes: int  # the dataset's episode count (from the checkpoint, else the recipe)
    shipped: str | None  # dataset.sha256 in its config.json; None: trained before hashes
    fresh: str | None  # hash of the recollected episodes; None: env not recollected
    # Without a hash, how many episode returns (config.json's dataset.returns, 3
    # decimals) the recollected data reproduces: a weaker check, but a telling one.
    returns_equal: int | None = None

    @property
    def status(self) -> str:
        if self.fresh is None:
            return "not collected"
        if self.shipped is None:
            if self.returns_equal is None:
                return "no hash yet"
            return f"no hash yet; returns equal in {self.returns_equal}/{self.episodes}"
        return "match" if self.shipped == self.fresh else "MISMATCH"


def shipped_datasets(root: Path | str | None = None) -> dict[str, list[tuple[str, dict]]]:
    """env id -> [(checkpoint name, its config.json ``dataset``)] for every checkpoint."""
    out: dict[str, list[tuple[str, dict]]] = {}
    base = Path(root or pretrained_dir())
    # Checkpoints, and the DTs' critics (``hopper-dt/critic``): trained on the same data.
    paths = sorted(base.glob("*/config.json")) + sorted(base.glob("*/critic/config.json"))
    for cfg_path in paths:
        cfg = json.loads(cfg_path.read_text())
        env_id = get_spec(cfg["env_id"]).env_id
        name = cfg_path.parent.relative_to(base).as_posix()
        out.setdefault(env_id, []).append((name, cfg.get("dataset") or {}))
    return out


def verify_datasets(
    env_ids: list[str], root: Path | str | None = None, log: Callable[[str], None] = print
) -> tuple[list[Verified], dict[str, float]]:
    """Recollect each env's dataset and compare it with every shipped checkpoint of
    that env. Returns the rows and, per env, the seconds collection took.

    A checkpoint trained on fewer episodes is compared with the same prefix (episode
    ``i`` depends only on the seed and ``i``). The hash is taken of the episodes as
    read back from the written Minari files, and must equal the in-memory one.
    """
    shipped = shipped_datasets(root)
    rows, seconds = [], {}
    for env_id in env_ids:
        spec = get_spec(env_id)
        recipe = DATASETS[spec.env_id]
        ckpts = shipped.get(spec.env_id, [])
        counts = {name: int(d.get("episodes") or recipe.episodes) for name, d in ckpts}
        n = max([recipe.episodes, *counts.values()])
        with tempfile.TemporaryDirectory(prefix="dtp-verify-") as tmp:
            t0 = time.perf_counter()
            path, eps = collect_dataset(spec.env_id, n, recipe.seed, root=tmp)
            seconds[spec.env_id] = time.perf_counter() - t0
            loaded, _, _ = load_episodes(path)
        if dataset_sha256(loaded) != dataset_sha256(eps):
            raise RuntimeError(
                f"{spec.env_id}: the dataset read back from disk hashes "
                "differently from the one collected; storage is broken"
            )
        log(f"  {spec.env_id}: collected {n} episodes in {seconds[spec.env_id]:.1f} s")
        for name, d in ckpts:
            fresh = dataset_sha256(eps[: counts[name]])
            row = Verified(spec.env_id, name, counts[name], d.get("sha256"), fresh)
            shipped_rets = d.get("returns")
            if row.shipped is None and isinstance(shipped_rets, list):
                row.returns_equal = sum(
                    isinstance(r, (int, float)) and abs(e.ret - r) < 1e-2
                    for e, r in zip(eps[: counts[name]], shipped_rets)
                )
            rows.append(row)
    return rows, seconds


def verify_table(rows: list[Verified], seconds: dict[str, float]) -> str:
    """The plain-text report ``pretrain --verify`` prints."""
    w = max([len("checkpoint")] + [len(r.checkpoint) for r in rows]) + 2  # names stay apart
    e = max([len("env")] + [len(r.env_id) for r in rows]) + 2
    lines = [f"{'checkpoint':<{w}}{'env':<{e}}{'episodes':>9}  {'shipped':<14}{'fresh':<14}status"]
    for r in rows:
        short = lambda h: "-" if h is None else h[:12]  # noqa: E731
        lines.append(
            f"{r.checkpoint:<{w}}{r.env_id:<{e}}{r.episodes:>9}  "
            f"{short(r.shipped):<14}{short(r.fresh):<14}{r.status}"
        )
    lines.append("")
    lines += [f"collect {env}: {s:.1f} s" for env, s in seconds.items()]
    missing = sum(r.shipped is None for r in rows)
    bad = sum(r.status == "MISMATCH" for r in rows)
    if missing:
        lines.append(
            f"{missing} checkpoint(s) have no dataset.sha256 yet (trained before "
            "hashes were recorded): retrain them with `pretrain` to record one."
        )
    if bad:
        lines.append(f"{bad} checkpoint(s) were trained on data this code no longer makes.")
    if rows and not (missing or bad):
        lines.append(f"All {len(rows)} checkpoint(s) match: this clone rebuilds their data.")
    return "\n".join(lines)
