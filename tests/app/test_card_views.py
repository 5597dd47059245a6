"""app.card_views: every tab's first state, from shipped files alone."""

from pathlib import Path

import pytest

from dt_playground.app import card_views
from dt_playground.errors import PlaygroundError

REPO = Path(__file__).resolve().parents[2]


def test_tabs_on_arrival_read_files_only():
    fig, md, card = card_views.sweep_view("Hopper-v5", "hopper-dt")
    assert card["env_id"] == "Hopper-v5" and "held-out seeds" in md
    assert any(t.name.startswith("card: mean") for t in fig.data)
    fig, table = card_views.compare_view("Hopper-v5")
    assert table["hopper-dt"]["episodes"] == 30 and table["hopper-dt"]["source"] == "card"
    hist, lengths, quality, info = card_views.dataset_view("Hopper-v5", "hopper-dt")
    assert info["episodes"] == 300 and sum(hist.data[0].y) == 300
    with pytest.raises(PlaygroundError):
        card_views.sweep_view("Hopper-v5", "../etc")
    with pytest.raises(PlaygroundError):
        card_views.sweep_view("Hopper-v5", "cartpole-dt")  # another env's checkpoint


def test_tabs_on_arrival_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom dt_playground.app import card_views\n"
        "card_views.sweep_view('Hopper-v5', 'hopper-dt'); card_views.compare_view('Hopper-v5')\n"
        "card_views.dataset_view('Hopper-v5', 'hopper-dt')\nprint('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.stdout.strip() == "False", out.stderr[-2000:]
