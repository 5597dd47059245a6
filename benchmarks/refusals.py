"""Browser benchmark: how long a refused input takes to show its sentence.

    python benchmarks/refusals.py [--rounds 3]

The app runs in its own process, as hosted (benchmarks/load.py starts it); Debian's
chromium opens one page per width (1400 px and a 390 px phone), waits for the arrival
example, then gives each refusal of `tests/app/test_browser_answers.py` (a bad schedule,
grid, attention step or seed on every tab) ``--rounds`` times, the widths interleaved.
Prints one JSON line per width: click -> toast text visible (seconds), median and
[min-max]. Goal: every sentence within 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "benchmarks"),
    str(ROOT / "tests" / "app"),
    str(ROOT / "tests"),
]
from load import start_app  # noqa: E402

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
WIDTHS = {1400: 1000, 390: 844}


def _page(browser, url: str, width: int):
    page = browser.new_context(viewport={"width": width, "height": WIDTHS[width]}).new_page()
    page.goto(url)
    page.locator("p", has_text="achieved").first.wait_for(timeout=180_000)
    page.get_by_text("Re-prompt mid-episode: a target schedule").click()
    page.get_by_text("Attention: what the action at a step looked at").click()
    return page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from test_browser_answers import REFUSALS, _fill, _reset, _toast_after

    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        proc, url, _ = start_app(Path(d))
        try:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            pages = {w: _page(browser, url, w) for w in WIDTHS}
            took: dict[int, list[float]] = {w: [] for w in WIDTHS}
            for _ in range(args.rounds):
                for tab, field, value, button, sentence in REFUSALS:
                    for w, page in pages.items():  # interleaved: both widths see the same load
                        _fill(page, field, value, tab)
                        text, s = _toast_after(
                            page,
                            lambda pg=page, b=button: pg.get_by_role(
                                "button", name=b, exact=True
                            ).click(),
                        )
                        assert text.startswith(sentence), text
                        took[w].append(s)
                        _reset(page, field, tab)
            for w, xs in took.items():
                print(
                    json.dumps(
                        {
                            "width": w,
                            "refusals": len(xs),
                            "median_s": round(statistics.median(xs), 3),
                            "spread_s": [round(min(xs), 3), round(max(xs), 3)],
                            "over_1s": sum(x > 1.0 for x in xs),
                        }
                    ),
                    flush=True,
                )
            browser.close()
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
