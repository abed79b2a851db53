"""Charts and tables of the Home/Runs/Compare pages on hand-made runs frames whose right answers are known."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from recdash import comparison as cmp
from recdash import contract
from recdash.views import charts, param_charts, tables
from recdash.views.style import RunStyle, palette
from recdash.views.text import parse_run_ids


def make_runs(n: int = 4, seed: int = 0, **columns: object) -> pd.DataFrame:
    """A runs frame shaped like recdash.tracking's: params as strings, metrics as floats."""
    rng = np.random.default_rng(seed)
    ids = [rng.bytes(16).hex() for _ in range(n)]
    frame = pd.DataFrame(
        {
            "run_id": ids,
            "run_name": [f"run-{i}" for i in range(n)],
            "experiment_id": "1",
            "experiment": "exp",
            "status": "FINISHED",
            "start_time": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC")[::-1],
            "parent_run_id": None,
            "dataset_name": "ml",
            "dataset_digest": "abc123",
            "params.loss": ["warp", "bpr"] * (n // 2) + ["warp"] * (n % 2),
            "params.factors": [str(8 * (i + 1)) for i in range(n)],
            "params.learning_rate": [str(v) for v in np.geomspace(1e-4, 1e-1, n)] if n != 1 else ["0.01"],
            "params.split_seed": "42",
            "metrics.val_ndcg_at_10": rng.uniform(0, 1, n),
            "metrics.train_seconds": rng.uniform(1, 10, n),
        }
    )
    for name, values in columns.items():
        frame[name.replace("__", ".")] = values
    return frame


def history(run_ids: list[str], key: str = "val_ndcg_at_10", steps: int = 5) -> pd.DataFrame:
    rows = []
    for r, run_id in enumerate(run_ids):
        for step in range(1, steps + 1):
            rows.append((run_id, key, step, 1_700_000_000_000 + 1000 * step + r * 10, 0.1 * step + r))
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "timestamp", "value"])


def colors_of(fig: go.Figure) -> dict[str, str]:
    """Run label -> the colour its trace is drawn in (line, marker or bar), for every named trace."""
    out = {}
    for trace in fig.data:
        color = getattr(getattr(trace, "line", None), "color", None) or getattr(trace.marker, "color", None)
        if trace.name and trace.name != "popularity baseline" and isinstance(color, str):
            out[trace.name] = color
    return out


# ------------------------------------------------------------------------------------------ one identity per run


def test_a_run_has_the_same_colour_and_name_in_every_figure() -> None:
    runs = make_runs(4)
    style = RunStyle.of(runs, order=list(runs["run_id"][::-1]))  # colours follow the selection's order
    figures = [
        charts.metric_history_figure(history(list(runs["run_id"])), "val_ndcg_at_10", style),
        charts.metric_bars_figure(runs, ["val_ndcg_at_10"], style),
        param_charts.parallel_coordinates_figure(runs, ["loss", "factors"], "val_ndcg_at_10", style),
        param_charts.param_scatter_figure(runs, "factors", "val_ndcg_at_10", style),
    ]
    expected = {f"run-{i}": style.colors[runs.run_id[i]] for i in range(4)}
    for fig in figures:
        assert colors_of(fig) == expected
    key = charts.selection_figure(style, list(runs["run_id"])).data[0]
    assert dict(zip(key.text, key.marker.color, strict=True)) == expected  # the colour key on Runs and Compare
    assert len(set(expected.values())) == 4
    hover = figures[3].data[0].hovertext[0]
    assert hover.startswith(f"run-0 · {runs.run_id[0][:8]} · exp")  # run name, short id, experiment


# ------------------------------------------------------------------------------------------ metric histories


def test_history_one_line_per_run_named_after_the_run() -> None:
    runs = make_runs(3)
    fig = charts.metric_history_figure(history(list(runs["run_id"])), "val_ndcg_at_10", RunStyle.of(runs))
    assert [t.name for t in fig.data] == ["run-0", "run-1", "run-2"]
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5]
    assert all(isinstance(t, go.Scatter) for t in fig.data)  # few points: SVG


