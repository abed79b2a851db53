"""Charts and tables for the Home, Runs and Compare pages: pure functions over the runs DataFrame of
:mod:`recdash.tracking` (``params.<name>`` as strings, ``metrics.<name>`` as floats, ``tags.<name>``) and its
metric histories (run_id, key, step, timestamp in ms, value).

Nothing here imports Streamlit, so every figure is tested on hand-made frames. Every function tolerates what
real stores contain: runs without metrics, NaN/inf, params logged as strings that look like numbers, runs from
other tools with other names, a single run, no runs, and hundreds of runs.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from recdash.model import HYPERPARAMS
from recdash.tracking import run_label

PARAM_PREFIX = "params."
METRIC_PREFIX = "metrics."
TAG_PREFIX = "tags."

# Above this many points a line/scatter trace is drawn with WebGL (go.Scattergl); below it SVG is crisper and does
# not use up one of the few WebGL contexts a browser tab allows.
WEBGL_MIN_POINTS = 200
# Grouped bars stop being readable long before this; the figure says how many runs it left out.
MAX_BAR_RUNS = 30
# Lineage params: runs that differ in any of these were not evaluated on the same data.
LINEAGE_PARAMS = (
    "dataset_digest",
    "dataset_name",
    "split_method",
    "split_train",
    "split_validation",
    "split_test",
    "split_seed",
    "min_rating",
)
MISSING = "(missing)"

_LOG_NAME = re.compile(r"(^|_)(lr|learning_rate|rate|alpha|beta|sigma|lambda|reg|l1|l2|decay|weight_decay|eps)($|_)")
_LOWER_IS_BETTER = re.compile(r"loss|error|rmse|mae|mse|seconds|(^|_)time|duration|popularity|perplexity")
_PREFERRED_METRICS = ("val_ndcg_at_", "test_ndcg_at_", "val_recall_at_", "test_recall_at_", "val_", "test_")


# --------------------------------------------------------------------------------------------------- helpers


def param_names(runs: pd.DataFrame) -> list[str]:
    """Param names (without the ``params.`` prefix) present in ``runs``, sorted."""
    return sorted(c[len(PARAM_PREFIX) :] for c in runs.columns if str(c).startswith(PARAM_PREFIX))


def metric_names(runs: pd.DataFrame) -> list[str]:
    """Metric names (without the ``metrics.`` prefix) that at least one run has a finite value for, sorted."""
    names = []
    for c in runs.columns:
        if str(c).startswith(METRIC_PREFIX) and np.isfinite(_as_float(runs[c])).any():
            names.append(c[len(METRIC_PREFIX) :])
    return sorted(names)


def preferred_metric(names: Sequence[str]) -> str | None:
    """A sensible default metric to show first: validation NDCG/recall if logged, else the first name."""
    for prefix in _PREFERRED_METRICS:
        for name in names:
            if name.startswith(prefix) and "baseline" not in name:
                return name
    return names[0] if names else None


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (losses, errors, durations, popularity bias)."""
    return bool(_LOWER_IS_BETTER.search(metric.lower()))


def label_runs(runs: pd.DataFrame) -> dict[str, str]:
    """One unique, human label per run: its name, or the short run id; clashes get the short id appended."""
    if runs.empty:
        return {}
    ids = runs["run_id"].astype(str).tolist()
    base = run_names(runs).tolist()
    counts = pd.Series(base).value_counts()
    labels = [f"{label} ({rid[:8]})" if counts[label] > 1 else label for rid, label in zip(ids, base, strict=True)]
    if len(set(labels)) < len(labels):  # short ids clash too (hand-made ids): the full id is unique
        labels = [f"{label} ({rid})" if counts[label] > 1 else label for rid, label in zip(ids, base, strict=True)]
    return dict(zip(ids, labels, strict=True))


def run_names(runs: pd.DataFrame) -> pd.Series:
    """Each run's label for tables (:func:`recdash.tracking.run_label`: its name, else its short ID)."""
    names = runs["run_name"] if "run_name" in runs.columns else pd.Series([None] * len(runs), index=runs.index)
    return pd.Series(
        [run_label(n, r) for n, r in zip(names, runs["run_id"], strict=True)], index=runs.index, dtype=object
    )


