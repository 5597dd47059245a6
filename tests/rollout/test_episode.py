"""The app's handlers' library side, without Gradio."""

import zipfile

import numpy as np
import pytest

from dt_playground.app import formatting
from dt_playground.checkpoints import cache, layout
from dt_playground.data.summary import target_range
from dt_playground.errors import PlaygroundError
from dt_playground.rollout import episode, requests, sweep
from dt_playground.rollout.metrics import spearman
from dt_playground.rollout.policy import DTPolicy, run_episodes
from dt_playground.serve import catalogue


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


def test_choices_and_target_range(zoo):
    choices = layout.choices("CartPole-v1")
    assert [c[1] for c in choices] == ["cartpole-dt", "cartpole-bc"]  # names in pretrained/
    assert cache.get_checkpoint("cartpole-dt").path == zoo / "cartpole-dt"
    assert "DT, K=5" in choices[0][0]
    assert layout.choices("Pendulum-v1") == []
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    r = target_range(ck.dataset, ck.spec.target_presets)
    d = ck.config["dataset"]
    assert r.minimum < d["return_min"] and r.maximum > d["return_max"]
    assert r.marks["median"] == d["return_median"]


def test_play_matches_library_rollout(zoo):
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    trace = episode.play_episode(ck, 321.0, 4)
    ref = run_episodes(DTPolicy(ck.model, ck.norm, ck.spec), [321.0], [4])[0]
    np.testing.assert_array_equal(trace.actions, ref.actions)
    s = episode.episode_summary(trace, ck)
    assert s["achieved"] == pytest.approx(ref.ret) and s["requested"] == 321.0
    rets = np.array(ck.config["dataset"]["returns"])
    assert s["target_percentile_in_dataset"] == pytest.approx(100 * (rets < 321).mean(), abs=0.1)
    assert "Requested" in formatting.summary_markdown(s)


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
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    with pytest.raises(PlaygroundError, match=msg):
        episode.play_episode(ck, bad, 0)
    assert episode.play_episode(ck, 100, 0).length > 0  # next request fine


@pytest.mark.parametrize("bad", [-1, 1.5, "x", 2**40])
def test_bad_seeds(zoo, bad):
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    with pytest.raises(PlaygroundError, match="Seed"):
        episode.play_episode(ck, 100, bad)


def test_env_checkpoint_mismatch_and_unknown_env(zoo):
    with pytest.raises(PlaygroundError, match="trained on CartPole-v1, not LunarLander-v3"):
        cache.get_checkpoint(zoo / "cartpole-dt", "LunarLander-v3")
    with pytest.raises(PlaygroundError, match="Unknown environment"):
        cache.get_checkpoint(zoo / "cartpole-dt", "Nope-v9")
    with pytest.raises(PlaygroundError, match="does not exist"):
        cache.get_checkpoint(zoo / "missing", "CartPole-v1")


def test_episode_length_is_capped(zoo):
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    assert episode.play_episode(ck, 500, 0, max_steps=10**9).length <= requests.MAX_EPISODE_STEPS
    assert episode.play_episode(ck, 500, 0, max_steps=7).length <= 7


def test_sweep_and_references(zoo):
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    targets = sweep.sweep_targets(ck, 3)
    assert targets[0] == pytest.approx(ck.config["dataset"]["return_p10"], abs=0.1)
    res = sweep.run_sweep(ck, targets, 2, seed=10, max_steps=50)
    assert len(res["rows"]) == 6
    assert {(r["target"], r["seed"]) for r in res["rows"]} == {
        (t, s) for t in targets for s in (10, 11)
    }
    means = [np.mean([r["return"] for r in res["rows"] if r["target"] == t]) for t in targets]
    assert res["spearman"] == pytest.approx(spearman(targets, means), nan_ok=True)
    refs = sweep.references("CartPole-v1", [10, 11], 50)
    assert set(refs) == {"BC"}
    with pytest.raises(PlaygroundError, match="at most"):
        sweep.run_sweep(ck, targets, 50)  # 3 x 50 episodes
    with pytest.raises(PlaygroundError, match="between 1 and 100"):
        sweep.run_sweep(ck, targets, 1000)


def test_compare_models(zoo):
    res = sweep.compare_models("CartPole-v1", 2, seed=5, max_steps=30)
    assert len(res) == 2 and all(len(v) == 2 for v in res.values())
    with pytest.raises(PlaygroundError, match="No usable pretrained"):
        sweep.compare_models("Pendulum-v1", 2)


@pytest.fixture
def store(tmp_path):
    from dt_playground.serve.sessions import SessionStore

    st = SessionStore(tmp_path / "sessions", tmp_path / "videos")
    st.clean_start()
    return st


