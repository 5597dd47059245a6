"""The shipped zoo: every checkpoint loads, fits its env and plays; docs/zoo.md's
table is the cards' table; `pretrain` runs end to end on a tiny budget."""

import json
import shutil
from pathlib import Path

import pytest

from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.checkpoints.layout import list_checkpoints
from dt_playground.data.storage import read_collection
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.rollout.policy import DTPolicy, run_episodes
from dt_playground.training.train import TrainConfig
from dt_playground.zoo.cards import README_END, README_START, zoo_table
from dt_playground.zoo.pretrain import already_trained, pretrain_env

SHIPPED = list_checkpoints(PRETRAINED_DIR)
ZOO_DOC = Path(__file__).resolve().parents[2] / "docs" / "zoo.md"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoint_loads_and_plays(path):
    ck = load_checkpoint(path, expect_env=json.loads((path / "config.json").read_text())["env_id"])
    cfg = ck.config
    assert cfg["algo"] in ("dt", "bc", "pbc") and cfg["context_len"] == ck.model.cfg.context_len
    for key in (
        "return_min",
        "return_p10",
        "return_median",
        "return_max",
        "return_top10_mean",
        "histogram",
    ):
        assert key in cfg["dataset"], key
    assert ck.card is not None and (path / "README.md").is_file()
    tr = run_episodes(
        DTPolicy(ck.model, ck.norm, ck.spec), [cfg["dataset"]["return_max"]], [0], max_steps=20
    )[0]
    assert 1 <= tr.length <= 20


def test_every_shipped_checkpoint_is_what_its_recipe_makes():
    """`pretrain --all` in a fresh clone keeps every shipped checkpoint (and return model):
    each was trained by its env's current recipe on data with the hash it records."""
    from dt_playground.zoo.pretrain import (
        RECIPES,
        checkpoint_name,
        recipe_config,
        return_model_recipe,
    )

    seen = set()
    for env, recipe in RECIPES.items():
        runs = [("bc", 20), ("pbc", 20), ("dt", 20)] + [("dt", k) for k in recipe.ablation_ks]
        for algo, k in runs:
            cfg = recipe_config(env, algo, k, recipe, "any", PRETRAINED_DIR)
            path = Path(cfg.out)
            sha = json.loads((path / "config.json").read_text())["dataset"]["sha256"]
            assert already_trained(cfg, sha), path.name
            if algo == "dt" and k == 20:
                assert (recipe.returns is not None) == (path / "returns").is_dir(), path.name
                if recipe.returns is not None:
                    rm = return_model_recipe(recipe)
                    config = json.loads((path / "config.json").read_text())
                    assert already_trained(rm.train_config(config, path / "returns"), sha)
                    assert load_checkpoint(path).best_kappa == rm.kappa
            seen.add(checkpoint_name(env, algo, k))
    assert seen == {p.name for p in SHIPPED}


def test_zoo_size_budget():
    total = sum(f.stat().st_size for f in PRETRAINED_DIR.rglob("*") if f.is_file())
    assert total < 80 * 1024 * 1024  # the IQL checkpoints and critics brought it to ~66 MB


def test_zoo_doc_table_matches_cards():
    text = ZOO_DOC.read_text()
    table = text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert table == zoo_table(PRETRAINED_DIR)


