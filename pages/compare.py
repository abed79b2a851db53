"""Compare: the runs selected on the Runs page (or in a shared ?runs=a,b link), else the best runs of one dataset —
learning curves, final metrics next to their popularity baseline, hyperparameters against a metric, importance,
a sweep's own Optuna views, and whether a difference is real (mean ± std over repeated seeds).

Every chart uses one RunStyle (a run keeps its colour and label), draws runs on different data apart, and puts
"best" only among runs on the same data and split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages._common import (
    experiments_table,
    per_user_results,
    read_only_notice,
    runs_table,
    stop_on_store_error,
    store_uri,
)
from recdash import catalog, contract, tracking
from recdash import comparison as cmp
from recdash.errors import UserError
from recdash.evaluation.per_user import NOT_LOGGED
from recdash.views import charts, param_charts, tables
from recdash.views import significance as sv
from recdash.views.style import RunStyle
from recdash.views.text import escape_markdown, parse_run_ids

MAX_COMPARE = 100  # beyond this, learning curves and bars stop being readable and the URL gets long
X_AXES = {"step": "Step", "wall_time": "Wall time", "relative_time": "Relative time"}
PARAM_FIGURES = ("parallel_coordinates_figure", "param_scatter_figure", "importance_figure")


@st.cache_data(ttl=15, show_spinner="Loading metric histories…")
def histories(uri: str, run_ids: tuple[str, ...], key: str) -> pd.DataFrame:
    return tracking.metric_histories(list(run_ids), [key], max_points=500, uri=uri)


@st.cache_data(ttl=60, show_spinner="Estimating importance…")
def importance(runs: pd.DataFrame, metric: str, params: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    return cmp.importance(runs, metric, params)


@st.cache_resource(ttl=300, max_entries=64, show_spinner=False)
def figure(builder: str, *args: Any, **kwargs: Any) -> go.Figure:
    """A ``recdash.views.charts`` (or ``param_charts``) figure, built once per inputs: a rerun (a widget change
    elsewhere, a second visit) redraws it without rebuilding and re-validating hundreds of plotly traces.
    cache_resource hands back the same object (a pickled figure would be validated again on load); st.plotly_chart
    only reads it."""
    return getattr(param_charts if builder in PARAM_FIGURES else charts, builder)(*args, **kwargs)


@st.cache_data(ttl=60, show_spinner="Computing intervals over users…", max_entries=32)
def whiskers(uri: str, pool: tuple[str, ...], metrics: tuple[str, ...], run_ids: tuple[str, ...]) -> dict:
    return sv.interval_map(per_user_results(uri, pool), metrics, run_ids)


@st.cache_data(ttl=60, show_spinner="Computing intervals over users…", max_entries=32)
def quartile_whiskers(uri: str, pool: tuple[str, ...], base: str, run_ids: tuple[str, ...]) -> dict:
    return sv.quartile_interval_map(per_user_results(uri, pool), base, run_ids)


@st.cache_data(ttl=60, show_spinner="Pairing the best runs over users…", max_entries=32)
def best_notes(
    uri: str,
    pool: tuple[str, ...],
    metrics: tuple[str, ...],
    run_ids: tuple[str, ...],
    data: tuple[str, ...],
    names: tuple[str, ...],
    _runs: pd.DataFrame,
    _groups: pd.Series,
    _label: Any,
) -> tuple[dict, list[str]]:
    """:func:`sv.best_note_map`, cached by what it depends on (the runs, their data groups and names): its paired
    bootstraps take seconds at 138k test users and must not run again on every click."""
    return sv.best_note_map(_runs, _groups, per_user_results(uri, pool), metrics, _label)


@st.cache_data(ttl=60, show_spinner="Testing the differences over users…", max_entries=32)
def differences(
    uri: str,
    pool: tuple[str, ...],
    metric: str,
    references: tuple[tuple[str, str], ...],
    run_ids: tuple[str, ...],
    data: tuple[str, ...],
    names: tuple[str, ...],
    _runs: pd.DataFrame,
    _groups: pd.Series,
    _label: Any,
) -> pd.DataFrame:
    """:func:`sv.difference_table`, cached like :func:`best_notes`."""
    return sv.difference_table(_runs, _groups, per_user_results(uri, pool), metric, dict(references), _label)


def not_logged_note(frames: dict[str, pd.DataFrame | None], ids: list[str], label: Any) -> None:
    """Name the runs shown without intervals: older runs, other tools' runs, legacy stores."""
    missing = [label(r) for r in ids if frames.get(r) is None]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        st.caption(escape_markdown(f"No intervals for {', '.join(missing[:8])}{more}: {NOT_LOGGED}."))


