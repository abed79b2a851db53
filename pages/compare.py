"""Compare: the runs selected on the Runs page (or in a shared ?runs=a,b link), else the top runs by a metric —
learning curves, params against metrics, final metrics, what differs, and whether the comparison is fair."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._common import (
    ensure_router,
    experiments_table,
    runs_table,
    stop_on_store_error,
)
from recdash import charts, tracking

MAX_COMPARE = 100  # beyond this, learning curves and bars stop being readable and the URL gets long
X_AXES = {"step": "Step", "wall_time": "Wall time", "relative_time": "Relative time"}


@st.cache_data(ttl=15, show_spinner="Loading metric histories…")
def histories(uri: str, run_ids: tuple[str, ...], key: str) -> pd.DataFrame:
    return tracking.metric_histories(list(run_ids), [key], max_points=500, uri=uri)


ensure_router()
st.title("Compare runs")
uri = tracking.tracking_uri()

from_url = charts.parse_run_ids(st.query_params.get_all("runs"))
if from_url:
    st.session_state["selected_runs"] = from_url
requested: list[str] = list(st.session_state.get("selected_runs", []))

try:
    tracking.check_store(uri)
    experiments = experiments_table(uri)
    active = experiments[(experiments["lifecycle_stage"] == "active") & (experiments["run_count"] > 0)]
    all_runs = runs_table(uri, tuple(active["experiment_id"].astype(str)))
except tracking.TrackingError as exc:
    stop_on_store_error(exc)

if all_runs.empty:
    st.info("This store has no runs yet. Create demo runs on the Home page or train a model.")
    st.stop()

all_metrics = charts.metric_names(all_runs)
if requested:
    found = all_runs.set_index("run_id", drop=False)
    known = [r for r in requested if r in found.index]
    if len(known) < len(requested):
        st.warning(
            f"{len(requested) - len(known)} selected run(s) were not found in this store "
            "(deleted, or a link from another store)."
        )
    runs = found.loc[known].reset_index(drop=True)
    st.query_params["runs"] = ",".join(requested)  # keep the comparison shareable as a link
    st.caption(f"Comparing {len(runs)} run(s) selected on the Runs page.")
    st.page_link("pages/runs.py", label="Change the selection on the Runs page", icon=":material/table_rows:")
else:
    st.info("No runs selected on the Runs page: showing the best runs by a metric.")
    if not all_metrics:
        st.warning("No run has logged a metric, so there is nothing to rank.")
        st.stop()
    left, right = st.columns([3, 1])
    default = charts.preferred_metric(all_metrics)
    top_metric = left.selectbox(
        "Rank by", all_metrics, index=all_metrics.index(default) if default else 0, key="top_metric"
    )
    top_n = int(right.number_input("Top N", min_value=1, max_value=MAX_COMPARE, value=5, key="top_n"))
    runs = charts.top_runs(all_runs, top_metric, top_n).reset_index(drop=True)

if runs.empty:
    st.info("None of these runs can be shown.")
    st.stop()
if len(runs) > MAX_COMPARE:
    st.warning(f"{len(runs)} runs selected; comparing the first {MAX_COMPARE}.")
    runs = runs.head(MAX_COMPARE)

labels = charts.label_runs(runs)
run_ids = runs["run_id"].astype(str).tolist()
metrics = charts.metric_names(runs)
params = charts.param_names(runs)
diff = charts.param_diff_table(runs, labels)

st.dataframe(
    pd.DataFrame(
        {
            "run": [labels[r] for r in run_ids],
            "experiment": runs["experiment"],
            "status": runs["status"],
            "started": runs["start_time"],
            "run_id": run_ids,
        }
    ),
    hide_index=True,
    key="compared_runs",
)
warning = charts.lineage_warning(runs)
if warning:
    st.warning(charts.escape_markdown(warning))
if not metrics:
    st.info("These runs have no metrics to compare.")

if metrics:
    default_metric = charts.preferred_metric(metrics) or metrics[0]

    st.subheader("Metric history")
    c1, c2, c3 = st.columns([2, 2, 1])
    key = c1.selectbox("Metric", metrics, index=metrics.index(default_metric), key="history_metric")
    x_axis = c2.radio("X axis", list(X_AXES), format_func=X_AXES.get, horizontal=True, key="history_x")
    smoothing = c3.slider(
        "Smoothing", 0.0, 0.99, 0.0, 0.01, key="smoothing", help="Exponential moving average, as in TensorBoard."
    )
    try:
        history = histories(uri, tuple(run_ids), key)
    except tracking.TrackingError as exc:
        st.error(charts.escape_markdown(exc))
    else:
        unreadable = [labels.get(r, r) for r in history.attrs.get("unreadable", [])]
        if unreadable:
            st.warning(
                charts.escape_markdown(
                    f"The store could not give the history of {len(unreadable)} run(s), so they are not drawn: "
                    + ", ".join(unreadable)
                )
            )
        st.plotly_chart(
            charts.metric_history_figure(history, labels, key, x=x_axis, smoothing=smoothing), key="history_chart"
        )

    st.subheader("Params and metrics")
    color_metric = st.selectbox("Colour by", metrics, index=metrics.index(default_metric), key="color_metric")
    varying = list(diff.index) if not diff.empty else []
    axes = st.multiselect("Params", params, default=varying[:8], key="pc_params")
    if axes:
        st.plotly_chart(charts.parallel_coordinates_figure(runs, axes, color_metric), key="parallel_chart")
    else:
        st.caption("Choose params to draw as axes (by default, the ones that differ between these runs).")

    importance = charts.param_importance(runs, color_metric)
    c1, c2 = st.columns(2)
    scored = importance[importance["importance"].notna() & (importance["method"] != "constant")]
    default_param = scored["param"].iloc[0] if not scored.empty else (varying or params or [None])[0]
    if params:
        param = c1.selectbox(
            "Param", params, index=params.index(default_param) if default_param in params else 0, key="scatter_param"
        )
        scatter_metric = c2.selectbox("Metric", metrics, index=metrics.index(color_metric), key="scatter_metric")
        st.plotly_chart(charts.param_scatter_figure(runs, param, scatter_metric, labels), key="scatter_chart")

    st.subheader("Final metrics")
    bar_default = [m for m in metrics if m.startswith("test_") and m.endswith(("ndcg_at_10", "recall_at_10"))]
    bar_metrics = st.multiselect("Metrics", metrics, default=bar_default or [default_metric], key="bar_metrics")
    if bar_metrics:
        st.plotly_chart(charts.metric_bars_figure(runs, bar_metrics, labels), key="bars_chart")

    st.subheader("Param importance")
    st.caption(charts.IMPORTANCE_CAPTION)
    st.plotly_chart(charts.param_importance_figure(importance, color_metric), key="importance_chart")
    varying_importance = importance[(importance["method"] != "constant") & importance["importance"].notna()]
    if not varying_importance.empty:
        st.dataframe(varying_importance, hide_index=True, key="importance_table")

st.subheader("Params that differ")
if diff.empty:
    st.caption(
        "All logged params are the same for these runs."
        if len(runs) > 1
        else "Select two or more runs to see what differs."
    )
else:
    st.dataframe(diff, key="param_diff")

table = charts.comparison_table(runs, params, metrics, labels)
st.download_button(
    "Download comparison (CSV)",
    table.to_csv(index=False).encode(),
    file_name="recdash-comparison.csv",
    mime="text/csv",
    key="download_csv",
    on_click="ignore",
)

with_model = runs[runs["has_model"].astype(bool)]
if not with_model.empty:
    st.subheader("Use a model")
    choice = st.selectbox(
        "Run", with_model["run_id"].astype(str).tolist(), format_func=lambda r: labels.get(r, r), key="model_run"
    )
    left, right = st.columns(2)
    left.page_link(
        "pages/recommend.py", label="Try its recommendations", icon=":material/recommend:", query_params={"run": choice}
    )
    right.page_link(
        "pages/models.py",
        label="Register this run's model",
        icon=":material/inventory_2:",
        query_params={"run": choice},
    )