def test_history_x_axes_and_smoothing() -> None:
    runs = make_runs(2, run_name=["A", "B"])
    style = RunStyle.of(runs)
    hist = history(list(runs["run_id"]), steps=10)
    wall = charts.metric_history_figure(hist, "val_ndcg_at_10", style, x="wall_time")
    assert pd.Timestamp(wall.data[0].x[1]) - pd.Timestamp(wall.data[0].x[0]) == pd.Timedelta(seconds=1)
    rel = charts.metric_history_figure(hist, "val_ndcg_at_10", style, x="relative_time")
    assert rel.data[1].x[0] == 0 and rel.data[1].x[-1] == pytest.approx(9.0)
    smooth = charts.metric_history_figure(hist, "val_ndcg_at_10", style, smoothing=0.9)
    raw, smoothed = smooth.data[0], smooth.data[1]  # faint raw line under the smoothed one
    assert raw.showlegend is False and smoothed.name == "A" and raw.line.color == smoothed.line.color
    assert smoothed.y[0] == pytest.approx(raw.y[0])  # debiased EMA starts at the first value
    assert smoothed.y[-1] < raw.y[-1]  # lags behind an increasing series
    with pytest.raises(ValueError):
        charts.metric_history_figure(hist, "val_ndcg_at_10", style, x="epoch")


def test_history_facets_runs_on_different_data() -> None:
    runs = make_runs(3, dataset_digest=["abc", "abc", "zzz"])
    style = RunStyle.of(runs)
    fig = charts.metric_history_figure(history(list(runs["run_id"])), "val_ndcg_at_10", style)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["ml abc · split, seed 42", "ml zzz · split, seed 42"]  # each group named in full
    assert {t.name: t.yaxis for t in fig.data} == {"run-0": "y", "run-1": "y", "run-2": "y2"}


def test_history_bands_are_mean_and_std_of_repeats() -> None:
    runs = make_runs(4, params__seed=["1", "2", "1", "2"], params__factors=["8", "8", "16", "16"])
    hist = history(list(runs["run_id"]), steps=3)
    configs = dict(zip(runs["run_id"], ["factors=8", "factors=8", "factors=16", "factors=16"], strict=True))
    fig = charts.metric_history_figure(hist, "val_ndcg_at_10", RunStyle.of(runs), configs=configs)
    means = {t.name: t for t in fig.data if t.showlegend is not False}
    assert set(means) == {"A: factors=8 (n=2)", "B: factors=16 (n=2)"}  # a letter and what differs
    values = hist.pivot_table(index="step", columns="run_id", values="value")[list(runs["run_id"][:2])]
    assert np.allclose(means["A: factors=8 (n=2)"].y, values.mean(axis=1))
    assert np.allclose(means["A: factors=8 (n=2)"].customdata[:, 0], values.std(axis=1, ddof=1))
    # a configuration is not a run: a grey with its own dash, never a colour of the run palette
    lines = [(t.line.color, t.line.dash) for t in means.values()]
    assert len(set(lines)) == 2 and not {c.upper() for c, _ in lines} & {c.upper() for c in palette()}


def test_single_step_metrics_are_recognised() -> None:
    hist = history(["a", "b"], steps=1)
    assert charts.single_step(hist, "val_ndcg_at_10")
    assert not charts.single_step(history(["a"], steps=2), "val_ndcg_at_10")


def test_many_runs_scatter_is_one_trace_that_keeps_each_runs_colour() -> None:
    runs = make_runs(30)
    style = RunStyle.of(runs)
    fig = param_charts.param_scatter_figure(runs, "factors", "val_ndcg_at_10", style)
    assert len(fig.data) == 1 and not fig.layout.showlegend
    assert list(fig.data[0].marker.color) == [style.colors[r] for r in runs.run_id]
    assert fig.data[0].hovertext[5].startswith(f"run-5 · {runs.run_id[5][:8]}")


def test_ema_matches_tensorboard_and_skips_non_finite() -> None:
    out = charts.ema(np.array([1.0, np.nan, 3.0]), 0.5)
    assert out[0] == pytest.approx(1.0)
    assert np.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25))
    assert list(charts.ema(np.array([1.0, 2.0]), 0)) == [1.0, 2.0]


def test_history_missing_key_or_all_nan_gives_a_message_figure() -> None:
    runs = make_runs(1)
    style = RunStyle.of(runs)
    hist = history(list(runs["run_id"]))
    assert not charts.metric_history_figure(hist, "other", style).data
    hist["value"] = np.inf
    fig = charts.metric_history_figure(hist, "val_ndcg_at_10", style)
    assert not fig.data and "No finite" in fig.layout.annotations[0].text
    empty = pd.DataFrame(columns=["run_id", "key", "step", "timestamp", "value"])
    assert not charts.metric_history_figure(empty, "x", style).data


# ------------------------------------------------------------------------------------------ parallel coordinates


