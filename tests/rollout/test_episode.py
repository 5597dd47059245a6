"""rollout.episode and rollout.requests: one checked play, its summary and what it attended to."""

import numpy as np
import pytest

from dt_playground.app import formatting
from dt_playground.checkpoints import cache
from dt_playground.errors import PlaygroundError
from dt_playground.rollout import episode, requests
from dt_playground.rollout.policy import DTPolicy, run_episodes


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


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
    (tmp_path / "card.json").write_text(
        json.dumps({"best_mean": 3020.8, "best_std": 352.66, "seeds": list(range(30))})
    )
    card = episode.best_on_card(ck)
    assert card == {"mean": 3020.8, "std": 352.7, "seeds": 30}
    summary = {
        "requested": "best",
        "achieved": 1683.0,
        "algo": "dt",
        "length": 400,
        "normalised_score": 50.0,
        "target_percentile_in_dataset": float("nan"),
        "best_on_card": card,
    }
    assert "**3021 ± 353** over 30 held-out seeds" in formatting.summary_markdown(summary)
