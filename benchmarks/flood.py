"""Flood benchmark: one greedy client must not starve the others.

    python benchmarks/flood.py [--flood 40] [--repeats 3]

The app runs in its own process, as hosted (benchmarks/load.py starts it). Each round:
1. single: one Hopper play by a fresh client with nobody else on the server (median of 2);
2. flood: one `gradio_client.Client` submits `--flood` Hopper plays at once; 2 s later a
   second client asks for one play.
Prints, as JSON lines per round: the second client's latency and its ratio to the single
latency; how many of the flooder's plays were refused, and with what message; how many it
got served. Then the median ratio and the spread over rounds. Goal: ratio <= 2, the
flooder's excess refused at once with a sentence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import CKPT, ENV, TARGET, play, start_app  # noqa: E402


def flood_round(url: str, n: int, seed: int) -> dict:
    from gradio_client import Client

    greedy = Client(url, verbose=False)
    t0 = time.perf_counter()
    jobs = [greedy.submit(ENV, CKPT, TARGET, seed + i, False, api_name="/play") for i in range(n)]
    time.sleep(2.0)
    other = play(url, seed + 500)
    done, _ = wait(jobs, timeout=600)
    refused, served, messages = 0, 0, set()
    for j in done:
        try:
            j.result(timeout=0)
            served += 1
        except Exception as exc:  # a refusal arrives as an AppError with our sentence
            refused += 1
            messages.add(str(exc)[:120])
    greedy.close()
    return {
        "other_s": round(other, 2),
        "flood_refused": refused,
        "flood_served": served,
        "flood_unfinished": n - len(done),
        "flood_s": round(time.perf_counter() - t0, 1),
        "messages": sorted(messages),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flood", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        proc, url, startup = start_app(Path(d))
        print(json.dumps({"startup_s": round(startup, 2)}), flush=True)
        try:
            play(url, 0), play(url, 1)  # warm-up: each worker loads the checkpoint once
            ratios = []
            for r in range(args.repeats):
                single = statistics.median(play(url, 10 + i) for i in range(2))
                res = flood_round(url, args.flood, seed=1000 * (r + 1))
                ratios.append(res["other_s"] / single)
                print(
                    json.dumps(
                        {
                            "round": r,
                            "single_s": round(single, 2),
                            "ratio": round(ratios[-1], 2),
                            **res,
                        }
                    ),
                    flush=True,
                )
            print(
                json.dumps(
                    {
                        "median_ratio": round(statistics.median(ratios), 2),
                        "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
                        "goal": "<= 2",
                    }
                ),
                flush=True,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