def _axis_titles(fig: go.Figure) -> list[str]:
    return [a.text.removeprefix("<b>").removesuffix("</b>") for a in fig.layout.annotations if a.text.startswith("<b>")]


def test_parallel_coordinates_one_line_per_run_with_scaled_axes() -> None:
    runs = make_runs(4)
    fig = param_charts.parallel_coordinates_figure(runs, ["loss", "factors", "learning_rate"], "val_ndcg_at_10",
                                             RunStyle.of(runs))  # fmt: skip
    assert _axis_titles(fig) == ["loss", "factors", "learning_rate (log)", "val_ndcg_at_10"]
    assert [t.name for t in fig.data] == ["run-0", "run-1", "run-2", "run-3"]
    loss = [t.y[0] for t in fig.data]
    assert loss == [1.0, 0.0, 1.0, 0.0]  # categories spread over the axis: bpr at 0, warp at 1
    assert [t.y[1] for t in fig.data] == pytest.approx([0, 1 / 3, 2 / 3, 1])  # numeric strings stay numbers
    assert [t.y[2] for t in fig.data] == pytest.approx([0, 1 / 3, 2 / 3, 1])  # log10 of 1e-4..1e-1
    metric = runs["metrics.val_ndcg_at_10"].to_numpy()
    scaled = (metric - metric.min()) / (metric.max() - metric.min())
    assert [t.y[3] for t in fig.data] == pytest.approx(list(scaled))
    assert fig.data[0].customdata[2][1] == str(runs["params.learning_rate"][0])  # hover shows the logged value
    ticks = [a.text for a in fig.layout.annotations if a.x == 2 and not a.text.startswith("<b>")]
    assert ticks[0] == "0.0001" and ticks[-1] == "0.1"


def test_parallel_coordinates_missing_params_and_metrics() -> None:
    runs = make_runs(4, params__factors=["8", None, "16", ""], metrics__val_ndcg_at_10=[0.1, np.nan, 0.3, np.inf])
    fig = param_charts.parallel_coordinates_figure(runs, ["factors", "nope"], "val_ndcg_at_10", RunStyle.of(runs))
    assert "2 runs without the metric left out" in fig.layout.title.text
    assert [t.y[0] for t in fig.data] == [0.0, 1.0]
    nan_runs = make_runs(3, params__factors=["8", None, "16"])
    fig = param_charts.parallel_coordinates_figure(nan_runs, ["factors"], "val_ndcg_at_10", RunStyle.of(nan_runs))
    assert fig.data[1].y[0] < 0 and charts.MISSING in [a.text for a in fig.layout.annotations]
    assert not param_charts.parallel_coordinates_figure(runs, ["loss"], "no_such_metric", RunStyle.of(runs)).data
    none = runs.iloc[0:0]
    assert not param_charts.parallel_coordinates_figure(none, ["loss"], "val_ndcg_at_10", RunStyle.of(runs)).data


def test_parallel_coordinates_never_crowd_a_categorical_axis() -> None:
    runs = make_runs(30, params__name=[f"value-{i:02d}" for i in range(30)])
    fig = param_charts.parallel_coordinates_figure(runs, ["name"], "val_ndcg_at_10", RunStyle.of(runs))
    ticks = [a for a in fig.layout.annotations if a.x == 0 and not a.text.startswith("<b>")]
    assert len(ticks) <= 8
    gaps = np.diff(sorted(a.y for a in ticks))
    assert gaps.min() >= 1 / 8 - 1e-9  # at most 8 labels over the axis: they cannot overlap


# ------------------------------------------------------------------------------------------ param scatter


@pytest.mark.parametrize(
    ("name", "values", "log"),
    [
        ("learning_rate", ["0.01", "0.02", "0.05"], True),  # declared log-scale recdash hyperparameter
        ("my_lr", ["0.01", "0.02", "0.05"], True),  # rate-like name
        ("reg_strength", ["0.1", "0.2", "0.3"], True),
        ("factors", ["8", "16", "32"], False),  # < 2 decades, not a rate
        ("batch", ["1", "10", "1000"], True),  # spans 3 decades
        ("alpha", ["0", "0.1", "1"], False),  # log axis cannot show 0
        ("shift", ["-1", "10", "1000"], False),
    ],
)
def test_scatter_log_axis_choice(name: str, values: list[str], log: bool) -> None:
    runs = make_runs(3, **{f"params__{name}": values})
    fig = param_charts.param_scatter_figure(runs, name, "val_ndcg_at_10", RunStyle.of(runs))
    assert (fig.layout.xaxis.type == "log") is log
    assert [t.x[0] for t in fig.data] == [float(v) for v in values]


