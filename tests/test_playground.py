"""The app's handlers' library side, without Gradio."""

import math
import zipfile

import numpy as np
import pytest

from dt_playground import playground as pg
from dt_playground.rollout import DTPolicy, run_episodes


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


def test_choices_and_target_range(zoo):
    choices = pg.checkpoint_choices("CartPole-v1")
    assert [c[1] for c in choices] == ["cartpole-dt", "cartpole-bc"]  # names in pretrained/
    assert pg.get_checkpoint("cartpole-dt").path == zoo / "cartpole-dt"
    assert "DT, K=5" in choices[0][0]
    assert pg.checkpoint_choices("Pendulum-v1") == []
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    r = pg.target_range(ck)
    d = ck.config["dataset"]
    assert r.minimum < d["return_min"] and r.maximum > d["return_max"]
    assert r.marks["median"] == d["return_median"]


def test_play_matches_library_rollout(zoo):
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    trace = pg.play_episode(ck, 321.0, 4)
    ref = run_episodes(DTPolicy(ck.model, ck.norm, ck.spec), [321.0], [4])[0]
    np.testing.assert_array_equal(trace.actions, ref.actions)
    s = pg.episode_summary(trace, ck)
    assert s["achieved"] == pytest.approx(ref.ret) and s["requested"] == 321.0
    rets = np.array(ck.config["dataset"]["returns"])
    assert s["target_percentile_in_dataset"] == pytest.approx(100 * (rets < 321).mean(), abs=0.1)
    assert "Requested" in pg.summary_markdown(s)


@pytest.mark.parametrize(
    "bad,msg",
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("abc", "must be a number"),
        (None, "must be a number"),
        (1e12, "out of range"),
    ],
)
def test_bad_targets(zoo, bad, msg):
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    with pytest.raises(pg.PlaygroundError, match=msg):
        pg.play_episode(ck, bad, 0)
    assert pg.play_episode(ck, 100, 0).length > 0  # next request fine


@pytest.mark.parametrize("bad", [-1, 1.5, "x", 2**40])
def test_bad_seeds(zoo, bad):
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    with pytest.raises(pg.PlaygroundError, match="Seed"):
        pg.play_episode(ck, 100, bad)


def test_env_checkpoint_mismatch_and_unknown_env(zoo):
    with pytest.raises(pg.PlaygroundError, match="trained on CartPole-v1, not LunarLander-v3"):
        pg.get_checkpoint(zoo / "cartpole-dt", "LunarLander-v3")
    with pytest.raises(pg.PlaygroundError, match="Unknown environment"):
        pg.get_checkpoint(zoo / "cartpole-dt", "Nope-v9")
    with pytest.raises(pg.PlaygroundError, match="does not exist"):
        pg.get_checkpoint(zoo / "missing", "CartPole-v1")


def test_episode_length_is_capped(zoo):
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    assert pg.play_episode(ck, 500, 0, max_steps=10**9).length <= pg.MAX_EPISODE_STEPS
    assert pg.play_episode(ck, 500, 0, max_steps=7).length <= 7


def test_sweep_and_references(zoo):
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    targets = pg.sweep_targets(ck, 3)
    assert targets[0] == pytest.approx(ck.config["dataset"]["return_p10"], abs=0.1)
    res = pg.run_sweep(ck, targets, 2, seed=10, max_steps=50)
    assert len(res["rows"]) == 6
    assert {(r["target"], r["seed"]) for r in res["rows"]} == {
        (t, s) for t in targets for s in (10, 11)
    }
    assert -1 <= res["spearman"] <= 1 or math.isnan(res["spearman"])
    refs = pg.references("CartPole-v1", [10, 11], 50)
    assert set(refs) == {"BC"}
    with pytest.raises(pg.PlaygroundError, match="at most"):
        pg.run_sweep(ck, targets, 1000)


def test_compare_models(zoo):
    res = pg.compare_models("CartPole-v1", 2, seed=5, max_steps=30)
    assert len(res) == 2 and all(len(v) == 2 for v in res.values())
    with pytest.raises(pg.PlaygroundError, match="No pretrained"):
        pg.compare_models("Pendulum-v1", 2)


def test_upload_round_trip_and_refusals(zoo, tmp_path):
    z = tmp_path / "ck.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (zoo / "cartpole-dt").iterdir():
            zf.write(f, f"cartpole-dt/{f.name}")
    session = pg.new_session_dir()
    try:
        ck = pg.import_upload(z, session)
        assert ck.spec.env_id == "CartPole-v1"
        assert any(
            p == str(ck.path)
            for _, p in pg.checkpoint_choices("CartPole-v1", [session / "uploads"])
        )
        fake = tmp_path / "fake.zip"
        fake.write_bytes(b"\x80\x04\x95 pickle, not a zip")
        with pytest.raises(pg.PlaygroundError, match="not a zip"):
            pg.import_upload(fake, session)
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("config.json", "{}")
            zf.writestr("model.safetensors", b"garbage")
        with pytest.raises(pg.PlaygroundError, match="missing 'env_id'"):
            pg.import_upload(bad, session)
    finally:
        pg.cleanup_session_dir(session)
    assert not session.exists()


