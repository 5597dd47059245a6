"""Browser benchmark: what a visitor waits for after pressing Play.

    python benchmarks/front_door.py [--runs 5]

The app runs in its own process, as hosted (benchmarks/load.py starts it); Debian's
chromium loads a fresh page per run, picks the env and presses Play with a new seed.
Prints, as JSON lines per env: click -> plots drawn, click -> video playable (seconds),
median and [min-max] over the runs, and the lead of the plots over the video. Goal: a Hopper
play's plots visible at least 1 s before its video.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
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
WATCH = """(seed) => {
  window.__t = {};
  const t0 = performance.now();
  const src0 = (document.querySelector('video') || {}).currentSrc || '';
  // A plot is this play's once Plotly holds new data under a title not shown before (the
  // RTG title names the seed, the reward title the return).
  const title = (p) => p.layout?.title?.text || '';
  const shown0 = [...document.querySelectorAll('.js-plotly-plot')];
  const data0 = new Map(shown0.map(p => [p, p.data]));
  const titles0 = new Set(shown0.map(title));
  // Visible: what is on top at the plot's centre is the plot itself (not a progress overlay).
  const onTop = (p) => {
    const r = p.getBoundingClientRect();
    const e = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return e !== null && p.contains(e);
  };
  const check = () => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(p =>
      p.offsetParent !== null && p.data !== data0.get(p) && !titles0.has(title(p)) && onTop(p));
    if (plots.length >= 2 && !('plots' in window.__t)) window.__t.plots = performance.now() - t0;
    const v = document.querySelector('video');
    if (v && v.currentSrc && v.currentSrc !== src0 && v.readyState >= 2 && !('video' in window.__t))
      window.__t.video = performance.now() - t0;
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true,
                                                      attributes: true});
  setInterval(check, 20);
}"""


def one_run(browser, url: str, env_id: str, seed: int) -> dict:
    from playwright.sync_api import expect

    # Tall, so both plots are in the viewport (the visibility check reads what is on top).
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("text=Play episode", timeout=60_000)
    # The visitor first sees the arrival example (played at start-up) land.
    page.wait_for_selector("text=/Requested .* achieved/", timeout=180_000)
    page.get_by_label("Environment").click()
    page.get_by_role("option", name=env_id).click()
    expect(page.get_by_text("Dataset returns:")).to_be_visible(timeout=30_000)
    page.get_by_label("Seed").first.fill(str(seed))
    page.evaluate(WATCH, seed)
    page.get_by_role("button", name="Play episode").click()
    page.wait_for_function("() => 'video' in window.__t && 'plots' in window.__t", timeout=180_000)
    t = page.evaluate("() => window.__t")
    context.close()
    return {"plots_s": t["plots"] / 1000, "video_s": t["video"] / 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--envs", default="LunarLander-v3,Hopper-v5")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        proc, url, startup = start_app(Path(d))
        print(json.dumps({"startup_s": round(startup, 2)}), flush=True)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        try:
            for env_id in args.envs.split(","):
                one_run(browser, url, env_id, 1)  # warm-up: the workers load the model
                runs = [one_run(browser, url, env_id, 100 + i) for i in range(args.runs)]
                out = {"env": env_id}
                for key in ("plots_s", "video_s"):
                    xs = [r[key] for r in runs]
                    out[key] = round(statistics.median(xs), 2)
                    out[key + "_range"] = [round(min(xs), 2), round(max(xs), 2)]
                lead = [r["video_s"] - r["plots_s"] for r in runs]
                out["plots_lead_s"] = round(statistics.median(lead), 2)
                out["plots_lead_range"] = [round(min(lead), 2), round(max(lead), 2)]
                print(json.dumps(out), flush=True)
        finally:
            browser.close()
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
