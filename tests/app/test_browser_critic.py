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
def page(critic_zoo):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    mp = pytest.MonkeyPatch()
    mp.setenv("DTP_PRETRAINED_DIR", str(critic_zoo))
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
    expect(page.get_by_label("Checkpoint")).to_have_value(re.compile(f"^{name} "),
                                                          timeout=30_000)


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
    page.wait_for_function(f"() => ({RTG_LINES})().includes(\"critic's value\")",
                           timeout=30_000)
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
