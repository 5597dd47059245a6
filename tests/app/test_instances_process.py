"""Two app instances on one machine, sharing the sessions folder and Gradio's upload
folder (a developer's second copy, a test run beside a served app): neither deletes what
the other made. An upload made in the first still plays after the second starts, and
both arrival examples play."""

import os
import socket
import zipfile
from pathlib import Path

import pytest
from helpers import predict, start_app, stop_app
from test_browser import CHROMIUM, FLAGS, _browser_or_skip

pytestmark = [pytest.mark.process, pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tiny_zoo, tmp: Path) -> dict:
    return {
        **os.environ,
        "DTP_PRETRAINED_DIR": str(tiny_zoo),
        "DTP_SESSIONS_DIR": str(tmp / "sessions"),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(_free_port()),
        "DTP_WORKERS": "1",
        "MALLOC_ARENA_MAX": "2",
    }  # plays load from disk, as hosted


def _played(out) -> bool:
    """A /play answer whose video the client could download from the server."""
    video = out[0]["video"] if isinstance(out[0], dict) else out[0]
    return out[4]["length"] >= 1 and Path(video).is_file() and Path(video).stat().st_size > 0


def _arrival_plays(browser, url: str) -> None:
    """A new visitor's page: the arrival example's summary shows and its video plays."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.wait_for_selector("text=/Requested .* achieved/", timeout=120_000)
        page.wait_for_function(
            "() => { const v = document.querySelector('video');"
            " return v && v.readyState >= 2 && v.videoWidth > 0; }",
            timeout=60_000,
        )
    finally:
        page.close()


def _upload(client, tiny_zoo, tmp: Path) -> str:
    from gradio_client import handle_file

    z = tmp / "mine.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (tiny_zoo / "cartpole-dt").iterdir():
            zf.write(f, f.name)
    out = predict(client, handle_file(str(z)), "CartPole-v1", api_name="/upload")
    cid = out[1]["value"] if isinstance(out[1], dict) else out[1]
    assert cid.startswith("upload-")
    return cid


def test_two_instances_keep_to_themselves(tiny_zoo, tmp_path):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    first, url1, c1 = start_app(_env(tiny_zoo, tmp_path), tmp_path / "first.log")
    second = None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            _arrival_plays(browser, url1)
            cid = _upload(c1, tiny_zoo, tmp_path)  # not played yet: read from disk later
            second, url2, c2 = start_app(_env(tiny_zoo, tmp_path), tmp_path / "second.log")
            _arrival_plays(browser, url2)
            # the first instance's upload still plays, video and all, and so do both
            # arrival examples, for new visitors of either
            assert _played(predict(c1, "CartPole-v1", cid, 100, 2, False, api_name="/play"))
            _arrival_plays(browser, url1)
            _arrival_plays(browser, url2)
            c2.close()
            assert stop_app(second) == 0
            second = None
            # the second removed its own folders at exit, and nothing of the first
            left = [q.name for q in tmp_path.rglob("inst-*")]
            assert left and all(name.startswith(f"inst-{first.pid}-") for name in left), left
            assert _played(predict(c1, "CartPole-v1", cid, 100, 3, False, api_name="/play"))
            _arrival_plays(browser, url1)
        finally:
            browser.close()
            c1.close()
            for proc in (first, second):
                if proc is not None:
                    stop_app(proc)