def test_upload_round_trip_and_refusals(zoo, tmp_path, store):
    z = tmp_path / "ck.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (zoo / "cartpole-dt").iterdir():
            zf.write(f, f"cartpole-dt/{f.name}")
    sid, cid, ck = catalogue.import_upload(store, None, z)  # an API client starts without a session
    assert ck.spec.env_id == "CartPole-v1"
    assert str(tmp_path) not in cid and "/" not in cid  # an opaque id, not a path
    assert cid in [v for _, v in layout.choices("CartPole-v1", store.owned(sid))]
    assert catalogue.resolve(cid, "CartPole-v1", store.owned(sid)).path == ck.path
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"\x80\x04\x95 pickle, not a zip")
    with pytest.raises(PlaygroundError, match="not a zip"):
        catalogue.import_upload(store, sid, fake)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.safetensors", b"garbage")
    with pytest.raises(PlaygroundError, match="missing 'env_id'"):
        catalogue.import_upload(store, sid, bad)
    session_dir = store.get(sid).dir
    assert sorted(p.name for p in (session_dir / "upload").iterdir()) == [cid]  # no leftovers
    store.end(sid)
    assert not session_dir.exists()
    with pytest.raises(PlaygroundError, match="Unknown checkpoint"):
        catalogue.resolve(cid, "CartPole-v1", store.owned(sid))


def test_sessions_own_their_checkpoints(zoo, tmp_path, store):
    """An id is valid in its own session only; paths and names outside pretrained/ are
    refused; a refused upload leaves no session folder."""
    z = tmp_path / "ck.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (zoo / "cartpole-bc").iterdir():
            zf.write(f, f.name)
    alice, bob = store.new(), store.new()
    _, cid, ck = catalogue.import_upload(store, alice, z)
    assert catalogue.resolve(cid, "CartPole-v1", store.owned(alice)).path == ck.path
    assert catalogue.resolve("cartpole-dt", "CartPole-v1", store.owned(bob)).name == "cartpole-dt"
    for who, value in [(bob, cid), (None, cid), (bob, str(ck.path)), (alice, str(ck.path)),
                       (alice, str(zoo / "cartpole-dt")), (alice, "../cartpole-dt"),
                       (alice, "a/b"), (alice, "."), (alice, "missing")]:
        with pytest.raises(PlaygroundError, match="Unknown checkpoint") as err:
            catalogue.resolve(value, "CartPole-v1", store.owned(who))
        # The message may echo what the user sent (cut to 60 characters); beyond that echo
        # it must name no server path, whatever the length of this machine's tmp paths.
        said = str(err.value).replace(repr(value[:60]), "<input>", 1)
        assert said.startswith("Unknown checkpoint <input>.")
        for server_path in (tmp_path, zoo, ck.path, store.get(alice).dir):
            assert str(server_path) not in said
        assert "/" not in said
    with pytest.raises(PlaygroundError, match="Pick a checkpoint"):
        catalogue.resolve("", "CartPole-v1", store.owned(alice))
    with pytest.raises(PlaygroundError, match="trained on CartPole-v1"):
        catalogue.resolve("cartpole-dt", "Pendulum-v1", store.owned(alice))
    for env in (None, "", 3, "Nope-v0"):
        with pytest.raises(PlaygroundError, match="environment|Environment"):
            catalogue.resolve("cartpole-dt", env, store.owned(alice))
    carol = store.new()
    with pytest.raises(PlaygroundError):
        catalogue.import_upload(store, carol, tmp_path / "missing.zip")
    assert not store.get(carol).dir.exists()


def test_videos_are_bounded_per_session(store):
    from dt_playground.serve import sessions

    sid = store.new()
    made = []
    for _ in range(sessions.VIDEOS_PER_SESSION + 2):
        p = store.video_path(sid, "x")
        p.write_bytes(b"v")
        made.append(p)
    assert [p.exists() for p in made] == [False] * 2 + [True] * sessions.VIDEOS_PER_SESSION
    assert len({p.name for p in made}) == len(made)
    store.end(sid)
    assert not any(p.exists() for p in made)


