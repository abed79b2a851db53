"""Tables for the Home, Runs and Compare pages: each run's label, the references table, the beyond-accuracy table,
mean ± std summaries, what differs, and the full-precision CSV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from recdash import comparison as cmp
from recdash import contract
from recdash.comparison import as_float
from recdash.contract import METRIC, MISSING, PARAM, run_label
from recdash.views.style import ConfigStyle, RunStyle

# How every table of the pages shows a value that is missing (st.dataframe's placeholder, and text cells here).
MISSING_TEXT = "–"


def run_names(runs: pd.DataFrame) -> pd.Series:
    """Each run's label for tables (:func:`recdash.tracking.run_label`: its name, else its short ID)."""
    names = runs["run_name"] if "run_name" in runs.columns else pd.Series([None] * len(runs), index=runs.index)
    return pd.Series(
        [run_label(n, r) for n, r in zip(names, runs["run_id"], strict=True)], index=runs.index, dtype=object
    )


def _col(name: str, prefix: str) -> str:
    """Column name of a param/metric given with or without its prefix."""
    return name if name.startswith(prefix) else prefix + name


def _categorical(values: pd.Series) -> pd.Series:
    present = values.notna() & (values.astype(str).str.strip() != "")
    return values.where(present, MISSING).astype(str)


def reference_table(
    runs: pd.DataFrame, groups: pd.Series, references: pd.DataFrame, metrics: Sequence[str], style: RunStyle
) -> pd.DataFrame:
    """The compared runs and the references on their data, one row each, with each row's ratio to the best
    reference on the same data for the first of ``metrics`` (1.0 = as good as the strongest simple model)."""
    names = [m.removeprefix(METRIC) for m in metrics]
    key = names[0] if names else None
    rows = pd.DataFrame(
        {
            "run": [style.label(r) for r in runs["run_id"].astype(str)],
            "kind": ["reference" if ref else "run" for ref in cmp.is_reference(runs)],
            "data": groups.to_numpy(),
        }
    )
    refs = pd.DataFrame(
        {"run": "reference: " + references["reference"].astype(str), "kind": "reference", "data": references["data"]}
    )
    for name in names:
        rows[name] = as_float(runs[METRIC + name]) if METRIC + name in runs.columns else np.nan
        refs[name] = as_float(references[METRIC + name]) if METRIC + name in references.columns else np.nan
    if key:
        rows[f"× best reference ({key})"] = cmp.reference_ratio(runs, groups, references, key).to_numpy()
        refs[f"× best reference ({key})"] = cmp.reference_ratio(
            references, references["data"], references, key
        ).to_numpy()
    out = pd.concat([rows, refs], ignore_index=True)
    return out[[c for c in out.columns if c != "data"] + ["data"]]  # the long data name last: numbers stay in view


def beyond_accuracy_table(
    runs: pd.DataFrame, groups: pd.Series, references: pd.DataFrame, style: RunStyle
) -> pd.DataFrame:
    """Novelty, Gini, long-tail shares, personalization and intra-list diversity of each run and reference (the
    ones any of them logged); definitions in docs/metrics.md."""
    names = cmp.beyond_accuracy_metrics([*runs.columns, *references.columns])
    out = reference_table(runs, groups, references, [], style)
    for name in names:
        out[name] = np.concatenate(
            [
                as_float(frame[METRIC + name]) if METRIC + name in frame.columns else np.full(len(frame), np.nan)
                for frame in (runs, references)
            ]
        )
    return out[[c for c in out.columns if c != "data"] + ["data"]]


def summary_table(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    looks: Mapping[str, ConfigStyle] | None = None,
    config_of: Mapping[str, str] | None = None,
    style: RunStyle | None = None,
) -> pd.DataFrame:
    """``aggregate`` output as text a person reads: "0.2431 ± 0.0021 (n=3)" per metric and configuration, each
    configuration by its letter (``looks``: as the chart names it) and its hyperparameters, with the runs counted
    (``config_of``: run id -> configuration, and the page's ``style``), the data group last."""
    looks = looks or {}
    out = pd.DataFrame(
        {
            "configuration": [looks[g].letter if g in looks else g for g in summary["group"]],
            "hyperparameters": summary["group"].to_numpy(),
        }
    )
    for metric in metrics:
        name = metric.removeprefix(METRIC)
        if f"{name} mean" not in summary.columns:
            continue
        cells = []
        for mean, std, n in zip(summary[f"{name} mean"], summary[f"{name} std"], summary[f"{name} n"], strict=True):
            if not n:
                cells.append(MISSING_TEXT)
            elif n == 1 or not np.isfinite(std):
                cells.append(f"{mean:.4f} (n=1)")
            else:
                cells.append(f"{mean:.4f} ± {std:.4f} (n={n})")
        out[name] = cells
    if config_of is not None and style is not None:
        members = [
            ", ".join(style.label(r) for r, c in config_of.items() if c == config and style.groups.get(r) == data)
            for config, data in zip(summary["group"], summary["data"], strict=True)
        ]
        out["runs"] = members
    out["data"] = summary["data"].to_numpy()
    return out.reset_index(drop=True)


