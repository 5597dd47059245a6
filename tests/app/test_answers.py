"""The checks behind the page's refusals and the link's reading, without a browser."""

import pytest

from dt_playground.app import share
from dt_playground.app.checks import seed_of
from dt_playground.checkpoints import layout
from dt_playground.envs.seeds import APP_SEED
from dt_playground.errors import PlaygroundError


@pytest.mark.parametrize("value", [None, "", "  ", float("nan"), "12e", -5, 2**31, 1.5])
def test_a_seed_box_that_is_not_a_seed_is_a_sentence(value):
    with pytest.raises(PlaygroundError, match="Seed"):
        seed_of(value)


def test_a_seed_box_with_a_seed_passes():
    assert seed_of("7") == 7 and seed_of(7.0) == 7


def test_a_link_names_env_target_and_seed():
    choice, dropped = share.read_query({"env": "Hopper-v5", "target": "3000", "seed": "7"})
    assert dropped == []
    assert (choice.env, choice.target, choice.seed) == ("Hopper-v5", 3000.0, 7)
    assert choice.checkpoint == layout.choices("Hopper-v5")[0][1]


def test_a_page_without_a_link_has_no_choice():
    assert share.read_query({"other": "x"}) == (None, [])


@pytest.mark.parametrize(
    "key,value",
    [
        ("env", "Nope-v0"),
        ("checkpoint", "../etc"),
        ("target", "abc"),
        ("target", "1e12"),
        ("seed", "-5"),
        ("schedule", "50:100"),
    ],
)
def test_a_bad_link_value_is_dropped_and_named(key, value):
    choice, dropped = share.read_query({"env": "CartPole-v1", key: value})
    assert len(dropped) == 1 and dropped[0].startswith(f"{key}=")
    default_env, _ = layout.arrival_choices()
    assert choice.env == (default_env if key == "env" else "CartPole-v1")
    assert choice.seed == APP_SEED and choice.schedule is None
    assert isinstance(choice.target, float)  # the slider's default


def test_a_choice_reads_back_from_its_own_query():
    from urllib.parse import parse_qsl

    choice, _ = share.read_query(
        {"env": "CartPole-v1", "target": "123.5", "seed": "9", "checkpoint": "nope"}
    )
    again, dropped = share.read_query(dict(parse_qsl(choice.query())))
    assert dropped == [] and vars(again) == vars(choice)


def test_a_links_check_plays_checked_only_where_there_is_a_critic():
    from urllib.parse import parse_qsl

    asked = {"env": "Hopper-v5", "checkpoint": "hopper-dt", "target": "3000", "seed": "7"}
    choice, dropped = share.read_query({**asked, "check": "1"})
    assert dropped == [] and choice.check is True and "check=1" in choice.query()
    again, _ = share.read_query(dict(parse_qsl(choice.query())))
    assert vars(again) == vars(choice)
    assert share.read_query(asked)[0].check is False  # no `check`: unchecked, as old links
    assert share.read_query({**asked, "check": "0"})[0].check is False
    for value, why in [("maybe", "not 1 or 0"), ("1", "has no critic")]:
        where = {**asked, "checkpoint": "hopper-bc"} if why == "has no critic" else asked
        choice, dropped = share.read_query({**where, "check": value})
        assert choice.check is False and len(dropped) == 1, dropped
        assert dropped[0].startswith("check=") and why in dropped[0]
    sched = {**asked, "schedule": "0:3000,300:500", "check": "1"}
    choice, dropped = share.read_query(sched)
    assert choice.check is False and dropped == ["check=1 (a schedule plays unchecked)"]


def test_a_check_refuses_what_admission_would():
    """A second background job, or a third play, is refused by the check step already."""
    from types import SimpleNamespace

    from dt_playground.app.checks import Checks
    from dt_playground.serve.admission import Admission

    page = SimpleNamespace(admission=Admission(), session_hash="tab")
    room = Checks._room
    room(page, page, background=True)  # nothing running yet
    with page.admission.background_job("tab", "sweep"):
        with pytest.raises(PlaygroundError, match="already have a sweep"):
            room(page, page, background=True)
        room(page, page)  # plays are a separate budget
    room(page, page, background=True)