def pick_metric(
    label: str, metrics: list[str], key: str, default: str | None = None, among: list[str] | None = None
) -> str:
    """A metric picker; by default the preferred metric ``among`` those (the ones most of the runs logged)."""
    default = default if default in metrics else contract.preferred_metric(among or metrics) or metrics[0]
    return st.selectbox(label, metrics, index=metrics.index(default), key=key)


st.title("Compare runs")
uri = store_uri()

from_url = parse_run_ids(st.query_params.get_all("runs"))
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

groups_all = cmp.data_groups(all_runs)  # every run's data group, worked out once for the page
if requested:
    found = all_runs.set_index("run_id", drop=False)
    known, expanded_notes = cmp.expand_parents(all_runs, [r for r in requested if r in found.index], "compared")
    for note in expanded_notes:  # a sweep or the references: their finished runs, not the parent alone
        st.info(escape_markdown(note))
    if len(set(requested) - set(found.index)):
        st.warning(
            f"{len(set(requested) - set(found.index))} selected run(s) were not found in this store "
            "(deleted, or a link from another store)."
        )
    runs = found.loc[known].reset_index(drop=True)
    st.query_params["runs"] = ",".join(requested)  # keep the comparison shareable as a link
    st.caption(f"Comparing {len(runs)} run(s) selected on the Runs page.")
    st.page_link("pages/runs.py", label="Change the selection on the Runs page", icon=":material/table_rows:")
else:
    st.info("No runs selected on the Runs page: showing the best runs of one dataset and split by a metric.")
    counts = groups_all.value_counts()
    key_metric = contract.preferred_metric(cmp.metric_names(all_runs))
    if key_metric:  # first the data most runs were scored on with the key metric
        scored = groups_all[np.isfinite(cmp.as_float(all_runs[f"metrics.{key_metric}"]))].value_counts()
        counts = counts.loc[sorted(counts.index, key=lambda g: (-scored.get(g, 0), -counts[g]))]
    left, middle, right = st.columns([3, 2, 1])
    data = left.selectbox(
        "Data", list(counts.index), format_func=lambda g: f"{g} ({counts[g]} runs)", key="top_data",
        help="Runs are only ranked against runs evaluated on the same dataset and split.",
    )  # fmt: skip
    candidates = all_runs[groups_all == data]
    group_metrics = cmp.metric_names(candidates)
    if not group_metrics:
        st.warning("No run has logged a metric on this data, so there is nothing to rank.")
        st.stop()
    with middle:
        top_metric = pick_metric(
            "Rank by", group_metrics, "top_metric", among=cmp.most_logged(candidates, group_metrics)
        )
    top_n = int(right.number_input("Top N", min_value=1, max_value=MAX_COMPARE, value=5, key="top_n"))
    runs = tables.top_runs(candidates, top_metric, top_n).reset_index(drop=True)

if runs.empty:
    st.info("None of these runs can be shown.")
    st.stop()
if len(runs) > MAX_COMPARE:
    st.warning(f"{len(runs)} runs selected; comparing the first {MAX_COMPARE}.")
    runs = runs.head(MAX_COMPARE)

# keys that only runs outside the comparison logged are not columns of it
logged = [c for c in runs.columns if str(c).startswith(("params.", "metrics.", "tags."))]
runs = runs.drop(columns=[c for c in logged if runs[c].isna().all()])
run_ids = runs["run_id"].astype(str).tolist()
style = RunStyle.of(runs, order=requested or run_ids, context=all_runs, context_groups=groups_all)
groups = pd.Series([style.groups[r] for r in run_ids], index=runs.index)
metrics = cmp.metric_names(runs)
covered = cmp.most_logged(runs, metrics)  # a default every run (or the most runs) can be drawn on
hyper = cmp.hyperparameters(runs)
refs = cmp.references_for(groups, all_runs, groups_all)  # popularity, EASE, ItemKNN fitted on the same data and split
ref_names = {str(r): f"reference: {m}" for r, m in zip(refs["run_id"], refs["reference"], strict=True)}
pool = tuple(dict.fromkeys([*run_ids, *ref_names]))  # the runs whose per-user results intervals are computed from


