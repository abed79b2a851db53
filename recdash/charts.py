"""Figures and tables for the Home, Runs and Compare pages: pure functions over the runs frame of
:mod:`recdash.tracking` (``params.<name>`` as strings, ``metrics.<name>`` as floats, ``tags.<name>``) and its metric
histories (run_id, key, step, timestamp in ms, value).

Every figure takes a :class:`recdash.comparison.RunStyle`, so a run has the same colour, label and hover text in all
of them, and draws runs evaluated on different data (different :func:`recdash.comparison.data_groups`) apart: one
facet per group, "best" only within a group. Nothing here imports Streamlit, so every figure is tested on hand-made
frames; every function tolerates what real stores contain: runs without metrics, NaN/inf, params logged as strings
that look like numbers, runs from other tools, a single run, no runs, and hundreds of runs.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recdash import comparison as cmp
from recdash.comparison import METRIC, MISSING, PARAM, RunStyle, as_float
from recdash.model import HYPERPARAMS
from recdash.tracking import run_label

TAG_PREFIX = "tags."
PARAM_PREFIX = PARAM
METRIC_PREFIX = METRIC

# Above this many points a line/scatter trace is drawn with WebGL (go.Scattergl); below it SVG is crisper and does
# not use up one of the few WebGL contexts a browser tab allows.
WEBGL_MIN_POINTS = 200
# Grouped bars stop being readable long before this; the figure says how many runs it left out.
MAX_BAR_RUNS = 30
# A legend longer than this is noise: hover names the run instead.
MAX_LEGEND_RUNS = 20
BASELINE_PREFIX = "baseline_"
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")

_LOG_NAME = re.compile(r"(^|_)(lr|learning_rate|rate|alpha|beta|sigma|lambda|reg|l1|l2|decay|weight_decay|eps)($|_)")
_LOWER_IS_BETTER = re.compile(r"loss|error|rmse|mae|mse|seconds|(^|_)time|duration|popularity|perplexity")
_PREFERRED_METRICS = ("val_ndcg_at_", "test_ndcg_at_", "val_recall_at_", "test_recall_at_", "val_", "test_")


# --------------------------------------------------------------------------------------------------- helpers


def param_names(runs: pd.DataFrame) -> list[str]:
    """Param names (without the ``params.`` prefix) present in ``runs``, sorted."""
    return cmp.param_names(runs)


def metric_names(runs: pd.DataFrame) -> list[str]:
    """Metric names (without the ``metrics.`` prefix) that at least one run has a finite value for, sorted."""
    names = []
    for c in runs.columns:
        if str(c).startswith(METRIC) and np.isfinite(as_float(runs[c])).any():
            names.append(c[len(METRIC) :])
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
    return bool(_LOWER_IS_BETTER.search(metric.removeprefix(METRIC).lower()))


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


def _col(name: str, prefix: str) -> str:
    """Column name of a param/metric given with or without its prefix."""
    return name if name.startswith(prefix) else prefix + name


def numeric_values(values: pd.Series) -> np.ndarray | None:
    """The values as floats if every logged one parses as a number (params are stored as strings), else None.

    Missing and non-finite values become NaN; a column with nothing logged is not numeric.
    """
    present = values.notna() & (values.astype(str).str.strip() != "")
    if not present.any():
        return None
    parsed = pd.to_numeric(values[present].astype(str).str.strip(), errors="coerce")
    if parsed.isna().any():
        return None  # "inf"/"nan" parse as numbers; anything else (e.g. "warp", "None") makes it categorical
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
    bare = name.removeprefix(PARAM)
    spec = HYPERPARAMS.get(bare)
    if spec is not None:
        return bool(spec.log)
    return bool(_LOG_NAME.search(bare.lower()))


def _categorical(values: pd.Series) -> pd.Series:
    present = values.notna() & (values.astype(str).str.strip() != "")
    return values.where(present, MISSING).astype(str)


def _scatter_type(n_points: int) -> str:
    return "scattergl" if n_points >= WEBGL_MIN_POINTS else "scatter"


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank (no data, metric missing...)."""
    fig = go.Figure()
    fig.add_annotation(text=plotly_text(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=250)
    return fig


class _Builder:
    """Collects a figure's traces, shapes and annotations and makes it once, one facet row per data group.

    Plotly validates the whole layout again on every add_trace/add_shape/add_annotation: building a 100-run page
    that way spent seconds in validation. Traces are plain dicts, validated once when the figure is made."""

    def __init__(self, groups: Sequence[str]) -> None:
        self.groups = list(groups) or ["all runs"]
        self.traces: list[dict] = []
        self.rows: list[int] = []
        self.shapes: list[dict] = []
        self.annotations: list[dict] = []

    def row(self, group: str | None) -> int:
        return self.groups.index(group) + 1 if group in self.groups else 1

    def axes(self, group: str | None) -> tuple[str, str]:
        """The x and y axis names of a group's facet (for shapes and annotations placed in data coordinates)."""
        row = self.row(group)
        suffix = "" if row == 1 or len(self.groups) == 1 else str(row)
        return f"x{suffix}", f"y{suffix}"

    def trace(self, trace: dict, group: str | None = None) -> None:
        self.traces.append(trace)
        self.rows.append(self.row(group))

    def level(
        self, group: str | None, i: int, x: str, value: float, name: str, line: dict, legendgroup: str, legend: bool
    ) -> None:
        """A line across category ``i``'s bars at ``value`` (a baseline or a reference model), with a marker that
        carries its legend entry and hover."""
        xref, yref = self.axes(group)
        self.shapes.append(dict(type="line", x0=i - 0.45, x1=i + 0.45, y0=value, y1=value, xref=xref, yref=yref,
                                line={**line, "width": 2}))  # fmt: skip
        self.trace(
            dict(type="scatter", x=[x], y=[value], mode="markers", name=name, legendgroup=legendgroup,
                 showlegend=legend, marker={"symbol": "line-ew-open", "size": 18, "color": line["color"]},
                 hovertemplate=f"{name}<br>{x}: %{{y:.4g}}<extra></extra>"),
            group,
        )  # fmt: skip

    def figure(self, height_each: int = 320, **layout: object) -> go.Figure:
        if len(self.groups) == 1:
            base = {"height": height_each + 100, "shapes": self.shapes, "annotations": self.annotations}
            return go.Figure(data=self.traces, layout={**base, **layout})
        fig = make_subplots(
            rows=len(self.groups),
            cols=1,
            shared_xaxes=True,
            vertical_spacing=min(0.12, 0.4 / len(self.groups)),
            subplot_titles=[plotly_text(g) for g in self.groups],
        )
        titles = [
            {**a.to_plotly_json(), "font": {"size": 12}, "xanchor": "left", "x": 0} for a in fig.layout.annotations
        ]
        fig.add_traces(self.traces, rows=self.rows, cols=[1] * len(self.traces))
        fig.update_layout(
            height=height_each * len(self.groups) + 100, shapes=self.shapes, annotations=titles + self.annotations,
            **layout,
        )  # fmt: skip
        return fig


def selection_figure(style: RunStyle, run_ids: Sequence[str], per_row: int = 4) -> go.Figure:
    """The selected runs as a colour key: each run's colour next to its label, as every chart will draw it."""
    rows = max(1, math.ceil(len(run_ids) / per_row))
    trace = dict(
        type="scatter", x=[i % per_row for i in range(len(run_ids))], y=[-(i // per_row) for i in range(len(run_ids))],
        mode="markers+text", text=[plotly_text(style.label(r)) for r in run_ids], textposition="middle right",
        marker={"size": 14, "color": [style.color(r) for r in run_ids]}, cliponaxis=False, showlegend=False,
        hovertext=[plotly_text(style.hover.get(r, r)) for r in run_ids], hoverinfo="text",
    )  # fmt: skip
    fig = go.Figure(data=[trace])
    fig.update_xaxes(visible=False, range=[-0.1, per_row])
    fig.update_yaxes(visible=False, range=[-rows + 0.5, 0.5])
    fig.update_layout(height=30 * rows + 30, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# --------------------------------------------------------------------------------------------------- histories


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


def single_step(histories: pd.DataFrame, key: str) -> bool:
    """True when no run logged ``key`` at more than one step: a value per run, which bars show, not lines."""
    data = histories[histories["key"] == key] if not histories.empty else histories
    return data.empty or bool((data.groupby("run_id")["step"].nunique() <= 1).all())


def _x_values(run: pd.DataFrame, x: str) -> np.ndarray:
    if x == "step":
        return run["step"].to_numpy()
    if x == "wall_time":
        return pd.to_datetime(run["timestamp"], unit="ms", utc=True).to_numpy()
    return (run["timestamp"].to_numpy(dtype=float) - float(run["timestamp"].min())) / 1000.0


def metric_history_figure(
    histories: pd.DataFrame,
    key: str,
    style: RunStyle,
    x: str = "step",
    smoothing: float = 0.0,
    configs: Mapping[str, str] | None = None,
    references: pd.DataFrame | None = None,
) -> go.Figure:
    """One line per run of metric ``key`` against step, wall time or time since the run's first point, in the run's
    colour, one facet per data group. With ``smoothing`` > 0 the smoothed line is drawn over a faint raw line, as
    TensorBoard does. With ``configs`` (run id -> configuration label) each configuration is drawn as its mean
    over its runs with a ±1 std band instead (steps aligned; x must be "step"). ``references`` on the same data
    that logged ``key`` (closed-form models log it once) are grey horizontal lines across their facet."""
    if x not in ("step", "wall_time", "relative_time"):
        raise ValueError("x must be 'step', 'wall_time' or 'relative_time'")
    data = histories[histories["key"] == key] if not histories.empty else histories
    if data.empty:
        return empty_figure(f"No history logged for {key}")
    data = data.assign(value=as_float(data["value"])).dropna(subset=["value"])
    if data.empty:
        return empty_figure(f"No finite values logged for {key}")
    by_run = dict(tuple(data.groupby("run_id", sort=False)))
    order = [r for r in style.labels if r in by_run] + sorted(set(by_run) - set(style.labels))
    build = _Builder(style.group_names(order))
    if configs is not None:
        _history_bands(build, by_run, order, style, configs, smoothing)
        legend = {"legend_title_text": "configuration: mean ± std"}
    else:
        trace_type = _scatter_type(len(data))
        for run_id in order:
            run = by_run[run_id].sort_values(["step", "timestamp"])
            xs, ys = _x_values(run, x), run["value"].to_numpy(dtype=float)
            name, color = plotly_text(style.label(run_id)), style.color(run_id)
            group = style.groups.get(run_id)
            mode = "lines+markers" if len(run) <= 50 and len(order) <= MAX_LEGEND_RUNS else "lines"
            hover = plotly_text(style.hover.get(run_id, run_id))
            if smoothing > 0:
                build.trace(
                    dict(type=trace_type, x=xs, y=ys, mode="lines", name=name, legendgroup=run_id, showlegend=False,
                         line={"color": color, "width": 1}, opacity=0.3, hoverinfo="skip"), group,
                )  # fmt: skip
                ys = ema(ys, smoothing)
            build.trace(
                dict(type=trace_type, x=xs, y=ys, mode=mode, name=name, legendgroup=run_id, line={"color": color},
                     hovertemplate=f"{hover}<br>%{{x}}: %{{y:.4g}}<extra></extra>"), group,
            )  # fmt: skip
        legend = {"showlegend": len(order) <= MAX_LEGEND_RUNS, "legend_title_text": "run"}
    _reference_lines(build, references, key)
    fig = build.figure(title=plotly_text(key), hovermode="closest", **legend)
    titles = {"step": "step", "wall_time": "wall time (UTC)", "relative_time": "seconds since first point"}
    fig.update_xaxes(title_text=titles[x], row=len(build.groups) if len(build.groups) > 1 else None)
    fig.update_yaxes(title_text=plotly_text(key))
    return fig


def _reference_lines(build: _Builder, references: pd.DataFrame | None, key: str) -> None:
    """A grey line across the whole facet at each reference's final ``key``, labelled at its right end."""
    if references is None or references.empty or METRIC + key not in references.columns:
        return
    models = references["reference"].astype(str).tolist()
    for _, ref in references.iterrows():
        group = ref["data"] if len(build.groups) > 1 else build.groups[0]
        value = as_float(pd.Series([ref[METRIC + key]]))[0]
        if group not in build.groups or not np.isfinite(value):
            continue
        model = str(ref["reference"])
        color, dash = reference_style(model, models)
        xref, yref = build.axes(group)
        build.shapes.append(dict(type="line", x0=0, x1=1, y0=value, y1=value, xref=f"{xref} domain", yref=yref,
                                 line={"color": color, "dash": dash, "width": 2}))  # fmt: skip
        build.annotations.append(dict(x=1, y=value, xref=f"{xref} domain", yref=yref, xanchor="right",
                                      yanchor="bottom", showarrow=False, font={"size": 11, "color": color},
                                      text=plotly_text(f"reference {model}: {value:.4g}")))  # fmt: skip


def _history_bands(
    build: _Builder,
    by_run: Mapping[str, pd.DataFrame],
    order: Sequence[str],
    style: RunStyle,
    configs: Mapping[str, str],
    smoothing: float,
) -> None:
    """Mean ± std per (data group, configuration) over aligned steps, with n in the legend."""
    members: dict[tuple[str | None, str], list[str]] = {}
    for run_id in order:
        members.setdefault((style.groups.get(run_id), configs.get(run_id, "all runs")), []).append(run_id)
    colors = style.config_colors_of(configs)
    for (group, config), run_ids in members.items():
        wide = pd.concat([by_run[r].groupby("step")["value"].last().rename(r) for r in run_ids], axis=1).sort_index()
        if smoothing > 0:
            wide = wide.apply(lambda col: pd.Series(ema(col.to_numpy(dtype=float), smoothing), index=col.index))
        mean = wide.mean(axis=1)
        std = wide.std(axis=1, ddof=1).fillna(0.0)
        n = wide.notna().sum(axis=1)
        color = colors.get(config, "#888888")
        name = plotly_text(f"{config} (n={len(run_ids)})")
        steps = mean.index.to_numpy()
        build.trace(
            dict(type="scatter", x=np.concatenate([steps, steps[::-1]]),
                 y=np.concatenate([(mean + std), (mean - std)[::-1]]), mode="lines", fill="toself",
                 fillcolor=_rgba(color, 0.18), line={"width": 0}, hoverinfo="skip", legendgroup=f"{group}/{config}",
                 showlegend=False), group,
        )  # fmt: skip
        build.trace(
            dict(type="scatter", x=steps, y=mean.to_numpy(), mode="lines+markers", name=name, line={"color": color},
                 legendgroup=f"{group}/{config}", customdata=np.stack([std.to_numpy(), n.to_numpy()], axis=1),
                 hovertemplate=f"{name}<br>step %{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}} "
                 "(n=%{customdata[1]})<extra></extra>"), group,
        )  # fmt: skip


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# --------------------------------------------------------------------------------------------------- final values


def baseline_metric(metric: str) -> str | None:
    """The popularity baseline recdash logs next to a test metric (``test_x`` -> ``baseline_test_x``)."""
    name = metric.removeprefix(METRIC)
    return None if name.startswith(BASELINE_PREFIX) or not name.startswith("test_") else BASELINE_PREFIX + name


def metric_bars_figure(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    style: RunStyle,
    max_runs: int = MAX_BAR_RUNS,
    baselines: bool = True,
    references: pd.DataFrame | None = None,
) -> go.Figure:
    """Final metric values as grouped bars (one group per metric, one bar per run, in the run's colour), one facet
    per data group; the best run of each metric *within its data group* is outlined and marked "★ best"; each
    run's popularity baseline (``baseline_test_*``) is drawn as a dashed line across its metric, and the reference
    runs on the same data (:func:`recdash.comparison.references_for`) as dotted grey lines."""
    cols = [c for c in (_col(m, METRIC) for m in metrics) if c in runs.columns]
    if runs.empty or not cols:
        return empty_figure("No metrics to compare")
    names = [c.removeprefix(METRIC) for c in cols]
    shown = runs.head(max_runs)
    ids = shown["run_id"].astype(str).tolist()
    build = _Builder(style.group_names(ids))
    group_of = pd.Series([style.groups.get(r) for r in runs["run_id"].astype(str)], index=runs.index)
    best = {n: cmp.best_in_groups(runs, n, group_of, lower_is_better(n)) for n in names}
    x = [plotly_text(n) for n in names]
    values = np.column_stack([as_float(shown[c]) for c in cols])
    for i, run_id in enumerate(ids):
        group = style.groups.get(run_id)
        is_best = [best[n].get(group) == run_id for n in names]
        hover = plotly_text(style.hover.get(run_id, run_id))
        build.trace(
            dict(
                type="bar", x=x, y=values[i], name=plotly_text(style.label(run_id)), legendgroup=run_id,
                marker={"color": style.color(run_id), "line": {"width": [3 if b else 0 for b in is_best],
                                                                "color": "black"}},
                text=["★ best" if b else "" for b in is_best], textposition="outside",
                hovertemplate=f"{hover}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
            ),
            group,
        )  # fmt: skip
    if baselines:
        _baseline_marks(build, runs, names, group_of)
    _reference_marks(build, references, names)
    title = "Final metrics (★ = best run of each metric on the same data)"
    if len(runs) > max_runs:
        title += f"; first {max_runs} of {len(runs)} runs shown"
    return build.figure(barmode="group", title=title, showlegend=len(ids) <= MAX_LEGEND_RUNS, legend_title_text="run")


def _baseline_marks(build: _Builder, runs: pd.DataFrame, names: Sequence[str], group_of: pd.Series) -> None:
    """A dashed line across each metric's bars at the popularity baseline of the runs' data (one per group)."""
    shown_legend = False
    for group in build.groups:
        members = runs.loc[group_of == group] if len(build.groups) > 1 else runs
        for i, name in enumerate(names):
            base = baseline_metric(name)
            if base is None or METRIC + base not in members.columns:
                continue
            values = as_float(members[METRIC + base])
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            value = float(np.median(values))  # the same for every run on the same data and split
            build.level(group, i, plotly_text(name), value, "popularity baseline", {"color": "black", "dash": "dash"},
                        "baseline", not shown_legend)  # fmt: skip
            shown_legend = True


# Reference models are drawn in greys, apart from the runs' colours: a reference is a yardstick, not a contender.
REFERENCE_STYLES = (("#555555", "dot"), ("#999999", "dashdot"), ("#333333", "longdash"), ("#777777", "dash"))


def reference_style(name: str, names: Sequence[str]) -> tuple[str, str]:
    """The grey and dash of reference model ``name`` among ``names`` (sorted, so it is stable across charts)."""
    order = sorted(set(names))
    return REFERENCE_STYLES[order.index(name) % len(REFERENCE_STYLES)] if name in order else REFERENCE_STYLES[0]


def _reference_marks(
    build: _Builder, references: pd.DataFrame | None, names: Sequence[str], x: Sequence[str] | None = None
) -> None:
    """A line across each category's bars at each reference model's value, in the facet of its data group.
    ``names`` are the metrics looked up; ``x`` the categories they are drawn at (default: the metric names)."""
    if references is None or references.empty:
        return
    x = list(x) if x is not None else [plotly_text(n) for n in names]
    models = references["reference"].astype(str).tolist()
    in_legend: set[str] = set()
    for _, ref in references.iterrows():
        group = ref["data"] if len(build.groups) > 1 else build.groups[0]
        if group not in build.groups:
            continue
        model = str(ref["reference"])
        color, dash = reference_style(model, models)
        for i, name in enumerate(names):
            value = as_float(pd.Series([ref.get(METRIC + name)]))[0]
            if not np.isfinite(value):
                continue
            build.level(group, i, x[i], value, plotly_text(f"reference: {model}"), {"color": color, "dash": dash},
                        f"reference {model}", model not in in_legend)  # fmt: skip
            in_legend.add(model)


def segment_bars_figure(
    runs: pd.DataFrame, base: str, style: RunStyle, references: pd.DataFrame | None = None, max_runs: int = MAX_BAR_RUNS
) -> go.Figure:
    """``base`` (e.g. test_recall_at_10) per user-activity quartile as grouped bars, one bar per run in its colour,
    one facet per data group, with the references on the same data as grey lines: for which users a model wins."""
    names = cmp.segment_metrics(runs, base)
    if runs.empty or not names:
        return empty_figure(f"No run logged {base} per user-activity quartile")
    labels = {"q1": "q1 (least active)", "q4": "q4 (most active)"}
    x = [labels.get(n.rsplit("_", 1)[-1], n.rsplit("_", 1)[-1]) for n in names]
    shown = runs.head(max_runs)
    ids = shown["run_id"].astype(str).tolist()
    build = _Builder(style.group_names(ids))
    values = np.column_stack([as_float(shown[METRIC + n]) for n in names])
    for i, run_id in enumerate(ids):
        hover = plotly_text(style.hover.get(run_id, run_id))
        build.trace(
            dict(type="bar", x=x, y=values[i], name=plotly_text(style.label(run_id)), legendgroup=run_id,
                 marker={"color": style.color(run_id)}, hovertemplate=f"{hover}<br>%{{x}}: %{{y:.4g}}<extra></extra>"),
            style.groups.get(run_id),
        )  # fmt: skip
    _reference_marks(build, references, names, x)
    title = f"{base} by user activity (quartiles of training interactions)"
    if len(runs) > max_runs:
        title += f"; first {max_runs} of {len(runs)} runs shown"
    fig = build.figure(barmode="group", title=plotly_text(title), showlegend=len(ids) <= MAX_LEGEND_RUNS,
                       legend_title_text="run")  # fmt: skip
    fig.update_yaxes(title_text=plotly_text(base))
    return fig


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
        lower = lower_is_better(key)
        rows[f"× best reference ({key})"] = cmp.reference_ratio(runs, groups, references, key, lower).to_numpy()
        refs[f"× best reference ({key})"] = cmp.reference_ratio(
            references, references["data"], references, key, lower
        ).to_numpy()
    out = pd.concat([rows, refs], ignore_index=True)
    return out[[c for c in out.columns if c != "data"] + ["data"]]  # the long data name last: numbers stay in view


def beyond_accuracy_table(
    runs: pd.DataFrame, groups: pd.Series, references: pd.DataFrame, style: RunStyle
) -> pd.DataFrame:
    """Novelty, Gini, long-tail shares, personalization and intra-list diversity of each run and reference (the
    ones any of them logged); definitions in docs/metrics.md."""
    names = [n for n in cmp.BEYOND_ACCURACY if METRIC + n in runs.columns or METRIC + n in references.columns]
    out = reference_table(runs, groups, references, [], style)
    for name in names:
        out[name] = np.concatenate(
            [
                as_float(frame[METRIC + name]) if METRIC + name in frame.columns else np.full(len(frame), np.nan)
                for frame in (runs, references)
            ]
        )
    return out[[c for c in out.columns if c != "data"] + ["data"]]


def config_bars_figure(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    runs: pd.DataFrame,
    style: RunStyle,
    configs: Mapping[str, str],
    references: pd.DataFrame | None = None,
) -> go.Figure:
    """Mean of each metric per configuration with ±1 std error bars and n, one facet per data group, and the
    popularity baseline of each group's runs as a dashed line. ``summary`` is :func:`recdash.comparison.aggregate`
    output with a ``data`` column (the data group); ``configs`` maps run id -> configuration (for its colour)."""
    names = [m.removeprefix(METRIC) for m in metrics if f"{m.removeprefix(METRIC)} mean" in summary.columns]
    counted = summary[[f"{n} n" for n in names]].sum(axis=1) > 0 if names else summary.index == summary.index
    summary = summary[counted]  # a configuration without any of these metrics (a sweep's parent) has no bar
    if summary.empty or not names:
        return empty_figure("No metrics to summarise")
    build = _Builder([g for g in style.group_names() if g in set(summary["data"])])
    colors = style.config_colors_of(configs)
    x = [plotly_text(n) for n in names]
    in_legend: set[str] = set()
    for _, row in summary.iterrows():
        config = row["group"]
        means = [row[f"{n} mean"] for n in names]
        stds = [row[f"{n} std"] if np.isfinite(row[f"{n} std"]) else 0.0 for n in names]
        counts = [int(row[f"{n} n"]) for n in names]
        build.trace(
            dict(type="bar", x=x, y=means, name=plotly_text(config), legendgroup=config,
                 marker={"color": colors.get(config, "#888888")}, showlegend=config not in in_legend,
                 error_y={"type": "data", "array": stds, "visible": True}, text=[f"n={n}" for n in counts],
                 textposition="inside", insidetextanchor="start", customdata=np.stack([stds, counts], axis=1),
                 hovertemplate=f"{plotly_text(config)}<br>%{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}} "
                 "(n=%{customdata[1]})<extra></extra>"),
            row["data"],
        )  # fmt: skip
        in_legend.add(config)
    group_of = pd.Series([style.groups.get(r) for r in runs["run_id"].astype(str)], index=runs.index)
    _baseline_marks(build, runs, names, group_of)
    _reference_marks(build, references, names)
    return build.figure(barmode="group", title="Mean ± std per configuration (n = runs)",
                        legend_title_text="configuration")  # fmt: skip


def summary_table(summary: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``aggregate`` output as text a person reads: "0.2431 ± 0.0021 (n=3)" per metric and configuration."""
    out = summary[["data", "group"]].rename(columns={"group": "configuration"}).copy()
    for metric in metrics:
        name = metric.removeprefix(METRIC)
        if f"{name} mean" not in summary.columns:
            continue
        cells = []
        for mean, std, n in zip(summary[f"{name} mean"], summary[f"{name} std"], summary[f"{name} n"], strict=True):
            if not n:
                cells.append("–")
            elif n == 1 or not np.isfinite(std):
                cells.append(f"{mean:.4f} (n=1)")
            else:
                cells.append(f"{mean:.4f} ± {std:.4f} (n={n})")
        out[name] = cells
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- params


def _axis(name: str, values: pd.Series, allow_log: bool = True) -> tuple[np.ndarray, list[float], list[str], str]:
    """A parallel-coordinates axis: positions in [0, 1] (missing just below), tick positions and labels, title;
    rate-like params on a log scale (never the metric: its differences are what the chart is for)."""
    numeric = numeric_values(values)
    if numeric is None:
        cats = _categorical(values)
        labels = sorted(cats.unique(), key=lambda s: (s == MISSING, s))
        step = 1.0 / max(len(labels) - 1, 1)
        pos = {label: (i * step if len(labels) > 1 else 0.5) for i, label in enumerate(labels)}
        shown = labels if len(labels) <= 8 else labels[:: math.ceil(len(labels) / 8)]  # never crowd the ticks
        return cats.map(pos).to_numpy(dtype=float), [pos[s] for s in shown], [plotly_text(s) for s in shown], name
    finite = numeric[np.isfinite(numeric)]
    log = allow_log and finite.size > 0 and use_log_axis(name, numeric) and finite.min() != finite.max()
    scaled = np.log10(numeric) if log else numeric.copy()
    lo, hi = (np.nanmin(scaled), np.nanmax(scaled)) if finite.size else (0.0, 1.0)
    span = hi - lo
    pos = (scaled - lo) / span if span > 0 else np.where(np.isfinite(scaled), 0.5, np.nan)
    ticks = np.linspace(0, 1, 5) if span > 0 else np.array([0.5])
    labels = [f"{(10 ** (lo + t * span)) if log else (lo + t * span):.3g}" for t in ticks]
    if np.isnan(pos).any():
        pos = np.where(np.isnan(pos), -0.12, pos)
        ticks, labels = np.concatenate([[-0.12], ticks]), [MISSING, *labels]
    return pos, list(ticks), labels, f"{name} (log)" if log else name


def parallel_coordinates_figure(runs: pd.DataFrame, params: Sequence[str], metric: str, style: RunStyle) -> go.Figure:
    """One axis per param plus the metric; each run is one line in its own colour, with the run and its values on
    hover (plotly's Parcoords can do neither). Categorical params are spread evenly, rate-like params are on a log
    scale, missing values sit just below their axis; runs on different data get different dashes."""
    mcol = _col(metric, METRIC)
    if runs.empty or mcol not in runs.columns:
        return empty_figure("No runs with this metric")
    y_metric = as_float(runs[mcol])
    keep = np.isfinite(y_metric)
    if not keep.any():
        return empty_figure(f"No run has a finite {metric.removeprefix(METRIC)}")
    sub = runs.loc[keep]
    columns = [(p.removeprefix(PARAM), sub[_col(p, PARAM)]) for p in params if _col(p, PARAM) in sub.columns]
    columns.append((mcol.removeprefix(METRIC), sub[mcol]))
    axes = [_axis(name, values, allow_log=i < len(columns) - 1) for i, (name, values) in enumerate(columns)]
    raw = [_categorical(values).tolist() for _, values in columns[:-1]] + [[f"{v:.4g}" for v in y_metric[keep]]]
    ids = sub["run_id"].astype(str).tolist()
    groups = style.group_names(ids) or ["all runs"]
    xs = list(range(len(axes)))
    traces, shapes, annotations = [], [], []
    mode = "lines+markers" if len(ids) <= MAX_LEGEND_RUNS else "lines"  # 100 runs' markers only cost drawing time
    for i, run_id in enumerate(ids):
        values = [plotly_text(r[i]) for r in raw]
        hover = plotly_text(style.hover.get(run_id, run_id))
        dash = _DASHES[groups.index(style.groups.get(run_id, groups[0])) % len(_DASHES)]
        traces.append(
            dict(type="scatter", x=xs, y=[axis[0][i] for axis in axes], mode=mode,
                 name=plotly_text(style.label(run_id)), legendgroup=run_id, marker={"size": 6},
                 line={"color": style.color(run_id), "width": 2, "dash": dash},
                 customdata=[[plotly_text(axes[j][3]), values[j]] for j in xs],
                 hovertemplate=f"{hover}<br>%{{customdata[0]}} = %{{customdata[1]}}<extra></extra>")
        )  # fmt: skip
    for j, (_, ticks, labels, title) in enumerate(axes):
        shapes.append(dict(type="line", x0=j, x1=j, y0=0, y1=1, line={"color": "#444", "width": 1}))
        annotations.append(dict(x=j, y=1.04, text=f"<b>{plotly_text(title)}</b>", showarrow=False, yanchor="bottom"))
        annotations += [
            dict(
                x=j, y=tick, text=label, showarrow=False, xanchor="right", xshift=-4, font={"size": 10, "color": "#555"}
            )
            for tick, label in zip(ticks, labels, strict=True)
        ]
    omitted = int((~keep).sum())
    title = f"Hyperparameters and {plotly_text(mcol.removeprefix(METRIC))}, one line per run"
    if omitted:
        title += f" ({omitted} run{'s' if omitted > 1 else ''} without the metric left out)"
    if len(groups) > 1:
        title += "; line dash = dataset/split"
    return go.Figure(
        data=traces,
        layout=dict(title=title, height=440, hovermode="closest", margin={"l": 40, "r": 20, "t": 90, "b": 10},
                    shapes=shapes, annotations=annotations, xaxis={"visible": False, "range": [-0.6, len(axes) - 0.6]},
                    yaxis={"visible": False, "range": [-0.2, 1.12]}, showlegend=len(ids) <= MAX_LEGEND_RUNS,
                    legend_title_text="run"),
    )  # fmt: skip


def param_scatter_figure(runs: pd.DataFrame, param: str, metric: str, style: RunStyle) -> go.Figure:
    """Metric against one param, one point per run in its colour with the run on hover (marker shape = data
    group); log x-axis for rates and regularisation; string params that look numeric treated as numbers."""
    pcol, mcol = _col(param, PARAM), _col(metric, METRIC)
    pname, mname = pcol.removeprefix(PARAM), mcol.removeprefix(METRIC)
    if runs.empty or pcol not in runs.columns or mcol not in runs.columns:
        return empty_figure(f"No runs with both {pname} and {mname}")
    y = as_float(runs[mcol])
    numeric = numeric_values(runs[pcol])
    keep = np.isfinite(y) & (np.isfinite(numeric) if numeric is not None else True)
    if not keep.any():
        return empty_figure(f"No run has both {pname} and a finite {mname}")
    xs = numeric if numeric is not None else _categorical(runs[pcol]).map(plotly_text).to_numpy(dtype=object)
    ids = runs["run_id"].astype(str).to_numpy()[keep]
    groups = style.group_names(ids) or ["all runs"]
    trace_type = _scatter_type(int(keep.sum()))
    hovers = [
        f"{plotly_text(style.hover.get(r, r))}<br>{plotly_text(pname)} = {xv if numeric is None else f'{xv:.4g}'}"
        f"<br>{plotly_text(mname)} = {yv:.4g}"
        for r, xv, yv in zip(ids, xs[keep], y[keep], strict=True)
    ]
    symbols = [_SYMBOLS[groups.index(style.groups.get(r, groups[0])) % len(_SYMBOLS)] for r in ids]
    if len(ids) <= MAX_LEGEND_RUNS:  # a legend entry per run: one trace each
        traces = [
            dict(type=trace_type, x=[xv], y=[yv], mode="markers", name=plotly_text(style.label(r)), legendgroup=r,
                 marker={"size": 11, "color": style.color(r), "symbol": symbol, "line": {"width": 1, "color": "white"}},
                 hovertext=[hover], hoverinfo="text")
            for r, xv, yv, symbol, hover in zip(ids, xs[keep], y[keep], symbols, hovers, strict=True)
        ]  # fmt: skip
    else:  # no legend (too many runs to read one): one trace, each point still in its run's colour with hover
        traces = [
            dict(type=trace_type, x=xs[keep], y=y[keep], mode="markers", showlegend=False, hovertext=hovers,
                 hoverinfo="text", marker={"size": 11, "color": [style.color(r) for r in ids], "symbol": symbols,
                                           "line": {"width": 1, "color": "white"}})
        ]  # fmt: skip
    log = numeric is not None and use_log_axis(pname, numeric[keep])
    title = f"{mname} vs {pname}" + ("; marker shape = dataset/split" if len(groups) > 1 else "")
    axis_type = "log" if log else ("category" if numeric is None else "linear")
    return go.Figure(
        data=traces,
        layout=dict(title=plotly_text(title), height=420, hovermode="closest", showlegend=len(ids) <= MAX_LEGEND_RUNS,
                    legend_title_text="run", xaxis={"title": {"text": plotly_text(pname)}, "type": axis_type},
                    yaxis={"title": {"text": plotly_text(mname)}}),
    )  # fmt: skip


def importance_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """Horizontal bars of :func:`recdash.comparison.importance`, most important at the top."""
    if frame.empty:
        return empty_figure("Not enough runs to estimate importance")
    data = frame.iloc[::-1]  # plotly draws horizontal bars bottom-up
    fig = go.Figure(
        go.Bar(x=data["importance"], y=[plotly_text(p) for p in data["param"]], orientation="h",
               hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    )  # fmt: skip
    fig.update_xaxes(range=[0, 1], title_text="share of the metric's variance (fANOVA)")
    fig.update_layout(
        title=f"Hyperparameter importance for {plotly_text(metric)}", height=max(250, 32 * len(data) + 120)
    )
    return fig


# --------------------------------------------------------------------------------------------------- tables


def param_diff_table(runs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Hyperparameters whose value differs between the runs: one row per param, one column per run (its label).
    Lineage params are left out: which data a run saw is shown by its data group, not as a setting."""
    ids = runs["run_id"].astype(str).tolist() if not runs.empty else []
    columns = [labels.get(r, r[:8]) for r in ids]
    shown = runs.copy()
    for idx, row in runs.iterrows():  # a sweep parent ran what it searched, not its form's base values
        for name, searched in cmp.search_space(row).items():
            if PARAM + name in shown.columns:
                shown.at[idx, PARAM + name] = f"searched {searched}"
    rows = {name: _categorical(shown[PARAM + name]).str.strip().tolist() for name in
            cmp.varying(shown, cmp.hyperparameters(shown))}  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns) if rows else pd.DataFrame(columns=columns)
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
    data = data.sort_values("_v", ascending=lower_is_better(columns[-1]), kind="stable")
    best = data.groupby(["experiment", "data"], sort=False, dropna=False).head(1)
    return best[["experiment", "data", "run_name", "run_id", "_v"]].set_axis(columns, axis=1).reset_index(drop=True)


def top_runs(runs: pd.DataFrame, metric: str, n: int) -> pd.DataFrame:
    """The ``n`` best runs on ``metric`` (runs without a finite value excluded); call it on one data group."""
    col = _col(metric, METRIC)
    if runs.empty or col not in runs.columns:
        return runs.iloc[0:0]
    values = pd.Series(as_float(runs[col]), index=runs.index).dropna()
    order = values.sort_values(ascending=lower_is_better(col), kind="stable").index
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