def test_training_job_runs_and_cancels(zoo, cartpole_dataset, tmp_path):
    from dt_playground.train import TrainConfig

    cfg = TrainConfig(
        dataset=str(cartpole_dataset[0]),
        out=str(tmp_path / "job"),
        steps=2000,
        batch_size=8,
        context_len=3,
        hidden=16,
        n_layers=1,
        eval_episodes=0,
        save_every=0,
    )
    job = pg.TrainJob(cfg).start()
    import time

    while len(job.steps) < 5:
        time.sleep(0.05)
    job.stop.set()
    while not job.done:
        time.sleep(0.05)
    assert job.error is None and 5 <= len(job.steps) < 2000
    assert (tmp_path / "job" / "model.safetensors").exists()  # what was done is kept


@pytest.mark.parametrize(
    "args,msg",
    [
        (("Hopper-v5", "dt", 100, 20, 1e-3), "offered for"),
        (("CartPole-v1", "dt", 5, 20, 1e-3), "Steps"),
        (("CartPole-v1", "dt", 100, 0, 1e-3), "Context length"),
        (("CartPole-v1", "dt", 100, 20, float("nan")), "Learning rate"),
        (("CartPole-v1", "xx", 100, 20, 1e-3), "Unknown algorithm"),
    ],
)
def test_training_config_validation(args, msg, tmp_path):
    with pytest.raises(pg.PlaygroundError, match=msg):
        pg.training_config(*args, tmp_path)


def test_normalised_score_prefers_dataset_refs(zoo):
    import copy

    ck = copy.copy(pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1"))
    ck.config = {
        **ck.config,
        "dataset": {**ck.config["dataset"], "ref_min_score": 0.0, "ref_max_score": 200.0},
    }
    assert pg.normalised_score(100.0, ck) == pytest.approx(50.0)
    ck.config["dataset"] = {
        k: v for k, v in ck.config["dataset"].items() if not k.startswith("ref_")
    }
    assert pg.normalised_score(100.0, ck) == pytest.approx(ck.spec.normalised_score(100.0))


def test_shared_dir_prunes_old_files():
    import os
    import time

    d = pg.shared_dir()
    old, new = d / "old.mp4", d / "new.mp4"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert pg.shared_dir() == d
    assert not old.exists() and new.exists()
    new.unlink()


def test_attention_at_a_step(zoo):
    ck = pg.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    K = ck.config["context_len"]
    att = pg.attention_at(ck, 200, 3, 30)
    trace = pg.play_episode(ck, 200, 3)
    assert att["step"] == min(30, trace.length - 1)
    assert att["return_to_go"] == pytest.approx(trace.rtg[att["step"]])
    # The acting state token sees K steps of (R, s, a) minus its own unknown action.
    assert att["tokens"][0] == f"R t-{K - 1}" and att["tokens"][-2:] == ["R t", "s t"]
    assert len(att["tokens"]) == 3 * K - 1
    for heads in att["weights"]:
        for w in heads:
            assert len(w) == len(att["tokens"]) and sum(w) == pytest.approx(1.0, abs=1e-5)
    early = pg.attention_at(ck, 200, 3, 0)  # one step: R_0 and s_0 only
    assert early["tokens"] == ["R t", "s t"]
    bc = pg.attention_at(pg.get_checkpoint(zoo / "cartpole-bc"), 200, 3, 2)
    assert bc["tokens"] == ["s t-2", "a t-2", "s t-1", "a t-1", "s t"]  # no return tokens
    for bad in (-1, 5000, "x"):
        with pytest.raises(pg.PlaygroundError, match="Step"):
            pg.attention_at(ck, 200, 3, bad)


def test_user_checkpoint_names_and_session_paths_only(zoo, tmp_path):
    import shutil

    assert pg.user_checkpoint("cartpole-dt", "CartPole-v1").name == "cartpole-dt"
    session = pg.new_session_dir()
    try:
        mine = session / "checkpoints" / "mine"
        shutil.copytree(zoo / "cartpole-bc", mine)
        assert pg.user_checkpoint(str(mine), "CartPole-v1").path == mine
        for bad in (str(zoo / "cartpole-dt"), "../cartpole-dt", "a/b", ".", "missing"):
            with pytest.raises(pg.PlaygroundError, match="Unknown checkpoint"):
                pg.user_checkpoint(bad, "CartPole-v1")
        with pytest.raises(pg.PlaygroundError, match="Pick a checkpoint"):
            pg.user_checkpoint("", "CartPole-v1")
        with pytest.raises(pg.PlaygroundError, match="trained on CartPole-v1"):
            pg.user_checkpoint("cartpole-dt", "Pendulum-v1")
    finally:
        pg.cleanup_session_dir(session)