def label(run_id: str) -> str:
    return ref_names.get(run_id) or style.label(run_id)


st.plotly_chart(figure("selection_figure", style, run_ids), key="colour_key")
with st.expander(f"The {len(runs)} runs: data, experiment, status", expanded=False):
    st.dataframe(
        pd.DataFrame(
            {
                "run": [style.label(r) for r in run_ids],
                "data (dataset · split)": groups.to_numpy(),
                "experiment": runs["experiment"],
                "status": cmp.trial_state(runs),
                "started": runs["start_time"],
                "run_id": run_ids,
                "run_page": [catalog.link("run", r) for r in run_ids],
                "data_page": [catalog.link("dataset", d) if d else None for d in cmp.dataset_identity(runs)["digest"]],
            }
        ),
        hide_index=True,
        key="compared_runs",
        placeholder=tables.MISSING_TEXT,
        column_config={
            "run_page": st.column_config.LinkColumn("run in Discover", display_text="open"),
            "data_page": st.column_config.LinkColumn("data in Discover", display_text="open"),
        },
    )
warning = cmp.mixed_data_warning(groups)
if warning:
    st.warning(escape_markdown(warning))

# ---- repeats: the same configuration run with several seeds -----------------------------------------------------
group_by = st.multiselect(
    "Repeats: runs with the same values of these params are one configuration",
    hyper, default=[p for p in cmp.default_group_params(runs)], key="group_by",
    help="By default every hyperparameter except the seed, so runs that differ only in their seed are repeats of one "
    "configuration: their mean ± std (and n) says whether a difference between configurations is real.",
)  # fmt: skip
configs = cmp.config_groups(runs, group_by)
duplicate = cmp.duplicate_runs(runs, groups)  # the same seed, configuration and data again: one draw, counted once
counted = ~duplicate
repeats = cmp.has_repeats((groups + " | " + configs)[counted])
aggregate = st.toggle(
    "Show each configuration as mean ± std over its repeats", value=repeats, key="aggregate", disabled=not repeats,
    help=None if repeats else "No configuration was run more than once on the same data: nothing to average.",
)  # fmt: skip
aggregate = aggregate and repeats
config_of = {r: c for r, c, keep in zip(run_ids, configs, counted, strict=True) if keep}  # the runs averaged
if aggregate and duplicate.any():
    keys = cmp.run_keys(runs, groups).tolist()
    first = {k: r for r, k, dup in zip(run_ids, keys, duplicate, strict=True) if not dup}  # the run that counts
    pairs = [f"{style.label(r)} (same as {style.label(first.get(k, r))})"
             for r, k, dup in zip(run_ids, keys, duplicate, strict=True) if dup]  # fmt: skip
    st.caption(
        escape_markdown(
            f"Counted once: {len(pairs)} run(s) repeat another run's configuration, seed and data exactly (the same "
            f"draw twice would shrink the spread): {'; '.join(pairs)}."
        )
    )


def differences_section(choices: list[str], preferred: list[str]) -> None:
    """Each run's difference to one run of its data group, with a paired interval and p-value over the users."""
    st.subheader("Is the difference real?", help=sv.METHOD)
    c1, c2 = st.columns([1, 2])
    with c1:
        metric = pick_metric("Metric", choices, "sig_metric", default=(preferred or [None])[0])
    defaults = sv.default_references(runs, groups, refs, metric)
    options = ["default", *pool]
    chosen = c2.selectbox(
        "Measure every run against", options, key="sig_reference",
        format_func=lambda r: "the best reference on each data (default)" if r == "default" else label(r),
        help="Default: on each dataset and split, the best reference model fitted on it (popularity, EASE, "
        "ItemKNN) by this metric, else the best run there. Pick any run: the runs on its data are measured against "
        "it; runs on other data keep their default (runs are only ever paired on the same test users).",
    )  # fmt: skip
    reference_of = dict(defaults)
    if chosen != "default":
        group_of = dict(zip(run_ids, groups, strict=True)) | dict(zip(refs["run_id"], refs["data"], strict=True))
        reference_of[group_of[chosen]] = chosen
    frames = per_user_results(uri, pool)
    table = differences(
        uri, pool, metric, tuple(reference_of.items()), tuple(run_ids), tuple(groups.astype(str)),
        tuple(label(r) for r in pool), runs, groups, label,
    )  # fmt: skip
    if table.empty or table["p"].isna().all():
        st.info(escape_markdown(f"No run here has per-user results for {metric} to pair: {NOT_LOGGED}."))
        return
    not_logged_note(frames, run_ids, label)
    st.caption(
        "difference = run − the run it is measured against (the first row of its data), with its 95% interval over "
        "the users both evaluated; p from the paired t-test, p (Holm) corrected over the runs compared with the same "
        "run. The verdict follows p (Holm): beyond noise when below 0.05."
    )
    st.dataframe(
        sv.shown_differences(table, several_groups=groups.nunique() > 1), hide_index=True, key="difference_table",
        placeholder=tables.MISSING_TEXT,
        column_config={
            "value": st.column_config.NumberColumn(format="%.4f"),
            "difference": st.column_config.NumberColumn(format="%+.4f"),
            "users": st.column_config.NumberColumn(format="%d"),
        },
    )  # fmt: skip


