"""Runs: every run of the chosen experiments in one sortable table, narrowed with an MLflow filter; the selected
runs go to Compare and into the URL, so a comparison can be shared as a link."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._common import (
    clear_run_caches,
    experiments_table,
    runs_loader,
    runs_table,
    stop_on_store_error,
    store_uri,
)
from recdash import catalog, settings, tracking
from recdash import comparison as cmp
from recdash.views import charts, runs_view, tables
from recdash.views.style import RunStyle
from recdash.views.text import escape_markdown, parse_run_ids

MAX_ROWS = 2000  # st.dataframe is virtualised, but sending 10,000 rows of params on every rerun is not free
TABLE_ROWS = 20  # rows visible at once: what fits a laptop screen under the filters
STATUSES = ["FINISHED", "RUNNING", "SCHEDULED", "FAILED", "KILLED"]
FILTER_EXAMPLE = "metrics.val_recall_at_10 > 0.2 and params.loss = 'warp' and params.factors >= 32"


def selection_from_url() -> None:
    """A shared link (?runs=a,b) sets the selection; afterwards the selection writes the URL."""
    from_url = parse_run_ids(st.query_params.get_all("runs"))
    if from_url and from_url != st.session_state.get("selected_runs"):
        st.session_state["selected_runs"] = from_url


def store_selection(run_ids: list[str]) -> None:
    st.session_state["selected_runs"] = run_ids
    if run_ids:
        st.query_params["runs"] = ",".join(run_ids)
    elif "runs" in st.query_params:
        del st.query_params["runs"]


st.title("Runs")
uri = store_uri()
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
    f"combine with `and`. {tracking.NUMERIC_FILTER_HELP}",
)
left, right = st.columns([3, 1])
include_deleted = left.checkbox("Include deleted runs", key="include_deleted")
if right.button(
    "Refresh",
    key="refresh",
    help="Runs are re-read every 15 s; this re-reads them now. Over an MLflow server it also starts a check of "
    "finished runs for edited tags, notes and names (a full read, in the background).",
):
    clear_run_caches()
    runs_loader(uri).check_finished_runs()

if not chosen:
    st.info("Choose at least one experiment.")
    st.stop()
try:
    runs = runs_table(uri, tuple(chosen), filter_string.strip(), tuple(statuses), include_deleted)
except tracking.FilterError as exc:
    st.error(escape_markdown(exc))
    st.stop()
except tracking.TrackingError as exc:
    stop_on_store_error(exc)
if runs_loader(uri).notice:  # a configured fast path (RECDASH_BACKEND_DB_URL) could not be used
    st.caption(escape_markdown(runs_loader(uri).notice))
if runs_loader(uri).checking:
    st.caption(
        "Checking finished runs on the server for edited tags, notes and names (a full read in the background); "
        "edits show at the next refresh after it ends."
    )

if runs.empty:
    if filter_string.strip() or statuses:
        st.info("No runs match. Clear the filter or choose other experiments or statuses.")
    else:
        st.info("These experiments have no runs yet. Train a model on the Train page, or create demo runs on Home.")
    st.stop()
runs = runs_view.with_data_groups(runs_view.add_reference_ratio(runs))

optional = [c for c in runs.columns if c != "run_name"]
st.session_state.setdefault("columns", runs_view.default_columns(runs))
sweeps = runs_view.sweep_labels(runs)
for parent in st.session_state.pop("expand_parents", []):  # a parent just selected: list the runs it stands for
    if parent in sweeps and parent not in st.session_state.get("expanded_sweeps", []):
        st.session_state["expanded_sweeps"] = [*st.session_state.get("expanded_sweeps", []), parent]
left, right = st.columns([3, 2]) if sweeps else (st.container(), None)
with left.expander(f"Columns ({len(st.session_state['columns'])} shown)"):
    columns = st.multiselect("Columns", optional, key="columns", label_visibility="collapsed")
columns = [c for c in columns if c in runs.columns]  # a narrower filter can drop keys no remaining run logged
expanded: list[str] = []
if right is not None:
    expanded = right.multiselect(
        "Expand sweeps", list(sweeps), format_func=sweeps.get, key="expanded_sweeps",
        placeholder=f"Expand: {runs_view.parents_text(runs, sweeps)}",
        label_visibility="collapsed",
        help="A sweep's row shows what was searched and its best trial; expand it to list every trial (the "
        "references' row: each reference model's run).",
    )  # fmt: skip
tree = runs_view.sweep_tree(runs, set(expanded))

view = tree
if len(tree) > MAX_ROWS:
    pages = (len(tree) + MAX_ROWS - 1) // MAX_ROWS
    st.warning(f"{len(tree):,} rows; showing {MAX_ROWS:,} at a time. Narrow them with a filter, or page through.")
    page = int(st.number_input("Page", min_value=1, max_value=pages, value=1, key="page"))
    view = tree.iloc[(page - 1) * MAX_ROWS : page * MAX_ROWS]
view = view.reset_index(drop=True)
view_ids = view["run_id"].astype(str).tolist()

extra = [runs_view.TRIAL_STATE] + [c for c in (runs_view.SEARCH_SPACE, runs_view.BEST_TRIAL) if c in view.columns]
visible = [c if c != "status" else runs_view.TRIAL_STATE for c in columns]
visible += [c for c in extra if c not in visible and c != runs_view.TRIAL_STATE]
table = runs_view.display_frame(view, visible).assign(run_name=view[runs_view.RUN].to_numpy())
numbers = {c: st.column_config.NumberColumn(c.split(".", 1)[1], format="%.4g") for c in table.columns
           if str(c).startswith(("metrics.", "params.")) and pd.api.types.is_numeric_dtype(table[c])}  # fmt: skip
texts = {c: st.column_config.TextColumn(c.split(".", 1)[1]) for c in table.columns
         if str(c).startswith("params.") and c not in numbers}  # fmt: skip
column_config: dict[str, object] = {
    **numbers,
    **texts,
    "run_name": st.column_config.TextColumn("Run", pinned=True, width="medium"),
    runs_view.TRIAL_STATE: st.column_config.TextColumn("Status", width="small"),
    "start_time": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm"),
    "end_time": st.column_config.DatetimeColumn("Ended", format="YYYY-MM-DD HH:mm"),
    "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
    runs_view.DATA: st.column_config.TextColumn(
        "Data",
        help="The dataset and split each run was evaluated on: compare numbers only between runs on the same "
        "data (the rows are grouped by it).",
    ),
    runs_view.REFERENCE_RATIO: st.column_config.NumberColumn(
        "× best reference",
        format="%.3f",
        help=f"{runs.attrs.get('reference_metric', 'The key test metric')} over the best reference run's (popularity, "
        "EASE, ItemKNN) on the same dataset and split, among the listed runs. Above 1: better than all of them.",
    ),
}
table["discover"] = [catalog.link("run", r) for r in view_ids]
column_config["discover"] = st.column_config.LinkColumn("Discover", display_text="open", help="The run's catalog page")
ui_url = settings.MLFLOW_UI_URL.get().strip()
if ui_url:
    table["mlflow_ui"] = tables.run_ui_links(view, ui_url)
    column_config["mlflow_ui"] = st.column_config.LinkColumn("MLflow UI", display_text="open")

# Row positions only mean something for the table they were made on: when the rows change (filter, page,
# new runs), re-seed the table's selection from the selected run ids instead of trusting stale positions.
selected = list(st.session_state.get("selected_runs", []))
if st.session_state.get("runs_table_ids") != view_ids:
    position = {run_id: i for i, run_id in enumerate(view_ids)}
    rows = [position[r] for r in selected if r in position]
    st.session_state["runs_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    st.session_state["runs_table_ids"] = view_ids

mixed = runs.attrs.get("data_groups", 1)
st.caption(
    f"{len(runs):,} runs. Select rows to compare them; click a column header to sort. Numbers are rounded to 4 "
    "significant digits here; the Compare page's CSV has them in full. Validation values are at the epoch each run "
    "kept (best_val_*)."
    + (f" **{mixed} different datasets or splits**: the rows are grouped by their data; a sort mixes them, so "
       "compare numbers only between rows with the same Data." if mixed > 1 else "")
)  # fmt: skip
event = st.dataframe(
    table,
    hide_index=True,
    column_config=column_config,
    on_select="rerun",
    selection_mode="multi-row",
    key="runs_table",
    placeholder=tables.MISSING_TEXT,
    height="content" if len(table) <= TABLE_ROWS else 35 * TABLE_ROWS + 38,  # the page's height, not 10 rows
)
in_view = {view_ids[i] for i in event.selection.rows if 0 <= i < len(view_ids)}
shown = set(view_ids)
hidden = [r for r in selected if r not in shown]  # selected earlier, filtered or paged out now
selected = [r for r in selected if r in in_view or r in hidden] + [
    r for r in view_ids if r in in_view and r not in selected
]
expanded_selection, notes = cmp.expand_parents(runs, selected)
if notes:  # a sweep or the references row: select the finished runs it stands for, listed under it, and say so
    st.session_state["expand_parents"] = [r for r in selected if r not in expanded_selection]
    st.session_state["selection_notes"] = (expanded_selection, notes)
    st.session_state.pop("runs_table_ids", None)  # re-seed the table's ticks from the new selection
    store_selection(expanded_selection)
    st.rerun()
store_selection(selected)
said_for, notes = st.session_state.get("selection_notes", ([], []))
if set(said_for) <= set(selected):  # until the selection it explains changes
    for note in notes:
        st.caption(escape_markdown(note))

if selected:  # the colours Compare (and Recommend) will draw these runs in
    picked = runs[runs["run_id"].astype(str).isin(selected)]
    style = RunStyle.of(picked, order=selected)
    st.plotly_chart(charts.selection_figure(style, [r for r in selected if r in style.labels]), key="selection_strip")

left, middle, right = st.columns([2, 1, 1])
if hidden:
    left.caption(f"{len(selected)} selected, {len(hidden)} of them not in this table.")
else:
    left.caption(f"{len(selected)} selected.")
if middle.button("Clear selection", key="clear_selection", disabled=not selected):
    store_selection([])
    st.session_state.pop("selection_notes", None)
    st.session_state.pop("runs_table_ids", None)
    st.rerun()
if right.button("Compare selected", key="compare_selected", type="primary", disabled=not selected):
    st.switch_page("pages/compare.py", query_params={"runs": ",".join(selected)})
