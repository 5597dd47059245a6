"""Command line: ``python -m dt_playground collect | train | evaluate | sweep | bench | ...``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path

from .envs import env_ids
from .seeds import CARD_SEED


def _progress_bar(desc: str, total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr)

    def update(done: int, _total: int) -> None:
        bar.n = done
        bar.refresh()

    return bar, update


def cmd_collect(args) -> int:
    from .collect import collect_episodes
    from .data import dataset_summary, default_dataset_id, write_minari

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
    from .train import TrainConfig, train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    if not cfg.env_id and not cfg.dataset:
        print("train: give --env (or --env-id) or --dataset", file=sys.stderr)
        return 2
    from .cpu import setup_process

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


def _print_episodes(traces, as_json: bool) -> None:
    from .evaluate import summarise

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


def cmd_evaluate(args) -> int:
    from .evaluate import sweep

    traces = sweep(
        args.checkpoint,
        [args.target],
        args.episodes,
        seed=args.seed,
        sample=args.sample,
        max_steps=args.max_steps,
        precision=args.precision,
        kappa=args.kappa,
        engine=args.engine,
        device=args.device,
    )
    _print_episodes(traces, args.json)
    return 0


def _target_arg(text: str) -> float | str:
    """A target return or "best" (argparse type)."""
    from .returns import as_target

    try:
        return as_target(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'best': {text!r}") from None


def cmd_sweep(args) -> int:
    from .evaluate import sweep

    try:
        targets = [_target_arg(x) for x in args.targets.split(",") if x.strip()]
    except argparse.ArgumentTypeError:
        print(
            f"sweep: --targets must be comma-separated numbers or 'best', got {args.targets!r}",
            file=sys.stderr,
        )
        return 2
    traces = sweep(
        args.checkpoint,
        targets,
        args.seeds,
        seed=args.seed,
        sample=args.sample,
        max_steps=args.max_steps,
        precision=args.precision,
        kappa=args.kappa,
        engine=args.engine,
        device=args.device,
    )
    _print_episodes(traces, args.json)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_model_bench
    from .cpu import setup_process

    setup_process()  # the process-wide settings ours and HF's run under alike
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    res = run_model_bench(steps=args.steps, repeats=args.repeats, with_hf=not args.no_hf,
                          device=args.device, rounds=args.rounds, precisions=precisions,
                          large=not args.no_large, step_mode=args.step_mode,
                          echo=lambda m: print(m, file=sys.stderr if args.json else sys.stdout))
    if args.json:
        print(json.dumps(res))
    if not args.models_only:
        from .bench import run_episode_bench

        run_episode_bench(args.envs.split(",") if args.envs else None)
    return 0


def cmd_pretrain(args) -> int:
    from .pretrain import CARD_SEEDS, RECIPES, pretrain_env, update_readme

    envs = list(RECIPES) if args.all else [args.env] if args.env else []
    if not envs:
        print("pretrain: give --env ID or --all", file=sys.stderr)
        return 2
    if args.verify:
        from .verify import verify_datasets, verify_table

        rows, seconds = verify_datasets(envs, args.out or None,
                                        log=lambda m: print(m, file=sys.stderr))
        print(verify_table(rows, seconds))
        return 0 if rows and all(r.status == "match" for r in rows) else 1
    out = Path(args.out) if args.out else None
    kwargs = {"out_root": out} if out else {}
    if args.jobs > 1 and len(envs) > 1:
        from .pretrain import pretrain_in_processes

        flags = {"steps": args.steps, "episodes": args.episodes, "card-seeds": args.card_seeds,
                 "out": args.out, "recollect": args.recollect, "no-ablation": args.no_ablation}
        status = pretrain_in_processes(envs, args.jobs, args.threads, flags)
        if status == 0 and not args.no_readme and out is None:
            update_readme(Path(__file__).resolve().parent.parent / "README.md")
        return status
    from .cpu import setup_process

    setup_process(args.threads)
    for env in envs:
        t0 = time.perf_counter()
        pretrain_env(
            env,
            steps=args.steps,
            episodes=args.episodes,
            n_seeds=args.card_seeds or CARD_SEEDS,
            recollect=args.recollect,
            ablation=not args.no_ablation,
            log=lambda m: print(m, file=sys.stderr),
            **kwargs,
        )
        print(f"{env}: {time.perf_counter() - t0:.0f} s wall", file=sys.stderr)
    if not args.no_readme:
        readme = Path(__file__).resolve().parent.parent / "README.md"
        if out is None and readme.exists():
            update_readme(readme)
    return 0


def cmd_returns(args) -> int:
    from .cpu import setup_process
    from .return_model import ReturnModelRecipe, train_return_model

    setup_process(args.threads)
    recipe = ReturnModelRecipe(steps=args.steps, hidden=args.hidden, n_layers=args.n_layers,
                               bins=args.bins, seed=args.seed)
    t0 = time.perf_counter()
    out = train_return_model(args.checkpoint, recipe, threads=args.threads, progress=True,
                             dataset=args.dataset or None)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s: the DT now plays target 'best'",
          file=sys.stderr)
    return 0


def cmd_train_expert(args) -> int:
    from .ars import train_expert

    train_expert(args.env, seed=args.seed)
    return 0


def cmd_export(args) -> int:
    from .folders import RETURNS_DIR
    from .hf import export_transformers

    out = export_transformers(args.checkpoint, args.out)
    print(f"wrote {out}: load it with DecisionTransformerModel.from_pretrained; input "
          "normalisation is in dt_playground.json", file=sys.stderr)
    if (Path(args.checkpoint) / RETURNS_DIR).is_dir():
        print("its return model (returns/, for target 'best') has no counterpart in "
              "transformers and was left out", file=sys.stderr)
    return 0


def cmd_import_hf(args) -> int:
    from .hf import import_transformers_folder

    out = import_transformers_folder(args.model, args.out, args.env or None,
                                     args.state_stats or None)
    print(f"wrote {out}: play it with `evaluate --checkpoint {out}`", file=sys.stderr)
    return 0


def cmd_card(args) -> int:
    from .hub_card import write

    print(f"wrote {write(args.checkpoint)}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .return_model import ReturnModelRecipe
    from .train import TrainConfig

    p = argparse.ArgumentParser(
        prog="python -m dt_playground", description="Decision Transformers you can watch."
    )
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
            e.add_argument("--target", type=_target_arg, required=True,
                           help="target return, or 'best' (DTs with a return head)")
            e.add_argument("--episodes", type=int, default=5, help="episodes (seeds S..S+N-1)")
        else:
            e.add_argument("--targets", required=True,
                           help="comma-separated target returns; 'best' may be one of them")
            e.add_argument("--seeds", type=int, default=5, help="seeds per target (S..S+N-1)")
        e.add_argument("--seed", type=int, default=CARD_SEED,
                       help=f"first seed S (default {CARD_SEED}: the cards' seeds)")
        e.add_argument("--sample", action="store_true", help="sample discrete actions")
        e.add_argument("--max-steps", type=int, default=None, help="cap episode length")
        e.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="acting precision: bf16 is 1.2-1.4x faster for many episodes at "
                       "once on CPUs with native bf16 (cards are fp32)")
        e.add_argument("--json", action="store_true", help="print JSON episodes on stdout")
        e.add_argument("--kappa", type=float, default=None,
                       help="target 'best': how hard it leans to high returns (default: the "
                       "checkpoint's, chosen on trial seeds, else 10)")
        e.add_argument("--engine", choices=("fast", "reference"), default="fast",
                       help="acting engine: fast (cached features, oneDNN on CPU) or reference "
                       "(the model's plain forward on each window; slower, the yardstick)")
        e.add_argument("--device", default="cpu",
                       help="cpu, cuda or auto; cuda pays for hundreds of episodes at once")
        e.set_defaults(fn=cmd_evaluate if name == "evaluate" else cmd_sweep)

    pt = sub.add_parser("pretrain", help="rebuild the pretrained zoo: collect, train, cards")
    pt.add_argument("--env", choices=env_ids(), help="one environment")
    pt.add_argument("--all", action="store_true", help="every environment in the recipes")
    pt.add_argument("--steps", type=int, default=None, help="override training steps (tests)")
    pt.add_argument("--episodes", type=int, default=None, help="override dataset size (tests)")
    pt.add_argument("--card-seeds", type=int, default=None,
                    help="held-out seeds per target (default: pretrain.CARD_SEEDS, 30)")
    pt.add_argument("--out", default="", help="checkpoints root (default pretrained/)")
    pt.add_argument("--recollect", action="store_true", help="rebuild the dataset")
    pt.add_argument("--no-ablation", action="store_true", help="skip the K ablation")
    pt.add_argument("--no-readme", action="store_true", help="don't update README's table")
    pt.add_argument("--jobs", type=int, default=1,
                    help="with --all: envs trained in this many processes at once")
    pt.add_argument("--threads", type=int, default=0, help="torch threads per process "
                    "(0: torch's default; with --jobs, the cores split between the jobs)")
    pt.add_argument("--verify", action="store_true",
                    help="recollect the datasets into a temp folder and compare their sha256 "
                    "with the shipped checkpoints' (no training); exit 1 unless all match")
    pt.set_defaults(fn=cmd_pretrain)

    rm = sub.add_parser("returns", help="train a DT's return model into its returns/ folder, "
                        "so that it plays target 'best'")
    rm.add_argument("--checkpoint", required=True, help="the DT's checkpoint folder")
    rm.add_argument("--dataset", default="", help="Minari id or folder of the DT's data "
                    "(default: the id in its config.json)")
    defaults = ReturnModelRecipe()
    for flag, kind, help_ in (("steps", int, "gradient steps"), ("hidden", int, "width"),
                              ("n-layers", int, "transformer blocks"),
                              ("bins", int, "return bins"), ("seed", int, "training seed")):
        default = getattr(defaults, flag.replace("-", "_"))
        rm.add_argument(f"--{flag}", type=kind, default=default,
                        help=f"{help_} (default {default})")
    rm.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    rm.set_defaults(fn=cmd_returns)

    te = sub.add_parser("train-expert", help="re-run ARS to rebuild a MuJoCo env's snapshots")
    te.add_argument("--env", required=True, help="Hopper-v5, HalfCheetah-v5 or Walker2d-v5")
    te.add_argument("--seed", type=int, default=None,
                    help="ARS seed (default: the seed the shipped snapshots came from)")
    te.set_defaults(fn=cmd_train_expert)

    b = sub.add_parser("bench", help="speed benchmarks (model vs HF; episode timings)")
    b.add_argument("--steps", type=int, default=1000, help="episode length for action latency")
    b.add_argument("--repeats", type=int, default=20, help="training steps timed per round")
    b.add_argument("--no-hf", action="store_true", help="skip the transformers comparison")
    b.add_argument("--models-only", action="store_true", help="skip the episode/video timings")
    b.add_argument("--envs", default="", help="comma-separated envs for episode timings")
    b.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    b.add_argument("--rounds", type=int, default=5,
                   help="interleaved ours/HF rounds per case (median and min-max reported)")
    b.add_argument("--precision", choices=("both", "fp32", "bf16"), default="both",
                   help="precision of both sides (always the same on both)")
    b.add_argument("--no-large", action="store_true",
                   help="skip the B=1024 training and batch-1024 acting cases")
    b.add_argument("--step-mode", default="auto", choices=("auto", "eager", "compile", "graph"),
                   help="our training step on CUDA (auto: one CUDA graph)")
    b.add_argument("--json", action="store_true",
                   help="print the model benchmark as JSON on stdout (tables go to stderr)")
    b.set_defaults(fn=cmd_bench)

    x = sub.add_parser("export", help="write a checkpoint as a transformers DT folder")
    x.add_argument("--checkpoint", required=True, help="checkpoint folder")
    x.add_argument("--format", choices=("transformers",), default="transformers",
                   help="output format (default transformers)")
    x.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    x.set_defaults(fn=cmd_export)

    ih = sub.add_parser("import-hf", help="make a transformers DT folder a playable checkpoint")
    ih.add_argument("--model", required=True, help="folder with config.json + model.safetensors")
    ih.add_argument("--env", default="", help="environment id (default: the sidecar's)")
    ih.add_argument("--state-stats", default="",
                    help="JSON with state_mean, state_std, scale[, max_len] (default: the "
                    "folder's dt_playground.json)")
    ih.add_argument("--out", required=True, help="checkpoint folder to write")
    ih.set_defaults(fn=cmd_import_hf)

    cd = sub.add_parser("card", help="regenerate a checkpoint's Hub model card (README.md)")
    cd.add_argument("--checkpoint", required=True, help="checkpoint folder")
    cd.set_defaults(fn=cmd_card)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .cpu import setup_process

    setup_process()  # the entry point makes the process-wide settings (library calls don't)
    try:
        return args.fn(args)
    except (ValueError, OSError) as exc:  # our errors are ValueErrors with clear messages
        print(f"error: {exc}", file=sys.stderr)
        return 1
