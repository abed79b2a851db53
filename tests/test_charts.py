"""Charts and tables of the Home/Runs/Compare pages on hand-made runs frames whose right answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from recdash import charts


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


# ------------------------------------------------------------------------------------------ metric histories


def test_history_one_line_per_run_named_after_the_run() -> None:
    runs = make_runs(3)
    labels = charts.label_runs(runs)
    fig = charts.metric_history_figure(history(list(runs["run_id"])), labels, "val_ndcg_at_10")
    assert [t.name for t in fig.data] == ["run-0", "run-1", "run-2"]
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5]
    assert all(isinstance(t, go.Scatter) for t in fig.data)  # few points: SVG


def test_history_x_axes_and_smoothing() -> None:
    hist = history(["a", "b"], steps=10)
    labels = {"a": "A", "b": "B"}
    wall = charts.metric_history_figure(hist, labels, "val_ndcg_at_10", x="wall_time")
    assert pd.Timestamp(wall.data[0].x[1]) - pd.Timestamp(wall.data[0].x[0]) == pd.Timedelta(seconds=1)
    rel = charts.metric_history_figure(hist, labels, "val_ndcg_at_10", x="relative_time")
    assert rel.data[1].x[0] == 0 and rel.data[1].x[-1] == pytest.approx(9.0)
    smooth = charts.metric_history_figure(hist, labels, "val_ndcg_at_10", smoothing=0.9)
    raw, smoothed = smooth.data[0], smooth.data[1]  # faint raw line under the smoothed one
    assert raw.showlegend is False and smoothed.name == "A"
    assert smoothed.y[0] == pytest.approx(raw.y[0])  # debiased EMA starts at the first value
    assert smoothed.y[-1] < raw.y[-1]  # lags behind an increasing series
    with pytest.raises(ValueError):
        charts.metric_history_figure(hist, labels, "val_ndcg_at_10", x="epoch")


def test_ema_matches_tensorboard_and_skips_non_finite() -> None:
    out = charts.ema(np.array([1.0, np.nan, 3.0]), 0.5)
    assert out[0] == pytest.approx(1.0)
    assert np.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25))
    assert list(charts.ema(np.array([1.0, 2.0]), 0)) == [1.0, 2.0]


def test_history_missing_key_or_all_nan_gives_a_message_figure() -> None:
    hist = history(["a"])
    assert not charts.metric_history_figure(hist, {}, "other").data
    hist["value"] = np.inf
    fig = charts.metric_history_figure(hist, {}, "val_ndcg_at_10")
    assert not fig.data and "No finite" in fig.layout.annotations[0].text
    empty = pd.DataFrame(columns=["run_id", "key", "step", "timestamp", "value"])
    assert not charts.metric_history_figure(empty, {}, "x").data


# ------------------------------------------------------------------------------------------ parallel coordinates


def test_parallel_coordinates_codes_categoricals_and_logs_rates() -> None:
    runs = make_runs(4)
    fig = charts.parallel_coordinates_figure(runs, ["loss", "factors", "learning_rate"], "val_ndcg_at_10")
    dims = {d.label: d for d in fig.data[0].dimensions}
    assert set(dims) == {"loss", "factors", "learning_rate (log)", "val_ndcg_at_10"}
    assert list(dims["loss"].ticktext) == ["bpr", "warp"]
    assert list(dims["loss"].values) == [1, 0, 1, 0]
    assert list(dims["factors"].values) == [8, 16, 24, 32]  # numeric strings stay numbers
    assert np.allclose(dims["learning_rate (log)"].values, [-4, -3, -2, -1])
    assert dims["learning_rate (log)"].ticktext[0] == "0.0001"
    assert list(fig.data[0].line.color) == list(runs["metrics.val_ndcg_at_10"])


def test_parallel_coordinates_missing_params_and_metrics() -> None:
    runs = make_runs(4, params__factors=["8", None, "16", ""], metrics__val_ndcg_at_10=[0.1, np.nan, 0.3, np.inf])
    fig = charts.parallel_coordinates_figure(runs, ["factors", "nope"], "val_ndcg_at_10")
    assert "2 runs without it omitted" in fig.layout.title.text
    factors = fig.data[0].dimensions[0]
    assert list(factors.values) == [8, 16]
    nan_runs = make_runs(3, params__factors=["8", None, "16"])
    dim = charts.parallel_coordinates_figure(nan_runs, ["factors"], "val_ndcg_at_10").data[0].dimensions[0]
    assert dim.ticktext[0] == charts.MISSING and dim.values[1] == dim.tickvals[0] < 8
    assert not charts.parallel_coordinates_figure(runs, ["loss"], "no_such_metric").data
    assert not charts.parallel_coordinates_figure(runs.iloc[0:0], ["loss"], "val_ndcg_at_10").data


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
    fig = charts.param_scatter_figure(runs, name, "val_ndcg_at_10")
    assert (fig.layout.xaxis.type == "log") is log
    assert list(fig.data[0].x) == [float(v) for v in values]


def test_scatter_categorical_param_hover_names_and_bad_values() -> None:
    runs = make_runs(4, metrics__val_ndcg_at_10=[0.1, np.nan, 0.3, -np.inf])
    fig = charts.param_scatter_figure(runs, "params.loss", "metrics.val_ndcg_at_10")
    assert fig.layout.xaxis.type == "category"
    assert list(fig.data[0].x) == ["warp", "warp"] and [h.split("<br>")[0] for h in fig.data[0].hovertext] == [
        "run-0",
        "run-2",
    ]
    odd = make_runs(2, params__factors=["8", "lots"])
    assert charts.param_scatter_figure(odd, "factors", "val_ndcg_at_10").layout.xaxis.type == "category"
    assert not charts.param_scatter_figure(runs, "missing", "val_ndcg_at_10").data


# ------------------------------------------------------------------------------------------ bars, best run


def test_metric_bars_mark_the_best_run_per_metric() -> None:
    runs = make_runs(3, metrics__val_ndcg_at_10=[0.2, 0.5, 0.1], metrics__train_seconds=[3.0, 9.0, 1.0])
    labels = charts.label_runs(runs)
    fig = charts.metric_bars_figure(runs, ["val_ndcg_at_10", "train_seconds"], labels)
    assert [t.name for t in fig.data] == ["run-0", "run-1", "run-2"]
    assert fig.layout.barmode == "group"
    text = {t.name: list(t.text) for t in fig.data}
    assert text["run-1"] == ["★ best", ""]  # highest ndcg
    assert text["run-2"] == ["", "★ best"]  # fewest seconds: lower is better
    assert text["run-0"] == ["", ""]
    assert charts.best_run_ids(runs, ["val_ndcg_at_10", "nope"]) == {"val_ndcg_at_10": runs.run_id[1], "nope": None}


def test_metric_bars_with_missing_metrics_and_many_runs() -> None:
    runs = make_runs(40, metrics__val_ndcg_at_10=np.nan)
    fig = charts.metric_bars_figure(runs, ["val_ndcg_at_10"], charts.label_runs(runs))
    assert len(fig.data) == charts.MAX_BAR_RUNS and "first 30 of 40" in fig.layout.title.text
    assert all(list(t.text) == [""] for t in fig.data)
    assert not charts.metric_bars_figure(runs, ["absent"], {}).data


# ------------------------------------------------------------------------------------------ tables


def test_param_diff_table_keeps_only_differing_params() -> None:
    runs = make_runs(3, params__alpha=["0.1", "0.10", "0.1"], params__note=["x", None, "x"])
    labels = charts.label_runs(runs)
    table = charts.param_diff_table(runs, labels)
    assert list(table.columns) == ["run-0", "run-1", "run-2"]
    assert set(table.index) == {"loss", "factors", "learning_rate", "note"}  # alpha "0.1" == "0.10"; split_seed same
    assert table.loc["note", "run-1"] == charts.MISSING
    assert table.loc["factors"].tolist() == ["8", "16", "24"]
    assert charts.param_diff_table(runs.iloc[:1], labels).empty
    assert charts.param_diff_table(runs.iloc[0:0], {}).empty


def test_labels_are_unique_and_fall_back_to_the_run_id() -> None:
    runs = make_runs(3, run_name=["same", "same", None])
    labels = charts.label_runs(runs)
    assert len(set(labels.values())) == 3
    assert labels[runs.run_id[2]] == runs.run_id[2][:8]
    assert labels[runs.run_id[0]].startswith("same (")


def test_lineage_warning_for_different_digests_or_splits() -> None:
    same = make_runs(3)
    assert charts.lineage_warning(same) is None
    assert charts.lineage_warning(same.iloc[:1]) is None
    digest = make_runs(3, dataset_digest=["abc", "abc", "def"])
    message = charts.lineage_warning(digest)
    assert message is not None and "dataset_digest" in message and "def" in message
    split = make_runs(2, params__split_seed=["42", "7"], params__split_method=["random", None])
    message = charts.lineage_warning(split)
    assert message is not None and "split_seed differs (42, 7)" in message and "split_method" not in message
    unknown = charts.lineage_warning(make_runs(3, dataset_digest=["abc", None, "abc"]))
    assert unknown is not None and "1 of 3 runs have no recorded dataset" in unknown


def test_comparison_table_for_csv() -> None:
    runs = make_runs(2, metrics__val_ndcg_at_10=[0.5, np.inf])
    table = charts.comparison_table(runs, ["loss", "absent"], ["val_ndcg_at_10"], charts.label_runs(runs))
    assert list(table.columns) == [
        "run", "run_id", "experiment", "status", "start_time", "params.loss", "metrics.val_ndcg_at_10"
    ]  # fmt: skip
    assert table["run"].tolist() == ["run-0", "run-1"] and np.isnan(table.iloc[1, -1])
    assert "run,run_id" in table.to_csv(index=False)
    assert charts.comparison_table(runs.iloc[0:0], ["loss"], [], {}).empty


def test_best_per_experiment_top_runs_and_links() -> None:
    runs = pd.concat([make_runs(3), make_runs(2, seed=1, experiment="other", experiment_id="2")], ignore_index=True)
    runs["metrics.val_ndcg_at_10"] = [0.1, 0.9, np.nan, 0.4, 0.3]
    best = charts.best_runs_per_experiment(runs, "val_ndcg_at_10")
    assert dict(zip(best.experiment, best.val_ndcg_at_10, strict=True)) == {"exp": 0.9, "other": 0.4}
    assert charts.best_runs_per_experiment(runs, "nope").empty
    assert charts.top_runs(runs, "val_ndcg_at_10", 2)["metrics.val_ndcg_at_10"].tolist() == [0.9, 0.4]
    assert len(charts.top_runs(runs, "val_ndcg_at_10", 10)) == 4
    links = charts.run_ui_links(runs.iloc[:1], "http://ui:5000/")
    assert links.iloc[0] == f"http://ui:5000/#/experiments/1/runs/{runs.run_id[0]}"
    assert charts.parse_run_ids(" a,b ,,a,<x>") == ["a", "b"]
    assert charts.parse_run_ids(["a,b", "c"]) == ["a", "b", "c"]
    assert charts.preferred_metric(["train_seconds", "baseline_test_ndcg_at_10", "test_ndcg_at_10"]) == (
        "test_ndcg_at_10"
    )


# ------------------------------------------------------------------------------------------ importance


def test_param_importance_orders_params_by_their_effect() -> None:
    n = 30
    rng = np.random.default_rng(1)
    lr = np.geomspace(1e-3, 1, n)
    loss = np.array(["warp", "bpr"] * (n // 2))
    noise = rng.permutation(n)
    metric = np.log10(lr) + 0.3 * (loss == "warp") + 0.01 * rng.normal(size=n)
    runs = make_runs(
        n,
        params__learning_rate=[str(v) for v in lr],
        params__loss=loss,
        params__noise=[str(v) for v in noise],
        params__factors=[str(v) for v in rng.choice([8, 16, 32], n)],
        params__constant="1",
        params__path=[f"/data/{i}.csv" for i in range(n)],
        params__seldom=[None] * (n - 2) + ["a", "b"],
        metrics__val_ndcg_at_10=metric,
    )
    imp = charts.param_importance(runs, "val_ndcg_at_10")
    assert imp["param"].iloc[0] == "learning_rate" and imp["importance"].iloc[0] > 0.9
    by = imp.set_index("param")
    assert by.loc["learning_rate", "importance"] > by.loc["loss", "importance"] > by.loc["noise", "importance"]
    assert by.loc["loss", "method"].startswith("eta") and by.loc["learning_rate", "method"].startswith("|Spearman")
    assert by.loc["constant", "importance"] == 0 and by.loc["constant", "method"] == "constant"
    assert "path" not in by.index  # one value per run: an id, not a setting
    assert np.isnan(by.loc["seldom", "importance"])
    fig = charts.param_importance_figure(imp, "val_ndcg_at_10")
    assert fig.data[0].y[-1] == "learning_rate"  # top bar


def test_param_importance_degenerate_inputs() -> None:
    assert charts.param_importance(make_runs(0), "val_ndcg_at_10").empty
    one = charts.param_importance(make_runs(1), "val_ndcg_at_10")
    assert one["importance"].isna().all()
    assert not charts.param_importance_figure(one).data
    flat = charts.param_importance(make_runs(5, metrics__val_ndcg_at_10=0.5), "val_ndcg_at_10")
    assert (flat.set_index("param").loc["factors", "method"]) == "metric constant"
    assert charts.param_importance(make_runs(5), "absent").empty


# ------------------------------------------------------------------------------------------ robustness


def test_no_metrics_single_run_and_zero_runs_do_not_crash() -> None:
    bare = make_runs(1).drop(columns=["metrics.val_ndcg_at_10", "metrics.train_seconds"])
    assert charts.metric_names(bare) == []
    assert charts.default_run_columns(bare)[:2] == ["run_name", "experiment"]
    for runs in (bare, make_runs(1), make_runs(0)):
        labels = charts.label_runs(runs)
        charts.parallel_coordinates_figure(runs, charts.param_names(runs), "val_ndcg_at_10")
        charts.param_scatter_figure(runs, "factors", "val_ndcg_at_10")
        charts.metric_bars_figure(runs, charts.metric_names(runs), labels)
        charts.param_diff_table(runs, labels)
        charts.param_importance_figure(charts.param_importance(runs, "val_ndcg_at_10"))
        charts.comparison_table(runs, charts.param_names(runs), charts.metric_names(runs), labels)
        charts.best_runs_per_experiment(runs, "val_ndcg_at_10")
        assert charts.lineage_warning(runs) is None


def test_odd_names_are_kept_as_text() -> None:
    runs = make_runs(2, run_name=["<b>bold</b>", "a.b/c d"], params__weird__name=["1", "x"])
    labels = charts.label_runs(runs)
    assert labels[runs.run_id[0]] == "<b>bold</b>"
    table = charts.param_diff_table(runs, labels)
    assert "weird.name" in table.index and list(table.columns) == ["<b>bold</b>", "a.b/c d"]


def test_names_from_the_store_are_shown_as_text_in_figures() -> None:
    runs = make_runs(2, run_name=["<b>bold</b>", "<a href='javascript:x'>l</a>"], params__loss=["<i>a</i>", "b"])
    labels = charts.label_runs(runs)
    bars = charts.metric_bars_figure(runs, ["val_ndcg_at_10"], labels)
    assert [t.name for t in bars.data] == ["&lt;b&gt;bold&lt;/b&gt;", "&lt;a href='javascript:x'&gt;l&lt;/a&gt;"]
    scatter = charts.param_scatter_figure(runs, "loss", "val_ndcg_at_10")
    assert scatter.data[0].x[0] == "&lt;i&gt;a&lt;/i&gt;" and "<b>" not in scatter.data[0].hovertext[0]
    dims = charts.parallel_coordinates_figure(runs, ["loss"], "val_ndcg_at_10").data[0].dimensions
    assert "&lt;i&gt;a&lt;/i&gt;" in dims[0].ticktext
    lines = charts.metric_history_figure(history(list(runs["run_id"])), labels, "val_ndcg_at_10")
    assert lines.data[0].name == "&lt;b&gt;bold&lt;/b&gt;"


@pytest.mark.timeout(60)  # catches accidental quadratic work; not a benchmark
def test_five_hundred_runs_build_and_use_webgl() -> None:
    runs = make_runs(500)
    labels = charts.label_runs(runs)
    hist = history(list(runs["run_id"]), steps=20)
    lines = charts.metric_history_figure(hist, labels, "val_ndcg_at_10", smoothing=0.6)
    scatter = charts.param_scatter_figure(runs, "learning_rate", "val_ndcg_at_10")
    charts.parallel_coordinates_figure(runs, ["loss", "factors", "learning_rate"], "val_ndcg_at_10")
    charts.metric_bars_figure(runs, ["val_ndcg_at_10"], labels)
    charts.param_importance(runs, "val_ndcg_at_10")
    charts.param_diff_table(runs, labels)
    assert all(isinstance(t, go.Scattergl) for t in lines.data) and len(lines.data) == 1000
    assert isinstance(scatter.data[0], go.Scattergl)
