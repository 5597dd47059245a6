"""serve.jobs: in-app training runs, reports and cancels."""

import pytest

from dt_playground.errors import PlaygroundError


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


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


def test_the_time_left_waits_for_a_steady_pace(tmp_path):
    """The first steps (model build, warm-up) are slow: an estimate timed from the start
    read "about 11 min" for a 90 s job. No estimate until 20 steady steps are timed, then
    the pace of those."""
    from dt_playground.serve import jobs

    job = jobs.TrainJob(jobs.TrainRequest("CartPole-v1", "dt", 500, 20, 1e-3), tmp_path)
    job.stage = "training"
    times = [30.0 + i * 0.01 for i in range(6)]  # a 30 s first step
    times += [times[-1] + 0.2 * (i + 1) for i in range(jobs.ETA_MIN_STEPS - 1)]  # 0.2 s each
    for i, t in enumerate(times):
        job.steps.append(i + 1)
        job.losses.append(1.0)
        job.step_times.append(t)
        assert job.seconds_left() is None
    assert "estimating the time left" in job.status()
    job.steps.append(len(times) + 1)
    job.losses.append(1.0)
    job.step_times.append(times[-1] + 0.2)
    left = job.seconds_left()
    assert left is not None and abs(left - 0.2 * (500 - len(job.steps))) < 1.0
    assert "about 95 s left" in job.status()
