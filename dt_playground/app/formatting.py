"""The short Markdown lines the app shows above its plots, built from results.

Pure string formatting, so handlers stay one library call plus wiring and the
wording is testable without a browser.
"""

from __future__ import annotations

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
    return f"Seed {summary['seed']}: " + " · ".join(parts) + "."


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
            said.append(f"{where} the model was asked for {asked} more and collected **{got}**:"
                        f" **{miss} over** its target.")
        else:
            said.append(f"{where} the model was asked for {asked} more and collected **{got}**"
                        f" by the episode's end: **{miss} short** of its target.")
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


def sweep_run_markdown(line: str, card: dict | None) -> str:
    """The line under a sweep run's figure; where the checkpoint has a card, it says that
    the card's means are still drawn (the run adds to them, it does not replace them)."""
    if not card or not card.get("per_target"):
        return line
    n = card["per_target"][0].get("n", len(card.get("seeds") or []))
    return (f"{line} The dotted grey line is the checkpoint's card ({n} held-out seeds per "
            "target), kept for comparison.")
