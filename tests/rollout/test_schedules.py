"""rollout.schedules: re-prompting a model mid-episode."""

import numpy as np
import pytest

from dt_playground.app import formatting
from dt_playground.checkpoints import cache
from dt_playground.errors import PlaygroundError
from dt_playground.media.replay import random_trace
from dt_playground.rollout import episode, schedules
from dt_playground.rollout.policy import DTPolicy, run_episodes


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small batched matmuls on a shared 2-core machine: one thread avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hopper():
    return cache.get_checkpoint("hopper-dt")


def test_parse_schedule():
    assert schedules.parse_schedule("0:3000, 300:500") == {0: 3000.0, 300: 500.0}
    assert schedules.parse_schedule("300:500;0:3000") == {0: 3000.0, 300: 500.0}  # sorted
    assert schedules.parse_schedule("0:best,200:10") == {0: "best", 200: 10.0}
    for bad, why in [
        ("", "empty"),
        ("300:500", "start at step 0"),
        ("0:1,0:2", "twice"),
        ("0:1,2.5:3", "whole number"),
        ("0:1,1000:3", "between 0 and 999"),
        ("0:abc", "must be a number"),
        ("0-100", "step:target"),
    ]:
        with pytest.raises(PlaygroundError, match=why):
            schedules.parse_schedule(bad)


def test_schedule_without_switch_is_the_plain_play(hopper):
    plain = episode.play_episode(hopper, 3000, 5)
    sched = schedules.play_schedule(hopper, "0:3000", 5)
    np.testing.assert_array_equal(sched.actions, plain.actions)
    np.testing.assert_array_equal(sched.rewards, plain.rewards)
    np.testing.assert_array_equal(sched.rtg, plain.rtg)
    assert sched.switches == {0: 3000.0}


def test_switch_resets_the_return_to_go_and_is_recorded(hopper):
    trace = schedules.play_schedule(hopper, "0:3000,300:500", 1)
    assert trace.length > 300  # this seed hops past the switch
    assert trace.switches == {0: 3000.0, 300: 500.0}
    assert trace.rtg[300] == pytest.approx(500.0)
    assert trace.rtg[299] == pytest.approx(3000.0 - trace.rewards[:299].sum())
    segs = schedules.segments(trace, "0:3000,300:500")
    assert [s["start"] for s in segs] == [0, 300]
    assert [s["steps"] for s in segs] == [300, trace.length - 300]
    assert sum(s["return"] for s in segs) == pytest.approx(trace.ret, abs=1e-2)
    summary = schedules.schedule_summary(trace, hopper, "0:3000,300:500")
    assert summary["segments"] == segs
    assert summary["schedule"] == [{"step": 0, "target": 3000.0}, {"step": 300, "target": 500.0}]
    assert "from step 300 asked **500**" in formatting.schedule_markdown(summary)


@pytest.mark.slow
def test_high_to_low_switch_lowers_hoppers_reward_rate(hopper):
    # Reward per step over the rest of the episode (0 once it has ended), mean of
    # 8 seeds: the same seeds without and with the switch, in one batched run.
    seeds = list(range(8))
    plain, switched = {0: 3000.0}, {0: 3000.0, 300: 500.0}
    policy = DTPolicy(hopper.model, hopper.norm, hopper.spec)
    traces = run_episodes(policy, [3000.0] * 16, seeds * 2, schedules=[plain] * 8 + [switched] * 8)
    rate = [float(t.rewards[300:].sum()) / 700 for t in traces]
    before = [float(t.rewards[:300].sum()) for t in traces]
    assert before[:8] == pytest.approx(before[8:], rel=1e-4)  # identical until the switch
    assert np.mean(rate[8:]) < np.mean(rate[:8]) - 0.1


def test_segment_never_reached_has_no_steps():
    trace = random_trace("CartPole-v1", 500, seed=0)  # falls within a few dozen steps
    segs = schedules.segments(trace, {0: 100.0, 900: 5.0})
    assert segs[1] == {"start": 900, "target": 5.0, "steps": 0, "return": 0.0}
    assert segs[0]["steps"] == trace.length