def test_training_job_runs_and_cancels(zoo, cartpole_dataset, tmp_path):
    import time

    from dt_playground.serve.jobs import TrainJob, TrainRequest

    class CancelledAtStepFive(TrainJob):
        """The user presses Cancel as step 5 is reported: no race with a fast machine."""

        def _on_step(self, step, loss, lr):
            super()._on_step(step, loss, lr)
            if len(self.steps) == 5:
                self.stop.set()

    req = TrainRequest("CartPole-v1", "dt", 2000, 3, 1e-3, hidden=16)
    job = CancelledAtStepFive(req, tmp_path / "job", dataset=str(cartpole_dataset[0])).start()
    deadline = time.monotonic() + 120
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.done and job.error is None and 5 <= len(job.steps) <= 6
    assert (tmp_path / "job" / "model.safetensors").exists()  # what was done is kept
    assert job.status().startswith("Cancelled after")


@pytest.mark.parametrize(
    "args,msg",
    [
        (("Nope-v0", "dt", 100, 20, 1e-3), "offered for"),
        ((None, "dt", 100, 20, 1e-3), "offered for"),
        (("CartPole-v1", "dt", 5, 20, 1e-3), "Steps"),
        (("CartPole-v1", "dt", "many", 20, 1e-3), "must be numbers"),
        (("CartPole-v1", "dt", 100, 0, 1e-3), "Context length"),
        (("CartPole-v1", "dt", 100, 20, float("nan")), "Learning rate"),
        (("CartPole-v1", "xx", 100, 20, 1e-3), "Unknown algorithm"),
    ],
)
def test_training_request_validation(args, msg):
    from dt_playground.serve.jobs import TrainRequest

    with pytest.raises(PlaygroundError, match=msg):
        TrainRequest.parse(*args)


def test_normalised_score_prefers_dataset_refs(zoo):
    import copy

    ck = copy.copy(cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1"))
    ck.config = {
        **ck.config,
        "dataset": {**ck.config["dataset"], "ref_min_score": 0.0, "ref_max_score": 200.0},
    }
    assert episode.normalised_score(100.0, ck) == pytest.approx(50.0)
    ck.config["dataset"] = {
        k: v for k, v in ck.config["dataset"].items() if not k.startswith("ref_")
    }
    assert episode.normalised_score(100.0, ck) == pytest.approx(ck.spec.normalised_score(100.0))


def test_attention_at_a_step(zoo):
    ck = cache.get_checkpoint(zoo / "cartpole-dt", "CartPole-v1")
    K = ck.config["context_len"]
    att = episode.attention_at(ck, 200, 3, 30)
    trace = episode.play_episode(ck, 200, 3)
    assert att["step"] == min(30, trace.length - 1)
    assert att["return_to_go"] == pytest.approx(trace.rtg[att["step"]])
    # The acting state token sees K steps of (R, s, a) minus its own unknown action.
    assert att["tokens"][0] == f"R t-{K - 1}" and att["tokens"][-2:] == ["R t", "s t"]
    assert len(att["tokens"]) == 3 * K - 1
    for heads in att["weights"]:
        for w in heads:
            assert len(w) == len(att["tokens"]) and sum(w) == pytest.approx(1.0, abs=1e-5)
    early = episode.attention_at(ck, 200, 3, 0)  # one step: R_0 and s_0 only
    assert early["tokens"] == ["R t", "s t"]
    bc = episode.attention_at(cache.get_checkpoint(zoo / "cartpole-bc"), 200, 3, 2)
    assert bc["tokens"] == ["s t-2", "a t-2", "s t-1", "a t-1", "s t"]  # no return tokens
    for bad in (-1, 5000, "x"):
        with pytest.raises(PlaygroundError, match="Step"):
            episode.attention_at(ck, 200, 3, bad)


def test_a_best_play_says_how_best_scores_on_the_card(tmp_path):
    """One unlucky seed reads as what it is: the summary of a best play carries the card's
    mean ± sd; a hostile or missing card gives nothing rather than an error."""
    import json
    from types import SimpleNamespace

    ck = SimpleNamespace(path=tmp_path)
    assert episode.best_on_card(ck) is None  # no card
    for bad in ({"best_mean": "lots"}, {"best_mean": float("nan")}, {"seeds": 3}, [1, 2]):
        (tmp_path / "card.json").write_text(json.dumps(bad))
        assert episode.best_on_card(ck) is None, bad
    (tmp_path / "card.json").write_text(json.dumps(
        {"best_mean": 3020.8, "best_std": 352.66, "seeds": list(range(30))}))
    card = episode.best_on_card(ck)
    assert card == {"mean": 3020.8, "std": 352.7, "seeds": 30}
    summary = {"requested": "best", "achieved": 1683.0, "algo": "dt", "length": 400,
               "normalised_score": 50.0, "target_percentile_in_dataset": float("nan"),
               "best_on_card": card}
    assert "**3021 ± 353** over 30 held-out seeds" in formatting.summary_markdown(summary)
