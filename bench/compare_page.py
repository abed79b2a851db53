"""Benchmark: the Compare page with 100 runs (30-epoch histories, two datasets, repeated seeds) in a real browser,
against a one-line Streamlit page served and opened the same way in the same run.

Both are timed from navigation until the page is done: its script run has ended and every chart it shows is drawn.
Compare opens on its Final metrics tab (the colour key and the metrics chart); each other tab is timed too, opened
by its link (?view=...). The difference is what Compare adds to Streamlit's own cost; issue 12 asks for ≤ 2 s.
Needs Debian's Chromium (apt-get install chromium) and the project's requirements (Playwright).
Prints one JSON line last: compare_100_runs_s, one_line_page_s, extra_s (medians of --repeats loads) and tabs_s
(median per tab opened by its link).
Usage: .venv/bin/python bench/compare_page.py [--runs 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' server and Chromium helpers

T0_MS = 1_700_000_000_000
EPOCHS = 30
# the other Compare tabs and how many charts each draws (with the colour key) on these runs
TABS = {"Learning curves": 2, "Hyperparameters": 2, "Importance": 2, "What differs": 1}


def make_runs(uri: str, n: int) -> list[str]:
    """``n`` runs shaped like recdash trainings: lineage params for two datasets, a hyperparameter grid repeated
    over seeds, a 30-step validation history, test and baseline metrics. Logged with MLflow's client."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    exp = client.create_experiment("bench-compare")
    ids = []
    for i in range(n):
        started = T0_MS + i * 60_000
        run = client.create_run(exp, start_time=started, run_name=f"run-{i:03d}")
        digest = "d1" if i % 4 else "d2"
        params = {
            "dataset": "synthetic", "dataset_name": "synthetic", "dataset_digest": digest,
            "split_method": "random", "split_train": "0.8", "split_validation": "0.1", "split_test": "0.1",
            "split_seed": "42", "loss": ("warp", "bpr")[i % 2], "factors": str((16, 32, 64)[i % 3]),
            "learning_rate": str((0.05, 0.1)[(i // 6) % 2]), "seed": str(i // 12),
        }  # fmt: skip
        level = 0.2 + 0.02 * (i % 6)
        history = [Metric("val_ndcg_at_10", level * (1 - 0.9 ** (s + 1)), started + s * 1000, s + 1)
                   for s in range(EPOCHS)]  # fmt: skip
        finals = [Metric(k, v, started + EPOCHS * 1000, 0) for k, v in (
            ("test_ndcg_at_10", level), ("test_recall_at_10", level * 1.3), ("baseline_test_ndcg_at_10", 0.12),
            ("baseline_test_recall_at_10", 0.15))]  # fmt: skip
        client.log_batch(
            run.info.run_id,
            metrics=history + finals,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag("recdash.kind", "train")],
        )
        client.set_terminated(run.info.run_id, end_time=started + EPOCHS * 1000)
        ids.append(run.info.run_id)
    return ids


def page_done(page, charts: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds until the script run has ended and every plotly chart on the page is drawn (at least ``charts``)."""
    from browser import wait_idle

    t0 = time.perf_counter()
    page.locator("h1").first.wait_for(timeout=120_000)
    wait_idle(page, settle_ms=200)
    page.wait_for_function(
        """(n) => {
            const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
            return charts.length >= n && charts.every(c => c.querySelector('.main-svg'));
        }""",
        arg=charts,
        timeout=120_000,
    )
    return time.perf_counter() - t0 - 0.2  # the settle time is not the page's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from browser import browser_page, chromium_path, streamlit_server

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        os.chdir(work)
        ids = make_runs(uri, args.runs)
        one_line = work / "one_line.py"
        one_line.write_text('import streamlit as st\n\nst.title("hello")\n')
        env = {"MLFLOW_TRACKING_URI": uri, "RECDASH_CACHE_DIR": str(work / "cache")}
        compare_s, baseline_s = [], []
        with (
            streamlit_server(work, env) as app_url,
            streamlit_server(work, env, script=one_line) as one_url,
            browser_page(chromium_path()) as page,
        ):
            link = f"{app_url}/compare?runs={','.join(ids)}"
            page.goto(link)  # warm-up: imports, first reads (a user's second visit is what is measured)
            page_done(page, 2)
            page.goto(one_url)
            page_done(page, 0)
            for _ in range(args.repeats):
                page.goto(one_url)
                baseline_s.append(page_done(page, 0))
                page.goto(link)
                compare_s.append(page_done(page, 2))
            tabs_s = {}
            for tab, charts in TABS.items():
                page.goto(f"{link}&view={quote(tab)}")
                page_done(page, charts)  # first visit of the tab: its cached reads and figures are built
                times = []
                for _ in range(args.repeats):
                    page.goto(f"{link}&view={quote(tab)}")
                    times.append(page_done(page, charts))
                tabs_s[tab] = round(statistics.median(times), 3)
    compare, baseline = statistics.median(compare_s), statistics.median(baseline_s)
    print(f"compare page, {args.runs} runs: {compare_s}")
    print(f"one-line page:          {baseline_s}")
    print(json.dumps({"compare_100_runs_s": round(compare, 3), "one_line_page_s": round(baseline, 3),
                      "extra_s": round(compare - baseline, 3), "tabs_s": tabs_s, "runs": args.runs}))  # fmt: skip


if __name__ == "__main__":
    main()