def parse_run_ids(value: str | Iterable[str] | None) -> list[str]:
    """Run ids from a ``runs=a,b,c`` query param (or a list of them): stripped, de-duplicated, order kept."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    out: list[str] = []
    for part in parts:
        part = part.strip()
        if part and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", part) and part not in out:
            out.append(part)
    return out


def escape_markdown(text: object) -> str:
    """``text`` safe to embed in Streamlit markdown (captions, labels): run names and metric names from a shared
    store are data, not formatting."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~$:])", r"\\\1", str(text))


def plotly_text(text: object) -> str:
    """``text`` for a plotly label: plotly renders a subset of HTML (<b>, <a href>) in names, ticks and hover
    text, so run names and param values from the store are entity-escaped to show as typed."""
    return html.escape(str(text), quote=False)


def _col(runs: pd.DataFrame, name: str, prefix: str) -> str:
    """Column name of a param/metric given with or without its prefix."""
    return name if name.startswith(prefix) else prefix + name


def _as_float(values: pd.Series) -> np.ndarray:
    """Float array; anything non-numeric becomes NaN and ±inf become NaN (they cannot be drawn or ranked)."""
    out = np.array(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    out[~np.isfinite(out)] = np.nan
    return out


def _present(values: pd.Series) -> pd.Series:
    """Mask of values that were actually logged (not None/NaN/empty string)."""
    return values.notna() & (values.astype(str).str.strip() != "")


def numeric_values(values: pd.Series) -> np.ndarray | None:
    """The values as floats if every logged one parses as a number (params are stored as strings), else None.

    Missing and non-finite values become NaN; a column with nothing logged is not numeric.
    """
    present = _present(values)
    if not present.any():
        return None
    parsed = pd.to_numeric(values[present].astype(str).str.strip(), errors="coerce")
    if parsed.isna().any():
        # "inf"/"nan" parse as numbers; anything else (e.g. "warp", "None") makes the param categorical
        return None
    out = np.full(len(values), np.nan)
    out[present.to_numpy()] = parsed.to_numpy(dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


def use_log_axis(name: str, values: np.ndarray) -> bool:
    """Log axis for rates and regularisation: all values positive and either spanning >= 2 decades, a recdash
    hyperparameter declared log-scale, or a name like learning_rate/alpha/beta/sigma/lr/reg."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or (finite <= 0).any():
        return False
    if finite.max() / finite.min() >= 100:
        return True
    bare = name.removeprefix(PARAM_PREFIX)
    spec = HYPERPARAMS.get(bare)
    if spec is not None:
        return bool(spec.log)
    return bool(_LOG_NAME.search(bare.lower()))


def _categorical(values: pd.Series) -> pd.Series:
    return values.where(_present(values), MISSING).astype(str)


def _trace_class(n_points: int) -> type[go.Scatter] | type[go.Scattergl]:
    return go.Scattergl if n_points >= WEBGL_MIN_POINTS else go.Scatter


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank (no data, metric missing...)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=250)
    return fig


# --------------------------------------------------------------------------------------------------- figures


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; non-finite points are passed through unsmoothed."""
    weight = min(max(float(weight), 0.0), 0.999)
    out = np.array(values, dtype=float)
    if weight == 0 or out.size == 0:
        return out
    last, count = 0.0, 0
    for i, v in enumerate(out):
        if not math.isfinite(v):
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out[i] = last / (1 - weight**count)
    return out


def metric_history_figure(
    histories: pd.DataFrame,
    run_labels: Mapping[str, str],
    key: str,
    x: str = "step",
    smoothing: float = 0.0,
) -> go.Figure:
    """One line per run of metric ``key`` against step, wall time or time since the run's first point.

    With ``smoothing`` > 0 the smoothed line is drawn over a faint raw line, as TensorBoard does.
    """
    if x not in ("step", "wall_time", "relative_time"):
        raise ValueError("x must be 'step', 'wall_time' or 'relative_time'")
    data = histories[histories["key"] == key] if not histories.empty else histories
    if data.empty:
        return empty_figure(f"No history logged for {key}")
    data = data.assign(value=_as_float(data["value"])).dropna(subset=["value"])
    if data.empty:
        return empty_figure(f"No finite values logged for {key}")
    trace_type = "scattergl" if _trace_class(len(data)) is go.Scattergl else "scatter"
    palette = _palette()
    groups = dict(tuple(data.groupby("run_id", sort=False)))
    order = [r for r in run_labels if r in groups] + sorted(set(groups) - set(run_labels))
    traces = []
    for i, run_id in enumerate(order):
        run = groups[run_id].sort_values(["step", "timestamp"])
        if x == "step":
            xs = run["step"].to_numpy()
        elif x == "wall_time":
            xs = pd.to_datetime(run["timestamp"], unit="ms", utc=True).to_numpy()
        else:
            xs = (run["timestamp"].to_numpy(dtype=float) - float(run["timestamp"].min())) / 1000.0
        ys = run["value"].to_numpy(dtype=float)
        label = plotly_text(run_labels.get(run_id, str(run_id)[:8]))
        color = palette[i % len(palette)]
        mode = "lines+markers" if len(run) <= 50 else "lines"
        if smoothing > 0:
            traces.append(
                dict(type=trace_type, x=xs, y=ys, mode="lines", name=label, legendgroup=run_id, showlegend=False,
                     line={"color": color, "width": 1}, opacity=0.3, hoverinfo="skip")
            )  # fmt: skip
            ys = ema(ys, smoothing)
        traces.append(
            dict(type=trace_type, x=xs, y=ys, mode=mode, name=label, legendgroup=run_id, line={"color": color},
                 hovertemplate="%{y:.4g}<extra>%{fullData.name}</extra>")
        )  # fmt: skip
    # plain dicts: plotly validates each trace once, in the Figure (1000 traces in well under a second)
    fig = go.Figure(data=traces)
    titles = {"step": "step", "wall_time": "wall time (UTC)", "relative_time": "seconds since first point"}
    fig.update_layout(
        title=plotly_text(key),
        xaxis_title=titles[x],
        yaxis_title=plotly_text(key),
        hovermode="x unified",
        legend_title_text="run",
        height=420,
    )
    return fig


def _palette() -> list[str]:
    import plotly.express as px

    return list(px.colors.qualitative.Plotly) + list(px.colors.qualitative.D3)


def parallel_coordinates_figure(runs: pd.DataFrame, params: Sequence[str], color_metric: str) -> go.Figure:
    """One axis per param plus the colour metric; categorical params become integer codes with their labels as
    ticks, rate-like params are drawn on a log10 scale, and missing values sit at the bottom of their axis."""
    metric_col = _col(runs, color_metric, METRIC_PREFIX)
    if runs.empty or metric_col not in runs.columns:
        return empty_figure("No runs with this metric")
    color = _as_float(runs[metric_col])
    keep = np.isfinite(color)
    if not keep.any():
        return empty_figure(f"No run has a finite {color_metric.removeprefix(METRIC_PREFIX)}")
    sub = runs.loc[keep]
    color = color[keep]
    dimensions = []
    for name in params:
        col = _col(sub, name, PARAM_PREFIX)
        if col not in sub.columns:
            continue
        dim = _parcoords_dimension(col.removeprefix(PARAM_PREFIX), sub[col])
        if dim is not None:
            dimensions.append(dim)
    metric = metric_col.removeprefix(METRIC_PREFIX)
    dimensions.append({"label": plotly_text(metric), "values": color})
    omitted = int((~keep).sum())
    title = f"Params coloured by {plotly_text(metric)}" + (f" ({omitted} runs without it omitted)" if omitted else "")
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": color,
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": plotly_text(metric)},
                "reversescale": lower_is_better(metric),
            },
            dimensions=dimensions,
        )
    )
    fig.update_layout(title=title, height=450, margin={"l": 60, "r": 60, "t": 80})
    return fig


