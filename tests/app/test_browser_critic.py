"""Check with critic, in Chromium: the box is offered for a DT with a critic only, a ticked
box plays a checked episode whose summary and return-to-go plot say so, and an IQL
checkpoint's target box is disabled with one line saying why."""

import re

import pytest
from test_browser import CHROMIUM, FLAGS, _browser_or_skip, _shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BOX = "label:has-text('check with critic') input[type=checkbox] >> visible=true"
TARGET = 'input[aria-label="number input for Target return"]'
RTG_LINES = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(p => p.offsetParent !== null).flatMap(p => (p.data || []).map(t => t.name))"""


@pytest.fixture(scope="module")
def zoo(critic_zoo, tmp_path_factory):
    """The critic zoo, and a copy of its DT whose critic asks for 0 candidates (refused)."""
    import json
    import shutil

    root = tmp_path_factory.mktemp("browser-critic") / "zoo"
    shutil.copytree(critic_zoo, root)
    shutil.copytree(root / "cartpole-dt", root / "cartpole-dt-badn")
    config = root / "cartpole-dt-badn" / "critic" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "check": {"n": 0}}))
    return root


@pytest.fixture(scope="module")
def page(zoo):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    mp = pytest.MonkeyPatch()
    mp.setenv("DTP_PRETRAINED_DIR", str(zoo))
    import app

    demo = app.build_demo(example=False)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(demo.local_url)
            page.wait_for_selector("text=Play episode", timeout=60_000)
            yield page
            browser.close()
    finally:
        demo.close()
        mp.undo()


def _pick(page, name):
    from playwright.sync_api import expect

    page.get_by_label("Checkpoint").click()
    page.get_by_role("option", name=re.compile(f"^{name} ")).click()
    expect(page.get_by_label("Checkpoint")).to_have_value(re.compile(f"^{name} "), timeout=30_000)


def test_a_ticked_box_plays_a_checked_episode(page):
    from playwright.sync_api import expect

    expect(page.get_by_label("Environment")).to_have_value("CartPole-v1")
    _pick(page, "cartpole-bc")
    expect(page.locator(BOX)).to_have_count(0, timeout=30_000)  # BC: no critic, no box
    _pick(page, "cartpole-dt")
    box = page.locator(BOX)
    expect(box).to_have_count(1, timeout=30_000)
    box.check()
    page.get_by_role("button", name="Play episode").click()
    summary = page.locator("p", has_text="achieved").first
    expect(summary).to_contain_text("Checked by its critic", timeout=120_000)
    expect(summary).to_contain_text("at the start it expected")
    page.wait_for_function(f'() => ({RTG_LINES})().includes("critic\'s value")', timeout=30_000)
    _shot(page, "critic-checked-play.png")


def test_iql_disables_the_target_and_says_why(page):
    from playwright.sync_api import expect

    _pick(page, "cartpole-iql")
    expect(page.locator(TARGET)).to_be_disabled(timeout=30_000)
    expect(page.get_by_text("IQL ignores the target return")).to_be_visible()
    expect(page.locator(BOX)).to_have_count(0)
    _pick(page, "cartpole-dt")
    expect(page.locator(TARGET)).to_be_enabled(timeout=30_000)
    expect(page.get_by_text("IQL ignores the target return")).to_be_hidden()


def test_a_critic_that_cannot_check_is_a_toast_and_every_result_stays(page):
    """A box ticked on a DT whose critic is broken: the library's sentence as a toast, read
    from the toast area, and the summary shown before stays as it was."""
    from playwright.sync_api import expect

    _pick(page, "cartpole-dt-badn")
    box = page.locator(BOX)
    expect(box).to_have_count(1, timeout=30_000)  # it has a critic/ folder
    expect(box).not_to_be_checked()  # a play first, unchecked: a result to keep
    page.get_by_role("button", name="Play episode").click()
    summary = page.locator("p", has_text="achieved").first
    expect(summary).to_contain_text("Requested", timeout=120_000)
    before = summary.inner_text()
    box.check()
    page.get_by_role("button", name="Play episode").click()
    # The sentence, read from the toast area (the page may also hold other toasts).
    toast = page.locator(
        "[data-testid=toast-text]", has_text="The critic's candidate count n must be an integer"
    )
    expect(toast.first).to_be_visible(timeout=10_000)
    assert page.locator("p", has_text="achieved").first.inner_text() == before
    _shot(page, "critic-refused.png")
