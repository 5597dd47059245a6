"""Command line: ``python -m dt_playground collect | train | evaluate | sweep | bench | ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import MISSING, fields

from dt_playground.envs.registry import env_ids
from dt_playground.envs.seeds import CARD_SEED


def _progress_bar(desc: str, total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr)

    def update(done: int, _total: int) -> None:
        bar.n = done
        bar.refresh()

    return bar, update


def cmd_collect(args) -> int:
    from dt_playground.behaviour.collect import collect_episodes
    from dt_playground.data.storage import default_dataset_id, write_minari
    from dt_playground.data.windows import dataset_summary

    t0 = time.perf_counter()
    bar, update = _progress_bar(f"collect {args.env}", args.episodes)
    episodes = collect_episodes(args.env, args.episodes, seed=args.seed, progress=update)
    bar.close()
    dataset_id = args.dataset_id or default_dataset_id(args.env)
    kwargs = {"root": args.root} if args.root else {}
    path = write_minari(episodes, dataset_id, args.env, seed=args.seed, **kwargs)
    s = dataset_summary(episodes)
    print(
        f"wrote {path}: {s['episodes']} episodes, {s['steps']} steps, return "
        f"min {s['return_min']:.1f} / median {s['return_median']:.1f} / max "
        f"{s['return_max']:.1f} ({time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    print("return deciles: " + ", ".join(f"{d:.0f}" for d in s["return_deciles"]), file=sys.stderr)
    print(f"sha256 {s['sha256']}", file=sys.stderr)
    return 0


def _add_dataclass_args(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--flag`` per dataclass field; the field's help text becomes --help."""
    helps = {k: v.replace("%", "%%") for k, v in cls.field_help().items()}
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        flags = ["--" + f.name.replace("_", "-")]
        if f.name == "env_id":  # `--env`, as every other verb spells it; --env-id still works
            flags.insert(0, "--env")
        if isinstance(default, bool):
            parser.add_argument(
                *flags,
                dest=f.name,
                default=default,
                action=argparse.BooleanOptionalAction,
                help=helps[f.name],
            )
        else:
            parser.add_argument(
                *flags,
                dest=f.name,
                type=type(default),
                default=default,
                help=f"{helps[f.name]} (default: {default})",
            )


def cmd_train(args) -> int:
    from dt_playground.training.train import TrainConfig, train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    if not cfg.env_id and not cfg.dataset:
        print("train: give --env (or --env-id) or --dataset", file=sys.stderr)
        return 2
    if cfg.algo == "iql":
        return _train_iql(cfg)
    from dt_playground.dt.runtime import setup_process

    setup_process(cfg.threads)  # process-wide settings belong to the entry point
    res = train(cfg, progress=True)
    if res.rank != 0:  # under torchrun, rank 0 alone reports
        return 0
    print(
        f"wrote {res.checkpoint} in {res.seconds:.1f} s; final loss {res.final_loss:.4f}",
        file=sys.stderr,
    )
    for e in res.evals[-6:]:
        print(
            f"  step {e['step']}: target {e['target']:.1f} -> return {e['return']:.1f}",
            file=sys.stderr,
        )
    return 0


def _train_iql(cfg) -> int:
    """``train --algo iql``: IQL's recipe (offline/iql.py) with the run's steps and seed."""
    from dt_playground.data.storage import default_dataset_id
    from dt_playground.dt.runtime import setup_process
    from dt_playground.offline.iql import IQLConfig
    from dt_playground.offline.train_iql import train_iql, write_iql

    setup_process(cfg.threads)
    dataset = cfg.dataset or default_dataset_id(cfg.env_id)
    iql = IQLConfig(steps=cfg.steps, return_steps=cfg.steps, seed=cfg.seed)
    res = train_iql(dataset, cfg.env_id or None, iql, progress=True)
    out = write_iql(cfg.out, res, res.env_id)
    print(f"wrote {out} in {res.seconds:.1f} s; final losses {res.curve[-1]}", file=sys.stderr)
    return 0


def _print_episodes(traces, as_json: bool) -> None:
    from dt_playground.rollout.evaluate import summarise

    if as_json:
        print(json.dumps({"episodes": [t.to_dict() for t in traces]}))
        return
    s = summarise(traces)
    print(f"{'target':>10}{'mean':>10}{'std':>9}{'n':>4}")
    for r in s["per_target"]:
        t = r["target"] if isinstance(r["target"], str) else f"{r['target']:.1f}"
        print(f"{t:>10}{r['mean']:>10.1f}{r['std']:>9.1f}{r['n']:>4}")
    if sum(not isinstance(r["target"], str) for r in s["per_target"]) > 1:
        print(f"Spearman rho(target, mean achieved) = {s['spearman']:.3f}")


