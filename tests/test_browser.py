"""A real browser (Debian's chromium via Playwright) plays an episode in the app.

Outside CI the test skips when chromium is missing; under CI=true it fails.
Screenshots land in test-output/ (git-ignored).
"""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = Path(__file__).resolve().parent.parent / "test-output"


def _browser_or_skip():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -r requirements-dev.txt)")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("browser test needs " + " and ".join(missing))
        pytest.skip("browser test needs " + " and ".join(missing))


@pytest.fixture(scope="module")
def app_url(tiny_zoo):
    _browser_or_skip()
    mp = pytest.MonkeyPatch()
    mp.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    import app

    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield url
    demo.close()
    mp.undo()


@pytest.fixture(scope="module")
def page(app_url, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(app_url)
        page.wait_for_selector("text=Play episode", timeout=60_000)
        yield page
        browser.close()


def _shot(page, name):
    OUT.mkdir(exist_ok=True)
    path = OUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_play_in_chromium(page):
    # Pick the env and a target, then play.
    page.get_by_label("Environment").click()
    page.get_by_role("option", name="CartPole-v1").click()
    page.wait_for_timeout(1000)
    target = page.get_by_label("number input for Target return")
    target.fill("300")
    target.press("Enter")
    page.get_by_role("button", name="Play episode").click()
    # Plots drawn (plotly renders an SVG per figure) and the video loaded.
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); return v && v.readyState >= 2; }",
        timeout=90_000,
    )
    assert page.locator(".js-plotly-plot").count() >= 2
    text = page.locator("p", has_text="achieved").first.inner_text()
    assert "300" in text
    size = page.evaluate(
        "() => { const v = document.querySelector('video');"
        " return [v.videoWidth, v.videoHeight, v.duration]; }"
    )
    assert size[0] > 0 and size[1] > 0 and size[2] > 0
    assert _shot(page, "play.png").stat().st_size > 10_000

    # The attention heatmap for one step of the same episode.
    plots_before = page.locator(".js-plotly-plot").count()
    page.get_by_text("Attention: what the action at a step looked at").click()
    step = page.get_by_label("Step")
    step.fill("5")
    page.get_by_role("button", name="Show attention").click()
    page.wait_for_selector(".js-plotly-plot .hm, .js-plotly-plot .heatmaplayer", timeout=60_000)
    assert page.locator(".js-plotly-plot").count() == plots_before + 1
    _shot(page, "attention.png")


@pytest.mark.parametrize(
    "tab,button,selector",
    [
        ("Sweep", "Run sweep", "text=Spearman"),
        ("Compare", "Compare", ".js-plotly-plot"),
        ("Dataset", "Show the dataset behind this checkpoint", ".js-plotly-plot"),
    ],
)
def test_other_tabs(page, tab, button, selector):
    page.get_by_role("tab", name=tab).click()
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_selector(f"{selector} >> visible=true", timeout=90_000)
    _shot(page, f"{tab.lower()}.png")


def test_train_tab_streams_loss(page):
    page.get_by_role("tab", name="Train").click()
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=Training… step >> visible=true", timeout=120_000)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("text=Cancelled >> visible=true", timeout=120_000)
    _shot(page, "train.png")


def test_about_tab(page):
    page.get_by_role("tab", name="About").click()
    page.wait_for_selector("text=The return-to-go is a prompt >> visible=true")
    _shot(page, "about.png")
