"""The short Markdown lines the app shows above its plots, built from results.

Pure string formatting, so handlers stay one library call plus wiring and the
wording is testable without a browser.
"""

from __future__ import annotations

import math

NORMALISED_SCORE_NOTE = (
    "Normalised score: 0 = a random policy, 100 = the reference expert "
    "(the dataset's own reference returns where it has them), as in D4RL."
)


def _num(x) -> str:
    if isinstance(x, str):
        return x
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def grid_markdown(summary: dict) -> str:
    """One line per grid: each tile's request and what it got."""
    parts = [
        f"{t.get('label') or _num(t['target'])} → **{_num(t['achieved'])}** ({t['length']} steps)"
        for t in summary["tiles"]
    ]
    checked = "**Checked by its critic.** " if summary.get("checked") else ""
    return f"{checked}Seed {summary['seed']}: " + " · ".join(parts) + "."


def schedule_markdown(summary: dict) -> str:
    """The return gained in each stretch of a re-prompted episode."""
    parts = []
    for seg in summary["segments"]:
        if seg["steps"] == 0:
            parts.append(f"from step {seg['start']} asked {_num(seg['target'])}: never reached")
            continue
        rate = seg["return"] / seg["steps"]
        parts.append(
            f"from step {seg['start']} asked **{_num(seg['target'])}** → gained "
            f"**{_num(seg['return'])}** in {seg['steps']} steps ({rate:.2f}/step)"
        )
    return (
        f"Re-prompted episode, total **{_num(summary['achieved'])}** in {summary['length']} "
        "steps: " + "; ".join(parts) + "." + delivery_markdown(summary.get("delivery") or [])
    )


def delivery_markdown(delivery: list[dict]) -> str:
    """A sentence per stretch that missed its target (rollout/delivery.py), e.g. "From
    step 300 the model was asked for 500 more and collected 2240: 1740 over, it ignored
    the re-prompt." Empty when every stretch kept to its target or could not be judged."""
    said = []
    for d in delivery:
        if d["verdict"] not in ("over", "under"):
            continue
        asked, got, miss = _num(d["target"]), _num(d["collected"]), _num(abs(d["miss"]))
        where = "From the start" if d["start"] == 0 else f"From step {d['start']}"
        if d["verdict"] == "over":
            said.append(
                f"{where} the model was asked for {asked} more and collected **{got}**:"
                f" **{miss} over** its target."
            )
        else:
            said.append(
                f"{where} the model was asked for {asked} more and collected **{got}**"
                f" by the episode's end: **{miss} short** of its target."
            )
    met = [d for d in delivery if d["verdict"] == "met"]
    if not said and met:
        return " Every stretch that ran to the end kept to its target (within 10%)."
    return (" ⚠️ " + " ".join(said)) if said else ""


def card_markdown(card: dict | None) -> str:
    """What the card's sweep figure shows, for the Sweep tab on arrival."""
    if not card or not card.get("per_target"):
        return "This checkpoint has no card: press **Run sweep** to measure it."
    n = card["per_target"][0].get("n", len(card.get("seeds") or []))
    rho = card.get("spearman")
    rho_text = f"Spearman ρ = **{rho:.2f}**, " if rho is not None else ""
    return (
        f"From the checkpoint's card: {len(card['per_target'])} targets × {n} held-out seeds, "
        f"{rho_text}normalised score at the top target **{card.get('normalised_top', 0):.0f}** "
        "(0 = random policy, 100 = expert). "
        "**Run sweep** measures it again on fresh seeds."
    )


def summary_markdown(s: dict) -> str:
    """One line under a play: requested vs achieved, and where the request sits."""
    where = s["target_percentile_in_dataset"]
    if not math.isnan(where):
        where = (
            "above every episode in the data: expect saturation"
            if where >= 100
            else f"above {where:.0f}% of the dataset's episodes"
        )
    note = {"dt": "", "iql": " (IQL ignores the target: its objective is fixed)"}.get(
        s["algo"], " (BC ignores the target)"
    )
    if isinstance(s["requested"], str):  # "best": the model picked its own
        asked, where = "**best**", "the model's own pick, step by step (its best of the data)"
        card = s.get("best_on_card")
        if card:
            where += (
                f". On its card best scores **{card['mean']:.0f} ± {card['std']:.0f}** "
                f"over {card['seeds']} held-out seeds: one episode is one draw from that"
            )
    else:
        asked, where = f"{s['requested']:.1f}", f"the request is {where}"
    return (
        f"**Requested** {asked} → **achieved** {s['achieved']:.1f}{note} in "
        f"{s['length']} steps · normalised score **{s['normalised_score']:.0f}** "
        f"(0 = random, 100 = expert) · {where}.{checked_note(s)}"
    )


def checked_note(s: dict) -> str:
    """What a checked play adds to its line: the critic chose each action, and what it
    expected at the start (does the critic believe the promise?)."""
    if not s.get("checked"):
        return ""
    start = s.get("critic_expected_at_start")
    said = f": at the start it expected **{_num(start)}**" if start is not None else ""
    return f" **Checked by its critic**, which chose every action{said}."


def sweep_markdown(res: dict) -> str:
    """One line under the sweep figure."""
    rho, within = res["spearman"], res["spearman_in_data_range"]
    if math.isnan(rho) and math.isnan(within):  # as IQL and BC play: they ignore targets
        corr = "Spearman ρ is undefined: every target got the same mean return "
    else:
        corr = (
            f"Spearman ρ(target, mean achieved) = **{rho:.2f}** over all targets, "
            f"**{within:.2f}** within the dataset's range "
        )
    return (
        ("**Checked by its critic.** " if res.get("checked") else "")
        + corr
        + f"({len(res['rows'])} episodes in {res['seconds']:.1f} s)."
    )


def source_line(
    env_id: str, checkpoint: str, seed, target=None, schedule=None, checked: bool = False
) -> str:
    """What made a result: env, checkpoint, target (or schedule) and seed, in one line
    (and, when ``checked``, that the DT's critic chose its actions)."""
    if schedule is not None:
        asked = f"schedule {schedule}"
    elif target is None:
        asked = ""
    else:
        asked = "target best" if target == "best" else f"target {_num(float(target))}"
    critic = "checked" if checked else ""  # by its critic: short, so a phone's title fits
    return " · ".join(p for p in (env_id, checkpoint, asked, f"seed {seed}", critic) if p)


def with_source(fig, source: str):
    """The figure's title over ``source`` (its small second line), so a plot says what
    made it wherever it is seen; returns the figure."""
    head = str(fig.layout.title.text or "").split("<br>")[0]
    fig.update_layout(title_text=f"{head}<br><sup>{source}</sup>")
    return fig


def sweep_run_markdown(line: str, card: dict | None) -> str:
    """The line under a sweep run's figure; where the checkpoint has a card, it says that
    the card's means are still drawn (the run adds to them, it does not replace them)."""
    if not card or not card.get("per_target"):
        return line
    n = card["per_target"][0].get("n", len(card.get("seeds") or []))
    return (
        f"{line} The dotted grey line is the checkpoint's card ({n} held-out seeds per "
        "target), kept for comparison."
    )
