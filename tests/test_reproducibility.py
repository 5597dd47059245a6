"""Reproducible data: the classic-control datasets hash the same whatever the thread
settings and SIMD level, match the shipped checkpoints' recorded hashes, and shipped files carry no
machine paths; seed ranges never overlap."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dt_playground.behaviour.collect import DATASETS
from dt_playground.envs.seeds import CARD_SEED, RANGES, SEED_BLOCK, TRAIN_EVAL_SEED, seed_range
from dt_playground.paths import PRETRAINED_DIR, REPO_ROOT

CLASSIC = ["CartPole-v1", "Pendulum-v1", "LunarLander-v3"]  # ~2 + 5 + 8 s to collect here

_COLLECT = """
import json, sys
import torch
torch.set_num_threads(int(sys.argv[1]))  # as a training process would have it
from dt_playground.behaviour.collect import DATASETS, collect_episodes
from dt_playground.envs.episodes import dataset_sha256
out = {e: dataset_sha256(collect_episodes(e, DATASETS[e].episodes, DATASETS[e].seed))
       for e in sys.argv[2:]}
print(json.dumps(out))
"""


def _as_an_avx2_machine() -> dict[str, str]:
    """Environment variables that make this process's numpy and glibc take the code
    paths of a CPU without AVX-512 (empty where there is none to switch off)."""
    from numpy._core._multiarray_umath import __cpu_features__

    avx512 = [
        f
        for f in ("X86_V4", "AVX512_ICL", "AVX512_SPR", "AVX512F", "AVX512_SKX")
        if __cpu_features__.get(f)
    ]
    if not avx512:
        return {}
    return {
        "NPY_DISABLE_CPU_FEATURES": " ".join(avx512),
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ",
    }


@pytest.fixture(scope="module")
def fresh_hashes() -> list[dict]:
    """The full classic datasets collected in two processes at once: one with 1 thread
    everywhere (torch, OpenMP, BLAS); one with 2, on the code paths of a CPU without
    AVX-512 (numpy's np.exp/np.log/np.arctan2 round differently there)."""
    procs = []
    for threads in (1, 2):
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        env.update(
            {
                k: str(threads)
                for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            }
        )
        if threads == 2:
            env.update(_as_an_avx2_machine())
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _COLLECT, str(threads), *CLASSIC],
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


@pytest.mark.slow
def test_classic_datasets_hash_the_same_with_any_threads_and_cpu(fresh_hashes):
    one, two = fresh_hashes
    assert set(one) == set(CLASSIC)
    assert one == two
    assert len(set(one.values())) == len(CLASSIC)  # three different datasets
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in one.values())  # sha256 hex digests


def _shipped_configs() -> list[Path]:
    return sorted(PRETRAINED_DIR.glob("*/config.json"))


def test_shipped_classic_checkpoints_match_fresh_data(fresh_hashes):
    """The bar for the classic envs: a fresh clone's collection reproduces the
    dataset.sha256 every shipped classic checkpoint records."""
    checked = 0
    for path in _shipped_configs():
        cfg = json.loads(path.read_text())
        d = cfg.get("dataset") or {}
        if cfg["env_id"] not in CLASSIC:
            continue
        assert d["episodes"] == DATASETS[cfg["env_id"]].episodes, path.parent.name
        assert d["sha256"] == fresh_hashes[0][cfg["env_id"]], path.parent.name
        checked += 1
    assert checked >= len(CLASSIC)  # every classic env ships checkpoints


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


@pytest.mark.parametrize("config", _shipped_configs(), ids=lambda p: p.parent.name)
def test_shipped_checkpoint_holds_no_machine_paths(config):
    cfg = json.loads(config.read_text())
    assert "sha256" in cfg["dataset"]  # every shipped checkpoint records its data's hash
    found = []
    for f in sorted(config.parent.iterdir()):
        if f.suffix in (".json", ".md"):
            text = f.read_text()
            strings = _strings(json.loads(text)) if f.suffix == ".json" else text.split()
            found += [
                f"{f.name}: {s}"
                for s in strings
                if Path(s).is_absolute() or str(REPO_ROOT) in s or s.startswith("~")
            ]
    assert not found
    assert cfg["train"]["dataset"] == cfg["dataset"]["dataset_id"]
    assert cfg["train"]["out"] == f"pretrained/{config.parent.name}"


def test_seed_ranges_are_disjoint_and_guarded():
    spans = sorted((r.start, r.stop, name) for name, r in RANGES.items())
    for (_, stop, a), (start, _, b) in zip(spans, spans[1:]):
        assert stop <= start, f"{a} overlaps {b}"
    assert set(RANGES) >= {"dataset", "train_eval", "card", "trial", "app", "ars_grading"}
    assert seed_range("card", 3) == [CARD_SEED, CARD_SEED + 1, CARD_SEED + 2]
    assert TRAIN_EVAL_SEED in RANGES["train_eval"] and CARD_SEED in RANGES["card"]
    with pytest.raises(ValueError, match="do not fit"):
        seed_range("train_eval", SEED_BLOCK + 1)
    # the datasets' seeds stay inside the dataset range
    assert max(r.seed + r.episodes for r in DATASETS.values()) <= RANGES["dataset"].stop
