"""The CLI end to end on a tiny dataset, in subprocesses like a user would run it."""

import json
import os
import subprocess
import sys

import pytest


def _run(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dt_playground", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.parametrize("cmd", ["collect", "train", "evaluate", "sweep", "bench"])
def test_help(cmd):
    r = _run(cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout


@pytest.mark.slow
def test_collect_train_evaluate_sweep(tmp_path):
    root = tmp_path / "datasets"
    r = _run(
        "collect", "--env", "CartPole-v1", "--episodes", "12", "--seed", "0", "--root", str(root)
    )
    assert r.returncode == 0, r.stderr
    ds = root / "dtp" / "cartpole" / "mixed-v0"
    assert (ds / "data" / "main_data.hdf5").is_file()
    ck = tmp_path / "ck"
    r = _run(
        "train",
        "--dataset",
        str(ds),
        "--out",
        str(ck),
        "--steps",
        "20",
        "--hidden",
        "32",
        "--n-layers",
        "1",
        "--context-len",
        "4",
        "--batch-size",
        "16",
        "--eval-episodes",
        "1",
    )
    assert r.returncode == 0, r.stderr
    assert (ck / "config.json").is_file() and (ck / "model.safetensors").is_file()

    r = _run(
        "evaluate",
        "--checkpoint",
        str(ck),
        "--target",
        "200",
        "--episodes",
        "2",
        "--seed",
        "7",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    eps = json.loads(r.stdout)["episodes"]
    assert [(e["target"], e["seed"]) for e in eps] == [(200.0, 7), (200.0, 8)]
    assert all(e["length"] >= 1 and e["return"] == e["length"] for e in eps)  # CartPole: +1/step

    r = _run(
        "sweep",
        "--checkpoint",
        str(ck),
        "--targets",
        "50,500",
        "--seeds",
        "2",
        "--seed",
        "3",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    eps = json.loads(r.stdout)["episodes"]
    assert sorted((e["target"], e["seed"]) for e in eps) == [
        (50.0, 3),
        (50.0, 4),
        (500.0, 3),
        (500.0, 4),
    ]

    # Same seed, same episode: evaluate and sweep agree.
    r2 = _run(
        "evaluate",
        "--checkpoint",
        str(ck),
        "--target",
        "50",
        "--episodes",
        "1",
        "--seed",
        "3",
        "--json",
    )
    one = json.loads(r2.stdout)["episodes"][0]
    assert one == next(e for e in eps if e["target"] == 50.0 and e["seed"] == 3)

    r = _run(
        "sweep",
        "--checkpoint",
        str(ck),
        "--targets",
        "50,500",
        "--seeds",
        "2",
        "--seed",
        "3",
        "--precision",
        "bf16",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    bf = json.loads(r.stdout)["episodes"]
    assert [(e["target"], e["seed"]) for e in bf] == [(e["target"], e["seed"]) for e in eps]
    assert all(e["length"] >= 1 and e["return"] == e["length"] for e in bf)
    r = _run("sweep", "--checkpoint", str(ck), "--targets", "50", "--precision", "fp16")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_bad_inputs_are_clear_errors(tmp_path):
    r = _run("evaluate", "--checkpoint", str(tmp_path / "nope"), "--target", "1")
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = _run("collect", "--env", "Nope-v0")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = _run("train", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "No Minari dataset" in r.stderr


def test_train_takes_env_like_every_verb():
    """`train --env` (as collect/pretrain spell it) and the older `--env-id` agree."""
    from dt_playground.cli.main import build_parser

    parser = build_parser()
    new = parser.parse_args(["train", "--env", "CartPole-v1"])
    old = parser.parse_args(["train", "--env-id", "CartPole-v1"])
    assert new.env_id == old.env_id == "CartPole-v1"
    assert parser.parse_args(["train"]).env_id == ""


def test_pretrain_jobs_spread_envs_over_processes():
    """`pretrain --all --jobs N`: one child command per env, each with its thread count
    and the caller's flags (switches bare, values with '=', absent ones left out)."""
    from dt_playground.zoo.pretrain import pretrain_commands

    cmds = pretrain_commands(
        ["CartPole-v1", "Pendulum-v1"],
        3,
        {"steps": 20, "episodes": None, "recollect": True, "no-ablation": False, "out": "runs/zoo"},
    )
    assert [c[c.index("--env") + 1] for c in cmds] == ["CartPole-v1", "Pendulum-v1"]
    for c in cmds:
        assert c[1:4] == ["-m", "dt_playground", "pretrain"]
        assert {"--threads=3", "--steps=20", "--recollect", "--out=runs/zoo", "--no-readme"} <= set(
            c
        )
        assert not any(a.startswith(("--episodes", "--no-ablation")) for a in c)


def test_sweep_with_defaults_reproduces_a_card(capsys):
    """`sweep` defaults to the card seeds and one torch thread, as the cards were made.
    (The card played every target in one batch; a batch of another size rounds a little
    differently, hence the tolerance.)"""
    from pathlib import Path

    from dt_playground.cli.main import main

    ck = Path(__file__).resolve().parents[2] / "pretrained" / "pendulum-dt"
    card = json.loads((ck / "card.json").read_text())
    top = card["per_target"][-1]
    assert (
        main(
            [
                "sweep",
                "--checkpoint",
                str(ck),
                f"--targets={top['target']}",
                "--seeds",
                str(top["n"]),
                "--json",
            ]
        )
        == 0
    )
    rets = [e["return"] for e in json.loads(capsys.readouterr().out)["episodes"]]
    assert sum(rets) / len(rets) == pytest.approx(top["mean"], abs=0.5)
