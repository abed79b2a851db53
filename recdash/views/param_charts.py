"""The Compare page's hyperparameter views: parallel coordinates and the metric against one hyperparameter, one
facet per data group (a cold-users run's metric is never drawn on the same axis as a random split's), plus Optuna's
own plots of a sweep and the importance bars. Pure functions over the runs frame, like :mod:`recdash.views.charts`
(whose facet builder, axis helpers and legend they share)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from recdash.comparison import as_float
from recdash.contract import METRIC, MISSING, PARAM
from recdash.errors import UserError
from recdash.views.charts import (
    MAX_LEGEND_RUNS,
    _Builder,
    _categorical,
    _col,
    _scatter_type,
    empty_figure,
    legend_below,
    numeric_values,
    use_log_axis,
)
from recdash.views.style import RunStyle
from recdash.views.text import plotly_text

# A facet of the parallel coordinates spans [-0.2, 1.2] of its y units (missing values below 0, titles above 1).
FACET_SPAN = 1.75
TICK_CHARS = 14  # a categorical tick label longer than this is cut (hover shows the value in full)


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
        cut = [s if len(s) <= TICK_CHARS else s[: TICK_CHARS - 1] + "…" for s in shown]
        return cats.map(pos).to_numpy(dtype=float), [pos[s] for s in shown], [plotly_text(s) for s in cut], name
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
    scale, missing values sit just below their axis. Each data group is a facet of its own, with its own scales:
    runs on different data are never drawn on one axis. With many axes the titles alternate between two heights,
    so neighbours never overlap."""
    mcol = _col(metric, METRIC)
    if runs.empty or mcol not in runs.columns:
        return empty_figure("No runs with this metric")
    y_metric = as_float(runs[mcol])
    keep = np.isfinite(y_metric)
    if not keep.any():
        return empty_figure(f"No run has a finite {metric.removeprefix(METRIC)}")
    sub = runs.loc[keep]
    ids = sub["run_id"].astype(str).tolist()
    groups = style.group_names(ids) or ["all runs"]
    names = [p.removeprefix(PARAM) for p in params if _col(p, PARAM) in sub.columns]
    traces, shapes, annotations = [], [], []
    for facet, group in enumerate(groups):
        members = sub[[style.groups.get(r, groups[0]) == group for r in ids]] if len(groups) > 1 else sub
        offset = -facet * FACET_SPAN
        t, s, a = _parallel_facet(members, names, mcol, style, offset)
        traces += t
        shapes += s
        annotations += a
        if len(groups) > 1:
            annotations.append(dict(x=-0.55, y=offset + 1.3, text=plotly_text(group), showarrow=False,
                                    xanchor="left", yanchor="bottom", font={"size": 12, "color": "#555"}))  # fmt: skip
    omitted = int((~keep).sum())
    title = f"Hyperparameters and {plotly_text(mcol.removeprefix(METRIC))}, one line per run"
    if omitted:
        title += f" ({omitted} run{'s' if omitted > 1 else ''} without the metric left out)"
    if len(groups) > 1:
        title += "; one panel per dataset/split"
    showlegend = len(ids) <= MAX_LEGEND_RUNS
    legend, legend_height = legend_below([plotly_text(style.label(r)) for r in ids])
    n_axes = len(names) + 1
    return go.Figure(
        data=traces,
        layout=dict(title=title, height=400 + 360 * (len(groups) - 1) + (legend_height if showlegend else 0),
                    hovermode="closest", margin={"l": 40, "r": 20, "t": 110, "b": 10}, shapes=shapes,
                    annotations=annotations, xaxis={"visible": False, "range": [-0.6, n_axes - 0.6]},
                    yaxis={"visible": False, "range": [-(len(groups) - 1) * FACET_SPAN - 0.2, 1.22 if len(groups) == 1
                                                        else 1.42]},
                    showlegend=showlegend, legend=legend),
    )  # fmt: skip


