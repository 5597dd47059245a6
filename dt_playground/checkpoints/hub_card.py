"""Hub model cards: a checkpoint's README.md, with the YAML front matter the Hugging Face
Hub reads (https://huggingface.co/docs/hub/model-cards).

The front matter says what the model is (``library_name``, ``tags``, ``pipeline_tag``),
what it was trained on (``datasets``: the Minari dataset id) and how it did
(``model-index``: the card's mean return at the top target and, when the card has it,
in ``best`` mode, each with its seeds), in the ``mean_reward`` / "mean +/- std" form the
Hub's RL leaderboards and other RL libraries' cards use. The body is the card as text.

Everything comes from the folder's config.json and card.json (read as JSON, the model
is never loaded), so ``python -m dt_playground card --checkpoint P`` is cheap.
"""

from __future__ import annotations

from pathlib import Path

from dt_playground.atomic import write_text_atomic
from dt_playground.checkpoints.layout import read_json
from dt_playground.data.summary import DatasetSummary
from dt_playground.envs.registry import get_spec

LIBRARY = "dt-playground"
ALGO_NAMES = {
    "dt": "Decision Transformer",
    "bc": "Behaviour cloning",
    "pbc": "%BC (behaviour cloning on the top 10%)",
    "iql": "Implicit Q-Learning (IQL, offline RL: a fixed objective, no target)",
}


def _seeds(card: dict) -> str:
    s = card.get("seeds") or []
    return f"{s[0]}..{s[-1]}" if s else "unknown"


def card_result_lines(card: dict) -> list[str]:
    """A card's results as Markdown lines: the per-target table, Spearman rho, `best`,
    the top target against the data, and the bars."""
    lines = [
        f"Evaluated on seeds {_seeds(card)} (never used for training or selection).",
        "",
        "| target | mean | std |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['target']:.1f} | {r['mean']:.1f} | {r['std']:.1f} |"
        for r in card.get("per_target") or []
    ]
    if card.get("spearman") is not None:
        lines += ["", f"Spearman rho(target, mean achieved) = {card['spearman']:.3f}."]
    if card.get("best_mean") is not None:
        lines += [
            "",
            f"Target `best` (kappa {card.get('best_kappa', 10):g}): "
            f"{card['best_mean']:.1f} ± {card['best_std']:.1f} (shortfall "
            f"{100 * card.get('best_shortfall', float('nan')):.1f}% of the dataset's "
            "top-10% mean above its min).",
        ]
    if card.get("top_target_mean") is not None and card.get("dataset_top10_mean"):
        lines += [
            "",
            f"Top-target mean {card['top_target_mean']:.1f} vs dataset top-10% "
            f"mean {card['dataset_top10_mean']:.1f} and max "
            f"{card.get('dataset_max', float('nan')):.1f}.",
        ]
    for key, v in (card.get("bars") or {}).items():
        lines.append(f"- bar `{key}`: {'met' if v else ('n/a' if v is None else 'MISSED')}")
    return lines


REFIT_LINE = (
    " The critic's return net was refit on the DT's own episodes (critic-rollout seeds, "
    "never these)."
)


def checked_lines(card: dict) -> list[str]:
    """The checked DT's rows (``critic/card.json``): each target, unchecked beside checked,
    on the same seeds."""
    actor = (
        " IQL's own action is one more candidate"
        + (" for every row." if card.get("actor_asks") else " where `best` plays.")
        if card.get("actor") or card.get("actor_asks")
        else ""
    )
    best = "the highest Q" if card.get("q_for_best", True) else "the DT's own action"
    lines = [
        f"The DT proposes {card.get('n')} actions a step (returns-to-go within "
        f"±{100 * card.get('spread', 0):.0f}% of the data's range around the one asked); "
        "its critic keeps the one whose value is closest to the return still asked "
        f"(`best`: {best}).{actor}{REFIT_LINE if card.get('refit') else ''} "
        f"Seeds {_seeds(card)}.",
        "",
        "| target | unchecked | checked |",
        "|---:|---:|---:|",
    ]
    for r in card.get("rows") or []:
        t = r["target"] if isinstance(r["target"], str) else f"{r['target']:.1f}"
        lines.append(f"| {t} | {r['plain']:.1f} | {r['checked']:.1f} |")
    rho = [card.get(k) for k in ("spearman_plain", "spearman_checked")]
    if None not in rho:
        lines += ["", f"Spearman rho: unchecked {rho[0]:.3f}, checked {rho[1]:.3f}."]
    err = [card.get(k) for k in ("abs_err_plain", "abs_err_checked")]
    if None not in err:
        lines += [
            "",
            f"Mean |achieved - asked| over the targets up to the data's p90: "
            f"unchecked {err[0]:.1f}, checked {err[1]:.1f}.",
        ]
    if card.get("default"):
        lines += ["", f"Default for this env: **{card['default']}** (the better of the two)."]
    return lines


def _results(name: str, card: dict) -> list:
    """The model-index entries: top target, and best mode when the card has it."""
    from huggingface_hub import EvalResult

    env = card["env_id"]
    rows = []
    top = max(card.get("per_target") or [], key=lambda r: r["target"], default=None)
    if top is not None:
        rows.append(
            (f"mean return at the top target {top['target']:.0f}", top, {"target": top["target"]})
        )
    if card.get("best_mean") is not None:  # the DT's own pick (return model or head)
        rows.append(
            (
                "mean return with target 'best'",
                {"mean": card["best_mean"], "std": card["best_std"]},
                {"target": "best"},
            )
        )
    return [
        EvalResult(
            task_type="reinforcement-learning",
            task_name="reinforcement-learning",
            dataset_type=env,
            dataset_name=env,
            metric_type="mean_reward",
            metric_name=label,
            metric_value=f"{r['mean']:.2f} +/- {r['std']:.2f}",
            metric_args={
                **args,
                "episodes": int(r.get("n", len(card.get("seeds") or []))),
                "seeds": _seeds(card),
            },
        )
        for label, r, args in rows
    ]