def repeats_section(metrics_shown: list[str]) -> None:
    """Seed noise and user sampling of each repeated configuration: two different questions, each named."""
    paired_metrics = [m for m in metrics_shown if sv.has_per_user(m)]
    if not paired_metrics:
        return
    frames = per_user_results(uri, pool)
    parts = [
        sv.repeat_spreads(runs[counted], groups[counted], configs[counted], frames, m).assign(metric=m)
        for m in paired_metrics
    ]
    spread = pd.concat(parts, ignore_index=True)
    if spread.empty:
        return
    st.markdown("**Where the spread comes from**")
    st.caption(
        "Seed noise: how far a configuration's repeats (other seeds, the same test users) are apart: would "
        "retraining move it? User sampling: the standard error over users of its seed-averaged values: would other "
        "test users from the same population move it? Different questions; a small seed noise with a large user "
        "sampling error means the reruns agree but the test set is too small to pin the level down."
    )
    looks = style.config_styles(config_of)
    spread["configuration"] = [looks[c].name if c in looks else c for c in spread["configuration"]]
    first = ["metric", "configuration"] + (["data"] if groups.nunique() > 1 else [])
    rest = [c for c in spread.columns if c not in (*first, "data", "note")]
    shown = spread[first + rest + (["note"] if spread["note"].astype(bool).any() else [])]
    st.dataframe(
        shown, hide_index=True, key="spread_table", placeholder=tables.MISSING_TEXT,
        column_config={c: st.column_config.NumberColumn(format="%.4f") for c in
                       ("mean", "seed noise (std over seeds)", "user sampling (SE over users)")},
    )  # fmt: skip


def sweep_noise_section(trials: pd.DataFrame, objective: str, names: dict[str, str]) -> None:
    """Which trials the test users cannot tell from the best: so nobody over-reads the winner."""
    metric = sv.test_metric_of(objective)
    finished = trials[cmp.trial_state(trials) == "FINISHED"]
    if metric is None or finished.empty:
        return
    st.markdown("**Is the best trial really the best?**", help=sv.METHOD)
    frames = per_user_results(uri, tuple(finished["run_id"].astype(str)))

    def label_of(run_id: str) -> str:
        return names.get(run_id, run_id[:8])

    close, sentence = sv.within_noise_sentence(finished, frames, metric, label_of)
    st.caption(escape_markdown(sentence))
    if close:
        st.dataframe(
            sv.sweep_table(finished, metric, close, label_of), hide_index=True, key="sweep_noise_table",
            column_config={metric: st.column_config.NumberColumn(format="%.4f")},
        )  # fmt: skip


TABS = ["Final metrics", "Segments", "Learning curves", "Hyperparameters", "Importance", "Sweep", "What differs"]
# Only the open tab runs and is drawn (Streamlit's lazy tabs): 100 runs' worth of every chart at once made the page
# take seconds to draw. The open tab is in the URL (?view=...), so a shared link opens the same view.
final_tab, segments_tab, curves_tab, params_tab, importance_tab, sweep_tab, differ_tab = st.tabs(
    TABS, key="view", bind="query-params"
)