def param_diff_table(runs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Hyperparameters whose value differs between the runs: one row per param, one column per run (its label),
    then the values the runs chose themselves that differ (``cold_start_strategy (chosen by the run)``). Lineage
    params are left out: which data a run saw is shown by its data group, not as a setting."""
    ids = runs["run_id"].astype(str).tolist() if not runs.empty else []
    columns = [labels.get(r, r[:8]) for r in ids]
    shown = runs.copy()
    for idx, row in runs.iterrows():  # a sweep parent ran what it searched, not its form's base values
        for name, searched in cmp.search_space(row).items():
            if PARAM + name in shown.columns:
                shown.at[idx, PARAM + name] = f"searched {searched}"
    rows = {name: _categorical(shown[PARAM + name]).str.strip().tolist() for name in
            cmp.varying(shown, cmp.hyperparameters(shown))}  # fmt: skip
    rows |= {f"{name} (chosen by the run)": _categorical(shown[PARAM + name]).str.strip().tolist() for name in
             cmp.varying(shown, cmp.run_choices(shown))}  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns) if rows else pd.DataFrame(columns=columns)
    table = table.replace(MISSING, MISSING_TEXT)  # a param a run did not log: shown like every missing value
    table.index.name = "param"
    return table


def comparison_table(
    runs: pd.DataFrame, params: Sequence[str], metrics: Sequence[str], style: RunStyle
) -> pd.DataFrame:
    """One row per run with its label, id, data group, experiment, status, the chosen params and metrics at full
    precision (the CSV download)."""
    base = ["run_id", "experiment", "status", "start_time"]
    pcols = [c for c in (_col(p, PARAM) for p in params) if c in runs.columns]
    mcols = [c for c in (_col(m, METRIC) for m in metrics) if c in runs.columns]
    out = runs[[c for c in base if c in runs.columns] + pcols + mcols].copy()
    for c in mcols:
        out[c] = as_float(out[c])
    ids = runs["run_id"].astype(str)
    out.insert(0, "run", [style.label(r) for r in ids] if not runs.empty else [])
    out.insert(2, "data", [style.groups.get(r, "") for r in ids] if not runs.empty else [])
    return out.reset_index(drop=True)


def best_runs_per_experiment(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The best run on ``metric`` (max, or min for loss/time-like metrics) of each experiment *and* data group:
    runs on different data are never ranked together."""
    col = _col(metric, METRIC)
    columns = ["experiment", "data", "run_name", "run_id", col.removeprefix(METRIC)]
    if runs.empty or col not in runs.columns:
        return pd.DataFrame(columns=columns)
    data = runs.assign(_v=as_float(runs[col]), data=cmp.data_groups(runs), run_name=run_names(runs))
    data = data.dropna(subset=["_v"])
    if data.empty:
        return pd.DataFrame(columns=columns)
    data = data.sort_values("_v", ascending=contract.lower_is_better(columns[-1]), kind="stable")
    best = data.groupby(["experiment", "data"], sort=False, dropna=False).head(1)
    return best[["experiment", "data", "run_name", "run_id", "_v"]].set_axis(columns, axis=1).reset_index(drop=True)


def top_runs(runs: pd.DataFrame, metric: str, n: int) -> pd.DataFrame:
    """The ``n`` best runs on ``metric`` (runs without a finite value excluded); call it on one data group."""
    col = _col(metric, METRIC)
    if runs.empty or col not in runs.columns:
        return runs.iloc[0:0]
    values = pd.Series(as_float(runs[col]), index=runs.index).dropna()
    order = values.sort_values(ascending=contract.lower_is_better(col), kind="stable").index
    return runs.loc[order[: max(int(n), 0)]]


# MLflow 3.17's UI shows every page in one of two modes, "GenAI" or "Model training", chosen per browser (GenAI until
# the user switches) or by this query parameter; the experiment tag mlflow.experimentKind no longer decides it.
MLFLOW_UI_TRAINING_MODE = "?workflowType=machine_learning"


def run_ui_links(runs: pd.DataFrame, ui_url: str) -> pd.Series:
    """Links to each run in the MLflow UI at ``ui_url`` (e.g. http://localhost:5000), in its "Model training" mode
    (the run's experiment, one click away, then opens on its training runs)."""
    base = ui_url.rstrip("/")
    pairs = zip(runs["experiment_id"], runs["run_id"], strict=True)
    return pd.Series(
        [f"{base}/#/experiments/{e}/runs/{r}{MLFLOW_UI_TRAINING_MODE}" for e, r in pairs],
        index=runs.index,
        dtype=object,
    )
