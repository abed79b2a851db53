"""A legacy MLflow file store, exported from git, opened by the real app in a real browser: every page works, no
exception box anywhere, and afterwards the store's files are byte-for-byte what they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import browser_page, check_page, chromium_path, grid_text, screenshot, streamlit_server
from legacy_store import MODEL_TRIAL, RUN_COUNT, build_legacy_store, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_legacy_store_every_page_read_only(tmp_path: Path) -> None:
    chromium = chromium_path()
    root = build_legacy_store(tmp_path / "old-project" / "mlruns")
    before = snapshot(root)
    runs = _run_ids(root)
    env = {
        "MLFLOW_TRACKING_URI": root.as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "RECDASH_JOBS_DIR": str(tmp_path / "jobs"),
        "RECDASH_CACHE_DIR": str(tmp_path / "cache"),
    }
    shots = tmp_path / "shots"
    shots.mkdir()
    with streamlit_server(tmp_path, env) as server, browser_page(chromium, tmp_path) as page:
        page.goto(server)
        check_page(page, "recdash")
        experiments = grid_text(page.locator("[data-testid='stDataFrame']").first)
        assert experiments[0][:2] == ["optuna-lightgbm-2021", str(RUN_COUNT)]
        assert experiments[0][2].startswith("2021-06-01"), experiments  # the runs' dates, not today's
        screenshot(page, shots, "home.png")

        page.get_by_role("link", name="Runs").first.click()
        check_page(page, "Runs")
        page.get_by_text(f"{RUN_COUNT} runs. Select rows").wait_for()
        screenshot(page, shots, "runs.png")

        chosen = [runs["3"], runs[MODEL_TRIAL], runs["7"]]
        page.goto(f"{server}/compare?runs={','.join(chosen)}")
        check_page(page, "Compare runs")
        page.get_by_text("Comparing 3 run(s)").wait_for()
        page.locator(".st-key-bars_chart .js-plotly-plot .main-svg").first.wait_for()
        screenshot(page, shots, "compare.png")

        page.get_by_role("link", name="Train").first.click()
        check_page(page, "Train")
        page.get_by_text("Training is not possible here").first.wait_for()
        assert page.get_by_role("button", name="Start training").is_disabled()
        screenshot(page, shots, "train.png")

        page.goto(f"{server}/recommend?run={runs[MODEL_TRIAL]}")
        check_page(page, "Recommend")
        page.locator(".st-key-user_id input").fill("anyone")
        page.locator(".st-key-user_id input").press("Enter")
        page.get_by_role("heading", name="Top 10 recommendations").wait_for()
        check_page(page, "Recommend")
        screenshot(page, shots, "recommend.png")

        page.get_by_role("link", name="Models").first.click()
        check_page(page, "Models")
        page.get_by_text("Registering models and changing aliases").first.wait_for()
        assert page.get_by_role("button", name="Register", exact=True).is_disabled()
        screenshot(page, shots, "models.png")
    after = snapshot(root)
    assert after == before, f"the store changed: {sorted(set(after) ^ set(before))[:10]}"


def _run_ids(root: Path) -> dict[str, str]:
    """Run name -> run id, read from the runs' meta.yaml files (not through MLflow, which could write)."""
    out = {}
    for meta in root.glob("*/*/meta.yaml"):
        fields = dict(line.split(": ", 1) for line in meta.read_text().splitlines() if ": " in line)
        out[fields.get("run_name", "").strip("'")] = fields["run_id"]
    assert len(out) >= RUN_COUNT, out
    return out