def _target_arg(text: str) -> float | str:
    """A target return or "best" (argparse type)."""
    from dt_playground.dt.return_head import as_target

    try:
        return as_target(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'best': {text!r}") from None


def cmd_evaluate(args) -> int:
    return _play(args, [args.target], args.episodes)


def cmd_sweep(args) -> int:
    try:
        targets = [_target_arg(x) for x in args.targets.split(",") if x.strip()]
    except argparse.ArgumentTypeError:
        print(
            f"sweep: --targets must be comma-separated numbers or 'best', got {args.targets!r}",
            file=sys.stderr,
        )
        return 2
    return _play(args, targets, args.seeds)


def _play(args, targets: list, n_seeds: int) -> int:
    """evaluate and sweep: every target at ``n_seeds`` seeds, printed."""
    from dt_playground.dt.runtime import torch_threads
    from dt_playground.rollout.evaluate import algo_of, sweep
    from dt_playground.rollout.iql_policy import IGNORES_TARGETS

    if algo_of(args.checkpoint) == "iql":
        print(f"note: {IGNORES_TARGETS}", file=sys.stderr)
    with torch_threads(args.threads):
        traces = sweep(
            args.checkpoint,
            targets,
            n_seeds,
            seed=args.seed,
            sample=args.sample,
            max_steps=args.max_steps,
            precision=args.precision,
            kappa=args.kappa,
            engine=args.engine,
            device=args.device,
            check=args.check,
        )
    _print_episodes(traces, args.json)
    return 0


def cmd_stitch(args) -> int:
    from dt_playground.dt.runtime import torch_threads
    from dt_playground.stitch.play import play_methods, table

    with torch_threads(1):
        res = play_methods(args.data, args.episodes, args.seed, args.history)
    print(json.dumps(res) if args.json else table(res))
    return 0


def cmd_bench(args) -> int:
    from dt_playground.cli.bench import run_model_bench
    from dt_playground.dt.runtime import setup_process

    setup_process()  # the process-wide settings ours and HF's run under alike
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    res = run_model_bench(
        steps=args.steps,
        repeats=args.repeats,
        with_hf=not args.no_hf,
        device=args.device,
        rounds=args.rounds,
        precisions=precisions,
        large=not args.no_large,
        step_mode=args.step_mode,
        plain=not args.no_plain,
        echo=lambda m: print(m, file=sys.stderr if args.json else sys.stdout),
    )
    if args.json:
        print(json.dumps(res))
    if not args.models_only:
        from dt_playground.cli.bench import run_episode_bench

        run_episode_bench(args.envs.split(",") if args.envs else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dt_playground.cli.space import add_space_parser
    from dt_playground.cli.zoo import add_zoo_parsers
    from dt_playground.training.train import TrainConfig

    # `dtp` is the installed console script; `python -m dt_playground` works anywhere
    prog = "dtp" if os.path.basename(sys.argv[0]) == "dtp" else "python -m dt_playground"
    p = argparse.ArgumentParser(prog=prog, description="Decision Transformers you can watch.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("collect", help="collect a mixed-quality Minari dataset")
    c.add_argument("--env", required=True, choices=env_ids(), help="environment id")
    c.add_argument("--episodes", type=int, default=600, help="number of episodes (default 600)")
    c.add_argument("--seed", type=int, default=0, help="episode i resets with seed+i (default 0)")
    c.add_argument("--dataset-id", default="", help="Minari id (default dtp/<env>/mixed-v0)")
    c.add_argument("--root", default="", help="datasets root (default data/datasets)")
    c.set_defaults(fn=cmd_collect)

    t = sub.add_parser("train", help="train a DT / BC / %%BC checkpoint")
    _add_dataclass_args(t, TrainConfig)
    t.set_defaults(fn=cmd_train)

    for name, help_ in (
        ("evaluate", "play one target for N seeds"),
        ("sweep", "achieved vs requested return over targets x seeds"),
    ):
        e = sub.add_parser(name, help=help_)
        e.add_argument("--checkpoint", required=True, help="checkpoint folder")
        if name == "evaluate":
            e.add_argument(
                "--target",
                type=_target_arg,
                required=True,
                help="target return, or 'best' (DTs with a return model)",
            )
            e.add_argument("--episodes", type=int, default=5, help="episodes (seeds S..S+N-1)")
        else:
            e.add_argument(
                "--targets",
                required=True,
                help="comma-separated target returns; 'best' may be one of them",
            )
            e.add_argument("--seeds", type=int, default=5, help="seeds per target (S..S+N-1)")
        e.add_argument(
            "--seed",
            type=int,
            default=CARD_SEED,
            help=f"first seed S (default {CARD_SEED}: the cards' seeds)",
        )
        e.add_argument("--sample", action="store_true", help="sample discrete actions")
        e.add_argument("--max-steps", type=int, default=None, help="cap episode length")
        e.add_argument(
            "--precision",
            choices=("fp32", "bf16"),
            default="fp32",
            help="acting precision: bf16 is 1.2-1.4x faster for many episodes at "
            "once on CPUs with native bf16 (cards are fp32)",
        )
        e.add_argument("--json", action="store_true", help="print JSON episodes on stdout")
        e.add_argument(
            "--kappa",
            type=float,
            default=None,
            help="target 'best': how hard it leans to high returns (default: the "
            "checkpoint's, chosen on trial seeds, else 10)",
        )
        e.add_argument(
            "--engine",
            choices=("fast", "reference"),
            default="fast",
            help="acting engine: fast (cached features, oneDNN on CPU) or reference "
            "(the model's plain forward on each window; slower, the yardstick)",
        )
        e.add_argument(
            "--device",
            default="cpu",
            help="cpu, cuda or auto; cuda pays for hundreds of episodes at once",
        )
        e.add_argument(
            "--check",
            action="store_true",
            help="value-checked acting: the DT proposes several actions a step and "
            "its critic (critic/) keeps one (docs/critic.md)",
        )
        e.add_argument(
            "--threads",
            type=int,
            default=1,
            help="torch threads (default 1, as the cards: in the MuJoCo envs the "
            "thread count changes float rounding, and with it the episodes; 0: "
            "torch's default)",
        )
        e.set_defaults(fn=cmd_evaluate if name == "evaluate" else cmd_sweep)

    add_zoo_parsers(sub, _add_dataclass_args)
    add_space_parser(sub)

    st = sub.add_parser(
        "stitch", help="the stitching lab: DT, %%BC, offline RL and QDT on the same seeds"
    )
    st.add_argument(
        "--data",
        choices=("halves", "random-walks"),
        default="halves",
        help="the lab's dataset (default halves)",
    )
    st.add_argument("--episodes", type=int, default=30, help="episodes (seeds S..S+N-1)")
    st.add_argument(
        "--seed",
        type=int,
        default=CARD_SEED,
        help=f"first seed S (default {CARD_SEED}: the cards' seeds)",
    )
    st.add_argument(
        "--history",
        type=int,
        default=None,
        help="the DT's history length at inference, 1..K (default K)",
    )
    st.add_argument("--json", action="store_true", help="print JSON on stdout")
    st.set_defaults(fn=cmd_stitch)

    b = sub.add_parser("bench", help="speed benchmarks (model vs HF; episode timings)")
    b.add_argument("--steps", type=int, default=1000, help="episode length for action latency")
    b.add_argument("--repeats", type=int, default=20, help="training steps timed per round")
    b.add_argument("--no-hf", action="store_true", help="skip the transformers comparison")
    b.add_argument("--models-only", action="store_true", help="skip the episode/video timings")
    b.add_argument("--envs", default="", help="comma-separated envs for episode timings")
    b.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    b.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved ours/HF rounds per case (median and min-max reported)",
    )
    b.add_argument(
        "--precision",
        choices=("both", "fp32", "bf16"),
        default="both",
        help="precision of both sides (always the same on both)",
    )
    b.add_argument(
        "--no-large",
        action="store_true",
        help="skip the B=1024 training and batch-1024 acting cases",
    )
    b.add_argument(
        "--no-plain",
        action="store_true",
        help="skip timing our plain training step beside the fast one",
    )
    b.add_argument(
        "--step-mode",
        default="auto",
        choices=("auto", "eager", "compile", "graph"),
        help="our training step on CUDA (auto: one CUDA graph)",
    )
    b.add_argument(
        "--json",
        action="store_true",
        help="print the model benchmark as JSON on stdout (tables go to stderr)",
    )
    b.set_defaults(fn=cmd_bench)

    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dt_playground.dt.runtime import setup_process

    setup_process()  # the entry point makes the process-wide settings (library calls don't)
    try:
        return args.fn(args)
    except (ValueError, OSError) as exc:  # our errors are ValueErrors with clear messages
        print(f"error: {exc}", file=sys.stderr)
        return 1