def _parallel_facet(
    runs: pd.DataFrame, names: Sequence[str], mcol: str, style: RunStyle, offset: float
) -> tuple[list[dict], list[dict], list[dict]]:
    """The traces, axis lines and labels of one data group's parallel coordinates, ``offset`` down the figure."""
    columns = [(name, runs[PARAM + name]) for name in names] + [(mcol.removeprefix(METRIC), runs[mcol])]
    axes = [_axis(name, values, allow_log=i < len(columns) - 1) for i, (name, values) in enumerate(columns)]
    metric = as_float(runs[mcol])
    raw = [_categorical(values).tolist() for _, values in columns[:-1]] + [[f"{v:.4g}" for v in metric]]
    ids = runs["run_id"].astype(str).tolist()
    xs = list(range(len(axes)))
    mode = "lines+markers" if len(ids) <= MAX_LEGEND_RUNS else "lines"  # 100 runs' markers only cost drawing time
    traces, shapes, annotations = [], [], []
    for i, run_id in enumerate(ids):
        values = [plotly_text(r[i]) for r in raw]
        hover = plotly_text(style.hover.get(run_id, run_id))
        traces.append(
            dict(type="scatter", x=xs, y=[axis[0][i] + offset for axis in axes], mode=mode,
                 name=plotly_text(style.label(run_id)), legendgroup=run_id, marker={"size": 6},
                 line={"color": style.color(run_id), "width": 2}, showlegend=offset == 0 or None,
                 customdata=[[plotly_text(axes[j][3]), values[j]] for j in xs],
                 hovertemplate=f"{hover}<br>%{{customdata[0]}} = %{{customdata[1]}}<extra></extra>")
        )  # fmt: skip
    stagger = len(axes) > 5  # neighbouring titles would touch: every other one goes a line higher
    for j, (_, ticks, labels, title) in enumerate(axes):
        shapes.append(dict(type="line", x0=j, x1=j, y0=offset, y1=offset + 1, line={"color": "#444", "width": 1}))
        high = 0.1 if stagger and j % 2 else 0.0
        annotations.append(dict(x=j, y=offset + 1.04 + high, text=f"<b>{plotly_text(title)}</b>", showarrow=False,
                                yanchor="bottom", font={"size": 11}))  # fmt: skip
        annotations += [
            dict(x=j, y=offset + tick, text=label, showarrow=False, xanchor="right", xshift=-4,
                 font={"size": 10, "color": "#555"}, bgcolor="rgba(255,255,255,0.85)")
            for tick, label in zip(ticks, labels, strict=True)
        ]  # fmt: skip
    return traces, shapes, annotations


def param_scatter_figure(runs: pd.DataFrame, param: str, metric: str, style: RunStyle) -> go.Figure:
    """Metric against one param, one point per run in its colour with the run on hover, one facet per data group
    (each with its own metric scale); log x-axis for rates and regularisation; string params that look numeric
    treated as numbers."""
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
    build = _Builder(style.group_names(ids))
    trace_type = _scatter_type(int(keep.sum()))
    hovers = [
        f"{plotly_text(style.hover.get(r, r))}<br>{plotly_text(pname)} = {xv if numeric is None else f'{xv:.4g}'}"
        f"<br>{plotly_text(mname)} = {yv:.4g}"
        for r, xv, yv in zip(ids, xs[keep], y[keep], strict=True)
    ]
    marker = {"size": 11, "line": {"width": 1, "color": "white"}}
    if len(ids) <= MAX_LEGEND_RUNS:  # a legend entry per run: one trace each
        for r, xv, yv, hover in zip(ids, xs[keep], y[keep], hovers, strict=True):
            build.trace(
                dict(type=trace_type, x=[xv], y=[yv], mode="markers", name=plotly_text(style.label(r)),
                     legendgroup=r, marker={**marker, "color": style.color(r)}, hovertext=[hover], hoverinfo="text"),
                style.groups.get(r),
            )  # fmt: skip
    else:  # no legend (too many runs to read one): one trace per facet, each point still in its run's colour
        in_group = np.array([style.groups.get(r) for r in ids], dtype=object)
        for group in build.groups:
            at = in_group == group if len(build.groups) > 1 else np.ones(len(ids), dtype=bool)
            build.trace(
                dict(type=trace_type, x=xs[keep][at], y=y[keep][at], mode="markers", showlegend=False,
                     hovertext=[h for h, a in zip(hovers, at, strict=True) if a], hoverinfo="text",
                     marker={**marker, "color": [style.color(r) for r in ids[at]]}),
                group,
            )  # fmt: skip
    log = numeric is not None and use_log_axis(pname, numeric[keep])
    axis_type = "log" if log else ("category" if numeric is None else "linear")
    fig = build.figure(height_each=340, title=plotly_text(f"{mname} vs {pname}"), hovermode="closest",
                       showlegend=len(ids) <= MAX_LEGEND_RUNS)  # fmt: skip
    fig.update_xaxes(type=axis_type)
    fig.update_xaxes(title_text=plotly_text(pname), row=len(build.drawn) if len(build.drawn) > 1 else None)
    fig.update_yaxes(title_text=plotly_text(mname))
    return fig


def optuna_figure(plot: Callable[[object], go.Figure], study: object) -> go.Figure:
    """One of Optuna's own plots of a study rebuilt from runs; UserError with Optuna's reason when it cannot be drawn
    for this study (e.g. importance when a parameter took one value)."""
    try:
        return plot(study)
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None


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
