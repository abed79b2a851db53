"""Runs: every run of the chosen experiments in one sortable table, narrowed with an MLflow filter; the selected
runs go to Compare and into the URL, so a comparison can be shared as a link."""

from __future__ import annotations

import os

import streamlit as st

from pages._common import (
    clear_run_caches,
    ensure_router,
    experiments_table,
    runs_table,
    stop_on_store_error,
)
from recdash import charts, tracking

MAX_ROWS = 2000  # st.dataframe is virtualised, but sending 10,000 rows of params on every rerun is not free
STATUSES = ["FINISHED", "RUNNING", "SCHEDULED", "FAILED", "KILLED"]
FILTER_EXAMPLE = "metrics.val_recall_at_10 > 0.2 and params.loss = 'warp'"


def selection_from_url() -> None:
    """A shared link (?runs=a,b) sets the selection; afterwards the selection writes the URL."""
    from_url = charts.parse_run_ids(st.query_params.get_all("runs"))
    if from_url and from_url != st.session_state.get("selected_runs"):
        st.session_state["selected_runs"] = from_url


def store_selection(run_ids: list[str]) -> None:
    st.session_state["selected_runs"] = run_ids
    if run_ids:
        st.query_params["runs"] = ",".join(run_ids)
    elif "runs" in st.query_params:
        del st.query_params["runs"]


ensure_router()
st.title("Runs")
uri = tracking.tracking_uri()
selection_from_url()

try:
    tracking.check_store(uri)
    experiments = experiments_table(uri)
except tracking.TrackingError as exc:
    stop_on_store_error(exc)

active = experiments[experiments["lifecycle_stage"] == "active"]
names = dict(zip(active["experiment_id"].astype(str), active["name"].astype(str), strict=True))
if not names:
    st.info("This store has no experiments yet. Create demo runs on the Home page or train a model.")
    st.stop()
with_runs = [e for e, n in zip(active["experiment_id"].astype(str), active["run_count"], strict=True) if n > 0]

left, right = st.columns([3, 2])
chosen = left.multiselect(
    "Experiments", list(names), default=with_runs or list(names)[:1], format_func=names.get, key="experiments"
)
statuses = right.multiselect("Status", STATUSES, key="statuses", placeholder="All statuses")
filter_string = st.text_input(
    "Filter (MLflow search syntax)",
    key="filter",
    placeholder=FILTER_EXAMPLE,
    help="Same syntax as the MLflow UI: metrics.<name>, params.<name>, tags.<name>, attributes.status; "
    "combine with `and`. Param values are strings, so quote them.",
)
left, right = st.columns([3, 1])
include_deleted = left.checkbox("Include deleted runs", key="include_deleted")
if right.button("Refresh", key="refresh", help="Runs are re-read every 15 s; this re-reads them now."):
    clear_run_caches()

if not chosen:
    st.info("Choose at least one experiment.")
    st.stop()
try:
    runs = runs_table(uri, tuple(chosen), filter_string.strip(), tuple(statuses), include_deleted)
except tracking.FilterError as exc:
    st.error(charts.escape_markdown(exc))
    st.stop()
except tracking.TrackingError as exc:
    stop_on_store_error(exc)

if runs.empty:
    st.info("No runs match. Clear the filter or choose other experiments or statuses.")
    st.stop()

optional = [c for c in runs.columns if c != "run_name"]
defaults = [c for c in charts.default_run_columns(runs) if c != "run_name"]
columns = st.multiselect("Columns", optional, default=defaults, key="columns")
columns = [c for c in columns if c in runs.columns]  # a narrower filter can drop keys no remaining run logged

view = runs
if len(runs) > MAX_ROWS:
    pages = (len(runs) + MAX_ROWS - 1) // MAX_ROWS
    st.warning(f"{len(runs):,} runs match; showing {MAX_ROWS:,} at a time. Narrow them with a filter, or page through.")
    page = int(st.number_input("Page", min_value=1, max_value=pages, value=1, key="page"))
    view = runs.iloc[(page - 1) * MAX_ROWS : page * MAX_ROWS]
view = view.reset_index(drop=True)
view_ids = view["run_id"].astype(str).tolist()

table = view[["run_name", *columns]].assign(run_name=charts.run_names(view))
column_config: dict[str, object] = {
    "run_name": st.column_config.TextColumn("Run", pinned=True),
    "start_time": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm"),
    "end_time": st.column_config.DatetimeColumn("Ended", format="YYYY-MM-DD HH:mm"),
    "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
}
ui_url = os.environ.get("RECDASH_MLFLOW_UI_URL", "").strip()
if ui_url:
    table["mlflow_ui"] = charts.run_ui_links(view, ui_url)
    column_config["mlflow_ui"] = st.column_config.LinkColumn("MLflow UI", display_text="open")

# Row positions only mean something for the table they were made on: when the rows change (filter, page,
# new runs), re-seed the table's selection from the selected run ids instead of trusting stale positions.
selected = list(st.session_state.get("selected_runs", []))
if st.session_state.get("runs_table_ids") != view_ids:
    position = {run_id: i for i, run_id in enumerate(view_ids)}
    rows = [position[r] for r in selected if r in position]
    st.session_state["runs_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    st.session_state["runs_table_ids"] = view_ids

st.caption(f"{len(runs):,} runs. Select rows to compare them; click a column header to sort.")
event = st.dataframe(
    table,
    hide_index=True,
    column_config=column_config,
    on_select="rerun",
    selection_mode="multi-row",
    key="runs_table",
)
in_view = {view_ids[i] for i in event.selection.rows if 0 <= i < len(view_ids)}
shown = set(view_ids)
hidden = [r for r in selected if r not in shown]  # selected earlier, filtered or paged out now
selected = [r for r in selected if r in in_view or r in hidden] + [
    r for r in view_ids if r in in_view and r not in selected
]
store_selection(selected)

left, middle, right = st.columns([2, 1, 1])
if hidden:
    left.caption(f"{len(selected)} selected, {len(hidden)} of them not in this table.")
else:
    left.caption(f"{len(selected)} selected.")
if middle.button("Clear selection", key="clear_selection", disabled=not selected):
    store_selection([])
    st.session_state.pop("runs_table_ids", None)
    st.rerun()
if right.button("Compare selected", key="compare_selected", type="primary", disabled=not selected):
    st.switch_page("pages/compare.py", query_params={"runs": ",".join(selected)})