def test_scatter_one_point_per_run_with_hover_and_legend() -> None:
    runs = make_runs(4, metrics__val_ndcg_at_10=[0.1, np.nan, 0.3, -np.inf])
    style = RunStyle.of(runs)
    fig = param_charts.param_scatter_figure(runs, "params.loss", "metrics.val_ndcg_at_10", style)
    assert fig.layout.xaxis.type == "category"
    assert [t.name for t in fig.data] == ["run-0", "run-2"] and fig.layout.showlegend
    assert [t.x[0] for t in fig.data] == ["warp", "warp"]
    assert "run-2" in fig.data[1].hovertext[0] and "loss = warp" in fig.data[1].hovertext[0]
    odd = make_runs(2, params__factors=["8", "lots"])
    assert param_charts.param_scatter_figure(odd, "factors", "val_ndcg_at_10", RunStyle.of(odd)).layout.xaxis.type == (
        "category"
    )
    assert not param_charts.param_scatter_figure(runs, "missing", "val_ndcg_at_10", style).data


# ------------------------------------------------------------------------------------------ bars, best run


def test_metric_bars_mark_the_best_run_per_metric() -> None:
    runs = make_runs(3, metrics__val_ndcg_at_10=[0.2, 0.5, 0.1], metrics__train_seconds=[3.0, 9.0, 1.0])
    fig = charts.metric_bars_figure(runs, ["val_ndcg_at_10", "train_seconds"], RunStyle.of(runs))
    assert [t.name for t in fig.data] == ["run-0", "run-1", "run-2"]
    assert fig.layout.barmode == "group"
    text = {t.name: list(t.text) for t in fig.data}
    assert text["run-1"] == ["★ best", ""]  # highest ndcg
    assert text["run-2"] == ["", "★ best"]  # fewest seconds: lower is better
    assert text["run-0"] == ["", ""]


def test_best_is_only_ever_among_runs_on_the_same_data() -> None:
    """The trial's bug: a run on synthetic data got "★ best" ahead of ML-100K runs."""
    runs = make_runs(3, dataset_name=["movielens-100k", "movielens-100k", "synthetic"],
                     dataset_digest=["d1", "d1", "d2"], metrics__test_ndcg_at_10=[0.28, 0.30, 0.9])  # fmt: skip
    style = RunStyle.of(runs)
    fig = charts.metric_bars_figure(runs, ["test_ndcg_at_10"], style)
    text = {t.name: list(t.text) for t in fig.data}
    assert text == {"run-0": [""], "run-1": ["★ best"], "run-2": [""]}  # best among ML-100K runs; alone: no "best"
    assert [a.text for a in fig.layout.annotations] == [
        "movielens-100k d1 · split, seed 42", "synthetic d2 · split, seed 42"
    ]  # fmt: skip
    assert {t.name: t.yaxis for t in fig.data} == {"run-0": "y", "run-1": "y", "run-2": "y2"}


def test_bars_draw_each_datasets_popularity_baseline() -> None:
    runs = make_runs(3, dataset_digest=["d1", "d1", "d2"], metrics__test_ndcg_at_10=[0.3, 0.31, 0.5],
                     metrics__baseline_test_ndcg_at_10=[0.12, 0.12, 0.2])  # fmt: skip
    fig = charts.metric_bars_figure(runs, ["test_ndcg_at_10"], RunStyle.of(runs))
    lines = sorted((s.yref, s.y0) for s in fig.layout.shapes)
    assert lines == [("y", 0.12), ("y2", 0.2)]
    marks = [t for t in fig.data if t.name == "popularity baseline"]
    assert [m.y[0] for m in marks] == [0.12, 0.2] and [m.showlegend for m in marks] == [True, False]
    assert charts.baseline_metric("test_recall_at_10") == "baseline_test_recall_at_10"
    assert charts.baseline_metric("val_recall_at_10") is None


def test_metric_bars_with_missing_metrics_and_many_runs() -> None:
    runs = make_runs(40)
    fig = charts.metric_bars_figure(runs, ["val_ndcg_at_10"], RunStyle.of(runs))
    assert len(fig.data) == charts.MAX_BAR_RUNS and "first 30 of 40" in fig.layout.title.text
    assert sum(list(t.text) == ["★ best"] for t in fig.data) <= 1
    assert not fig.layout.showlegend  # 30 legend entries are noise; hover names the run
    assert not charts.metric_bars_figure(runs, ["absent"], RunStyle.of(runs)).data
    # nothing to draw is said, not shown as an empty axis
    blank = make_runs(3, metrics__val_ndcg_at_10=np.nan)
    empty = charts.metric_bars_figure(blank, ["val_ndcg_at_10"], RunStyle.of(blank))
    assert not empty.data and "no run on this data has a value for val_ndcg_at_10" in empty.layout.annotations[0].text