with final_tab:
    if final_tab.open and not metrics:
        st.info("These runs have no metrics to compare.")
    elif final_tab.open:
        bar_default = cmp.own_metrics([f"metrics.{m}" for m in metrics], ("ndcg", "recall"))
        key_metric = contract.preferred_metric(covered or metrics) or metrics[0]
        bar_metrics = st.multiselect("Metrics", metrics, default=bar_default or [key_metric], key="bar_metrics")
        if bar_metrics and aggregate:
            summary = pd.concat(
                [cmp.aggregate(runs.loc[idx], bar_metrics, configs.loc[idx]).assign(data=data)
                 for data, idx in groups[counted].groupby(groups[counted], sort=False).groups.items()],
                ignore_index=True,
            )  # fmt: skip
            drawn = figure("config_bars_figure", summary, bar_metrics, runs, style, config_of, references=refs)
            st.plotly_chart(drawn, key="bars_chart")
            st.dataframe(
                tables.summary_table(summary, bar_metrics, style.config_styles(config_of), config_of, style),
                hide_index=True, key="summary_table", placeholder=tables.MISSING_TEXT,
            )  # fmt: skip
            repeats_section(bar_metrics)
        elif bar_metrics:
            paired_metrics = tuple(m for m in bar_metrics if sv.has_per_user(m))
            intervals = whiskers(uri, pool, paired_metrics, tuple(run_ids)) if paired_metrics else None
            frames = per_user_results(uri, pool) if paired_metrics else {}
            marks, lines = best_notes(
                uri, pool, paired_metrics, tuple(run_ids), tuple(groups.astype(str)), tuple(label(r) for r in run_ids),
                runs, groups, label,
            ) if paired_metrics else ({}, [])  # fmt: skip
            drawn = figure("metric_bars_figure", runs, bar_metrics, style, references=refs, intervals=intervals,
                           best_notes=marks)  # fmt: skip
            st.plotly_chart(drawn, key="bars_chart")
            if intervals:
                st.caption(
                    "Whiskers: each run's 95% interval over its test users (bootstrap). ★ says whether the best run "
                    "is distinguishable from the runner-up on the same data: "
                    + escape_markdown(" ".join(lines) or "fewer than two runs with per-user results.")
                )
        if any(charts.baseline_metric(m) for m in bar_metrics):
            st.caption("Black dashes: the popularity baseline every recdash run logs for its own data and split.")
        if bar_metrics and not refs.empty:
            st.subheader("Against the references on the same data")
            st.caption(
                "Grey lines above and rows below: simple models fitted on the same dataset and split. "
                "× best reference: the run's value over the best reference's (above 1: better, for this metric)."
            )
            st.container(key="reference_box").dataframe(
                tables.reference_table(runs, groups, refs, bar_metrics, style),
                hide_index=True,
                key="reference_table",
                placeholder=tables.MISSING_TEXT,
            )  # the box's key names it in the page
        elif bar_metrics:
            st.caption("No reference runs on this data yet.")
            if not read_only_notice(uri, "training references to compare with"):  # a read-only store says why
                st.caption(
                    "**Train references for this data** on the Train page (or `python -m recdash references`) fits "
                    "popularity, EASE and ItemKNN on the same split to compare with."
                )
        paired_choices = [m for m in metrics if sv.has_per_user(m)]
        if paired_choices:
            differences_section(paired_choices, [m for m in bar_metrics if m in paired_choices])

with segments_tab:
    if segments_tab.open:
        bases = cmp.segment_bases([*runs.columns, *refs.columns])
        if not bases:
            st.info(
                "These runs logged no per-segment metrics (recdash logs test recall and NDCG at k per user-activity "
                "quartile, test_recall_at_<k>_q1 … _q4, with every run it trains)."
            )
        else:
            base = st.selectbox("Metric", bases, key="segment_metric")
            quartiles = quartile_whiskers(uri, pool, base, tuple(run_ids)) if sv.has_per_user(base) else None
            drawn = figure("segment_bars_figure", runs, base, style, refs, intervals=quartiles)
            st.plotly_chart(drawn, key="segment_chart")
            st.caption(
                "Users are split into quartiles by how many training interactions they have (q1: the least "
                "active); grey lines are the references on the same data. "
                + ("Whiskers: each run's 95% interval over that quartile's users (bootstrap): a quartile has a "
                   "quarter of the users, so its intervals are wider than the overall ones." if quartiles else "")
            )  # fmt: skip
            if quartiles:
                not_logged_note(per_user_results(uri, pool), run_ids, label)
        beyond = tables.beyond_accuracy_table(runs, groups, refs, style)
        if len(beyond.columns) > 3:
            st.subheader("Beyond accuracy")
            st.caption(
                "Novelty (mean self-information of recommended items), Gini of how often each item is recommended "
                "(0 = evenly), share of slots and of hits on long-tail items, personalization (1 − overlap between "
                "users' lists) and intra-list diversity on genres. Definitions: docs/metrics.md."
            )
            st.dataframe(beyond, hide_index=True, key="beyond_table", placeholder=tables.MISSING_TEXT)

