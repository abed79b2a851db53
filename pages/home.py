"""Home: which tracking store is in use, what is in it, the latest runs and the best run of each experiment.

The first visit to a new SQLite store waits while MLflow creates its tables (several seconds): the page says so
while it waits, and a fresh store then offers demo runs in that same visit."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._common import (
    clear_run_caches,
    experiments_table,
    read_only_notice,
    runs_table,
    stop_on_store_error,
    store_uri,
)
from recdash import catalog, contract, tracking
from recdash import comparison as cmp
from recdash.training import demo
from recdash.views import tables
from recdash.views.text import escape_markdown

st.title("recdash")
st.caption("Train, compare and try rankfm recommender models tracked in MLflow.")

uri = store_uri()
st.subheader("Tracking store")
st.code(uri, language=None)
st.caption(
    "To use another store, set `MLFLOW_TRACKING_URI` before `make run`, "
    "e.g. `MLFLOW_TRACKING_URI=sqlite:///mlflow.db make run`."
)


try:
    with st.spinner("Opening the tracking store… (a new store gets its tables on the first visit: a few seconds)"):
        tracking.check_store(uri)
        experiments = experiments_table(uri)
        active = experiments[experiments["lifecycle_stage"] == "active"]
        with_runs = active[active["run_count"] > 0]
        runs = runs_table(uri, tuple(with_runs["experiment_id"].astype(str))) if len(with_runs) else pd.DataFrame()
except tracking.TrackingError as exc:
    stop_on_store_error(exc)

if runs.empty:
    if read_only_notice(uri, "creating demo runs"):
        st.info("This store has no runs.")
        st.stop()
    st.info(
        "This store has no runs yet. Train a model on the Train page, or create a few small demo runs to look around."
    )
    if st.button("Create demo runs", key="create_demo", type="primary"):
        try:
            with st.spinner("Training a few small models on synthetic data…"):
                demo.create_demo_runs()
        except Exception as exc:  # a failed training must not show a stack trace on the landing page
            st.error(escape_markdown(f"Could not create demo runs: {type(exc).__name__}: {exc}"))
        else:
            clear_run_caches()
            st.rerun()
    st.stop()

st.subheader("Experiments")
st.dataframe(
    with_runs[["name", "run_count", "last_update"]],
    hide_index=True,
    placeholder=tables.MISSING_TEXT,
    column_config={
        "name": st.column_config.TextColumn("Experiment"),
        "run_count": st.column_config.NumberColumn("Runs"),
        "last_update": st.column_config.DatetimeColumn("Last activity", format="YYYY-MM-DD HH:mm"),
    },
    key="experiments_table",
)

st.subheader("Latest runs")
latest_columns = [c for c in ("run_name", "experiment", "status", "start_time", "duration_s") if c in runs.columns]
latest = runs.head(10)
st.dataframe(
    latest[latest_columns].assign(
        run_name=tables.run_names(latest), discover=[catalog.link("run", r) for r in latest["run_id"]]
    ),
    hide_index=True,
    column_config={
        "run_name": st.column_config.TextColumn("Run"),
        "start_time": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm"),
        "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
        "discover": st.column_config.LinkColumn("Discover", display_text="open", help="The run's catalog page"),
    },
    key="latest_runs",
    placeholder=tables.MISSING_TEXT,
)

st.subheader("Best run per experiment")
metrics = cmp.metric_names(runs)
if not metrics:
    st.info("No run has logged a metric yet.")
else:
    default = contract.preferred_metric(metrics)
    metric = st.selectbox("Metric", metrics, index=metrics.index(default) if default else 0, key="best_metric")
    direction = "lowest" if contract.lower_is_better(metric) else "highest"
    st.caption(
        f"The run with the {direction} value of this metric in each experiment, per dataset and split (runs on "
        "other data are never ranked together)."
    )
    st.dataframe(
        tables.best_runs_per_experiment(runs, metric), hide_index=True, key="best_runs", placeholder=tables.MISSING_TEXT
    )
st.page_link("pages/runs.py", label="Browse and filter all runs", icon=":material/table_rows:")
