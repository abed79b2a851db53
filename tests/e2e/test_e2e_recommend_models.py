"""Recommend and Models in a real headless Chromium at 1400x900: what only a browser shows (issue 11, findings 13-15).

Every table next to another one (history | top-k, model A | model B) fits its column without a horizontal scroll
bar, so no column (score, year, hit, in both) is cut off; the compare switch has a visible label; the
champion-vs-challenger table fits and the promotion goes through the real buttons; a new user described by
attributes gets the list of a model trained with user features. Screenshots go to the test's temp
dir (the path is printed).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from browser import (
    browser_page,
    check_page,
    choose,
    chromium_path,
    fill,
    grid_text,
    screenshot,
    streamlit_server,
    wait_idle,
)
from playwright.sync_api import Locator, Page

from recdash import registry
from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SYNTHETIC = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


def overflowing_tables(page: Page) -> list[tuple[int, int, list[str]]]:
    """(content width, visible width, header) of every st.dataframe wider than its box, i.e. with columns cut off
    behind a horizontal scroll bar (glide-data-grid scrolls inside its ``.dvn-scroller``)."""
    wide = []
    frames = page.locator('[data-testid="stDataFrame"]')
    for i in range(frames.count()):
        frame = frames.nth(i)
        widths = frame.evaluate(
            "f => { const s = f.querySelector('.dvn-scroller'); return s ? [s.scrollWidth, s.clientWidth] : null; }"
        )
        if widths is None or widths[0] <= widths[1] + 1:
            continue
        wide.append((widths[0], widths[1], header(frame)))
    return wide


def header(grid: Locator) -> list[str]:
    """Column names of an st.dataframe, from the accessible table the canvas grid fills after its first paint (a grid
    below the fold is not painted: scrolled into view first; read at once, a grid still painting had no header)."""
    grid.scroll_into_view_if_needed()
    cells = grid.locator("table thead th")
    cells.first.wait_for(state="attached")
    return [c.strip() for c in cells.all_text_contents()]


def test_recommend_tables_fit_and_promotion_in_a_real_browser(tmp_path: Path, tracking_store: str) -> None:
    chromium = chromium_path()
    base = TrainConfig(
        dataset="synthetic", dataset_options=SYNTHETIC, epochs=2, patience=0, experiment="e2e-models",
        registered_model_name="recs",
    )  # fmt: skip
    data = load_data(base)
    for name, hp in (("champ-warp", Hyperparams(factors=8)), ("chall-bpr", Hyperparams(factors=4, loss="bpr"))):
        train(TrainConfig(**{**base.__dict__, "run_name": name, "hparams": hp}), data)
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    featured = train(  # a rankfm with user features, for the new-user mode (big enough to choose its features)
        TrainConfig(
            dataset="synthetic", dataset_options={"n_users": 300, "n_items": 200, "n_interactions": 9000},
            split="cold-users", user_features="builtin", item_features="builtin", epochs=2, patience=0,
            experiment="e2e-features", run_name="with-features",
        )
    )  # fmt: skip
    env = {
        "MLFLOW_TRACKING_URI": tracking_store,
        "RECDASH_JOBS_DIR": str(tmp_path / "jobs"),
        "RECDASH_CACHE_DIR": str(tmp_path / "cache"),
    }
    shots = tmp_path / "shots"
    shots.mkdir()
    print(f"screenshots: {shots}")  # shown with a failure too
    with streamlit_server(tmp_path, env) as server, browser_page(chromium, tmp_path) as page:
        # the Models page's champion-vs-challenger link opens this: A = champion, B = challenger
        page.goto(f"{server}/recommend?model=models:/recs/1&compare=models:/recs/2")
        check_page(page, "Recommend")
        fill(page, "user_id", "u0001")
        page.get_by_role("heading", name="Top 10 recommendations").wait_for()
        page.get_by_text("Model B:").wait_for()
        check_page(page, "Recommend")
        toggle = page.get_by_text("Compare with another model (B)", exact=True)
        assert toggle.is_visible(), "the compare switch has no visible label"
        page.get_by_text("Model A: recs v1 (champion) · run champ-warp").first.wait_for()
        page.get_by_text("Model B: recs v2 (challenger) · run chall-bpr").wait_for()
        # history, top-k, the user's own test metrics in A and B, A, B, similar items
        page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stDataFrame\"]').length == 6")
        frames = page.locator("[data-testid='stDataFrame']")
        assert header(frames.nth(1)) == ["rank", "item", "year", "score", "popularity", "hit"]
        assert header(frames.nth(3)) == ["rank", "item", "year", "score", "hit", "in both"]
        assert grid_text(frames.nth(1))[0][0] == "1"
        assert overflowing_tables(page) == []
        screenshot(page, shots, "recommend.png")

        fill(page, "user_id", "nobody-here")  # the fallback in all three lists: a count, named as one
        page.get_by_role("heading", name="Popular items (fallback)").wait_for()
        check_page(page, "Recommend")
        assert header(frames.nth(0)) == ["rank", "item", "year", "training interactions", "hit"]
        assert overflowing_tables(page) == []
        screenshot(page, shots, "recommend_fallback.png")

        page.goto(f"{server}/models")
        check_page(page, "Models")
        promote = page.get_by_role("button", name="Promote challenger (v2) to champion")
        promote.wait_for()
        check_page(page, "Models")
        wide = overflowing_tables(page)  # only the versions table (a column per metric) may scroll sideways
        assert all("source run" in header for _, _, header in wide), wide
        promote.click()
        page.get_by_role("button", name="Confirm promotion").click()
        page.get_by_test_id("stAlertContentSuccess").get_by_text("Promoted recs version 2 to champion").wait_for()
        check_page(page, "Models")
        aliases = mlflow.MlflowClient(tracking_store).get_registered_model("recs").aliases
        assert {alias: int(version) for alias, version in aliases.items()} == {"champion": 2}
        screenshot(page, shots, "models.png")

        # a new user described by attributes: the model's own list for them, through the page's inputs
        page.goto(f"{server}/recommend?run={featured.run_id}")
        check_page(page, "Recommend")
        page.get_by_text("A new user", exact=True).click()
        wait_idle(page)
        fill(page, "new_user_age", "62")
        wait_idle(page)
        choose(page, "new_user_gender", "F")
        choose(page, "new_user_occupation", "retired")
        page.get_by_role("heading", name="Top 10 for this new user").wait_for()
        check_page(page, "Recommend")
        page.get_by_text(f"Source: {featured.recommender.cold_start['strategy']}.").wait_for()
        attributes = pd.DataFrame({"user_id": ["x"], "age": [62.0], "gender": ["F"], "occupation": ["retired"]})
        expected = featured.recommender.recommend(["x"], k=10, user_features=attributes)
        rows = grid_text(page.locator("[data-testid='stDataFrame']").first)
        assert [row[1].rsplit(" (", 1)[1].rstrip(")") for row in rows] == list(expected["item_id"])
        assert overflowing_tables(page) == []
        screenshot(page, shots, "recommend_new_user.png")