def test_pretrain_tiny_budget(tmp_path, monkeypatch):
    from dataclasses import replace

    from dt_playground.training.return_model import ReturnModelRecipe
    from dt_playground.zoo import pretrain

    # CartPole's recipe with a return model instead of the head, as the other envs'.
    recipe = replace(
        pretrain.RECIPES["CartPole-v1"],
        return_bins=0,
        returns=ReturnModelRecipe(hidden=16, n_layers=1, kappa=30.0),
    )
    monkeypatch.setitem(pretrain.RECIPES, "CartPole-v1", recipe)
    logs = []
    cards = pretrain_env(
        "CartPole-v1",
        out_root=tmp_path / "zoo",
        steps=10,
        episodes=12,
        n_seeds=2,
        data_root=tmp_path / "data",
        log=logs.append,
    )
    assert set(cards) == {"cartpole-dt", "cartpole-bc", "cartpole-pbc", "cartpole-iql"}
    iql = cards.pop("cartpole-iql")  # IQL on the same data, and the DT's critic
    assert iql["algo"] == "iql" and set(iql["references"]) == {"bc", "pbc"}
    assert (tmp_path / "zoo" / "cartpole-dt" / "critic" / "model.safetensors").is_file()
    assert "Implicit Q-Learning" in (tmp_path / "zoo" / "cartpole-iql" / "README.md").read_text()
    # the DT's critic card: unchecked and checked on the same card seeds, and its default
    critic_card = json.loads(
        (tmp_path / "zoo" / "cartpole-dt" / "critic" / "card.json").read_text()
    )
    assert critic_card["seeds"] == [1_000_000, 1_000_001] and len(critic_card["rows"]) == 9
    assert critic_card["default"] in ("checked", "unchecked")
    assert (
        "## Checked by its critic" in (tmp_path / "zoo" / "cartpole-dt" / "README.md").read_text()
    )
    assert any("cartpole-dt/critic: error p10..p90" in m for m in logs)
    dt = cards["cartpole-dt"]
    assert len(dt["per_target"]) == 8 and dt["seeds"] == [1_000_000, 1_000_001]
    assert set(dt["references"]) == {"bc", "pbc"} and "bars" in dt
    sha = read_collection(tmp_path / "data" / "dtp/cartpole/mixed-v0")["sha256"]
    assert dt["best_kappa"] == 30.0 and "best_shortfall_le_5pct" in dt["bars"]
    returns = json.loads((tmp_path / "zoo" / "cartpole-dt" / "returns" / "config.json").read_text())
    assert returns["train"]["steps"] == 10 and returns["train"]["out"] == "returns"
    assert returns["dataset"]["sha256"] == sha and returns["kappa"] == 30.0
    for name in cards:
        ck = load_checkpoint(tmp_path / "zoo" / name)
        assert ck.card == json.loads((tmp_path / "zoo" / name / "card.json").read_text())
        # the data's content hash travels with the checkpoint; no machine paths do
        assert ck.config["dataset"]["sha256"] == sha
        assert ck.config["train"]["dataset"] == "dtp/cartpole/mixed-v0"
        assert ck.config["train"]["out"] == name
    assert "cartpole-dt" in zoo_table(tmp_path / "zoo")
    assert any("done in" in m for m in logs)
    # Re-running the same recipe keeps finished checkpoints (and re-evaluates their cards).
    again = []
    pretrain_env(
        "CartPole-v1",
        out_root=tmp_path / "zoo",
        steps=10,
        episodes=12,
        n_seeds=2,
        data_root=tmp_path / "data",
        log=again.append,
    )
    # (and cartpole-dt/returns, and cartpole-iql with the DT's critic)
    assert sum("kept cartpole-" in m for m in again) == 5
    # An IQL folder whose snapshot was not picked is trained again; its critic is kept.
    from dt_playground.zoo.offline_zoo import ensure_iql, selection_done

    iql_config = tmp_path / "zoo" / "cartpole-iql" / "config.json"
    unpicked = json.loads(iql_config.read_text())
    del unpicked["selected"]
    iql_config.write_text(json.dumps(unpicked))
    critic = tmp_path / "zoo" / "cartpole-dt" / "critic" / "model.safetensors"
    made = (critic.stat().st_ino, critic.stat().st_mtime_ns)  # rewritten: a new file
    third: list[str] = []
    data = str(tmp_path / "data" / "dtp/cartpole/mixed-v0")
    ensure_iql("CartPole-v1", data, sha, tmp_path / "zoo", steps=10, log=third.append)
    assert any("kept cartpole-dt's critic; training cartpole-iql again" in m for m in third)
    assert (critic.stat().st_ino, critic.stat().st_mtime_ns) == made
    assert selection_done(iql_config.parent)
    # ...but not one trained on other data (`pretrain`'s keep-check compares the hash)
    cfg = TrainConfig(
        **{
            **load_checkpoint(tmp_path / "zoo" / "cartpole-bc").config["train"],
            "out": str(tmp_path / "zoo" / "cartpole-bc"),
        }
    )
    assert already_trained(cfg, sha) and not already_trained(cfg, "0" * 64)
    shutil.rmtree(tmp_path / "zoo")