def test_config_bars_and_summary_table_show_mean_std_and_n() -> None:
    from recdash import comparison as cmp

    runs = make_runs(5, params__seed=["1", "2", "3", "1", "2"], params__loss=["warp"] * 3 + ["bpr"] * 2,
                     metrics__test_ndcg_at_10=[0.30, 0.32, 0.31, 0.20, 0.24])  # fmt: skip
    style = RunStyle.of(runs)
    configs = cmp.config_groups(runs, ["loss"])
    summary = cmp.aggregate(runs, ["test_ndcg_at_10"], configs).assign(data=style.groups[runs.run_id[0]])
    fig = charts.config_bars_figure(
        summary, ["test_ndcg_at_10"], runs, style, dict(zip(runs.run_id, configs, strict=True))
    )
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert set(bars) == {"A: loss=warp", "B: loss=bpr"}  # a letter, then only what differs
    assert bars["A: loss=warp"].y[0] == pytest.approx(0.31)
    assert bars["A: loss=warp"].error_y.array[0] == pytest.approx(np.std([0.30, 0.32, 0.31], ddof=1))
    assert list(bars["B: loss=bpr"].text) == ["B n=2"]
    # configurations are greys told apart by a pattern, never a run's colour; each run is a dot in its own colour
    run_colours = {c.upper() for c in palette()}
    assert not {b.marker.color.upper() for b in bars.values()} & run_colours
    assert len({b.marker.pattern.shape for b in bars.values()}) == 2
    dots = {t.name: t for t in fig.data if t.type == "scatter" and t.name in style.labels.values()}
    assert {name: dot.marker.color for name, dot in dots.items()} == {
        style.label(r): style.color(r) for r in runs.run_id
    }
    assert dots["run-3"].offsetgroup == bars["B: loss=bpr"].offsetgroup and dots["run-3"].y[0] == pytest.approx(0.2)
    # the legend sits below the plot: long configuration names never take the plot's width
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container"
    config_of = dict(zip(runs.run_id, configs, strict=True))
    table = tables.summary_table(summary, ["test_ndcg_at_10"], style.config_styles(config_of), config_of, style)
    row = table.set_index("configuration").loc["B"]
    assert row["test_ndcg_at_10"] == f"0.2200 ± {np.std([0.2, 0.24], ddof=1):.4f} (n=2)"
    assert (row["hyperparameters"], row["runs"]) == ("loss=bpr", "run-3, run-4")


# ------------------------------------------------------------------------------------------ tables


def test_param_diff_table_keeps_only_differing_hyperparameters() -> None:
    runs = make_runs(3, params__alpha=["0.1", "0.10", "0.1"], params__note=["x", None, "x"],
                     params__dataset_n_interactions=["1", None, "2"], params__dataset_rows=[None, "5", None],
                     params__best_factors=["8", "9", "10"])  # fmt: skip
    style = RunStyle.of(runs)
    table = tables.param_diff_table(runs, style.labels)
    assert list(table.columns) == ["run-0", "run-1", "run-2"]
    # alpha "0.1" == "0.10"; split_seed same; lineage (dataset_*) and sweep bookkeeping (best_*) are not settings
    assert set(table.index) == {"loss", "factors", "learning_rate", "note"}
    assert table.loc["note", "run-1"] == tables.MISSING_TEXT  # shown like every missing value
    assert table.loc["factors"].tolist() == ["8", "16", "24"]
    assert tables.param_diff_table(runs.iloc[:1], style.labels).empty
    assert tables.param_diff_table(runs.iloc[0:0], {}).empty


def test_a_sweep_parent_shows_what_it_searched() -> None:
    runs = make_runs(2, params__search_space=['{"factors": "32:128", "loss": "bpr,warp"}', None],
                     params__loss=["warp", "bpr"])  # fmt: skip
    table = tables.param_diff_table(runs, RunStyle.of(runs).labels)
    assert table.loc["factors", "run-0"] == "searched 32:128" and table.loc["loss", "run-0"] == "searched bpr,warp"


