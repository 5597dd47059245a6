"""A zoo's offline RL for app tests: a briefly trained critic in a DT's folder and an IQL
checkpoint beside it, with a card measured as the zoo's cards are (the card seeds).

A plain module, as `helpers`: test modules import it by name."""

from __future__ import annotations

from pathlib import Path

from dt_playground.atomic import write_json_atomic
from dt_playground.checkpoints.layout import read_json
from dt_playground.envs.registry import get_spec
from dt_playground.offline.critic import CheckSettings, write_critic
from dt_playground.offline.iql import IQLConfig
from dt_playground.offline.train_iql import base_config, train_iql, write_iql
from dt_playground.zoo.offline_zoo import iql_card, support_of


def add_offline(
    zoo: Path | str,
    dataset,
    env_id: str,
    dt_name: str,
    steps: int = 300,
    card_seeds: int = 2,
    data_root=None,
    hidden: int | None = None,
    check: CheckSettings | None = None,
) -> tuple[Path, Path]:
    """Train IQL ``steps`` steps on ``dataset`` (default: the DT's own), write it as the
    critic of ``zoo/dt_name`` and as ``zoo/<env>-iql`` with a card of ``card_seeds`` card
    seeds at the data's max. Returns (critic folder, IQL folder)."""
    zoo, spec = Path(zoo), get_spec(env_id)
    dt_dir = zoo / dt_name
    dt_config = read_json(dt_dir / "config.json", "config")
    dataset = dataset or dt_config["train"]["dataset"]
    cfg = IQLConfig(steps=steps, return_steps=steps, **({"hidden": hidden} if hidden else {}))
    kwargs = {"root": data_root} if data_root else {}
    res = train_iql(dataset, spec.env_id, cfg, **kwargs)
    base = base_config(res, spec.env_id, "critic")
    critic = write_critic(
        dt_dir, res.model, dt_config, base, check or CheckSettings(), support_of(res)
    )
    iql = write_iql(zoo / f"{spec.short_name}-iql", res, spec.env_id)
    write_json_atomic(iql / "card.json", iql_card(iql, n_seeds=card_seeds))  # the zoo's card
    return critic, iql