def _parcoords_dimension(name: str, values: pd.Series) -> dict | None:
    numeric = numeric_values(values)
    if numeric is None:
        cats = _categorical(values)
        labels = sorted(cats.unique(), key=lambda s: (s == MISSING, s))
        codes = cats.map({label: i for i, label in enumerate(labels)}).to_numpy(dtype=float)
        ticktext = [plotly_text(label) for label in labels]
        return {"label": plotly_text(name), "values": codes, "tickvals": list(range(len(labels))), "ticktext": ticktext}
    finite = numeric[np.isfinite(numeric)]
    if finite.size == 0:
        return None
    log = use_log_axis(name, numeric) and finite.min() != finite.max()
    shown = np.log10(numeric) if log else numeric.copy()
    lo, hi = np.nanmin(shown), np.nanmax(shown)
    dim: dict = {"label": plotly_text(f"{name} (log)" if log else name)}
    ticks = np.linspace(lo, hi, 5) if hi > lo else np.array([lo])
    tickvals, ticktext = list(ticks), [f"{10**t if log else t:.3g}" for t in ticks]
    if np.isnan(shown).any():
        sentinel = lo - 0.1 * (hi - lo if hi > lo else 1.0)
        shown[np.isnan(shown)] = sentinel
        tickvals, ticktext = [sentinel, *tickvals], [MISSING, *ticktext]
    if log or len(tickvals) > len(ticks):
        dim |= {"tickvals": tickvals, "ticktext": ticktext}
    dim["values"] = shown
    return dim