with curves_tab:
    if curves_tab.open and not metrics:
        st.info("These runs have no metrics to compare.")
    elif curves_tab.open:
        c1, c2, c3 = st.columns([2, 2, 1])
        per_step = [m for m in metrics if m.startswith("val_")] or metrics
        with c1:
            key = pick_metric("Metric", metrics, "history_metric", contract.preferred_metric(per_step))
        x_axis = c2.radio("X axis", list(X_AXES), format_func=X_AXES.get, horizontal=True, key="history_x")
        smoothing = c3.slider(
            "Smoothing", 0.0, 0.99, 0.0, 0.01, key="smoothing", help="Exponential moving average, as in TensorBoard."
        )
        try:
            history = histories(uri, tuple(run_ids), key)
        except tracking.TrackingError as exc:
            st.error(escape_markdown(exc))
        else:
            unreadable = [style.label(r) for r in history.attrs.get("unreadable", [])]
            if unreadable:
                st.warning(
                    escape_markdown(
                        f"The store could not give the history of {len(unreadable)} run(s), so they are not drawn: "
                        + ", ".join(unreadable)
                    )
                )
            if charts.single_step(history, key):
                st.caption("Each run logged this metric once, so it is a final value: shown as bars, not a line.")
                st.plotly_chart(figure("metric_bars_figure", runs, [key], style), key="history_chart")
            else:
                bands = config_of if aggregate and x_axis == "step" else None
                if aggregate and bands is None:
                    st.caption("Mean ± std bands need steps to line up: choose the Step axis to see them.")
                drawn = figure("metric_history_figure", history, key, style, x=x_axis, smoothing=smoothing,
                               configs=bands, references=refs)  # fmt: skip
                st.plotly_chart(drawn, key="history_chart")

with params_tab:
    if params_tab.open and not metrics:
        st.info("These runs have no metrics to compare.")
    elif params_tab.open:
        c1, c2 = st.columns([1, 3])
        with c1:
            color_metric = pick_metric("Metric", metrics, "color_metric", among=covered)
        with_metric = runs[runs[f"metrics.{color_metric}"].notna()]  # what the charts below can draw
        settings = cmp.default_axes(with_metric)  # the hyperparameters that vary, seeds aside
        views = ["All hyperparameters", "One hyperparameter"]
        view = c2.segmented_control(
            "View", views, default=views[0] if len(settings) > 1 else views[1], key="hp_view",
            help="All: parallel coordinates, one line per run across every chosen hyperparameter and the metric. "
            "One: the metric against one hyperparameter, one point per run.",
        )  # fmt: skip
        if view == views[0]:
            axes = st.multiselect("Axes", hyper, default=settings, key="pc_params")
            if axes:
                st.plotly_chart(figure("parallel_coordinates_figure", runs, axes, color_metric, style),
                                key="parallel_chart")  # fmt: skip
            else:
                st.caption("No hyperparameter differs between these runs; pick axes to draw them anyway.")
        elif hyper:
            default_param = (settings or cmp.varying(with_metric, hyper) or hyper)[0]
            param = st.selectbox("Hyperparameter", hyper, index=hyper.index(default_param), key="scatter_param")
            st.plotly_chart(figure("param_scatter_figure", runs, param, color_metric, style), key="scatter_chart")

