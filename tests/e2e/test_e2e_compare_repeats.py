"""A first trial in a real headless Chromium (issue 21): the first visit to a new store, then Compare's default
"mean ± std" view at 1280 px over ten runs like a first trial leaves (a default run and its repeats, one of them
with the same seed, a handful of other configurations, a side-feature run on the cold-users split) and the
references on the main data.

Checked in the browser, where AppTest cannot see it: Home says it is busy while MLflow creates a new store's tables
and offers demo runs in that same visit; the configurations' legend sits outside the plot and inside the figure,
every facet keeps a readable plot area, and the bars are bars, not a line by a "0" tick (the legend of long
configuration strings used to take the plot's width); the Segments tab says why the cold-users facet has nothing to
draw; the Hyperparameters tab draws a panel per data group with titles that do not touch. Screenshots of the
Compare views go to docs/screenshots/ when RECDASH_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from browser import ROOT, browser_page, check_page, chromium_path, screenshot, streamlit_server, wait_idle

from recdash.config import TrainConfig
from recdash.training.references import train_references
from recdash.training.run import load_data, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DATA = {"n_users": 150, "n_items": 100, "n_interactions": 4000}
OTHERS = [(16, 0.1, "bpr"), (24, 0.02, "warp"), (32, 0.08, "warp"), (12, 0.03, "bpr"), (20, 0.15, "warp")]
WIDTH = 1280

# Remembers whether Home's busy message was ever on screen (it is there only while the store is being created).
SEEN_SPINNER = """
window.__sawSpinner = false;
new MutationObserver(() => {
  if (document.body && document.body.innerText.includes("Opening the tracking store")) window.__sawSpinner = true;
}).observe(document, {childList: true, subtree: true, characterData: true});
"""

# A plotly chart's boxes in its own pixels: the figure, the legend, and each facet's plot area.
BOXES = """
el => {
  const fl = el._fullLayout, root = el.getBoundingClientRect();
  const legend = el.querySelector('.legend');
  const box = legend && legend.getBoundingClientRect();
  const facets = Object.keys(fl).filter(k => /^xaxis\\d*$/.test(k)).map(k => {
    const x = fl[k], y = fl['yaxis' + x.anchor.slice(1)];
    return {x: x._offset, w: x._length, y: y._offset, h: y._length};
  });
  const bars = [...el.querySelectorAll('.barlayer .point path')].map(p => p.getBoundingClientRect().height);
  const entries = [...el.querySelectorAll('.legend .traces')].map(t => {
    const b = t.getBoundingClientRect(); return {x: b.x - root.x, y: b.y - root.y, w: b.width, h: b.height}; });
  return {width: fl.width, height: fl.height, facets, bars, entries,
          legend: box && {x: box.x - root.x, y: box.y - root.y, w: box.width, h: box.height}};
}
"""


def trial_runs() -> dict[str, str]:
    """Ten quick trainings: rankfm (seed 42), its repeats with seeds 42 (the same draw again), 43 and 44, five other
    configurations, and rankfm with built-in side features on the cold-users split; run name -> id."""
    base = TrainConfig(dataset="synthetic", dataset_options=DATA, epochs=3, patience=0, experiment="trial",
                       log_model=False, hparams={"factors": 8, "max_samples": 10})  # fmt: skip
    data = load_data(base)
    runs = {"rankfm": train(replace(base, run_name="rankfm"), data).run_id}
    for seed in (42, 43, 44):
        config = replace(base, run_name="warp-repeat").with_seed(seed)
        runs[str(config.run_name)] = train(config, data).run_id
    for i, (factors, rate, loss) in enumerate(OTHERS):
        hparams = {"factors": factors, "learning_rate": rate, "loss": loss, "max_samples": 10}
        runs[f"trial-{i}"] = train(replace(base, hparams=hparams, run_name=f"trial-{i}"), data).run_id
    cold = replace(base, split="cold-users", user_features="builtin", item_features="builtin", run_name="features-cold")
    runs["features-cold"] = train(cold).run_id
    train_references(replace(base, run_name=None), data)  # the yardsticks on the main data (not compared here)
    return runs


def overlaps(a: dict, b: dict) -> bool:
    """Whether two boxes ({x, y, w, h}) share any area."""
    across = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
    return across and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def test_first_visit_then_compare_mean_std_of_ten_runs_at_1280(tmp_path: Path, tracking_store: str) -> None:
    chromium = chromium_path()
    shots = ROOT / "docs" / "screenshots" if os.environ.get("RECDASH_SCREENSHOTS") == "1" else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    env = {"MLFLOW_TRACKING_URI": tracking_store, "RECDASH_JOBS_DIR": str(tmp_path / "jobs"),
           "RECDASH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    with streamlit_server(tmp_path, env) as server, browser_page(chromium, tmp_path) as page:
        # First visit to a store that does not exist yet: busy while MLflow creates it, then demo runs on offer
        page.add_init_script(SEEN_SPINNER)
        page.goto(server)
        page.get_by_role("button", name="Create demo runs").wait_for(timeout=90_000)  # this visit, no reload
        check_page(page, "recdash")
        assert page.evaluate("window.__sawSpinner"), "Home showed no sign of work while the store was created"

        runs = trial_runs()  # the server reads the same store
        page.goto(f"{server}/runs")
        check_page(page, "Runs")
        page.get_by_role("button", name="Refresh").click()  # the store's lists are cached for 15-30 s: read now
        wait_idle(page)
        page.set_viewport_size({"width": WIDTH, "height": 900})
        page.goto(f"{server}/compare?runs={','.join(runs.values())}")
        check_page(page, "Compare runs")
        page.get_by_text("Counted once: 1 run(s)").wait_for()  # warp-repeat-s42 is rankfm's draw again
        chart = page.locator(".st-key-bars_chart .js-plotly-plot").first
        chart.locator(".main-svg").first.wait_for()
        boxes = chart.evaluate(BOXES)
        legend, facets = boxes["legend"], boxes["facets"]
        assert len(facets) == 2, boxes  # the random split and the cold-users split, apart
        assert legend and legend["x"] >= 0 and legend["x"] + legend["w"] <= boxes["width"] + 1, boxes  # not clipped
        assert legend["y"] + legend["h"] <= boxes["height"] + 1, boxes
        for entry in boxes["entries"]:  # every entry shown whole: none cut off at the right edge
            assert entry["x"] >= 0 and entry["x"] + entry["w"] <= min(boxes["width"], legend["x"] + legend["w"]) + 1
        for facet in facets:
            assert not overlaps(legend, facet), (legend, facet)  # outside every plot area
            assert facet["w"] >= 0.6 * boxes["width"] and facet["h"] >= 150, boxes  # readable, not squashed
        assert max(boxes["bars"]) >= 0.3 * facets[0]["h"], boxes  # bars, not a line by a "0" tick
        screenshot(page, shots, "compare.png")

        page.get_by_role("tab", name="Segments").click()
        segments = page.locator(".st-key-segment_chart .js-plotly-plot").first
        segments.locator(".main-svg").first.wait_for()
        check_page(page, "Compare runs")
        subtitle = segments.evaluate("el => el._fullLayout.title.subtitle.text")
        assert "cold-users split: its test users have no training interactions" in subtitle
        assert len(segments.evaluate(BOXES)["facets"]) == 1  # no empty axis for the cold-users run
        screenshot(page, shots, "compare-segments.png")

        page.get_by_role("tab", name="Hyperparameters").click()
        parallel = page.locator(".st-key-parallel_chart .js-plotly-plot").first
        parallel.locator(".main-svg").first.wait_for()
        check_page(page, "Compare runs")
        titles = parallel.evaluate(
            """el => el._fullLayout.annotations.map((a, i) => [a, i]).filter(([a]) => a.text.startsWith('<b>'))
                 .map(([, i]) => el.querySelector(`.annotation[data-index="${i}"] .annotation-text`)
                 .getBoundingClientRect()).map(b => ({x: b.x, y: b.y, w: b.width, h: b.height}))"""
        )
        assert len(titles) >= 8  # two panels, one per data group, each with its axes
        touching = [(a, b) for i, a in enumerate(titles) for b in titles[i + 1 :] if overlaps(a, b)]
        assert not touching, touching
        screenshot(page, shots, "compare-hyperparameters.png")