def param_scatter_figure(
    runs: pd.DataFrame, param: str, metric: str, run_labels: Mapping[str, str] | None = None
) -> go.Figure:
    """Metric against one param, one point per run (hover shows the run); log x-axis chosen automatically for
    rates and regularisation, string params that look numeric treated as numbers, others as categories."""
    pcol, mcol = _col(runs, param, PARAM_PREFIX), _col(runs, metric, METRIC_PREFIX)
    pname, mname = pcol.removeprefix(PARAM_PREFIX), mcol.removeprefix(METRIC_PREFIX)
    if runs.empty or pcol not in runs.columns or mcol not in runs.columns:
        return empty_figure(f"No runs with both {pname} and {mname}")
    y = _as_float(runs[mcol])
    numeric = numeric_values(runs[pcol])
    xs: np.ndarray | pd.Series = numeric if numeric is not None else _categorical(runs[pcol])
    keep = np.isfinite(y) & (np.isfinite(numeric) if numeric is not None else True)
    if not keep.any():
        return empty_figure(f"No run has both {pname} and a finite {mname}")
    labels = run_labels or label_runs(runs)
    names = [labels.get(r, str(r)[:8]) for r in runs["run_id"].astype(str)]
    x_kept = xs[keep] if numeric is not None else xs[keep].to_numpy()
    if numeric is None:
        x_kept = np.array([plotly_text(v) for v in x_kept], dtype=object)
    # hover text built here, escaped, rather than a hovertemplate with store names spliced into its syntax
    hover = [
        f"{plotly_text(n)}<br>{plotly_text(pname)}={xv if numeric is None else f'{xv:.4g}'}<br>"
        f"{plotly_text(mname)}={yv:.4g}"
        for n, xv, yv in zip(np.asarray(names, dtype=object)[keep], x_kept, y[keep], strict=True)
    ]
    cls = _trace_class(int(keep.sum()))
    fig = go.Figure(
        cls(x=x_kept, y=y[keep], mode="markers", hovertext=hover, hoverinfo="text",
            marker={"size": 9, "opacity": 0.8}, name=plotly_text(mname))
    )  # fmt: skip
    log = numeric is not None and use_log_axis(pname, numeric[keep])
    fig.update_xaxes(
        title_text=plotly_text(pname), type="log" if log else ("category" if numeric is None else "linear")
    )
    fig.update_yaxes(title_text=plotly_text(mname))
    fig.update_layout(title=plotly_text(f"{mname} vs {pname}"), height=400, showlegend=False)
    return fig