def test_comparison_table_for_csv_keeps_full_precision() -> None:
    runs = make_runs(2, metrics__val_ndcg_at_10=[0.30000000000000004, np.inf])
    table = tables.comparison_table(runs, ["loss", "absent"], ["val_ndcg_at_10"], RunStyle.of(runs))
    assert list(table.columns) == [
        "run", "run_id", "data", "experiment", "status", "start_time", "params.loss", "metrics.val_ndcg_at_10"
    ]  # fmt: skip
    assert table["run"].tolist() == ["run-0", "run-1"] and np.isnan(table.iloc[1, -1])
    assert "0.30000000000000004" in table.to_csv(index=False)
    assert tables.comparison_table(runs.iloc[0:0], ["loss"], [], RunStyle.of(runs.iloc[0:0])).empty


def test_best_per_experiment_is_per_dataset_too() -> None:
    runs = pd.concat([make_runs(3), make_runs(2, seed=1, experiment="other", experiment_id="2")], ignore_index=True)
    runs["metrics.val_ndcg_at_10"] = [0.1, 0.9, np.nan, 0.4, 0.3]
    runs.loc[0, "dataset_digest"] = "zzz"
    best = tables.best_runs_per_experiment(runs, "val_ndcg_at_10")
    assert [(r.experiment, r.data, r.val_ndcg_at_10) for r in best.itertuples()] == [
        ("exp", "ml abc123 · split, seed 42", 0.9), ("other", "ml abc123 · split, seed 42", 0.4),
        ("exp", "ml zzz · split, seed 42", 0.1),
    ]  # fmt: skip
    assert tables.best_runs_per_experiment(runs, "nope").empty
    assert tables.top_runs(runs, "val_ndcg_at_10", 2)["metrics.val_ndcg_at_10"].tolist() == [0.9, 0.4]
    assert len(tables.top_runs(runs, "val_ndcg_at_10", 10)) == 4
    links = tables.run_ui_links(runs.iloc[:1], "http://ui:5000/")
    assert links.iloc[0] == f"http://ui:5000/#/experiments/1/runs/{runs.run_id[0]}?workflowType=machine_learning"
    assert parse_run_ids(" a,b ,,a,<x>") == ["a", "b"]
    assert parse_run_ids(["a,b", "c"]) == ["a", "b", "c"]
    assert contract.preferred_metric(["train_seconds", "baseline_test_ndcg_at_10", "test_ndcg_at_10"]) == (
        "test_ndcg_at_10"
    )
    # validation at the kept epoch before the last epoch's (which early stopping ran past)
    assert contract.preferred_metric(["val_ndcg_at_10", "best_val_ndcg_at_10"]) == "best_val_ndcg_at_10"


def test_importance_figure_orders_bars() -> None:
    frame = pd.DataFrame({"param": ["lr", "loss"], "importance": [0.7, 0.3]})
    fig = param_charts.importance_figure(frame, "val_ndcg_at_10")
    assert list(fig.data[0].y) == ["loss", "lr"]  # plotly draws bottom-up: the top bar is the most important
    assert not param_charts.importance_figure(frame.iloc[0:0], "x").data


# ------------------------------------------------------------------------------------------ robustness


def test_no_metrics_single_run_and_zero_runs_do_not_crash() -> None:
    bare = make_runs(1).drop(columns=["metrics.val_ndcg_at_10", "metrics.train_seconds"])
    assert cmp.metric_names(bare) == []
    for runs in (bare, make_runs(1), make_runs(0)):
        style = RunStyle.of(runs)
        param_charts.parallel_coordinates_figure(runs, cmp.param_names(runs), "val_ndcg_at_10", style)
        param_charts.param_scatter_figure(runs, "factors", "val_ndcg_at_10", style)
        charts.metric_bars_figure(runs, cmp.metric_names(runs), style)
        tables.param_diff_table(runs, style.labels)
        tables.comparison_table(runs, cmp.param_names(runs), cmp.metric_names(runs), style)
        tables.best_runs_per_experiment(runs, "val_ndcg_at_10")
        charts.selection_figure(style, list(runs["run_id"]))


def test_odd_names_are_kept_as_text() -> None:
    runs = make_runs(2, run_name=["<b>bold</b>", "a.b/c d"], params__weird__name=["1", "x"])
    labels = RunStyle.of(runs).labels
    assert labels[runs.run_id[0]] == "<b>bold</b>"
    table = tables.param_diff_table(runs, labels)
    assert "weird.name" in table.index and list(table.columns) == ["<b>bold</b>", "a.b/c d"]


