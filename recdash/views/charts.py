"""Figures for the Home, Runs and Compare pages: pure functions over the runs frame of :mod:`recdash.tracking`
(``params.<name>`` as strings, ``metrics.<name>`` as floats, ``tags.<name>``) and its metric histories (run_id,
key, step, timestamp in ms, value). The hyperparameter views are in :mod:`recdash.views.param_charts`.

Every figure takes a :class:`recdash.views.style.RunStyle`, so a run has the same colour, label and hover text in
all of them, and draws runs evaluated on different data (different :func:`recdash.comparison.data_groups`) apart:
one facet per group, "best" only within a group, directions from :mod:`recdash.contract`. A facet or a run with
nothing to draw is not an empty axis: the figure says what was left out and why. Legends sit below the plot, so
long names never take the plot's width. Every function tolerates what real stores contain: runs without metrics,
NaN/inf, params logged as strings that look like numbers, runs from other tools, a single run, no runs, and hundreds
of runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recdash import comparison as cmp
from recdash.comparison import as_float
from recdash.contract import METRIC, MISSING, PARAM
from recdash.models import log_scale_params
from recdash.views.style import ConfigStyle, RunStyle
from recdash.views.text import plotly_text

# Above this many points a line/scatter trace is drawn with WebGL (go.Scattergl); below it SVG is crisper and does
# not use up one of the few WebGL contexts a browser tab allows.
WEBGL_MIN_POINTS = 200


# Grouped bars stop being readable long before this; the figure says how many runs it left out.
MAX_BAR_RUNS = 30


# A legend longer than this is noise: hover names the run instead.
MAX_LEGEND_RUNS = 20


BASELINE_PREFIX = "baseline_"


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


_LOG_NAME = re.compile(r"(^|_)(lr|learning_rate|rate|alpha|beta|sigma|lambda|reg|l1|l2|decay|weight_decay|eps)($|_)")


# What a chart gets of a laptop's width (the 1280-px layout leaves it about 820 px): legend rows are counted for this.
LEGEND_WIDTH = 720
LEGEND_ROW = 22


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
    declared = log_scale_params()
    if bare in declared:
        return declared[bare]
    return bool(_LOG_NAME.search(bare.lower()))


def _categorical(values: pd.Series) -> pd.Series:
    present = values.notna() & (values.astype(str).str.strip() != "")
    return values.where(present, MISSING).astype(str)


def _scatter_type(n_points: int) -> str:
    return "scattergl" if n_points >= WEBGL_MIN_POINTS else "scatter"


def _has_finite(values: object) -> bool:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return values is not None
    return bool(np.isfinite(array).any())


def legend_below(names: Iterable[str]) -> tuple[dict, int]:
    """A horizontal legend under the plot (outside it: long names never take the plot's width or cover a facet),
    and the height it needs: its entries laid out in rows of :data:`LEGEND_WIDTH` px, about 6.5 px a character.
    No legend title: plotly indents a horizontal legend's entries by its title's width but wraps its rows as if it
    did not, which cut the last entry of a full row off at the figure's edge. The entries name themselves."""
    rows, used = 1, 0.0
    for name in names:
        width = 40 + 6.5 * len(re.sub(r"<[^>]+>|&[a-z#0-9]+;", "x", name))
        if used and used + width > LEGEND_WIDTH:
            rows, used = rows + 1, 0.0
        used += width
    legend = {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "xref": "container", "x": 0,
              "xanchor": "left"}  # fmt: skip
    return legend, LEGEND_ROW * rows + 16


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank (no data, metric missing...)."""
    fig = go.Figure()
    fig.add_annotation(text=plotly_text(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=250)
    return fig


class _Builder:
    """Collects a figure's traces, shapes and annotations and makes it once, one facet row per data group that has
    something to draw; the groups (and runs) that have nothing are named, with the reason, under the title.

    Plotly validates the whole layout again on every add_trace/add_shape/add_annotation: building a 100-run page
    that way spent seconds in validation. Traces are plain dicts, validated once when the figure is made; shapes
    and annotations are kept with their group and placed on its facet's axes then (``xref="x"``, ``"x domain"``)."""

    def __init__(self, groups: Sequence[str]) -> None:
        self.groups = list(groups) or ["all runs"]
        self.traces: list[tuple[str, dict]] = []
        self.shapes: list[tuple[str, dict]] = []
        self.annotations: list[tuple[str, dict]] = []
        self.drawn: set[str] = set()
        self.empty_reason: dict[str, str] = {}  # why a group has nothing to draw (default: nothing logged)
        self.notes: list[str] = []  # e.g. the runs left out for lack of values

    def group(self, group: str | None) -> str:
        return group if group in self.groups else self.groups[0]

    def trace(self, trace: dict, group: str | None = None, counts: bool = True) -> None:
        """Add a trace to ``group``'s facet; ``counts``: its values make the facet worth drawing (a baseline or
        reference mark alone does not)."""
        group = self.group(group)
        self.traces.append((group, trace))
        if counts and _has_finite(trace.get("y")):
            self.drawn.add(group)

    def shape(self, group: str | None, shape: dict) -> None:
        self.shapes.append((self.group(group), shape))

    def annotation(self, group: str | None, annotation: dict) -> None:
        self.annotations.append((self.group(group), annotation))

    def level(
        self, group: str | None, i: int, x: str, value: float, name: str, line: dict, legendgroup: str, legend: bool
    ) -> None:
        """A line across category ``i``'s bars at ``value`` (a baseline or a reference model), with a marker that
        carries its legend entry and hover."""
        self.shape(group, dict(type="line", x0=i - 0.45, x1=i + 0.45, y0=value, y1=value, xref="x", yref="y",
                               line={**line, "width": 2}))  # fmt: skip
        self.trace(
            dict(type="scatter", x=[x], y=[value], mode="markers", name=name, legendgroup=legendgroup,
                 showlegend=legend, marker={"symbol": "line-ew-open", "size": 18, "color": line["color"]},
                 hovertemplate=f"{name}<br>{x}: %{{y:.4g}}<extra></extra>"),
            group, counts=False,
        )  # fmt: skip

    def figure(
        self, height_each: int = 320, *, title: str = "", showlegend: bool = True, **layout: object
    ) -> go.Figure:
        shown = [g for g in self.groups if g in self.drawn]
        notes = list(self.notes)
        notes += [f"Not drawn: {g} ({self.empty_reason.get(g, 'nothing logged')})" for g in self.groups
                  if g not in self.drawn]  # fmt: skip
        if not shown:
            return empty_figure(" ".join(notes) or "Nothing to draw")
        row = {g: i + 1 for i, g in enumerate(shown)}
        traces = [trace for group, trace in self.traces if group in row]
        names = [str(t.get("name") or "") for t in traces if t.get("showlegend", True) is not False and t.get("name")]
        legend, legend_height = legend_below(names)
        showlegend = showlegend and bool(names)
        subtitle = "<br>".join(plotly_text(n) for n in notes)
        top = 70 + 18 * len(notes)
        base = {
            "height": height_each * len(shown) + 60 + top + (legend_height if showlegend else 0),
            "title": {"text": title, "subtitle": {"text": subtitle}},
            "margin": {"t": top, "r": 20},
            "showlegend": showlegend,
            "legend": legend,
            "shapes": [_on_row(s, row[g], len(shown)) for g, s in self.shapes if g in row],
        }
        annotations = [_on_row(a, row[g], len(shown)) for g, a in self.annotations if g in row]
        if len(shown) == 1:
            return go.Figure(data=traces, layout={**base, "annotations": annotations, **layout})
        fig = make_subplots(
            rows=len(shown),
            cols=1,
            shared_xaxes=True,
            vertical_spacing=min(0.12, 0.4 / len(shown)),
            subplot_titles=[plotly_text(g) for g in shown],
        )
        titles = [
            {**a.to_plotly_json(), "font": {"size": 12}, "xanchor": "left", "x": 0} for a in fig.layout.annotations
        ]
        rows = [row[group] for group, _ in self.traces if group in row]
        fig.add_traces(traces, rows=rows, cols=[1] * len(traces))
        fig.update_layout(**base, **layout)
        fig.layout.annotations = titles + annotations  # assigned: update_layout merges a list into the old one
        return fig


def _on_row(item: dict, row: int, rows: int) -> dict:
    """A shape or annotation given in facet-1 terms (``x``, ``y``, ``x domain``) placed on facet ``row``."""
    suffix = "" if row == 1 or rows == 1 else str(row)
    out = dict(item)
    for key in ("xref", "yref"):
        ref = str(out.get(key, ""))
        if ref[:1] in ("x", "y") and ref.split(" ")[0] in ("x", "y"):
            out[key] = ref[0] + suffix + ref[1:]
    return out


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
    over its runs with a ±1 std band instead (steps aligned; x must be "step"; runs not in ``configs`` are left
    out). ``references`` on the same data that logged ``key`` (closed-form models log it once) are grey horizontal
    lines across their facet."""
    if x not in ("step", "wall_time", "relative_time"):
        raise ValueError("x must be 'step', 'wall_time' or 'relative_time'")
    data = histories[histories["key"] == key] if not histories.empty else histories
    if configs is not None and not data.empty:
        data = data[data["run_id"].astype(str).isin(set(configs))]
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
        legend = {"title": plotly_text(f"{key}: mean ± std per configuration (n = runs)")}
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
        legend = {"showlegend": len(order) <= MAX_LEGEND_RUNS, "title": plotly_text(key)}
    _reference_lines(build, references, key)
    fig = build.figure(hovermode="closest", **legend)
    titles = {"step": "step", "wall_time": "wall time (UTC)", "relative_time": "seconds since first point"}
    fig.update_xaxes(title_text=titles[x], row=len(build.drawn) if len(build.drawn) > 1 else None)
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
        build.shape(group, dict(type="line", x0=0, x1=1, y0=value, y1=value, xref="x domain", yref="y",
                                line={"color": color, "dash": dash, "width": 2}))  # fmt: skip
        build.annotation(group, dict(x=1, y=value, xref="x domain", yref="y", xanchor="right", yanchor="bottom",
                                     showarrow=False, font={"size": 11, "color": color},
                                     text=plotly_text(f"reference {model}: {value:.4g}")))  # fmt: skip


def _history_bands(
    build: _Builder,
    by_run: Mapping[str, pd.DataFrame],
    order: Sequence[str],
    style: RunStyle,
    configs: Mapping[str, str],
    smoothing: float,
) -> None:
    """Mean ± std per (data group, configuration) over aligned steps, in the configuration's grey and dash, with n
    in the legend."""
    members: dict[tuple[str | None, str], list[str]] = {}
    for run_id in order:
        members.setdefault((style.groups.get(run_id), configs.get(run_id, "all runs")), []).append(run_id)
    looks = style.config_styles(configs)
    for (group, config), run_ids in members.items():
        wide = pd.concat([by_run[r].groupby("step")["value"].last().rename(r) for r in run_ids], axis=1).sort_index()
        if smoothing > 0:
            wide = wide.apply(lambda col: pd.Series(ema(col.to_numpy(dtype=float), smoothing), index=col.index))
        mean = wide.mean(axis=1)
        std = wide.std(axis=1, ddof=1).fillna(0.0)
        n = wide.notna().sum(axis=1)
        look = looks.get(config) or ConfigStyle("?", config, "#888888", "", "solid")
        name = plotly_text(f"{look.name} (n={len(run_ids)})")
        steps = mean.index.to_numpy()
        build.trace(
            dict(type="scatter", x=np.concatenate([steps, steps[::-1]]),
                 y=np.concatenate([(mean + std), (mean - std)[::-1]]), mode="lines", fill="toself",
                 fillcolor=_rgba(look.color, 0.18), line={"width": 0}, hoverinfo="skip",
                 legendgroup=f"{group}/{config}", showlegend=False), group,
        )  # fmt: skip
        build.trace(
            dict(type="scatter", x=steps, y=mean.to_numpy(), mode="lines+markers", name=name,
                 line={"color": look.color, "dash": look.dash}, legendgroup=f"{group}/{config}",
                 customdata=np.stack([std.to_numpy(), n.to_numpy()], axis=1),
                 hovertemplate=f"{name}<br>step %{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}} "
                 "(n=%{customdata[1]})<extra></extra>"), group,
        )  # fmt: skip


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def baseline_metric(metric: str) -> str | None:
    """The popularity baseline recdash logs next to a test metric (``test_x`` -> ``baseline_test_x``)."""
    name = metric.removeprefix(METRIC)
    return None if name.startswith(BASELINE_PREFIX) or not name.startswith("test_") else BASELINE_PREFIX + name


def _note_missing(build: _Builder, style: RunStyle, ids: Sequence[str], values: np.ndarray, what: str) -> None:
    """Name the runs that got no bar (no finite value for ``what``) in facets that are drawn; a facet with nothing
    at all says so itself."""
    missing = [style.label(r) for r, row in zip(ids, values, strict=True)
               if not np.isfinite(row).any() and build.group(style.groups.get(r)) in build.drawn]  # fmt: skip
    for group in build.groups:
        build.empty_reason.setdefault(group, f"no run on this data has a value for {what}")
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        build.notes.append(f"Not drawn, no value for {what}: {', '.join(missing[:10])}{more}.")


def metric_bars_figure(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    style: RunStyle,
    max_runs: int = MAX_BAR_RUNS,
    baselines: bool = True,
    references: pd.DataFrame | None = None,
    intervals: Intervals | None = None,
    best_notes: Mapping[str, Mapping[str, str]] | None = None,
) -> go.Figure:
    """Final metric values as grouped bars (one group per metric, one bar per run, in the run's colour), one facet
    per data group; the best run of each metric *within its data group* is outlined and marked "★ best"; each
    run's popularity baseline (``baseline_test_*``) is drawn as a dashed line across its metric, and the reference
    runs on the same data (:func:`recdash.comparison.references_for`) as dotted grey lines. Runs without any of the
    metrics get no bar and are named under the title. ``intervals`` (metric -> run -> (low, high)) draws each bar's
    95% interval over users as a whisker; ``best_notes`` (metric -> data group -> "best, but within noise of X")
    says on the ★ whether the best is distinguishable from the runner-up."""
    cols = [c for c in (_col(m, METRIC) for m in metrics) if c in runs.columns]
    if runs.empty or not cols:
        return empty_figure("No metrics to compare")
    names = [c.removeprefix(METRIC) for c in cols]
    shown = runs.head(max_runs)
    ids = shown["run_id"].astype(str).tolist()
    build = _Builder(style.group_names(ids))
    group_of = pd.Series([style.groups.get(r) for r in runs["run_id"].astype(str)], index=runs.index)
    best = {n: cmp.best_in_groups(runs, n, group_of) for n in names}
    x = [plotly_text(n) for n in names]
    values = np.column_stack([as_float(shown[c]) for c in cols])
    for i, run_id in enumerate(ids):
        if not np.isfinite(values[i]).any():
            continue
        group = style.groups.get(run_id)
        is_best = [best[n].get(group) == run_id for n in names]
        notes = [
            (best_notes or {}).get(n, {}).get(str(group), "") if b else "" for n, b in zip(names, is_best, strict=True)
        ]
        hover = plotly_text(style.hover.get(run_id, run_id))
        build.trace(
            dict(
                type="bar", x=x, y=values[i], name=plotly_text(style.label(run_id)), legendgroup=run_id,
                marker={"color": style.color(run_id), "line": {"width": [3 if b else 0 for b in is_best],
                                                                "color": "black"}},
                text=[("★ best?" if "within noise" in note else "★ best") if b else ""
                      for b, note in zip(is_best, notes, strict=True)],
                textposition="outside", customdata=[plotly_text(note) for note in notes],
                hovertemplate=f"{hover}<br>%{{x}}: %{{y:.4g}} %{{customdata}}<extra></extra>",
                error_y=whiskers(intervals, names, run_id, values[i]),
            ),
            group,
        )  # fmt: skip
    _note_missing(build, style, ids, values, ", ".join(names))
    if baselines:
        _baseline_marks(build, runs, names, group_of)
    _reference_marks(build, references, names)
    title = "Final metrics (★ = best run of each metric on the same data"
    title += "; ★ best? = within noise of the runner-up)" if best_notes else ")"
    if len(runs) > max_runs:
        title += f"; first {max_runs} of {len(runs)} runs shown"
    return build.figure(barmode="group", title=title, showlegend=len(ids) <= MAX_LEGEND_RUNS,
                        uniformtext={"minsize": 10, "mode": "show"})  # fmt: skip


Intervals = Mapping[str, Mapping[str, tuple[float, float]]]  # metric -> run id -> (low, high)


def whiskers(intervals: Intervals | None, names: Sequence[str], run_id: str, values: np.ndarray) -> dict | None:
    """A bar trace's ``error_y``: the run's 95% interval of each metric in ``names`` (none where it has none)."""
    bounds = [(intervals or {}).get(n, {}).get(run_id) for n in names]
    if not any(bounds):
        return None
    up = [None if b is None else max(0.0, b[1] - v) for b, v in zip(bounds, values, strict=True)]
    down = [None if b is None else max(0.0, v - b[0]) for b, v in zip(bounds, values, strict=True)]
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": "#333333",
            "thickness": 1.2, "width": 3}  # fmt: skip


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


COLD_USERS = "cold-users"


def segment_bars_figure(
    runs: pd.DataFrame,
    base: str,
    style: RunStyle,
    references: pd.DataFrame | None = None,
    max_runs: int = MAX_BAR_RUNS,
    intervals: Intervals | None = None,
) -> go.Figure:
    """``base`` (e.g. test_recall_at_10) per user-activity quartile as grouped bars, one bar per run in its colour,
    one facet per data group, with the references on the same data as grey lines: for which users a model wins.
    A data group with no per-quartile values says why (a cold-users split's test users have no training activity
    to rank them by) instead of drawing an empty axis. ``intervals`` (``<base>_q<n>`` -> run -> (low, high)): each
    bar's 95% interval over that quartile's users, as a whisker."""
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
        if not np.isfinite(values[i]).any():
            continue
        hover = plotly_text(style.hover.get(run_id, run_id))
        build.trace(
            dict(type="bar", x=x, y=values[i], name=plotly_text(style.label(run_id)), legendgroup=run_id,
                 marker={"color": style.color(run_id)}, hovertemplate=f"{hover}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
                 error_y=whiskers(intervals, names, run_id, values[i])),
            style.groups.get(run_id),
        )  # fmt: skip
    method = shown.get(PARAM + "split_method", pd.Series(None, index=shown.index)).astype(str).tolist()
    for group in build.groups:
        methods = {m for r, m in zip(ids, method, strict=True) if build.group(style.groups.get(r)) == group}
        if methods == {COLD_USERS}:
            build.empty_reason[group] = "cold-users split: its test users have no training interactions to rank by"
    _note_missing(build, style, ids, values, f"{base} per quartile")
    drawn = [r for r, row in zip(ids, values, strict=True) if np.isfinite(row).any()]
    _reference_marks(build, references, names, x)
    title = f"{base} by user activity (quartiles of training interactions)"
    if len(runs) > max_runs:
        title += f"; first {max_runs} of {len(runs)} runs shown"
    fig = build.figure(barmode="group", title=plotly_text(title), showlegend=len(drawn) <= MAX_LEGEND_RUNS)
    fig.update_yaxes(title_text=plotly_text(base))
    return fig


def config_bars_figure(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    runs: pd.DataFrame,
    style: RunStyle,
    configs: Mapping[str, str],
    references: pd.DataFrame | None = None,
) -> go.Figure:
    """Mean of each metric per configuration with ±1 std error bars and n, one facet per data group, the popularity
    baseline of each group's runs as a dashed line, and each counted run as a dot in its own colour on its
    configuration's bar. ``summary`` is :func:`recdash.comparison.aggregate` output with a ``data`` column (the data
    group); ``configs`` maps run id -> configuration for the runs counted. Configurations are named by a letter and
    the hyperparameters that differ between them, and drawn in greys with a pattern: never in a run's colour."""
    names = [m.removeprefix(METRIC) for m in metrics if f"{m.removeprefix(METRIC)} mean" in summary.columns]
    counted = summary[[f"{n} n" for n in names]].sum(axis=1) > 0 if names else summary.index == summary.index
    summary = summary[counted]  # a configuration without any of these metrics (a sweep's parent) has no bar
    if summary.empty or not names:
        return empty_figure("No metrics to summarise")
    build = _Builder([g for g in style.group_names() if g in set(summary["data"])])
    looks = style.config_styles(configs)
    x = [plotly_text(n) for n in names]
    in_legend: set[str] = set()
    for _, row in summary.iterrows():
        config = row["group"]
        look = looks.get(config) or ConfigStyle("?", config, "#888888", "", "solid")
        means = [row[f"{n} mean"] for n in names]
        stds = [row[f"{n} std"] if np.isfinite(row[f"{n} std"]) else 0.0 for n in names]
        counts = [int(row[f"{n} n"]) for n in names]
        build.trace(
            dict(type="bar", x=x, y=means, name=plotly_text(look.name), legendgroup=look.letter,
                 offsetgroup=look.letter, alignmentgroup=row["data"], showlegend=config not in in_legend,
                 marker={"color": look.color, "line": {"color": "#2f363d", "width": 1},
                         "pattern": {"shape": look.pattern, "fillmode": "overlay", "fgcolor": "white", "size": 7}},
                 error_y={"type": "data", "array": stds, "visible": True, "color": "#2f363d"},
                 text=[f"{look.letter} n={n}" for n in counts], textposition="inside", insidetextanchor="start",
                 customdata=np.stack([stds, counts], axis=1),
                 hovertemplate=f"configuration {plotly_text(look.name)}<br>%{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}} "
                 "(n=%{customdata[1]})<extra></extra>"),
            row["data"],
        )  # fmt: skip
        in_legend.add(config)
    _run_dots(build, runs, names, style, configs, looks)
    group_of = pd.Series([style.groups.get(r) for r in runs["run_id"].astype(str)], index=runs.index)
    _baseline_marks(build, runs, names, group_of)
    _reference_marks(build, references, names)
    return build.figure(barmode="group", scattermode="group", title="Mean ± std per configuration (n = runs; dots: "
                        "each run in its colour)", uniformtext={"minsize": 9,
                        "mode": "hide"})  # fmt: skip


def _run_dots(
    build: _Builder,
    runs: pd.DataFrame,
    names: Sequence[str],
    style: RunStyle,
    configs: Mapping[str, str],
    looks: Mapping[str, ConfigStyle],
) -> None:
    """Each counted run's values as a dot in the run's colour over its configuration's bar (same offset group)."""
    x = [plotly_text(n) for n in names]
    for _, run in runs.iterrows():
        run_id = str(run["run_id"])
        look = looks.get(configs.get(run_id, ""))
        if look is None:
            continue
        values = [as_float(pd.Series([run.get(METRIC + n)]))[0] for n in names]
        hover = plotly_text(style.hover.get(run_id, run_id))
        build.trace(
            dict(type="scatter", x=x, y=values, mode="markers", name=plotly_text(style.label(run_id)),
                 legendgroup=look.letter, offsetgroup=look.letter, alignmentgroup=style.groups.get(run_id),
                 showlegend=False,
                 marker={"color": style.color(run_id), "size": 8, "line": {"color": "white", "width": 1}},
                 hovertemplate=f"{hover} (configuration {look.letter})<br>%{{x}}: %{{y:.4g}}<extra></extra>"),
            style.groups.get(run_id), counts=False,
        )  # fmt: skip