def best_run_ids(runs: pd.DataFrame, metrics: Sequence[str]) -> dict[str, str | None]:
    """For each metric, the run id with the best finite value (max, or min for loss/time-like metrics)."""
    out: dict[str, str | None] = {}
    for metric in metrics:
        col = _col(runs, metric, METRIC_PREFIX)
        name = col.removeprefix(METRIC_PREFIX)
        if col not in runs.columns or runs.empty:
            out[name] = None
            continue
        values = pd.Series(_as_float(runs[col]), index=runs.index)
        if values.isna().all():
            out[name] = None
            continue
        idx = values.idxmin() if lower_is_better(name) else values.idxmax()
        out[name] = str(runs.at[idx, "run_id"])
    return out


def metric_bars_figure(
    runs: pd.DataFrame, metrics: Sequence[str], run_labels: Mapping[str, str], max_runs: int = MAX_BAR_RUNS
) -> go.Figure:
    """Final metric values as grouped bars (one group per metric, one bar per run); the best run of each metric
    is outlined and labelled "★ best" (max, or min for loss/time-like metrics)."""
    cols = [_col(runs, m, METRIC_PREFIX) for m in metrics]
    cols = [c for c in cols if c in runs.columns]
    if runs.empty or not cols:
        return empty_figure("No metrics to compare")
    names = [c.removeprefix(METRIC_PREFIX) for c in cols]
    shown = runs.head(max_runs)
    best = best_run_ids(runs, names)
    fig = go.Figure()
    for _, run in shown.iterrows():
        rid = str(run["run_id"])
        values = [_as_float(pd.Series([run[c]]))[0] for c in cols]
        is_best = [best[n] == rid for n in names]
        fig.add_trace(
            go.Bar(
                x=[plotly_text(n) for n in names], y=values, name=plotly_text(run_labels.get(rid, rid[:8])),
                text=["★ best" if b else "" for b in is_best], textposition="outside",
                marker={"line": {"width": [3 if b else 0 for b in is_best], "color": "black"}},
                hovertemplate="%{y:.4g}<extra>%{fullData.name}</extra>",
            )
        )  # fmt: skip
    title = "Final metrics (★ = best run per metric)"
    if len(runs) > max_runs:
        title += f"; first {max_runs} of {len(runs)} runs shown"
    fig.update_layout(barmode="group", title=title, height=420, legend_title_text="run")
    return fig


