"""A rehearsal of the Hugging Face Space: the folder `python -m dt_playground space` stages
runs as a Space runs it (`python app.py` in that folder, with the environment a Space sets,
nothing installed beyond the test venv) and plays a LunarLander episode for a real client."""

import os

import pytest
from helpers import app_subprocess, free_port, predict

from dt_playground.cli import space

pytestmark = [pytest.mark.process, pytest.mark.slow]


@pytest.mark.timeout(400)
def test_staged_space_plays_an_episode(tmp_path):
    from gradio_client import Client

    folder = tmp_path / "space"
    # One shipped checkpoint left out: if the app lists it, it read the checkout, not this
    # folder (python app.py puts its own folder first on sys.path, before any install).
    left_out = "pretrained/lunarlander-dt-k1/"
    entries = [e for e in space.plan() if not e.rel.startswith(left_out)]
    space.stage(folder, entries)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DTP_", "PYTHONPATH"))}
    env.update(
        {
            "SYSTEM": "spaces",  # what a Space sets
            "GRADIO_SERVER_NAME": "0.0.0.0",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    with app_subprocess(folder, env, tmp_path / "app.log") as (proc, url):
        client = Client(url, verbose=False)
        try:
            *_, summary = predict(
                client, "LunarLander-v3", "lunarlander-dt", 200, 0, False, api_name="/play"
            )
            listed = predict(client, "LunarLander-v3", api_name="/checkpoints")["choices"]
        finally:
            client.close()
        assert summary["requested"] == 200 and summary["length"] > 0
        assert isinstance(summary["achieved"], float)
        names = {value for _, value in listed}
        assert "lunarlander-dt-k5" in names and "lunarlander-dt-k1" not in names
