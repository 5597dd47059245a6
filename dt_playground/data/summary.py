"""The training data's summary as a checkpoint carries it, typed and checked.

`config.json`'s ``dataset`` section (written by `data.windows.dataset_summary`) is read
into a `DatasetSummary`: the fields the app reads, each with its type checked,
so nothing downstream meets a string where it wants a number. Torch-free: the
page's first requests (slider ranges, dataset views) need no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from dt_playground.errors import CheckpointError


@dataclass
class DatasetSummary:
    """The training data's headline numbers, as config.json's ``dataset`` carries them
    (written by `data.windows.dataset_summary`). Every field is optional: a user's checkpoint
    may lack any of them."""

    dataset_id: str | None = None
    sha256: str | None = None
    episodes: int | None = None
    steps: int | None = None
    return_min: float | None = None
    return_max: float | None = None
    return_mean: float | None = None
    return_std: float | None = None
    return_p10: float | None = None
    return_p25: float | None = None
    return_median: float | None = None
    return_p75: float | None = None
    return_p90: float | None = None
    return_top10_mean: float | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    length_min: int | None = None
    length_mean: float | None = None
    length_max: int | None = None
    return_deciles: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    histogram: dict = field(default_factory=dict)  # {"counts": [...], "edges": [...]}
    behaviours: dict = field(default_factory=dict)  # level -> {episodes, return_mean, label}

    @classmethod
    def from_dict(cls, raw) -> DatasetSummary:
        """Keep the well-typed known fields; refuse ill-typed ones."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise CheckpointError("config.json 'dataset' must be an object")
        out = cls()
        for f in fields(cls):
            if f.name not in raw or raw[f.name] is None:
                continue
            v, where = raw[f.name], f"config.json 'dataset.{f.name}'"
            if f.name in ("dataset_id", "sha256"):
                if not isinstance(v, str) or len(v) > 200:
                    raise CheckpointError(f"{where} must be a short string")
            elif f.name in ("return_deciles", "returns", "lengths"):
                v = _numbers(v, where)
            elif f.name == "histogram":
                v = (
                    {
                        "counts": _numbers(v.get("counts"), where),
                        "edges": _numbers(v.get("edges"), where),
                    }
                    if isinstance(v, dict)
                    else None
                )
                if v is None or len(v["edges"]) != len(v["counts"]) + 1:
                    raise CheckpointError(f"{where} must have counts and one more edge")
            elif f.name == "behaviours":
                v = _behaviours(v, where)
            elif not is_number(v):
                raise CheckpointError(f"{where} must be a number, got {v!r:.40}")
            setattr(out, f.name, v)
        return out

    def as_dict(self) -> dict:
        """The fields that are set, as the plots and JSON replies take them."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) not in (None, [], {})
        }


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v, where: str, limit: int = 1_000_000) -> list[float]:
    if not isinstance(v, list) or len(v) > limit or not all(is_number(x) for x in v):
        raise CheckpointError(f"{where} must be a list of finite numbers")
    return v


def _behaviours(v, where: str) -> dict:
    if not isinstance(v, dict) or len(v) > 1000:
        raise CheckpointError(f"{where} must be an object of behaviour levels")
    out = {}
    for key, level in v.items():
        if not isinstance(level, dict):
            raise CheckpointError(f"{where} must map levels to objects")
        label = level.get("label", str(key))
        if (
            not isinstance(label, str)
            or not is_number(level.get("return_mean", 0))
            or not is_number(level.get("episodes", 0))
        ):
            raise CheckpointError(f"{where}['{key:.20}'] has ill-typed fields")
        out[str(key)[:50]] = {
            "episodes": level.get("episodes", 0),
            "return_mean": level.get("return_mean", 0.0),
            "label": label[:200],
        }
    return out


@dataclass
class TargetRange:
    minimum: float
    maximum: float
    value: float
    marks: dict[str, float]

    def describe(self) -> str:
        return " · ".join(f"{k} {v:.0f}" for k, v in self.marks.items())


def target_range(d: DatasetSummary, presets: tuple[float, ...]) -> TargetRange:
    """Slider range from a dataset summary: a bit below its min to well above its max
    (the env's target presets stand in for missing fields)."""
    lo = float(d.return_min if d.return_min is not None else min(presets))
    hi = float(d.return_max if d.return_max is not None else max(presets))
    span = max(hi - lo, 1.0)
    median = d.return_median if d.return_median is not None else (lo + hi) / 2
    marks = {"min": lo, "median": float(median), "max": hi}
    if d.return_top10_mean is not None:
        marks["top-10% mean"] = float(d.return_top10_mean)
    value = d.return_p90 if d.return_p90 is not None else hi
    return TargetRange(
        math.floor(lo - 0.1 * span), math.ceil(hi + 0.5 * span), round(float(value), 1), marks
    )