def param_importance(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """How strongly each param goes with ``metric`` across runs (0..1), without fitting a model.

    Numeric params (including numbers logged as strings): absolute Spearman rank correlation with the metric.
    Categorical params: correlation ratio eta = sqrt(between-group / total variance of the metric), with
    missing values as their own category. Only runs with a finite metric count. Params that are constant, or
    logged by fewer than 3 such runs, get importance 0 / NaN with the reason in ``method``; categorical params
    with a different value in every run (ids, paths) are skipped since they would trivially score 1.
    Correlation is not causation: with few runs, read this as "where to look", not as a verdict.
    """
    columns = ["param", "importance", "method"]
    mcol = _col(runs, metric, METRIC_PREFIX)
    if runs.empty or mcol not in runs.columns:
        return pd.DataFrame(columns=columns)
    y_all = _as_float(runs[mcol])
    keep = np.isfinite(y_all)
    sub, y = runs.loc[keep], y_all[keep]
    rows = []
    for name in param_names(runs):
        values = sub[PARAM_PREFIX + name]
        present = _present(values).to_numpy()
        if present.sum() < 3:
            rows.append((name, np.nan, "too few runs"))
            continue
        numeric = numeric_values(values)
        if numeric is not None:
            ok = np.isfinite(numeric)
            if ok.sum() < 3:
                rows.append((name, np.nan, "too few runs"))
            elif np.unique(numeric[ok]).size < 2:
                rows.append((name, 0.0, "constant"))
            elif np.unique(y[ok]).size < 2:
                rows.append((name, 0.0, "metric constant"))
            else:
                rho = stats.spearmanr(numeric[ok], y[ok]).statistic
                rows.append((name, float(abs(rho)) if np.isfinite(rho) else 0.0, "|Spearman ρ|"))
            continue
        cats = _categorical(values).to_numpy()
        n_cats = len(set(cats))
        if n_cats < 2:
            rows.append((name, 0.0, "constant"))
        elif n_cats == len(cats):
            continue  # a different value per run (an id or a path): not a setting to tune
        else:
            rows.append((name, _correlation_ratio(cats, y), "eta (correlation ratio)"))
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("importance", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _correlation_ratio(categories: np.ndarray, y: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    frame = pd.DataFrame({"c": categories, "y": y})
    groups = frame.groupby("c")["y"].agg(["mean", "size"])
    between = float((groups["size"] * (groups["mean"] - y.mean()) ** 2).sum())
    return float(np.sqrt(min(between / total, 1.0)))


IMPORTANCE_CAPTION = (
    "Importance = |Spearman rank correlation| between a numeric param and the metric, or the correlation ratio "
    "(eta) for categorical params; 0 = no relation, 1 = the param alone orders the runs. Computed over the runs "
    "shown, so with few runs it is a hint, not a verdict."
)


def param_importance_figure(importance: pd.DataFrame, metric: str = "") -> go.Figure:
    """Horizontal bars of :func:`param_importance`, most important at the top; params without a score and
    constant params (nothing to learn from them) omitted."""
    data = importance.dropna(subset=["importance"]) if not importance.empty else importance
    data = data[data["method"] != "constant"] if not data.empty else data
    if data.empty:
        return empty_figure("Not enough runs with varying params to estimate importance (need 3+)")
    data = data.iloc[::-1]  # plotly draws horizontal bars bottom-up
    fig = go.Figure(
        go.Bar(
            x=data["importance"],
            y=[plotly_text(p) for p in data["param"]],
            orientation="h",
            customdata=data["method"],
            hovertemplate="%{y}: %{x:.3f}<br>%{customdata}<extra></extra>",
        )
    )
    fig.update_xaxes(range=[0, 1], title_text="importance (0..1)")
    fig.update_layout(title=f"Param importance for {plotly_text(metric)}" if metric else "Param importance",
                      height=max(250, 28 * len(data) + 120))  # fmt: skip
    return fig


# --------------------------------------------------------------------------------------------------- tables


def lineage_warning(runs: pd.DataFrame) -> str | None:
    """A message when the runs were not evaluated on the same data (different dataset digest or split), since
    their metrics are then not comparable; None when they agree or there is nothing to compare."""
    if len(runs) < 2:
        return None
    problems = []
    for name in LINEAGE_PARAMS:
        candidates = [PARAM_PREFIX + name] + (["dataset_digest"] if name == "dataset_digest" else [])
        candidates += ["dataset_name"] if name == "dataset_name" else []
        series = None
        for col in candidates:
            if col in runs.columns and _present(runs[col]).any():
                series = runs[col]
                break
        if series is None:
            continue
        values = series[_present(series)].astype(str).str.strip()
        distinct = sorted(values.unique())
        if len(distinct) > 1:
            shown = ", ".join(v[:12] for v in distinct[:4]) + (", …" if len(distinct) > 4 else "")
            problems.append(f"{name} differs ({shown})")
        elif name == "dataset_digest" and len(values) < len(runs):
            problems.append(f"{len(runs) - len(values)} of {len(runs)} runs have no recorded dataset")
    if not problems:
        return None
    return (
        "These runs may not have been evaluated on the same data, so their metrics are not directly comparable: "
        + "; ".join(problems)
        + "."
    )


def param_diff_table(runs: pd.DataFrame, run_labels: Mapping[str, str]) -> pd.DataFrame:
    """Params whose value differs between the runs: one row per param, one column per run (its label)."""
    ids = runs["run_id"].astype(str).tolist() if not runs.empty else []
    columns = [run_labels.get(r, r[:8]) for r in ids]
    rows = {}
    for name in param_names(runs):
        values = _categorical(runs[PARAM_PREFIX + name]).str.strip()
        numeric = numeric_values(runs[PARAM_PREFIX + name])
        # "0.1" and "0.10" are the same setting
        key = values if numeric is None else pd.Series(numeric).astype(str).where(~np.isnan(numeric), MISSING)
        if key.nunique() > 1:
            rows[name] = values.tolist()
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns) if rows else pd.DataFrame(columns=columns)
    table.index.name = "param"
    return table


def comparison_table(
    runs: pd.DataFrame, params: Sequence[str], metrics: Sequence[str], run_labels: Mapping[str, str]
) -> pd.DataFrame:
    """One row per run with its label, id, experiment, status, the chosen params and metrics (CSV export)."""
    base = ["run_id", "experiment", "status", "start_time"]
    pcols = [c for c in (_col(runs, p, PARAM_PREFIX) for p in params) if c in runs.columns]
    mcols = [c for c in (_col(runs, m, METRIC_PREFIX) for m in metrics) if c in runs.columns]
    out = runs[[c for c in base if c in runs.columns] + pcols + mcols].copy()
    for c in mcols:
        out[c] = _as_float(out[c])
    out.insert(0, "run", [run_labels.get(str(r), str(r)[:8]) for r in runs["run_id"]] if not runs.empty else [])
    return out.reset_index(drop=True)


def best_runs_per_experiment(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The best run of each experiment on ``metric`` (max, or min for loss/time-like metrics)."""
    col = _col(runs, metric, METRIC_PREFIX)
    columns = ["experiment", "run_name", "run_id", col.removeprefix(METRIC_PREFIX)]
    if runs.empty or col not in runs.columns:
        return pd.DataFrame(columns=columns)
    data = runs.assign(_v=_as_float(runs[col])).dropna(subset=["_v"])
    if data.empty:
        return pd.DataFrame(columns=columns)
    data = data.assign(run_name=run_names(data))
    data = data.sort_values("_v", ascending=lower_is_better(columns[-1]), kind="stable")
    best = data.groupby("experiment", sort=False).head(1)
    return best[["experiment", "run_name", "run_id", "_v"]].set_axis(columns, axis=1).reset_index(drop=True)


def top_runs(runs: pd.DataFrame, metric: str, n: int) -> pd.DataFrame:
    """The ``n`` best runs on ``metric`` (runs without a finite value excluded)."""
    col = _col(runs, metric, METRIC_PREFIX)
    if runs.empty or col not in runs.columns:
        return runs.iloc[0:0]
    values = pd.Series(_as_float(runs[col]), index=runs.index).dropna()
    order = values.sort_values(ascending=lower_is_better(col.removeprefix(METRIC_PREFIX)), kind="stable").index
    return runs.loc[order[: max(int(n), 0)]]


def run_ui_links(runs: pd.DataFrame, ui_url: str) -> pd.Series:
    """Links to each run in the MLflow UI at ``ui_url`` (e.g. http://localhost:5000)."""
    base = ui_url.rstrip("/")
    return pd.Series(
        [f"{base}/#/experiments/{e}/runs/{r}" for e, r in zip(runs["experiment_id"], runs["run_id"], strict=True)],
        index=runs.index,
        dtype=object,
    )


def default_run_columns(runs: pd.DataFrame) -> list[str]:
    """Columns the run table shows before the user picks: identity, status, time and the key metrics."""
    base = [c for c in ("run_name", "experiment", "status", "start_time", "duration_s") if c in runs.columns]
    metrics = metric_names(runs)
    candidates = [m for m in metrics if m.startswith(("val_", "test_")) and "baseline" not in m]
    # ranking quality first (ndcg, recall, ...), in the order of _PREFERRED_METRICS; then the rest alphabetically
    rank = {
        m: next((i for i, p in enumerate(_PREFERRED_METRICS) if m.startswith(p)), len(_PREFERRED_METRICS))
        for m in candidates
    }
    preferred = sorted(candidates, key=lambda m: rank[m])
    params = [p for p in ("loss", "factors", "learning_rate") if PARAM_PREFIX + p in runs.columns]
    return base + [PARAM_PREFIX + p for p in params] + [METRIC_PREFIX + m for m in preferred[:4]]
