"""The Stitching tab's run: seconds for one `app.stitch_view.stitching_view` once the
lab's models are loaded (the goal: about 2 s on a 2-core machine; the unit test bounds
its work instead: every model loaded once).

Interleaved repeats over the two datasets on fresh seeds; reports the median and the
min-max spread per dataset.

    python benchmarks/stitch_bench.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dt_playground.app import stitch_view  # noqa: E402
from dt_playground.dt.runtime import setup_process  # noqa: E402

DATA = ("halves", "random-walks")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    setup_process(threads=1)
    stitch_view.warm_up()
    times: dict[str, list[float]] = {d: [] for d in DATA}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for data in DATA if i % 2 == 0 else DATA[::-1]:
                t0 = time.perf_counter()
                stitch_view.stitching_view(
                    data,
                    1_000_000 + i,
                    20 if data == "halves" else 4,
                    video_path=Path(tmp) / f"{data}-{i}.mp4",
                )
                times[data].append(time.perf_counter() - t0)
    for data, ts in times.items():
        print(
            f"{data:<14} median {statistics.median(ts):.2f} s "
            f"(spread {min(ts):.2f}-{max(ts):.2f} s, {len(ts)} runs)"
        )


if __name__ == "__main__":
    main()
