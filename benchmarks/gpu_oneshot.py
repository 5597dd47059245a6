"""Every GPU measurement of the training step, in one run of under 5 minutes.

    python benchmarks/gpu_oneshot.py               # on a CUDA machine; results in $OUT
    python benchmarks/gpu_oneshot.py --quick       # a smoke run on the CPU (minutes)

Sections, each written to ``$OUT/gpu_oneshot.jsonl`` (one JSON object a line)
and ``$OUT/gpu_oneshot.txt`` as soon as it finishes, so a run cut short still
leaves what it measured:

1. ``cuda_tests``: the CUDA-only tests (graph/eager training, engines on CUDA).
2. ``step_modes``: our training step at B=64 eager / compile / graph, bf16.
3. ``model_bench``: `bench`'s table, ours vs HF at the same precision,
   interleaved: training B=64 and B=1024, acting at batch 1, 32 and 1024, and
   the projected wall time of a 100k-step Hopper DT.
4. ``sweep``: 8 targets x 30 seeds x 1000 steps of the shipped Hopper DT on the
   device (and, for comparison, the CPU fast engine).

A section that fails records its error and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Report:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.jsonl, self.txt = out / "gpu_oneshot.jsonl", out / "gpu_oneshot.txt"
        self.t0 = time.perf_counter()

    def log(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.t0:6.1f} s] {msg}"
        print(line, flush=True)
        with self.txt.open("a") as f:
            f.write(line + "\n")

    def record(self, section: str, result) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps({"section": section, "result": result}) + "\n")

    def section(self, name: str, fn) -> None:
        self.log(f"== {name}")
        t = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on to the next section
            self.log(f"{name} FAILED: {exc!r}\n{traceback.format_exc()}")
            result = {"error": repr(exc)}
        result = {**result, "seconds": round(time.perf_counter() - t, 1)}
        self.record(name, result)
        self.log(f"{name} done in {result['seconds']} s")


def cuda_tests(report: Report, quick: bool) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "tests/test_acting.py",
        "tests/test_train.py",
        "tests/test_model.py",
        "-k",
        "cuda or device or graph or sync",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    report.log(proc.stdout[-1500:] + proc.stderr[-1500:])
    return {"returncode": proc.returncode, "tail": proc.stdout[-600:]}


def step_modes(report: Report, device, quick: bool) -> dict:
    from dt_playground.cli import bench_cases

    modes = ("eager", "graph") if device.type != "cuda" else ("eager", "compile", "graph")
    out = {}
    for mode in modes:
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # an eager fallback says so
            warnings.simplefilter("always")
            block = bench_cases.train_block("ours", 64, "bf16", device, 5 if quick else 50, mode)
            setup = time.perf_counter() - t
            timing = bench_cases.interleave(block, None, 2 if quick else 5)[0]
        out[mode] = {
            "median_ms": timing.median,
            "spread_ms": list(timing.spread),
            "setup_s": round(setup, 1),
            "warnings": [str(w.message) for w in caught],
        }
        for w in caught:
            report.log(f"  warning: {w.message}")
        report.log(
            f"ours B=64 bf16 {mode:<8} {timing.median:.3f} ms "
            f"[{timing.spread[0]:.3f}-{timing.spread[1]:.3f}] (setup {setup:.1f} s)"
        )
    return out


def model_bench(report: Report, device, quick: bool) -> dict:
    from dt_playground.cli.bench import run_model_bench

    if quick:
        return run_model_bench(
            steps=30, repeats=3, rounds=2, device=str(device), large=False, echo=report.log
        )
    return run_model_bench(steps=300, repeats=30, rounds=3, device=str(device), echo=report.log)


def sweep(report: Report, device, quick: bool) -> dict:
    from dt_playground.checkpoints.checkpoint import load_checkpoint
    from dt_playground.rollout.evaluate import sweep as run_sweep

    ck = load_checkpoint(ROOT / "pretrained" / "hopper-dt")
    lo, hi = ck.config["dataset"]["return_min"], ck.config["dataset"]["return_max"]
    n_t, n_s, steps = (2, 2, 50) if quick else (8, 30, 1000)
    targets = [lo + (hi - lo) * i / (n_t - 1) for i in range(n_t)]
    out = {"targets": n_t, "seeds": n_s, "max_steps": steps}
    for name, dev in (("device", str(device)), ("cpu_fast", "cpu")):
        t = time.perf_counter()
        traces = run_sweep(ck, targets, n_s, max_steps=steps, device=dev)
        secs = time.perf_counter() - t
        out[name] = {
            "device": dev,
            "seconds": round(secs, 2),
            "env_steps": int(sum(tr.length for tr in traces)),
        }
        report.log(
            f"sweep {n_t}x{n_s}x{steps} on {dev}: {secs:.1f} s ({out[name]['env_steps']} env steps)"
        )
        if quick or device.type != "cuda":
            break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes; runs on the CPU")
    ap.add_argument(
        "--out",
        default=os.environ.get("OUT") or "runs/gpu_oneshot",
        help="results folder (default: $OUT, else runs/gpu_oneshot)",
    )
    ap.add_argument("--skip", default="", help="comma-separated sections to skip")
    args = ap.parse_args()

    import torch

    from dt_playground.dt.runtime import resolve_device, setup_process

    setup_process()
    device = resolve_device("auto")
    if device.type != "cuda" and not args.quick:
        print("no CUDA GPU: run with --quick for a CPU smoke run", file=sys.stderr)
        return 2
    report = Report(Path(args.out))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    report.log(f"torch {torch.__version__} on {name}; quick={args.quick}")
    report.record("env", {"torch": torch.__version__, "device": name, "quick": args.quick})
    skip = set(args.skip.split(","))
    sections = {
        "cuda_tests": lambda: cuda_tests(report, args.quick),
        "step_modes": lambda: step_modes(report, device, args.quick),
        "model_bench": lambda: model_bench(report, device, args.quick),
        "sweep": lambda: sweep(report, device, args.quick),
    }
    for key, fn in sections.items():
        if key not in skip and not (key == "cuda_tests" and device.type != "cuda"):
            report.section(key, fn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