def test_names_from_the_store_are_shown_as_text_in_figures() -> None:
    runs = make_runs(2, run_name=["<b>bold</b>", "<a href='javascript:x'>l</a>"], params__loss=["<i>a</i>", "b"])
    style = RunStyle.of(runs)
    bars = charts.metric_bars_figure(runs, ["val_ndcg_at_10"], style)
    assert [t.name for t in bars.data] == ["&lt;b&gt;bold&lt;/b&gt;", "&lt;a href='javascript:x'&gt;l&lt;/a&gt;"]
    scatter = param_charts.param_scatter_figure(runs, "loss", "val_ndcg_at_10", style)
    assert scatter.data[0].x[0] == "&lt;i&gt;a&lt;/i&gt;" and "<b>bold" not in scatter.data[0].hovertext[0]
    parallel = param_charts.parallel_coordinates_figure(runs, ["loss"], "val_ndcg_at_10", style)
    assert "&lt;i&gt;a&lt;/i&gt;" in [a.text for a in parallel.layout.annotations]
    lines = charts.metric_history_figure(history(list(runs["run_id"])), "val_ndcg_at_10", style)
    assert lines.data[0].name == "&lt;b&gt;bold&lt;/b&gt;"


@pytest.mark.timeout(60)  # catches accidental quadratic work; not a benchmark
def test_five_hundred_runs_build_and_use_webgl() -> None:
    runs = make_runs(500)
    style = RunStyle.of(runs)
    hist = history(list(runs["run_id"]), steps=20)
    lines = charts.metric_history_figure(hist, "val_ndcg_at_10", style, smoothing=0.6)
    scatter = param_charts.param_scatter_figure(runs, "learning_rate", "val_ndcg_at_10", style)
    param_charts.parallel_coordinates_figure(runs, ["loss", "factors", "learning_rate"], "val_ndcg_at_10", style)
    charts.metric_bars_figure(runs, ["val_ndcg_at_10"], style)
    tables.param_diff_table(runs, style.labels)
    assert all(isinstance(t, go.Scattergl) for t in lines.data) and len(lines.data) == 1000
    assert isinstance(scatter.data[0], go.Scattergl)


def test_references_are_grey_lines_in_their_datas_facet_on_bars_segments_and_curves() -> None:
    from recdash import comparison as cmp

    quartiles = {f"metrics.test_recall_at_10_q{q}": [0.1 * q, 0.2, 0.05 * q, 0.3] for q in range(1, 5)}
    runs = make_runs(4, dataset_digest=["d1", "d2", "d1", "d1"],
                     params__model=["rankfm", "rankfm", "ease", "popularity"],
                     metrics__test_ndcg_at_10=[0.3, 0.2, 0.33, 0.1],
                     tags__recdash__reference=[None, None, "true", "true"], **quartiles)  # fmt: skip
    groups = cmp.data_groups(runs)
    compared = runs.iloc[:2]
    refs = cmp.references_for(groups.iloc[:2], runs)
    style = RunStyle.of(compared)
    fig = charts.metric_bars_figure(compared, ["test_ndcg_at_10"], style, references=refs)
    marks = {t.name: (t.y[0], t.yaxis) for t in fig.data if t.name and t.name.startswith("reference:")}
    facet_d1 = "y" if style.group_names()[0] == groups[0] else "y2"
    assert marks == {"reference: ease": (0.33, facet_d1), "reference: popularity": (0.1, facet_d1)}
    greys = {shape.line.color for shape in fig.layout.shapes if shape.line.dash != "dash"}
    assert greys <= {c for c, _ in charts.REFERENCE_STYLES} and len(greys) == 2  # never a run's colour

    segments = charts.segment_bars_figure(compared, "test_recall_at_10", style, refs)
    bars = [t for t in segments.data if t.type == "bar"]
    assert [t.name for t in bars] == [style.label(r) for r in compared["run_id"]]
    assert list(bars[0].x) == ["q1 (least active)", "q2", "q3", "q4 (most active)"]
    assert list(bars[0].y) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    ease = [t for t in segments.data if t.name == "reference: ease"]
    assert [t.y[0] for t in ease] == pytest.approx([0.05, 0.10, 0.15, 0.20])

    hist = history(compared["run_id"].tolist(), key="test_ndcg_at_10")
    curves = charts.metric_history_figure(hist, "test_ndcg_at_10", style, references=refs)
    lines = [(a.text, a.yref) for a in curves.layout.annotations if "reference" in a.text]
    assert sorted(lines) == [("reference ease: 0.33", facet_d1), ("reference popularity: 0.1", facet_d1)]

    table = tables.reference_table(compared, groups.iloc[:2], refs, ["test_ndcg_at_10"], style)
    ratio = table.set_index("run")["× best reference (test_ndcg_at_10)"]
    assert ratio["reference: ease"] == pytest.approx(1.0) and ratio["reference: popularity"] == pytest.approx(
        0.1 / 0.33
    )
    assert ratio[style.label(compared["run_id"].iloc[0])] == pytest.approx(0.3 / 0.33)
    assert np.isnan(ratio[style.label(compared["run_id"].iloc[1])])  # d2 has no reference


