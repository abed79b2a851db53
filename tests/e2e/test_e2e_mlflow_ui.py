"""MLflow's own UI in a real headless Chromium, on a store recdash wrote (issue 22): `mlflow server` serves its web
app over the store, and the browser checks what a user of MLflow's UI sees of recdash's runs and registry: the
experiment opens on its training runs from recdash's links, and a registered version's logged model shows as
registered, with the version, carrying only the model's own metrics.

Screenshots go to docs/screenshots/mlflow-ui-*.png when RECDASH_SCREENSHOTS=1 (to refresh the committed ones),
otherwise into the test's temp dir.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from browser import ROOT, browser_page, chromium_path, free_port, served
from mlflow.tracking import MlflowClient
from playwright.sync_api import Page, expect

from recdash import contract, registry
from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train
from recdash.views import tables

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TINY = {"n_users": 60, "n_items": 40, "n_interactions": 900}


@contextmanager
def mlflow_server(uri: str, workdir: Path) -> Iterator[str]:
    """`mlflow server` on ``uri`` on a free loopback port; yields its URL once /health answers, stops it after."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with served(command, workdir, workdir / "mlflow-server.log", f"{url}/health", "mlflow server"):
        yield url


def _shot(page: Page, folder: Path, name: str) -> None:
    assistant = page.get_by_role("button", name="Close")  # MLflow's assistant panel: not what the picture is about
    if assistant.count():
        assistant.first.click()
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / name))


def test_mlflow_ui_in_a_real_browser_opens_training_runs_and_shows_registered_logged_models(
    tracking_store: str, tmp_path: Path
) -> None:
    chromium = chromium_path()
    base = TrainConfig(
        dataset="synthetic", dataset_options=TINY, epochs=1, patience=0, experiment="ui-check",
        hparams=Hyperparams(factors=4, max_samples=5),
    )  # fmt: skip
    data = load_data(base)
    train(replace(base, run_name="ui-rankfm"), data)
    ease = train(replace(base, model="ease", hparams=None, run_name="ui-ease"), data).run_id
    client = MlflowClient(tracking_store)
    registry.register_run_model(ease, "ui-recs", client=client)
    registry.set_alias("ui-recs", "champion", 1, client=client)
    experiment_id = client.get_run(ease).info.experiment_id
    model_id = client.get_run(ease).data.tags["recdash.model_id"]
    folder = ROOT / "docs" / "screenshots" if os.environ.get("RECDASH_SCREENSHOTS") else tmp_path

    with mlflow_server(tracking_store, tmp_path) as url, browser_page(chromium) as page:
        # recdash's link to a run (the Runs page's "MLflow UI" column) opens MLflow's UI in its "Model training"
        # mode, where the experiment is a list of training runs (in the "GenAI" mode it is traces and judges)
        link = tables.run_ui_links(pd.DataFrame({"experiment_id": [experiment_id], "run_id": [ease]}), url).iloc[0]
        page.goto(link)
        page.get_by_text("About this run").wait_for()
        nav = page.get_by_role("link", name="Runs", exact=True)
        expect(nav.first).to_be_visible()
        expect(page.get_by_role("link", name="Judges")).to_have_count(0)
        # the breadcrumb to the experiment (the sidebar's link of that name goes back to the list of experiments)
        page.get_by_role("link", name="ui-check", exact=True).and_(page.locator("[href*='/runs']")).first.click()
        expect(page).to_have_url(re.compile(rf"#/experiments/{experiment_id}/runs"))
        for name in ("ui-rankfm", "ui-ease"):
            expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
        # the experiment itself, opened in that mode, lands on its training runs
        page.goto(f"{url}/#/experiments/{experiment_id}{tables.MLFLOW_UI_TRAINING_MODE}")
        expect(page).to_have_url(re.compile(rf"#/experiments/{experiment_id}/runs\?"))
        for name in ("ui-rankfm", "ui-ease"):
            expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
        expect(page.get_by_role("link", name="ui-recs", exact=True)).to_be_visible()  # the Models column
        _shot(page, folder, "mlflow-ui-experiment-runs.png")

        # the registered version's logged model: registered, listing the version, with the model's own metrics
        page.goto(f"{url}/#/experiments/{experiment_id}/models/{model_id}{tables.MLFLOW_UI_TRAINING_MODE}")
        page.get_by_text("About this logged model").wait_for()
        expect(page.get_by_role("link", name="ui-recs", exact=True)).to_be_visible()
        expect(page.get_by_text("v1", exact=True).first).to_be_visible()
        expect(page.get_by_text("Not registered", exact=True)).to_have_count(0)
        own = len([k for k in client.get_run(ease).data.metrics if contract.is_own_test_metric(k)])
        expect(page.get_by_text(f"Metrics ({own})", exact=True)).to_be_visible()
        _shot(page, folder, "mlflow-ui-logged-model.png")
        # and the version's page links back to its run and logged model
        page.goto(f"{url}/#/models/ui-recs/versions/1{tables.MLFLOW_UI_TRAINING_MODE}")
        expect(page.get_by_role("link", name="ui-ease").first).to_be_visible()
        _shot(page, folder, "mlflow-ui-model-version.png")
