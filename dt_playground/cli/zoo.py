"""The zoo's and the Hub's verbs: ``pretrain``, ``returns``, ``train-expert``, ``export``,
``import-hf``, ``critic`` and ``card`` (`cli.main.build_parser` adds them beside the data,
training and evaluation verbs)."""

from __future__ import annotations

import sys
import time
from dataclasses import fields
from pathlib import Path

from dt_playground.envs.registry import env_ids
from dt_playground.paths import REPO_ROOT

ZOO_DOC = REPO_ROOT / "docs" / "zoo.md"  # its table between the zoo markers: the cards


def add_zoo_parsers(sub, add_dataclass_args) -> None:
    """Add these verbs to subparsers ``sub``; ``add_dataclass_args(parser, cls)`` gives
    a parser one flag per field of a dataclass (as `train`'s)."""
    from dt_playground.offline.critic import MAX_REFIT_SEEDS
    from dt_playground.training.return_model import ReturnModelRecipe

    pt = sub.add_parser("pretrain", help="rebuild the pretrained zoo: collect, train, cards")
    pt.add_argument("--env", choices=env_ids(), help="one environment")
    pt.add_argument("--all", action="store_true", help="every environment in the recipes")
    pt.add_argument("--steps", type=int, default=None, help="override training steps (tests)")
    pt.add_argument("--episodes", type=int, default=None, help="override dataset size (tests)")
    pt.add_argument(
        "--card-seeds",
        type=int,
        default=None,
        help="held-out seeds per target (default: pretrain.CARD_SEEDS, 30)",
    )
    pt.add_argument("--out", default="", help="checkpoints root (default pretrained/)")
    pt.add_argument("--recollect", action="store_true", help="rebuild the dataset")
    pt.add_argument("--no-ablation", action="store_true", help="skip the K ablation")
    pt.add_argument("--no-readme", action="store_true", help="don't update docs/zoo.md's table")
    pt.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="with --all: envs trained in this many processes at once",
    )
    pt.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per process "
        "(0: torch's default; with --jobs, the cores split between the jobs)",
    )
    pt.add_argument(
        "--stitch",
        action="store_true",
        help="also rebuild the stitching lab (pretrained/stitch/: its datasets, "
        "DT, %%BC, offline RL table, QDT and cards); alone, only the lab",
    )
    pt.add_argument(
        "--verify",
        action="store_true",
        help="recollect the datasets into a temp folder and compare their sha256 "
        "with the shipped checkpoints' (no training); exit 1 unless all match",
    )
    pt.set_defaults(fn=cmd_pretrain)

    rm = sub.add_parser(
        "returns",
        help="train a DT's return model into its returns/ folder, so that it plays target 'best'",
    )
    rm.add_argument("--checkpoint", required=True, help="the DT's checkpoint folder")
    rm.add_argument(
        "--dataset",
        default="",
        help="Minari id or folder of the DT's data (default: the id in its config.json)",
    )
    add_dataclass_args(rm, ReturnModelRecipe)
    rm.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    rm.set_defaults(fn=cmd_returns)

    te = sub.add_parser("train-expert", help="re-run ARS to rebuild a MuJoCo env's snapshots")
    te.add_argument("--env", required=True, help="Hopper-v5, HalfCheetah-v5 or Walker2d-v5")
    te.add_argument(
        "--seed",
        type=int,
        default=None,
        help="ARS seed (default: the seed the shipped snapshots came from)",
    )
    te.set_defaults(fn=cmd_train_expert)

    x = sub.add_parser("export", help="write a checkpoint as a transformers DT folder")
    x.add_argument("--checkpoint", required=True, help="checkpoint folder")
    x.add_argument(
        "--format",
        choices=("transformers",),
        default="transformers",
        help="output format (default transformers)",
    )
    x.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    x.set_defaults(fn=cmd_export)

    ih = sub.add_parser("import-hf", help="make a transformers DT folder a playable checkpoint")
    ih.add_argument("--model", required=True, help="folder with config.json + model.safetensors")
    ih.add_argument("--env", default="", help="environment id (default: the sidecar's)")
    ih.add_argument(
        "--state-stats",
        default="",
        help="JSON with state_mean, state_std, scale[, max_len] (default: the "
        "folder's dt_playground.json)",
    )
    ih.add_argument("--out", required=True, help="checkpoint folder to write")
    ih.set_defaults(fn=cmd_import_hf)

    cr = sub.add_parser(
        "critic",
        help="train a DT's critic (IQL on the DT's data) into its "
        "critic/ folder, for value-checked acting (--check)",
    )
    cr.add_argument("--checkpoint", required=True, help="the DT's checkpoint folder")
    cr.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the env's recipe)"
    )
    cr.add_argument(
        "--dataset", default=None, help="the DT's dataset, when not where its config.json says"
    )
    cr.add_argument(
        "--refit-seeds",
        type=int,
        default=None,
        help="after training, the DT plays each of the goals' 8 targets on this many "
        "critic-rollout seeds and the critic's G is refit on them (default: the env's "
        f"recipe, 10; 0: no refit; at most {MAX_REFIT_SEEDS})",
    )
    cr.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    cr.set_defaults(fn=cmd_critic)

    cd = sub.add_parser("card", help="regenerate a checkpoint's Hub model card (README.md)")
    cd.add_argument("--checkpoint", required=True, help="checkpoint folder")
    cd.set_defaults(fn=cmd_card)