# ------------------------------------------------------------------------------------------ issue 21


def test_a_facet_with_nothing_to_draw_says_why_instead_of_an_empty_axis() -> None:
    """A cold-users run has no per-quartile values (its test users have no training activity); a legacy run of
    another experiment ("data not recorded") has none of recdash's metrics: neither becomes an empty facet."""
    quartiles = {f"metrics.test_recall_at_10_q{q}": [0.1 * q, np.nan, np.nan] for q in range(1, 5)}
    runs = make_runs(3, dataset_digest=["d1", "d1", "d1"], params__split_method=["random", "cold-users", "random"],
                     metrics__test_ndcg_at_10=[0.3, 0.5, np.nan], experiment=["exp", "exp", "legacy"],
                     **quartiles)  # fmt: skip
    runs.loc[2, ["dataset_digest", "dataset_name", "params.split_seed", "params.split_method"]] = None  # no lineage
    style = RunStyle.of(runs)
    assert len(style.group_names()) == 3
    segments = charts.segment_bars_figure(runs, "test_recall_at_10", style)
    assert [t.name for t in segments.data] == ["run-0"] and not segments.layout.annotations  # one facet, untitled
    note = segments.layout.title.subtitle.text
    assert "cold-users split: its test users have no training interactions" in note
    assert "legacy: data not recorded (no run on this data has a value for test_recall_at_10 per quartile)" in note
    bars = charts.metric_bars_figure(runs, ["test_ndcg_at_10"], style)
    assert {t.name for t in bars.data if t.type == "bar"} == {"run-0", "run-1"}
    assert "legacy: data not recorded (no run on this data has a value for test_ndcg_at_10)" in (
        bars.layout.title.subtitle.text
    )
    assert len([a for a in bars.layout.annotations if "split" in a.text]) == 2  # two facets drawn, titled


def test_hyperparameter_views_have_a_facet_per_data_group() -> None:
    runs = make_runs(4, dataset_digest=["d1", "d1", "d2", "d2"], metrics__val_ndcg_at_10=[0.2, 0.25, 0.5, 0.55])
    style = RunStyle.of(runs)
    parallel = param_charts.parallel_coordinates_figure(runs, ["loss", "factors"], "val_ndcg_at_10", style)
    titles = [a.text for a in parallel.layout.annotations if a.text in style.group_names()]
    assert titles == style.group_names()  # each data group its own panel, named
    metric_axis = {t.name: t.y[-1] for t in parallel.data}
    # each panel scales the metric over its own runs: the best of each group at the top of its panel
    assert metric_axis["run-1"] == pytest.approx(1.0) and metric_axis["run-3"] == pytest.approx(
        1.0 - param_charts.FACET_SPAN
    )
    scatter = param_charts.param_scatter_figure(runs, "factors", "val_ndcg_at_10", style)
    assert {t.name: t.yaxis for t in scatter.data} == {"run-0": "y", "run-1": "y", "run-2": "y2", "run-3": "y2"}
    assert scatter.layout.xaxis.type == scatter.layout.xaxis2.type == "linear"


def test_parallel_coordinates_titles_never_touch() -> None:
    names = ["cold_start_strategy", "epochs", "factors", "item_features", "learning_rate", "loss", "user_features"]
    runs = make_runs(3, **{f"params__{n}": ["a", "b", "c"] for n in names if n not in ("factors", "learning_rate",
                                                                                          "loss")})  # fmt: skip
    fig = param_charts.parallel_coordinates_figure(runs, names, "val_ndcg_at_10", RunStyle.of(runs))
    titles = sorted((a.x, a.y) for a in fig.layout.annotations if a.text.startswith("<b>"))
    assert len(titles) == 8
    for (x0, y0), (x1, y1) in itertools.pairwise(titles):
        assert x1 - x0 == 1 and y0 != y1  # neighbours on two heights: each title gets two axes' width
    assert fig.layout.legend.orientation == "h"  # the run legend below, not eating the axes' width