def front_matter(name: str, config: dict, card: dict | None, library_name: str = LIBRARY) -> str:
    """The YAML between the card's ``---`` lines."""
    from huggingface_hub import ModelCardData

    env, algo = config["env_id"], config.get("algo", "dt")
    tags = ["decision-transformer", "offline-rl", "reinforcement-learning", "gymnasium", env]
    if algo in ("bc", "pbc"):
        tags.insert(1, "behavior-cloning")
    if algo == "iql":
        tags[0] = "iql"
    if library_name != LIBRARY:
        tags.append(LIBRARY)
    dataset_id = DatasetSummary.from_dict(config.get("dataset")).dataset_id
    data = ModelCardData(
        library_name=library_name,
        pipeline_tag="reinforcement-learning",
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        model_name=name,
        eval_results=_results(name, card) if card else None,
    )
    return data.to_yaml()


def body(
    name: str,
    config: dict,
    card: dict | None,
    library_name: str = LIBRARY,
    checked: dict | None = None,
) -> str:
    """The card's markdown: what it is, how it was made, how it did, how to use it."""
    env, algo = config["env_id"], config.get("algo", "dt")
    d = DatasetSummary.from_dict(config.get("dataset"))
    k = (config.get("model") or {}).get("context_len", config.get("context_len"))
    made = (
        f"imported from a `transformers` model ({config['train'].get('source', '')})"
        if (config.get("train") or {}).get("imported_from")
        else f"trained by `python -m dt_playground pretrain --env {env}`"
    )
    data = f" on `{d.dataset_id}`" if d.dataset_id else ""
    if d.episodes and d.return_min is not None and d.return_max is not None:
        data += f" ({d.episodes} episodes, returns {d.return_min:.0f} to {d.return_max:.0f})"
    context = "" if algo == "iql" else f" (context K={k})"
    lines = [
        f"# {name}",
        "",
        f"{ALGO_NAMES.get(algo, algo)} on **{env}**{context}, {made}{data}.",
        "",
    ]
    sel = config.get("selected")
    if algo == "iql" and isinstance(sel, dict):
        lines += [
            f"Its actor is the run's snapshot at step {sel.get('step')} of "
            f"{config.get('steps_done')}: of the snapshots taken every {sel.get('every')} "
            f"steps, the one that played best on {sel.get('trial_seeds')} trial seeds (never "
            "the card's seeds).",
            "",
        ]
    if card:
        lines += card_result_lines(card)
    else:
        lines.append("Not evaluated here yet (no card.json).")
    if checked:
        lines += ["", "## Checked by its critic", ""] + checked_lines(checked)
    lines += ["", "## Use", ""]
    if library_name == "transformers":
        lines += [
            "```python",
            "from transformers import DecisionTransformerModel",
            f'model = DecisionTransformerModel.from_pretrained("{name}")',
            "```",
            "",
            "`dt_playground.json` holds what `transformers` doesn't: feed states as "
            "`(s - state_mean) / state_std` and returns-to-go divided by `scale`, over the "
            "last `max_len` steps; the env action is `action_preds * action_scale`. "
            "`python -m dt_playground import-hf --model DIR --out CKPT` turns this folder "
            "back into a playable checkpoint.",
        ]
    else:
        top = max((r["target"] for r in (card or {}).get("per_target") or []), default=None)
        if top is None:
            top = d.return_max if d.return_max is not None else max(get_spec(env).target_presets)
        target = f"{top:.0f}"
        lines += [
            "```bash",
            f"python -m dt_playground evaluate --checkpoint pretrained/{name} "
            f"--target {target} --episodes 5",
        ]
        if (card or {}).get("best_mean") is not None:  # its return model (returns/) or head
            lines.append(
                f"python -m dt_playground evaluate --checkpoint pretrained/{name} "
                "--target best --episodes 5"
            )
        if algo != "iql":  # a transformers DT folder needs a DT
            lines.append(
                f"python -m dt_playground export --checkpoint pretrained/{name} "
                f"--format transformers --out {name}-transformers"
            )
        lines.append("```")
    return "\n".join(lines) + "\n"


def render(ck_dir: str | Path, library_name: str = LIBRARY) -> str:
    """The README.md of checkpoint folder ``ck_dir``: front matter and body."""
    ck_dir = Path(ck_dir)
    config = read_json(ck_dir / "config.json", "The checkpoint's config")
    card = read_json(ck_dir / "card.json", "card") if (ck_dir / "card.json").is_file() else None
    critic_card = ck_dir / "critic" / "card.json"  # the checked rows, when measured
    checked = read_json(critic_card, "card") if critic_card.is_file() else None
    name = ck_dir.name
    return (
        f"---\n{front_matter(name, config, card, library_name)}\n---\n\n"
        f"{body(name, config, card, library_name, checked)}"
    )


def write(ck_dir: str | Path) -> Path:
    """Regenerate ``ck_dir/README.md`` atomically."""
    path = Path(ck_dir) / "README.md"
    write_text_atomic(path, render(ck_dir))
    return path