with importance_tab:
    if importance_tab.open and not metrics:
        st.info("These runs have no metrics to compare.")
    elif importance_tab.open:
        group_counts = groups.value_counts()
        c1, c2 = st.columns([3, 1])
        data_group = c1.selectbox(
            "Data", list(group_counts.index), format_func=lambda g: f"{g} ({group_counts[g]} runs)",
            key="importance_data", help="Importance is estimated over runs on one dataset and split only.",
        )  # fmt: skip
        with c2:
            target = pick_metric("Metric", metrics, "importance_metric", among=covered)
        members = runs[(groups == data_group) & counted]  # a seed run twice is one draw, not two
        frame, note = importance(members, target, tuple(cmp.default_group_params(members)))
        if frame.empty:
            st.info(escape_markdown(note))
        else:
            st.caption(escape_markdown(note))
            st.plotly_chart(figure("importance_figure", frame, target), key="importance_chart")

with sweep_tab:
    parents = cmp.sweep_parents(all_runs) if sweep_tab.open else set()
    in_view = [p for p in parents if p in set(run_ids) or p in set(runs.get("parent_run_id", pd.Series(dtype=str)))]
    if sweep_tab.open and not in_view:
        st.info("None of these runs is a sweep or one of its trials. Select a sweep on the Runs page to see its views.")
    elif sweep_tab.open:
        names = dict(zip(all_runs["run_id"].astype(str), tables.run_names(all_runs), strict=True))
        sweep = st.selectbox("Sweep", in_view, format_func=lambda r: names.get(r, r[:8]), key="sweep")
        parent = all_runs[all_runs["run_id"] == sweep].iloc[0]
        trials = all_runs[all_runs["parent_run_id"] == sweep]
        objective = str(parent.get("params.objective_metric") or "")
        target = f"best_{objective}" if f"metrics.best_{objective}" in trials.columns else objective
        space = list(cmp.search_space(parent)) or cmp.varying(trials, cmp.hyperparameters(trials))
        study = cmp.study_from_runs(trials, target, space) if target else None
        if study is None:
            st.info("This sweep has fewer than two finished trials with its objective: nothing to plot yet.")
        else:
            import optuna.visualization as ov

            states = cmp.trial_state(trials).value_counts()
            left_out = ", ".join(f"{n} {s.lower()}" for s, n in states.items() if s != "FINISHED")
            counted = f"{len(study.trials)} finished trials of {len(trials)}" + (f" ({left_out})" if left_out else "")
            st.caption(
                escape_markdown(
                    f"{counted}; objective {target}; searched: {', '.join(space)}. Optuna's own views, rebuilt from "
                    "the trial runs."
                )
            )
            plots = {"Optimization history": ov.plot_optimization_history, "Slice": ov.plot_slice}
            if len(space) >= 2:
                plots["Contour"] = ov.plot_contour
            plots["Importance"] = ov.plot_param_importances
            first = next(iter(plots))
            chosen = st.segmented_control("Optuna view", list(plots), default=first, key="sweep_view") or first
            try:
                st.plotly_chart(param_charts.optuna_figure(plots[chosen], study), key="sweep_chart")
            except UserError as exc:  # e.g. importance with one distinct value
                st.info(escape_markdown(f"{chosen} cannot be drawn for this sweep: {exc}"))
            sweep_noise_section(trials, objective, names)

with differ_tab:
    if differ_tab.open:
        diff = tables.param_diff_table(runs, style.labels)
        if diff.empty:
            st.caption(
                "All hyperparameters are the same for these runs."
                if len(runs) > 1
                else "Select two or more runs to see what differs."
            )
        else:
            st.caption(
                "The data and split each run used are its data group above, not a hyperparameter; values a run chose "
                "itself (how it serves new users) are marked as chosen by the run."
            )
            st.container(key="param_diff_box").dataframe(
                diff, key="param_diff", placeholder=tables.MISSING_TEXT,
                column_config={"_index": st.column_config.TextColumn("param", width="medium")},
            )  # fmt: skip

table = tables.comparison_table(runs, cmp.param_names(runs), metrics, style)
st.download_button(
    "Download comparison (CSV, full precision)",
    table.to_csv(index=False).encode(),
    file_name="recdash-comparison.csv",
    mime="text/csv",
    key="download_csv",
    on_click="ignore",
)

with_model = runs[runs["has_model"].astype(bool)]
if not with_model.empty:
    st.subheader("Use a model")
    choice = st.selectbox("Run", with_model["run_id"].astype(str).tolist(), format_func=style.label, key="model_run")
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
