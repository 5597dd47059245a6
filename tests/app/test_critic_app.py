"""The critic and IQL in the app: the "check with critic" boxes, IQL's fixed objective,
IQL's row and line, and the optional last parameter of /play, /play_grid and /sweep
through a real client (old calls keep their meaning)."""

import numpy as np
import pytest
from helpers import predict

from dt_playground.app import card_views, critic_views, formatting, texts
from dt_playground.checkpoints import layout
from dt_playground.errors import PlaygroundError
from dt_playground.media.plots import figures, glance

ENV = "CartPole-v1"


@pytest.fixture
def zoo(critic_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(critic_zoo))
    return critic_zoo


# ---------------------------------------------------------------- views, no browser


def _args(update) -> dict:
    return getattr(update, "constructor_args", update)


def test_the_boxes_show_only_where_the_checkpoint_has_a_critic(zoo):
    def controls(name):
        return [_args(u) for u in critic_views.offline_controls(critic_views.info_of(ENV, name))]

    dt = controls("cartpole-dt")
    assert dt[:3] == [{"value": False, "visible": True}] * 3  # its critic has no card
    assert dt[3] is False and dt[4]["visible"] is False
    bc = controls("cartpole-bc")
    assert bc[:3] == [{"value": False, "visible": False}] * 3  # hidden and unticked
    iql = controls("cartpole-iql")
    assert iql[:3] == [{"value": False, "visible": False}] * 3
    assert iql[3] is True and iql[4]["visible"] is True
    assert critic_views.IGNORES_TARGETS in iql[4]["value"]
    assert controls("no-such-checkpoint")[0] == {"value": False, "visible": False}


def test_the_boxes_start_as_the_critics_card_measured_better(zoo, tmp_path):
    import json
    import shutil

    dt = tmp_path / "cartpole-dt"
    shutil.copytree(zoo / "cartpole-dt", dt)
    info = layout.peek_checkpoint(dt)

    def ticked(default, link=None):
        (dt / "critic" / "card.json").write_text(json.dumps({"default": default}))
        return [_args(u)["value"] for u in critic_views.offline_controls(info, link)[:3]]

    assert ticked("checked") == [True] * 3
    assert ticked("unchecked") == [False] * 3
    assert ticked("checked", False) == [False] * 3  # a link's choice wins
    (dt / "critic" / "card.json").write_text("{not json")
    assert critic_views.checked_by_default(info) is False  # an unreadable card: unticked


def test_the_target_box_is_off_for_best_and_for_a_checkpoint_that_ignores_targets():
    assert _args(critic_views.target_box(False, False)) == {"interactive": True}
    assert _args(critic_views.target_box(True, False)) == {"interactive": False}
    assert _args(critic_views.target_box(False, True)) == {"interactive": False}


def test_the_pages_sentence_is_the_librarys():
    from dt_playground.rollout.iql_policy import IGNORES_TARGETS

    assert critic_views.IGNORES_TARGETS == IGNORES_TARGETS


def test_iql_is_listed_last_and_labelled_without_k(zoo):
    choices = layout.choices(ENV)
    assert choices[-1] == ("cartpole-iql (IQL)", "cartpole-iql")
    # the zoo's own lists (training, cards, --verify) still see DT/BC/%BC only
    assert all(p.name != "cartpole-iql" for p in layout.list_checkpoints(None, ENV))


def test_checking_is_refused_with_the_librarys_sentence(zoo):
    from dt_playground.rollout.playable import check_critic, get_playable

    check_critic(get_playable("cartpole-dt"))  # has a critic: passes
    with pytest.raises(PlaygroundError, match="Checking needs a DT: a 'bc' checkpoint"):
        check_critic(get_playable("cartpole-bc"))
    with pytest.raises(PlaygroundError, match="IQL is not checked"):
        check_critic(get_playable("cartpole-iql"))


def test_a_dt_without_a_critic_is_told_how_to_make_one(tiny_zoo, monkeypatch):
    from dt_playground.rollout.playable import check_critic, get_playable

    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    with pytest.raises(PlaygroundError, match="python -m dt_playground critic --checkpoint"):
        check_critic(get_playable("cartpole-dt"))


def test_a_checked_play_carries_the_critics_values_onto_the_rtg_plot(zoo):
    from dt_playground.rollout import episode
    from dt_playground.rollout.playable import get_playable

    ck = get_playable("cartpole-dt")
    plain = episode.play_episode(ck, 100, 3, max_steps=40)
    checked = episode.play_episode(ck, 100, 3, max_steps=40, check=True)
    assert checked.checked and np.isfinite(checked.critic_value).all()
    lines = {t.name: t for t in figures.rtg_figure(checked).data}
    np.testing.assert_allclose(lines["critic's value"].y, checked.critic_value)
    assert "critic's value" not in {t.name for t in figures.rtg_figure(plain).data}
    s = episode.episode_summary(checked, ck)
    assert s["checked"] is True
    assert s["critic_expected_at_start"] == pytest.approx(checked.critic_value[0], abs=0.06)
    line = formatting.summary_markdown(s)
    start = formatting._num(s["critic_expected_at_start"])
    assert "**Checked by its critic**" in line and f"it expected **{start}**" in line
    assert "Checked" not in formatting.summary_markdown(episode.episode_summary(plain, ck))
    assert formatting.source_line(ENV, "cartpole-dt", 3, 100, checked=True).endswith("· checked")
    assert "checked" not in formatting.source_line(ENV, "cartpole-dt", 3, 100)


