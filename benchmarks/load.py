"""Load benchmark: the app in its own process, as hosted, under many clients at once.

    python benchmarks/load.py [--clients 8] [--sweeps 2] [--repeats 3]

Prints, as JSON lines:
- start-up: seconds from `python app.py` to the page being served;
- single: the latency of one Hopper play (plots and video) with nobody else on the server;
- load: 8 clients each playing one Hopper episode while 2 clients run sweeps, all at
  once; the latency of each play divided by the single-user median (median and max);
- peak RSS (VmHWM) of the app process, and the sum over its worker processes.
Each load round is preceded by a fresh single-user measurement (interleaved), and the
spread over `--repeats` rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV, CKPT, TARGET = "Hopper-v5", "hopper-dt", 3000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children(pid: int) -> list[int]:
    """The app's worker processes (and their helpers), all generations."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def start_app(tmp: Path) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "DTP_SESSIONS_DIR": str(tmp / "sessions"),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=REPO,
        env=env,
        stdout=open(tmp / "app.log", "w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    while True:
        if proc.poll() is not None:
            raise SystemExit("app exited: " + (tmp / "app.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
        if time.perf_counter() - t0 > 120:
            raise SystemExit("app did not start in 120 s")


def play(url: str, seed: int) -> float:
    from gradio_client import Client

    c = Client(url, verbose=False)
    t0 = time.perf_counter()
    c.predict(ENV, CKPT, TARGET, seed, False, api_name="/play")
    dt = time.perf_counter() - t0
    c.close()
    return dt


def sweep(url: str, seed: int) -> float:
    from gradio_client import Client

    c = Client(url, verbose=False)
    t0 = time.perf_counter()
    c.predict(ENV, CKPT, 4, 2, seed, api_name="/sweep")
    return time.perf_counter() - t0


def load_round(url: str, clients: int, sweeps: int, seed: int) -> dict:
    plays: list[float] = []
    sweep_times: list[float] = []
    threads = [
        threading.Thread(target=lambda s=seed + i: plays.append(play(url, s)))
        for i in range(clients)
    ]
    threads += [
        threading.Thread(target=lambda s=seed + 100 + i: sweep_times.append(sweep(url, s)))
        for i in range(sweeps)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return {"plays": plays, "sweeps": sweep_times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--sweeps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        proc, url, startup = start_app(Path(d))
        print(json.dumps({"startup_s": round(startup, 2)}), flush=True)
        try:
            # Warm-up, one play per interactive worker: each loads the checkpoint and
            # makes its GL context once.
            load_round(url, clients=2, sweeps=1, seed=0)
            rounds = []
            for r in range(args.repeats):
                single = statistics.median(play(url, 1 + i) for i in range(3))
                res = load_round(url, args.clients, args.sweeps, seed=1000 * (r + 1))
                ratios = sorted(p / single for p in res["plays"])
                rounds.append(
                    {
                        "single_s": round(single, 2),
                        "median_s": round(statistics.median(res["plays"]), 2),
                        "max_s": round(max(res["plays"]), 2),
                        "median_ratio": round(statistics.median(ratios), 2),
                        "max_ratio": round(max(ratios), 2),
                        "sweeps_s": [round(s, 1) for s in res["sweeps"]],
                    }
                )
                print(json.dumps({"round": r, **rounds[-1]}), flush=True)
            med = [x["median_ratio"] for x in rounds]
            mx = [x["max_ratio"] for x in rounds]
            print(
                json.dumps(
                    {
                        "median_ratio": statistics.median(med),
                        "median_ratio_range": [min(med), max(med)],
                        "max_ratio": statistics.median(mx),
                        "max_ratio_range": [min(mx), max(mx)],
                        "peak_rss_mb": round(_status(proc.pid, "VmHWM:")),
                        "workers_peak_rss_mb": round(
                            sum(_status(p, "VmHWM:") for p in _children(proc.pid))
                        ),
                    }
                ),
                flush=True,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
