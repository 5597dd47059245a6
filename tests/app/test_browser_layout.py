"""The page's layout in Chromium at a phone's 390x844 (touch) and at 1400 px: the first
screen holds the Play button and the start of the result; toolbars, labels and tables
never cover what they belong to. Measured by bounding boxes, where the visitor sees."""

import pytest
from test_browser import _pick_env, _shot, app_demo, app_url, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST_LINE = """(p) => { const r = document.createRange(); r.selectNodeContents(p);
    const rects = [...r.getClientRects()].filter(x => x.height > 0);
    return {top: rects[0].top, bottom: rects[0].bottom}; }"""


def _page(browser, app_url, width, height):
    touch = width < 600
    context = browser.new_context(
        viewport={"width": width, "height": height}, has_touch=touch, is_mobile=touch
    )
    page = context.new_page()
    page.goto(app_url)
    return context, page


@pytest.mark.parametrize("width,height", [(390, 844), (1400, 900)])
def test_the_first_screen_holds_play_and_the_results_first_line(
    browser,
    app_url,
    width,
    height,
):
    context, page = _page(browser, app_url, width, height)
    try:
        summary = page.locator("p", has_text="achieved").first
        summary.wait_for(timeout=180_000)
        assert page.evaluate("() => window.scrollY") == 0
        button = page.get_by_role("button", name="Play episode").bounding_box()
        assert 0 <= button["y"] and button["y"] + button["height"] <= height, button
        line = summary.evaluate(FIRST_LINE)
        assert 0 <= line["top"] and line["bottom"] <= height, line
        _shot(page, f"first-screen-{width}.png")
    finally:
        context.close()


def test_toolbars_and_labels_never_cover_what_they_belong_to(browser, app_url):
    context, page = _page(browser, app_url, 390, 844)
    try:
        page.locator("p", has_text="achieved").first.wait_for(timeout=180_000)
        page.wait_for_selector(
            ".js-plotly-plot .modebar-container", state="attached", timeout=30_000
        )
        # plot toolbars: hidden until the plot is hovered or tapped
        shown = page.evaluate(
            "() => [...document.querySelectorAll('.modebar-container')]"
            ".map(m => getComputedStyle(m).visibility)"
        )
        assert shown and set(shown) == {"hidden"}, shown
        # the video's label sits above the video, not over it
        label = page.locator("[data-testid=block-label]", has_text="Episode").first
        video = page.locator("video").first
        assert (
            label.bounding_box()["y"] + label.bounding_box()["height"]
            <= video.bounding_box()["y"] + 1
        )
        # the Stitching table scrolls inside its box, its first column staying in view
        page.get_by_role("tab", name="Stitching", exact=True).click()
        cell = page.locator(".body-cell", has_text="QDT").first
        cell.wait_for(timeout=120_000)
        scrolled = page.evaluate(
            "() => [...document.querySelectorAll('.virtual-table-viewport')]"
            ".map(w => { w.scrollLeft = w.scrollWidth; return w.scrollLeft; })"
        )
        assert max(scrolled) > 0  # wider than the phone: it scrolls, inside its box
        page.wait_for_timeout(300)
        box = cell.bounding_box()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, box
    finally:
        context.close()


def _luminance(rgb: str) -> float:
    r, g, b = (int(v) for v in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_dark_mode_plots_and_a_visible_focus_ring(browser, app_url):
    """In dark mode a plot's text is light on the page's dark background (its own
    background is transparent); a keyboard-focused input shows a ring."""
    context, page = _page(browser, app_url, 1400, 900)
    try:
        page.goto(app_url + "?__theme=dark")
        page.locator("p", has_text="achieved").first.wait_for(timeout=180_000)
        page.wait_for_selector(".js-plotly-plot .gtitle", timeout=30_000)
        title = page.evaluate(
            "() => getComputedStyle(document.querySelector('.js-plotly-plot .gtitle')).fill"
        )
        paper = page.evaluate(
            "() => getComputedStyle(document.querySelector('.js-plotly-plot .main-svg .bg')).fill"
        )
        page_bg = page.evaluate(  # what shows behind the plot: its nearest painted ancestor
            "() => { let e = document.querySelector('.js-plotly-plot'); while (e) {"
            " const c = getComputedStyle(e).backgroundColor;"
            " if (c !== 'transparent' && !c.replace(/ /g, '').endsWith(',0)')) return c;"
            " e = e.parentElement; } return 'rgb(255, 255, 255)'; }"
        )
        assert _luminance(title) > 0.6 and _luminance(page_bg) < 0.3, (title, page_bg)
        assert paper.replace(" ", "").endswith(",0)") or paper == "transparent", paper
        seed = page.get_by_label("Seed").first
        seed.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # focused from the keyboard: :focus-visible applies
        ring = seed.evaluate(
            "e => [getComputedStyle(e).outlineStyle, parseFloat(getComputedStyle(e).outlineWidth)]"
        )
        assert ring[0] == "solid" and ring[1] >= 2, ring
    finally:
        context.close()


# Each line of the Play controls' grid: its cells' left and right edges, and the form's.
CONTROL_LINES = """() => {
    const form = document.querySelector('.dtp-play-controls .form');
    const box = form.getBoundingClientRect();
    const lines = {};
    for (const c of form.children) {
        const r = c.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) continue;
        (lines[Math.round(r.top)] ||= []).push([r.left, r.right, c.className.slice(0, 60)]);
    }
    return {left: box.left, right: box.right, lines: Object.values(lines)};
}"""


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "LunarLander-v3"])
def test_the_phone_play_controls_leave_no_empty_cell(browser, app_url, env_id):
    """At 390 px the Play controls sit two to a line; a line with one control (the seed
    when "Sample actions" is hidden on a continuous env) spans the whole line."""
    context, page = _page(browser, app_url, 390, 844)
    try:
        page.locator("p", has_text="achieved").first.wait_for(timeout=180_000)
        _pick_env(page, env_id)
        sampled = page.get_by_label("Sample actions")
        if env_id == "Pendulum-v1":
            sampled.wait_for(state="hidden", timeout=30_000)
        else:
            sampled.wait_for(state="visible", timeout=30_000)
        _shot(page, f"phone-play-controls-{env_id.split('-')[0].lower()}.png")
        got = page.evaluate(CONTROL_LINES)
        assert len(got["lines"]) >= 3, got  # the target, then cells two to a line
        # the critic's box keeps its label and drops its info line (desktop-only)
        check = page.locator(".dtp-check").filter(visible=True)
        assert check.count() == 1  # both envs' DTs have a critic
        assert check.get_by_text("check with critic").is_visible()
        assert not check.get_by_text("a critic picks among").is_visible()
        page.set_viewport_size({"width": 1400, "height": 900})
        assert check.get_by_text("a critic picks among").is_visible()
        for cells in got["lines"]:
            right = max(c[1] for c in cells)
            assert right >= got["right"] - 24, (env_id, got)
    finally:
        context.close()
