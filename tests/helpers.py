"""Small models for plumbing tests (random weights are enough), shared by test modules.

A plain module rather than conftest: test modules import it by name, and conftest is
pytest's plugin file, which must not be imported twice."""

from contextlib import contextmanager

import numpy as np
import torch

from dt_playground.dt.model import DecisionTransformer, DTConfig
from dt_playground.envs.registry import get_spec


def tiny_model(
    env_id: str | None = None, use_returns: bool = True, K: int = 5, seed: int = 0, **fields
):
    """An untrained small model in eval mode (random weights are enough for plumbing
    tests): an env's dims, or 4 state and 2 action dims without one; any `DTConfig`
    field in ``fields`` overrides."""
    from dt_playground.envs.registry import env_dims

    dims: dict = {"state_dim": 4, "act_dim": 2, "max_ep_len": 50}
    if env_id is not None:
        spec = get_spec(env_id)
        s, a = env_dims(spec.env_id)
        dims = {
            "state_dim": s,
            "act_dim": a,
            "discrete": spec.discrete,
            "max_ep_len": spec.max_ep_len,
        }
    torch.manual_seed(seed)
    cfg = {
        "hidden": 32,
        "n_layers": 2,
        "n_heads": 2,
        "context_len": K,
        "dropout": 0.0,
        "use_returns": use_returns,
        **dims,
        **fields,
    }
    return DecisionTransformer(DTConfig(**cfg)).eval()


def tiny_norm(model, scale=100.0):
    from dt_playground.data.windows import Normaliser

    return Normaliser(
        np.zeros(model.cfg.state_dim, np.float32), np.ones(model.cfg.state_dim, np.float32), scale
    )


def head_dt_zip(dataset, root):
    """A tiny, briefly trained CartPole DT with a return head (target "best"), zipped as
    the app's upload takes it: (the zip, the checkpoint folder)."""
    import zipfile
    from pathlib import Path

    from dt_playground.training.train import TrainConfig, train

    out = Path(root) / "head-dt"
    train(
        TrainConfig(
            dataset=str(dataset),
            out=str(out),
            algo="dt",
            steps=30,
            batch_size=16,
            context_len=5,
            hidden=32,
            n_layers=1,
            eval_episodes=0,
            save_every=0,
            seed=0,
            return_bins=12,
        )
    )
    z = Path(root) / "head.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("config.json", "model.safetensors"):
            zf.write(out / name, name)
    return z, out


PREDICT_TIMEOUT = 180.0  # seconds: a first call also imports torch and loads a model


def predict(client, *args, api_name: str, timeout: float = PREDICT_TIMEOUT):
    """`client.predict` with a deadline: a hung server fails the test instead of CI."""
    return client.submit(*args, api_name=api_name).result(timeout=timeout)


def gl_or_skip() -> str:
    """The headless GL backend MuJoCo renders with. Without one the test skips (the render
    tests say which package is missing), except under CI=true, which installs GL: there a
    missing or broken backend fails. Only a RenderError means "no GL"; any other exception
    is a bug and propagates."""
    import os

    import pytest

    from dt_playground.errors import RenderError
    from dt_playground.media.gl import ensure_gl_backend

    try:
        return ensure_gl_backend()
    except RenderError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI installs headless GL, yet: {err}")
        pytest.skip(str(err))


def free_port() -> int:
    """A TCP port nobody listens on now (for an app started as a subprocess)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict, log_path, timeout: float = 120.0, preexec_fn=None, cwd=None):
    """`python app.py` in its own process (in ``cwd``, default the checkout) with ``env``
    (set GRADIO_SERVER_PORT), waited for until a `gradio_client.Client` connects:
    (process, url, client). Fails the test, with the log's tail, if it does not start in
    time."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pytest
    from gradio_client import Client

    repo = Path(__file__).resolve().parents[1]
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=cwd or repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )
    log.close()
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return proc, url, Client(url, verbose=False)
        except Exception:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("app did not start: " + Path(log_path).read_text()[-2000:])


def stop_app(proc, timeout: float = 40.0) -> int:
    """SIGTERM, as a host stops the app; killed if it does not exit in time."""
    import subprocess

    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@contextmanager
def app_subprocess(cwd, env: dict, log_path, preexec_fn=None, start_timeout: float = 120.0):
    """`start_app` in ``cwd`` as a context: yields (process, url) once it answers, and
    stops it after."""
    proc, url, client = start_app(env, log_path, start_timeout, preexec_fn, cwd=cwd)
    client.close()
    try:
        yield proc, url
    finally:
        stop_app(proc, timeout=20)
