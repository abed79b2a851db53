"""End to end in a real headless Chromium: `streamlit run app.py` over a prepared store, each page used like a person.

What AppTest cannot show is checked here: the router and sidebar as a browser renders them, the wide layout,
clicks on the canvas data grid, plotly charts that actually draw, the Train page's live fragment polling a real
background job to the end, and registry changes made through buttons. Any Streamlit exception box on any page
fails the test. Screenshots go to docs/screenshots/ when RECDASH_SCREENSHOTS=1 (to refresh the committed ones),
otherwise into the test's temp dir.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import mlflow
import pytest
from browser import (
    ROOT,
    browser_page,
    check_page,
    choose,
    chromium_path,
    fill,
    grid_text,
    screenshot,
    streamlit_server,
    type_into,
    wait_idle,
)

from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training import jobs, progress
from recdash.training.references import train_references
from recdash.training.run import train
from recdash.training.sweep import run_sweep
from recdash.training.sweep_spec import SweepSpec, parse_space

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DATA_A = {"n_users": 120, "n_items": 80, "n_interactions": 3000}
DATA_B = {"n_users": 100, "n_items": 80, "n_interactions": 2500}  # another dataset: never ranked against DATA_A
TRAININGS = ("e2e-a-bpr-0.1", "e2e-a-warp-0.05", "e2e-b-warp-0.1")


def prepare_store(tmp_path: Path) -> dict[str, str]:
    """Real, quick trainings in two experiments on two datasets, and a 3-trial sweep; returns run name -> id."""
    runs = {}
    for experiment, loss, rate, data in (("e2e-a", "bpr", 0.1, DATA_A), ("e2e-a", "warp", 0.05, DATA_A),
                                         ("e2e-b", "warp", 0.1, DATA_B)):  # fmt: skip
        name = f"{experiment}-{loss}-{rate}"
        config = TrainConfig(
            dataset="synthetic",
            dataset_options=data,
            epochs=3,
            hparams=Hyperparams(factors=8, loss=loss, learning_rate=rate),
            experiment=experiment,
            run_name=name,
        )
        runs[name] = train(config).run_id
    sweep = SweepSpec(
        config=replace(config, dataset_options=DATA_A, experiment="e2e-a", run_name="e2e-sweep", epochs=2,
                       log_model=False),
        space=parse_space(["factors=4:16", "loss=bpr,warp"]), n_trials=3, storage=f"sqlite:///{tmp_path / 'o.db'}",
    )  # fmt: skip
    runs["e2e-sweep"] = run_sweep(sweep).parent_run_id
    references = train_references(replace(config, dataset_options=DATA_A, experiment="e2e-refs", run_name=None))
    runs.update({f"reference-{name}": result.run_id for name, result in references.runs.items()})
    return runs


@pytest.fixture
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def runs(chromium: str, tmp_path: Path, tracking_store: str) -> dict[str, str]:
    return prepare_store(tmp_path)


@pytest.fixture
def server(runs: dict[str, str], tmp_path: Path, tracking_store: str) -> Iterator[str]:
    """`streamlit run app.py` on a free port over the temp store, run from the temp dir so nothing lands in the repo."""
    env = {
        "MLFLOW_TRACKING_URI": tracking_store,
        "RECDASH_JOBS_DIR": str(tmp_path / "jobs"),
        "RECDASH_CACHE_DIR": str(tmp_path / "cache"),
    }
    with streamlit_server(tmp_path, env) as url:
        try:
            yield url
        finally:
            for job in jobs.list_jobs(tracking_store):  # a job a failed test left running must not outlive it
                if job.active:
                    with contextlib.suppress(jobs.JobError):
                        jobs.cancel(job.run_id, tracking_store)


def test_every_page_in_a_real_browser(
    tmp_path: Path, tracking_store: str, chromium: str, runs: dict[str, str], server: str
) -> None:
    shots = ROOT / "docs" / "screenshots" if os.environ.get("RECDASH_SCREENSHOTS") == "1" else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)

    with browser_page(chromium, tmp_path) as page:
        sent: list[float] = []  # when the browser asked the server for something (a script or fragment run)
        page.on("websocket", lambda ws: ws.on("framesent", lambda _: sent.append(time.monotonic())))
        # A deep link is the first request this fresh server sees: it must still go through app.py's router
        # (Streamlit's legacy pages/ mode would run the page file alone: file-name sidebar, narrow layout)
        page.goto(f"{server}/runs")
        check_page(page, "Runs")

        # Home: which store, what is in it
        page.goto(server)
        check_page(page, "recdash")
        page.get_by_text("Latest runs").wait_for()
        assert page.locator("[data-testid='stCode']").first.inner_text().strip() == tracking_store
        grids = page.locator("[data-testid='stDataFrame']")
        experiments = {row[0]: row[1] for row in grid_text(grids.nth(0))}
        # e2e-a: 2 trainings, a sweep and its 3 trials; e2e-refs: 3 references under their parent run
        assert experiments == {"e2e-a": "6", "e2e-b": "1", "e2e-refs": "4"}
        latest = [row[0] for row in grid_text(grids.nth(1))]
        assert {"references", "reference-ease", TRAININGS[-1]} <= set(latest), latest  # newest first
        screenshot(page, shots, "home.png")

        # Runs: the table, and rows picked by clicking their selection boxes in the canvas grid
        page.get_by_role("link", name="Runs").first.click()
        check_page(page, "Runs")
        page.get_by_text("11 runs. Select rows").wait_for()
        table = page.locator(".st-key-runs_table [data-testid='stDataFrame']")
        shown = [row[0] for row in grid_text(table)]
        folded = ["▸ e2e-sweep (3 trials)", "▸ references (3 runs)"]  # a sweep's trials, the references
        assert sorted(shown) == sorted([*TRAININGS, *folded]), shown
        box = table.bounding_box()
        header = row_height = 35  # st.dataframe's default row height; the header row has the same

        def click_row(row: int) -> None:
            page.mouse.click(box["x"] + 18, box["y"] + header + row_height * row + row_height / 2)
            wait_idle(page)

        def url_runs() -> set[str]:
            return set(parse_qs(urlparse(page.url).query)["runs"][0].split(","))

        first, second, third = (shown.index(name) for name in TRAININGS)
        click_row(first)
        click_row(third)
        page.get_by_text("2 selected.").wait_for()
        assert url_runs() == {runs[TRAININGS[0]], runs[TRAININGS[2]]}  # in the URL: a comparison can be shared
        click_row(second)
        page.get_by_text("3 selected.").wait_for()
        assert url_runs() == {runs[name] for name in TRAININGS}
        screenshot(page, shots, "runs.png")

        # Compare: runs on two datasets are drawn apart, each "best" within its dataset, colours kept
        page.get_by_role("button", name="Compare selected").click()
        page.wait_for_url("**/compare?runs=*")
        check_page(page, "Compare runs")
        page.get_by_text("Comparing 3 run(s) selected on the Runs page.").wait_for()
        warning = page.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
        assert "2 different datasets or splits" in warning and "(2 runs)" in warning and "(1 run)" in warning
        page.locator(".st-key-bars_chart .js-plotly-plot .main-svg").first.wait_for()
        charts = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot")
        assert charts.count() == 2  # the colour key and the open tab's final metrics; other tabs draw when opened
        bars = page.locator(".st-key-bars_chart .js-plotly-plot")
        assert bars.locator(".g-gtitle, .annotation-text").filter(has_text="synthetic").count() == 2  # 2 facets
        # 2 metrics on the 2-run dataset; the other dataset's single run beats nobody, whatever its value
        # (the bars' own marks: "★ best", or "★ best?" within noise; the title's key to "★ best?" is not a mark)
        assert bars.locator("text.bartext").filter(has_text=re.compile(r"^★ best\??$")).count() == 2
        # the references fitted on the 2-run dataset: grey marks on its facet, each run's ratio to the best
        assert bars.locator(".legendtext").filter(has_text="reference: ease").count() == 1
        ratios = grid_text(page.locator(".st-key-reference_box [data-testid='stDataFrame']"))
        assert {row[0] for row in ratios} >= {"reference: ease", "reference: itemknn", "reference: popularity"}
        # Compare's README screenshots come from test_e2e_compare_repeats.py (its default mean ± std view)
        page.get_by_role("tab", name="Segments").click()
        page.locator(".st-key-segment_chart .js-plotly-plot .main-svg").first.wait_for()
        check_page(page, "Compare runs")
        for tab, chart in (("Learning curves", "history_chart"), ("Hyperparameters", "parallel_chart")):
            page.get_by_role("tab", name=tab).click()
            page.locator(f".st-key-{chart} .js-plotly-plot .main-svg").first.wait_for()
            assert urlparse(page.url).query.count("view=") == 1  # the open tab is in the link
            check_page(page, "Compare runs")
        page.get_by_role("tab", name="What differs").click()
        rows = grid_text(page.locator(".st-key-param_diff_box [data-testid='stDataFrame']"))
        differ = {"learning_rate": ["0.05", "0.1", "0.1"], "loss": ["bpr", "warp", "warp"]}  # param: run values
        assert {row[0]: sorted(row[1:]) for row in rows} == differ  # data (dataset_*, split_*) is not a setting

        # Train: a small synthetic training started from the form, watched until it finishes
        page.get_by_role("link", name="Train").first.click()
        check_page(page, "Train")
        # no job in this store: the page asks the server for nothing while it sits there (it polled every 2 s)
        assert jobs.list_jobs(tracking_store) == []
        quiet_from = time.monotonic()
        page.wait_for_timeout(6000)
        assert [t for t in sent if t > quiet_from] == []
        choose(page, "t_dataset", "synthetic")
        page.locator(".st-key-t_synthetic_n_users input").wait_for()
        for key, value in (
            ("t_synthetic_n_users", "120"),
            ("t_synthetic_n_items", "80"),
            ("t_synthetic_n_interactions", "3000"),
            ("t_epochs", "3"),
            ("t_rankfm__factors", "8"),
        ):
            type_into(page, key, value)
        type_into(page, "t_experiment", "e2e-a")
        run_name = page.locator(".st-key-t_run_name input")
        run_name.fill("browser-run")
        run_name.press("Enter")  # Enter in a field starts nothing: only the button does
        page.wait_for_timeout(1500)
        wait_idle(page)
        assert jobs.list_jobs(tracking_store) == [] and page.get_by_text("job queued as run").count() == 0
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Train job queued as run").wait_for()
        page.get_by_text("state: finished").wait_for(timeout=90_000)
        page.get_by_text("Epoch 3 of 3").wait_for()
        # the page redraws its controls once the job has ended: no Cancel button, the picker names the job
        page.get_by_role("button", name="Cancel", exact=True).wait_for(state="detached")
        check_page(page, "Train")
        page.get_by_role("link", name="Open in Compare").wait_for()
        job = next(j for j in jobs.list_jobs(tracking_store) if j.name == "browser-run")
        assert page.locator(".st-key-job_select input").input_value() == f"train  browser-run  [{job.run_id[:8]}]"
        params = mlflow.MlflowClient(tracking_store).get_run(job.run_id).data.params
        assert (params["dataset_users"], params["epochs"], params["factors"]) == ("120", "3", "8"), params
        # the live chart draws a line with a point per epoch for each validation ranking metric
        page.wait_for_function(
            "() => document.querySelectorAll('.st-key-job_history_chart .scatterlayer .trace').length === 6"
        )
        points = page.locator(".st-key-job_history_chart .scatterlayer .trace").first.locator(".point")
        assert points.count() == 3
        screenshot(page, shots, "train.png")

        # a longer job (about half a second an epoch): Cancel shows "cancelling" at once, the job ends killed
        for key, value in (
            ("t_synthetic_n_users", "3000"),
            ("t_synthetic_n_items", "2000"),
            ("t_synthetic_n_interactions", "200000"),
            ("t_epochs", "5000"),
            ("t_patience", "0"),
            ("t_rankfm__factors", "32"),
        ):
            type_into(page, key, value)
        type_into(page, "t_run_name", "browser-cancel")
        page.get_by_role("button", name="Start training").click()
        deadline = time.monotonic() + 90
        while not [j for j in jobs.list_jobs(tracking_store) if j.name == "browser-cancel"]:
            assert time.monotonic() < deadline, "the job was not queued"
            page.wait_for_timeout(200)
        (long_job,) = [j for j in jobs.list_jobs(tracking_store) if j.name == "browser-cancel"]
        while progress.progress(long_job.run_id, tracking_store).epoch < 2:
            assert time.monotonic() < deadline, "the job did not train"
            page.wait_for_timeout(200)
        page.get_by_text("state: running").wait_for()
        page.wait_for_function(  # drawn while it runs, not only once it is done
            "() => document.querySelectorAll('.st-key-job_history_chart .scatterlayer .trace .point').length >= 6"
        )
        page.get_by_role("button", name="Cancel", exact=True).click()
        page.get_by_text("Cancel requested: cancelling.").wait_for(timeout=10_000)  # the very next page run
        screenshot(page, tmp_path, "train-cancelling.png")  # not one of the README's screenshots
        page.get_by_text("state: killed").wait_for(timeout=30_000)
        check_page(page, "Train")  # a cancel the user asked for is not shown as an error
        assert mlflow.MlflowClient(tracking_store).get_run(long_job.run_id).info.status == "KILLED"

        # Recommend, opened by a deep link: a known user's top-k next to their history, then an unknown user
        run_id = runs["e2e-a-bpr-0.1"]
        page.goto(f"{server}/recommend?run={run_id}")
        check_page(page, "Recommend")
        page.get_by_text(f"run {run_id}").wait_for()
        fill(page, "k", "5")
        fill(page, "user_id", "u0001")  # synthetic ids are zero-padded to at least 4 digits
        page.get_by_role("heading", name="Top 5 recommendations").wait_for()
        check_page(page, "Recommend")
        columns = page.locator("[data-testid='stColumn']").filter(has=page.get_by_text("History (training data)"))
        history = grid_text(columns.locator("[data-testid='stDataFrame']").first)
        assert history, "the user's history is empty"
        recs = grid_text(
            page.locator("[data-testid='stColumn']")
            .filter(has=page.get_by_role("heading", name="Top 5 recommendations"))
            .locator("[data-testid='stDataFrame']")
            .first
        )
        assert [row[0] for row in recs] == ["1", "2", "3", "4", "5"]
        assert page.locator('[data-testid="stAlertContentWarning"]').count() == 0
        screenshot(page, shots, "recommend.png")
        fill(page, "user_id", "nobody-here")
        page.get_by_text("User nobody-here is not in this model's training data").wait_for()
        page.get_by_role("heading", name="Popular items (fallback)").wait_for()
        check_page(page, "Recommend")

        # Models: register that run's model from the Recommend page's link, make it the champion
        page.get_by_role("link", name="Register this run's model").click()
        page.wait_for_url(f"**/models?run={run_id}")
        check_page(page, "Models")
        page.locator(".st-key-register_name input").fill("e2e-model")
        page.get_by_role("button", name="Register", exact=True).click()
        page.get_by_test_id("stAlertContentSuccess").get_by_text(
            f"Registered run {run_id}'s model as e2e-model version 1."
        ).wait_for()
        check_page(page, "Models")
        fill(page, "alias", "champion")
        page.get_by_role("button", name="Set / move alias").click()
        page.get_by_test_id("stAlertContentSuccess").get_by_text(
            "Alias champion now points to e2e-model version 1."
        ).wait_for()
        check_page(page, "Models")
        page.get_by_text("Current: champion → v1").wait_for()
        page.get_by_text("models:/e2e-model@champion").wait_for()
        champion = mlflow.MlflowClient(tracking_store).get_model_version_by_alias("e2e-model", "champion")
        assert champion.run_id == run_id
        screenshot(page, shots, "models.png")
