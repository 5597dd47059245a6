"""How big the staged Space is and how long staging takes (goals: <= 70 MB, <= 10 s).

    python benchmarks/space_stage.py [--repeats 5]

Each round runs `python -m dt_playground space --out TMP` as a user would (a fresh process:
imports included) and, in this process, `space.stage` alone (the copy). Prints one JSON line
per round, then the medians with their [min-max] spread and the staged size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from dt_playground.cli import space  # noqa: E402


def one_round(tmp: Path, i: int) -> dict:
    out = tmp / f"cli-{i}"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dt_playground", "space", "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    cli_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out)
    t0 = time.perf_counter()
    entries = space.plan()
    space.stage(tmp / f"lib-{i}", entries)
    stage_s = time.perf_counter() - t0
    shutil.rmtree(tmp / f"lib-{i}")
    return {
        "round": i,
        "cli_s": round(cli_s, 2),
        "stage_s": round(stage_s, 2),
        "files": len(entries),
        "mb": round(size / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.repeats):
            rows.append(one_round(Path(d), i))
            print(json.dumps(rows[-1]))

    def spread(key):
        v = [r[key] for r in rows]
        return f"{statistics.median(v):.2f} s [{min(v):.2f}-{max(v):.2f}]"

    print(
        f"space --out (fresh process): {spread('cli_s')}; stage alone: {spread('stage_s')}; "
        f"{rows[0]['files']} files, {rows[0]['mb']} MB (goals: <= 10 s, <= 70 MB)"
    )


if __name__ == "__main__":
    main()