def cmd_pretrain(args) -> int:
    from dt_playground.zoo.cards import CARD_SEEDS, update_readme
    from dt_playground.zoo.pretrain import RECIPES, pretrain_env

    envs = list(RECIPES) if args.all else [args.env] if args.env else []
    if not envs and not args.stitch:
        print("pretrain: give --env ID, --all or --stitch", file=sys.stderr)
        return 2
    stitch_root = Path(args.out) / "stitch" if args.out else None
    if args.verify:
        from dt_playground.zoo.verify import verify_datasets, verify_table

        log = lambda m: print(m, file=sys.stderr)  # noqa: E731
        rows, seconds = verify_datasets(envs, args.out or None, log=log) if envs else ([], {})
        if args.stitch:
            from dt_playground.stitch.lab import verify_rows

            rows += verify_rows(stitch_root, log=log)
        print(verify_table(rows, seconds))
        return 0 if rows and all(r.status == "match" for r in rows) else 1
    if args.stitch:
        from dt_playground.dt.runtime import setup_process
        from dt_playground.stitch.lab import build_lab

        setup_process(1)
        lab = build_lab(stitch_root, log=lambda m: print(m, file=sys.stderr))
        print(f"stitching lab: {lab['train_cpu_seconds']:.0f} CPU-s of training", file=sys.stderr)
        if not envs:
            return 0
    out = Path(args.out) if args.out else None
    kwargs = {"out_root": out} if out else {}
    if args.jobs > 1 and len(envs) > 1:
        from dt_playground.zoo.pretrain import pretrain_in_processes

        flags = {
            "steps": args.steps,
            "episodes": args.episodes,
            "card-seeds": args.card_seeds,
            "out": args.out,
            "recollect": args.recollect,
            "no-ablation": args.no_ablation,
        }
        status = pretrain_in_processes(envs, args.jobs, args.threads, flags)
        if status == 0 and not args.no_readme and out is None and ZOO_DOC.exists():
            update_readme(ZOO_DOC)
        return status
    from dt_playground.dt.runtime import setup_process

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
        if out is None and ZOO_DOC.exists():
            update_readme(ZOO_DOC)
    return 0


def cmd_returns(args) -> int:
    from dt_playground.dt.runtime import setup_process
    from dt_playground.training.return_model import ReturnModelRecipe, train_return_model

    setup_process(args.threads)
    recipe = ReturnModelRecipe(**{f.name: getattr(args, f.name) for f in fields(ReturnModelRecipe)})
    t0 = time.perf_counter()
    out = train_return_model(
        args.checkpoint, recipe, threads=args.threads, progress=True, dataset=args.dataset or None
    )
    print(
        f"wrote {out} in {time.perf_counter() - t0:.0f} s: the DT now plays target 'best'",
        file=sys.stderr,
    )
    return 0


def cmd_train_expert(args) -> int:
    from dt_playground.behaviour.ars import train_expert

    train_expert(args.env, seed=args.seed)
    return 0


def cmd_export(args) -> int:
    from dt_playground.checkpoints.hf import export_transformers
    from dt_playground.checkpoints.layout import RETURNS_DIR

    out = export_transformers(args.checkpoint, args.out)
    print(
        f"wrote {out}: load it with DecisionTransformerModel.from_pretrained; input "
        "normalisation is in dt_playground.json",
        file=sys.stderr,
    )
    if (Path(args.checkpoint) / RETURNS_DIR).is_dir():
        print(
            "its return model (returns/, for target 'best') has no counterpart in "
            "transformers and was left out",
            file=sys.stderr,
        )
    return 0


def cmd_import_hf(args) -> int:
    from dt_playground.checkpoints.hf import import_transformers_folder

    out = import_transformers_folder(
        args.model, args.out, args.env or None, args.state_stats or None
    )
    print(f"wrote {out}: play it with `evaluate --checkpoint {out}`", file=sys.stderr)
    return 0


def cmd_critic(args) -> int:
    from dt_playground.dt.runtime import torch_threads
    from dt_playground.offline.critic import MAX_REFIT_SEEDS
    from dt_playground.zoo.offline_zoo import make_critic

    seeds = args.refit_seeds
    if seeds is not None and not 0 <= seeds <= MAX_REFIT_SEEDS:
        print(f"critic: --refit-seeds must be in [0, {MAX_REFIT_SEEDS}]", file=sys.stderr)
        return 2
    with torch_threads(args.threads):
        make_critic(
            args.checkpoint,
            args.steps,
            args.dataset,
            log=lambda m: print(m, file=sys.stderr),
            refit_seeds=seeds,
        )
    return 0


def cmd_card(args) -> int:
    from dt_playground.checkpoints.hub_card import write

    print(f"wrote {write(args.checkpoint)}", file=sys.stderr)
    return 0