def test_iql_plays_in_play_and_says_it_ignores_the_target(zoo):
    from dt_playground.rollout import episode
    from dt_playground.rollout.playable import get_playable

    ck = get_playable("cartpole-iql")
    low, high = (episode.play_episode(ck, t, 4, max_steps=60) for t in (10, 400))
    np.testing.assert_array_equal(low.actions, high.actions)  # one policy, whatever asked
    line = formatting.summary_markdown(episode.episode_summary(low, ck))
    assert "IQL ignores the target" in line and "BC ignores" not in line


def test_compare_and_sweep_draw_iql_from_its_card(zoo):
    iql = card_views.read_card(zoo / "cartpole-iql")
    fig, table = card_views.compare_view(ENV)
    assert table["cartpole-iql"]["mean"] == iql["top_target_mean"]
    bar = fig.data[0]
    i = list(bar.x).index("cartpole-iql")
    assert i == len(bar.x) - 1 and bar.text[i] == "IQL, fixed objective"
    assert bar.y[i] == pytest.approx(iql["top_target_mean"])
    fig, _, card = card_views.sweep_view(ENV, "cartpole-dt")
    line = next(t for t in fig.data if t.name.startswith("IQL ("))
    assert list(line.y) == [pytest.approx(iql["top_target_mean"])] * 2  # flat
    assert "iql" not in (card.get("references") or {})  # the DT's own card is untouched


def test_the_live_sweep_and_compare_have_an_iql_row(zoo):
    from dt_playground.rollout.sweep import compare_models, references

    refs = references(ENV, [5, 6], 60)
    assert set(refs) == {"BC", "IQL"}
    results = compare_models(ENV, 2, 5, max_steps=60)
    assert "cartpole-iql (IQL)" in results
    fig, _ = card_views.compare_run_view(ENV, results)
    assert "cartpole-iql" in list(fig.data[0].x)


def test_the_about_tabs_comparison_points_at_the_live_iql_rows():
    assert "| Conditioning | on any return" in texts.ABOUT
    assert "IQL" in texts.ABOUT and "Compare" in texts.ABOUT and "Sweep" in texts.ABOUT


def test_a_sweep_of_a_checkpoint_that_ignores_targets_says_so():
    res = {
        "spearman": float("nan"),
        "spearman_in_data_range": float("nan"),
        "rows": [{}] * 4,
        "seconds": 1.0,
    }
    assert formatting.sweep_markdown(res).startswith("Spearman ρ is undefined: every target")
    res = {**res, "spearman": 0.9, "spearman_in_data_range": 0.8, "checked": True}
    assert formatting.sweep_markdown(res).startswith("**Checked by its critic.** Spearman")


def test_glance_labels_iql_bars_with_their_fixed_objective():
    rows = [
        {"name": "x-iql", "algo": "iql", "context_len": None, "mean": 1.0},
        {"name": "x-dt", "algo": "dt", "context_len": 20, "mean": 2.0},
    ]
    bar = glance.compare_figure(rows).data[0]
    assert list(bar.x) == ["x-dt", "x-iql"] and list(bar.text) == [
        "DT, K=20",
        "IQL, fixed objective",
    ]


# ---------------------------------------------------------------- a real client


@pytest.fixture(scope="module")
def client(critic_zoo):
    mp = pytest.MonkeyPatch()
    mp.setenv("DTP_PRETRAINED_DIR", str(critic_zoo))
    from gradio_client import Client

    import app

    demo = app.build_demo(example=False)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    c = Client(url, verbose=False)
    yield c
    c.close()
    demo.close()
    mp.undo()


@pytest.mark.slow
def test_check_is_an_optional_last_parameter(client):
    """Old calls (5 or 6 arguments) play unchecked as before; a trailing True checks; a
    checkpoint that can't be checked is refused with the library's sentence."""
    from gradio_client.exceptions import AppError

    old5 = predict(client, ENV, "cartpole-dt", 100, 7, False, api_name="/play")[4]
    old6 = predict(client, ENV, "cartpole-dt", 100, 7, False, False, api_name="/play")[4]
    checked = predict(client, ENV, "cartpole-dt", 100, 7, False, False, True, api_name="/play")
    assert "checked" not in old5 and old5 == {
        **old6,
        **{k: old5[k] for k in old5 if "seconds" in k},
    }
    assert checked[4]["checked"] is True and "Checked by its critic" in checked[3]
    with pytest.raises(AppError, match="Checking needs a DT: a 'bc' checkpoint"):
        predict(client, ENV, "cartpole-bc", 100, 7, False, False, True, api_name="/play")
    grid_old = predict(client, ENV, "cartpole-dt", "50, 150", 7, api_name="/play_grid")[2]
    grid = predict(client, ENV, "cartpole-dt", "50, 150", 7, True, api_name="/play_grid")[2]
    assert "checked" not in grid_old and grid["checked"] is True
    sweep_old = predict(client, ENV, "cartpole-dt", 2, 1, 7, api_name="/sweep")[2]
    _, md, sweep = predict(client, ENV, "cartpole-dt", 2, 1, 7, True, api_name="/sweep")
    assert "checked" not in sweep_old and sweep["checked"] is True
    assert md.startswith("**Checked by its critic.**") and "IQL" in sweep["references"]
    with pytest.raises(AppError, match="IQL is not checked"):
        predict(client, ENV, "cartpole-iql", 2, 1, 7, True, api_name="/sweep")
