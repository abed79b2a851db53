"""Runs and Compare a practitioner can trust, driven with AppTest over a real SQLite store: two datasets, one
configuration pair repeated with 3 seeds, an Optuna sweep, and runs of another tool with one-step metrics."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from apps import run_ok, texts
from mlflow.tracking import MlflowClient
from scipy import stats
from stores import sqlite_store
from streamlit.testing.v1 import AppTest

from recdash.config import TrainConfig
from recdash.evaluation import per_user
from recdash.models.rankfm import Hyperparams
from recdash.training.references import train_references
from recdash.training.run import load_data, train
from recdash.training.sweep import run_sweep
from recdash.training.sweep_spec import SweepSpec, parse_space
from recdash.views import significance as sv

APP = str(Path(__file__).parents[2] / "app.py")
DATA_A = {"n_users": 120, "n_items": 80, "n_interactions": 3000, "seed": 1}
DATA_B = {"n_users": 100, "n_items": 80, "n_interactions": 2500, "seed": 1}
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("compare_store")
    with sqlite_store(root) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=DATA_A, epochs=3, patience=0, experiment="study",
                           log_model=False)  # fmt: skip
        data = load_data(base)
        repeats: dict[str, list[str]] = {"warp": [], "bpr": []}
        for loss in repeats:
            for seed in SEEDS:
                config = replace(base, hparams=Hyperparams(factors=8, loss=loss, max_samples=10), seed=seed,
                                 run_name=f"{loss}-s{seed}")  # fmt: skip
                repeats[loss].append(train(config, data).run_id)
        # warp with seed 1 again, as "Repeat with seeds" after a first run made it: the same draw twice
        again = replace(base, hparams=Hyperparams(factors=8, loss="warp", max_samples=10), seed=1,
                        run_name="warp-s1-again")  # fmt: skip
        duplicate = train(again, data).run_id
        other = replace(base, dataset_options=DATA_B, run_name="other-data",
                        hparams=Hyperparams(factors=8, max_samples=10))  # fmt: skip
        other_id = train(other).run_id
        refs = train_references(replace(base, experiment="references"), data).runs  # on DATA_A only
        spec = SweepSpec(
            config=replace(base, experiment="sweeps", run_name="sw", epochs=2),
            space=parse_space(["factors=4:16", "loss=bpr,warp"]), n_trials=4, storage=f"sqlite:///{root / 'o.db'}",
        )  # fmt: skip
        sweep = run_sweep(spec).parent_run_id
        client = MlflowClient(uri)
        exp = client.create_experiment("other tool")
        foreign = []
        for i in range(2):
            run = client.create_run(exp, run_name=f"xgb-{i}")
            client.log_param(run.info.run_id, "max_depth", str(3 + i))
            client.log_metric(run.info.run_id, "logloss", 0.5 - 0.1 * i)  # one value: a final metric
            client.set_terminated(run.info.run_id)
            foreign.append(run.info.run_id)
    references = {name: result.run_id for name, result in refs.items()}
    return {"uri": uri, "repeats": repeats, "other": other_id, "sweep": sweep, "foreign": foreign,
            "references": references, "duplicate": duplicate}  # fmt: skip


@pytest.fixture
def use_store(store: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store["uri"]))
    mlflow.set_tracking_uri(str(store["uri"]))
    yield store


def compare(run_ids: list[str], view: str | None = None) -> AppTest:
    """Compare on ``run_ids``, opened on tab ``view`` (by its link, ?view=...; Final metrics by default)."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["runs"] = ",".join(run_ids)
    if view:
        at.query_params["view"] = view
    at.run()
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_tab(at: AppTest, view: str) -> AppTest:
    """Switch tab as a click does: the tab's key holds the open tab's label."""
    at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by element key (their JSON spec, as the browser gets it)."""
    out = {}
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        out[element.proto.id.rsplit("-", 1)[-1] if not element.key else element.key] = spec
    return out


def decoded(values: object) -> list[float]:
    """A figure's numbers as the browser gets them: plotly sends numpy arrays as base64 ("bdata")."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return list(values)  # type: ignore[call-overload]


def trace_colors(spec: dict) -> dict[str, str]:
    out = {}
    for trace in spec["data"]:
        color = (trace.get("line") or {}).get("color") or (trace.get("marker") or {}).get("color")
        name = trace.get("name") or ""
        if name and isinstance(color, str) and name != "popularity baseline" and not name.startswith("reference:"):
            out[trace["name"]] = color
    return out


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    return next(f.value for f in at.dataframe if set(columns) <= {*f.value.columns, f.value.index.name})


def unescaped(texts: Iterable[str]) -> str:
    """What Markdown shows of escaped text (escape_markdown puts a backslash before punctuation)."""
    return re.sub(r"\\(.)", r"\1", " ".join(texts))


def all_ids(store: dict[str, object]) -> list[str]:
    return [*store["repeats"]["warp"], *store["repeats"]["bpr"], store["other"]]  # type: ignore[index]


def test_a_run_has_one_colour_on_the_whole_page(use_store: dict[str, object]) -> None:
    at = compare(all_ids(use_store))
    at.toggle(key="aggregate").set_value(False).run()  # one line/bar per run
    key = figures(at)["colour_key"]
    expected = dict(zip(key["data"][0]["text"], key["data"][0]["marker"]["color"], strict=True))
    assert len(expected) == 7 and len(set(expected.values())) == 7
    drawn = {"bars_chart": figures(at)["bars_chart"]}
    drawn["history_chart"] = figures(open_tab(at, "Learning curves"))["history_chart"]
    open_tab(at, "Hyperparameters")
    at.segmented_control(key="hp_view").set_value("All hyperparameters").run()
    drawn["parallel_chart"] = figures(at)["parallel_chart"]
    at.segmented_control(key="hp_view").set_value("One hyperparameter").run()
    drawn["scatter_chart"] = figures(at)["scatter_chart"]
    for name, spec in drawn.items():
        colors = trace_colors(spec)
        assert colors and all(expected[label] == color for label, color in colors.items()), name
    assert figures(at)["colour_key"] == key  # and the key above every tab stays the same


def test_only_the_open_tab_is_drawn_and_the_link_names_it(use_store: dict[str, object]) -> None:
    at = compare(all_ids(use_store))
    assert set(figures(at)) == {"colour_key", "bars_chart"}  # 100 runs' charts at once took seconds to draw
    at = compare(all_ids(use_store), view="Learning curves")
    assert set(figures(at)) == {"colour_key", "history_chart"}
    assert at.query_params["view"] == "Learning curves"


def test_no_best_across_datasets_and_the_warning_names_each_in_full(use_store: dict[str, object]) -> None:
    at = compare(all_ids(use_store))
    at.toggle(key="aggregate").set_value(False).run()
    warning = " ".join(w.value for w in at.warning)
    groups = table(at, "run", "data (dataset · split)")["data (dataset · split)"].unique()
    assert len(groups) == 2 and all(g.replace(".", "\\.") in warning or g in warning.replace("\\", "") for g in groups)
    bars = figures(at)["bars_chart"]
    best = [(t["name"], t["yaxis"]) for t in bars["data"] if any(x.startswith("★ best") for x in t.get("text") or [])]
    facet = {t["name"]: t["yaxis"] for t in bars["data"] if t["name"] == "other-data"}["other-data"]
    assert best and {axis for _, axis in best} == ({"y", "y2"} - {facet})  # bests only among the 6 repeats
    assert "other-data" not in {name for name, _ in best}  # alone on its dataset: it beats nobody
    assert {a["text"] for a in bars["layout"]["annotations"]} == set(groups)


def test_repeats_show_mean_std_and_n_that_match_numpy(use_store: dict[str, object]) -> None:
    at = compare(all_ids(use_store))
    assert at.toggle(key="aggregate").value  # repeats found: mean ± std is the default view
    assert at.multiselect(key="group_by").value == ["loss"]  # every hyperparameter but the seed that varies
    summary = table(at, "data", "configuration", "hyperparameters", "test_ndcg_at_10")
    other_data = summary[summary["test_ndcg_at_10"].str.endswith("(n=1)")]
    assert len(other_data) == 1 and other_data["hyperparameters"].iloc[0] == "loss=warp"  # its own dataset's row
    summary = summary.drop(other_data.index).set_index("hyperparameters")
    client = MlflowClient()
    for loss, ids in use_store["repeats"].items():  # type: ignore[union-attr]
        values = np.array([client.get_run(r).data.metrics["test_ndcg_at_10"] for r in ids])
        text = summary.loc[f"loss={loss}", "test_ndcg_at_10"]
        assert text == f"{values.mean():.4f} ± {values.std(ddof=1):.4f} (n=3)"
    bands = figures(open_tab(at, "Learning curves"))["history_chart"]
    names = {t["name"] for t in bands["data"] if t.get("showlegend") is not False}
    assert {"A: loss=warp (n=3)", "B: loss=bpr (n=3)"} <= names


def test_default_axes_are_the_hyperparameters_that_vary(use_store: dict[str, object]) -> None:
    ids = [*use_store["repeats"]["warp"], *use_store["repeats"]["bpr"]]  # type: ignore[index]
    at = compare(ids, view="Hyperparameters")
    assert at.segmented_control(key="hp_view").value == "One hyperparameter"  # only one varies: a scatter says it
    assert at.selectbox(key="scatter_param").value == "loss"
    at.segmented_control(key="hp_view").set_value("All hyperparameters").run()
    assert at.multiselect(key="pc_params").value == ["loss"]  # not dataset_*, not seed, not constants
    parallel = figures(at)["parallel_chart"]
    names = {f"{loss}-s{seed}" for loss in ("warp", "bpr") for seed in SEEDS}
    assert {t["hovertemplate"].split("<br>")[0].split(" · ")[0] for t in parallel["data"]} == names


def test_single_value_metrics_are_bars(use_store: dict[str, object]) -> None:
    at = compare(list(use_store["foreign"]), view="Learning curves")  # type: ignore[arg-type]
    assert at.selectbox(key="history_metric").value == "logloss"
    spec = figures(at)["history_chart"]
    assert {t["type"] for t in spec["data"]} == {"bar"}
    assert "final value" in " ".join(c.value for c in at.caption)


def test_importance_says_how_many_more_runs_it_needs(use_store: dict[str, object]) -> None:
    at = compare(all_ids(use_store), view="Importance")
    text = " ".join(i.value for i in at.info)
    assert "importance needs at least 10 runs" in text and "4 more" in text  # 6 runs on the main dataset


def test_a_sweep_gets_optunas_own_views(use_store: dict[str, object]) -> None:
    at = compare([str(use_store["sweep"])], view="Sweep")
    assert at.selectbox(key="sweep").value == use_store["sweep"]
    assert figures(at)["sweep_chart"]["layout"]["title"]["text"] == "Optimization History Plot"
    assert "finished trials of 4" in " ".join(c.value for c in at.caption)
    at.segmented_control(key="sweep_view").set_value("Slice").run()
    assert figures(at)["sweep_chart"]["layout"]["title"]["text"] == "Slice Plot"


def test_runs_page_nests_sweeps_and_filters_params_by_number(use_store: dict[str, object]) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/runs.py")
    at.run()
    runs = at.dataframe(key="runs_table").value
    assert "▸ sw (4 trials)" in set(runs["run_name"]) and not runs["run_name"].str.contains("-trial-").any()
    at.multiselect(key="expanded_sweeps").set_value([use_store["sweep"]]).run()
    runs = at.dataframe(key="runs_table").value
    names = runs["run_name"].tolist()
    parent = names.index("▾ sw (4 trials)")
    assert all(n.startswith("   └ sw-trial-") for n in names[parent + 1 : parent + 5])
    assert runs.loc[parent, "search space"] == "factors=4:16, loss=bpr,warp"
    assert runs.loc[parent, "best trial"].startswith("factors=")
    at.text_input(key="filter").input("params.factors > 8").run()
    assert not at.exception and not at.error
    shown = at.dataframe(key="runs_table").value
    factors = pd.to_numeric(shown["params.factors"].dropna())
    assert len(factors) and (factors > 8).all()  # numbers, not strings: "16" > "8" but "16" < "8" as text


def test_runs_are_measured_against_the_references_on_their_data(use_store: dict[str, object]) -> None:
    warp = use_store["repeats"]["warp"][0]  # type: ignore[index]
    at = compare([warp, use_store["other"]])  # type: ignore[list-item]
    client = MlflowClient()
    refs = {name: client.get_run(run_id).data.metrics for name, run_id in use_store["references"].items()}
    assert set(refs) == {"popularity", "ease", "itemknn"}
    spec = figures(at)["bars_chart"]["data"]
    marks = {(t["name"], t["x"][0]): t["y"][0] for t in spec if t["name"].startswith("reference:")}
    # a mark per reference and metric drawn, at that reference's value, on DATA_A's facet (the first)
    assert marks == {
        (f"reference: {name}", metric): metrics[metric]
        for name, metrics in refs.items()
        for metric in ("test_ndcg_at_10", "test_recall_at_10")
    }
    assert {t.get("yaxis", "y") for t in spec if t["name"].startswith("reference:")} == {"y"}
    rows = table(at, "run", "kind", "data").set_index("run")
    ratio = rows["× best reference (test_ndcg_at_10)"]
    best = max(m["test_ndcg_at_10"] for m in refs.values())
    mine = client.get_run(warp).data.metrics["test_ndcg_at_10"]
    assert ratio.loc["warp-s1"] == pytest.approx(mine / best)
    assert np.isnan(ratio.loc["other-data"])  # no reference was fitted on the other dataset
    assert rows.loc["reference: ease", "kind"] == "reference"

    open_tab(at, "Segments")
    segments = figures(at)["segment_chart"]
    bars = {t["name"]: decoded(t["y"]) for t in segments["data"] if t["type"] == "bar"}
    run = client.get_run(warp).data.metrics
    assert bars["warp-s1"] == pytest.approx([run[f"test_recall_at_10_q{q}"] for q in range(1, 5)])
    beyond = table(at, "run", "test_novelty_at_10", "test_gini_at_10").set_index("run")
    assert beyond.loc["reference: popularity", "test_gini_at_10"] == pytest.approx(
        refs["popularity"]["test_gini_at_10"]
    )
    assert beyond.loc["warp-s1", "test_personalization_at_10"] == pytest.approx(run["test_personalization_at_10"])


def test_a_seed_run_twice_on_the_same_configuration_and_data_counts_once(use_store: dict[str, object]) -> None:
    warp = list(use_store["repeats"]["warp"])  # type: ignore[index]
    at = compare([*warp, str(use_store["duplicate"])])
    summary = table(at, "configuration", "hyperparameters", "test_ndcg_at_10")
    client = MlflowClient()
    values = np.array([client.get_run(r).data.metrics["test_ndcg_at_10"] for r in warp])
    again = client.get_run(str(use_store["duplicate"])).data.metrics["test_ndcg_at_10"]
    assert again == values[0]  # the same seed, configuration and data: the same draw
    assert summary["test_ndcg_at_10"].tolist() == [f"{values.mean():.4f} ± {values.std(ddof=1):.4f} (n=3)"]
    assert "warp-s1-again (same as warp-s1)" in unescaped(c.value for c in at.caption)
    bars = figures(at)["bars_chart"]
    dots = {t["name"] for t in bars["data"] if t["type"] == "scatter" and t.get("mode") == "markers"}
    assert "warp-s1-again" not in dots and {"warp-s1", "warp-s2", "warp-s3"} <= dots  # counted runs, their colours


def test_a_selected_sweep_compares_its_finished_trials(use_store: dict[str, object]) -> None:
    at = compare([str(use_store["sweep"])])
    compared = table(at, "run", "status", "run_id")
    client = MlflowClient()
    trials = client.search_runs(
        [client.get_run(str(use_store["sweep"])).info.experiment_id],
        f"tags.mlflow.parentRunId = '{use_store['sweep']}'",
    )
    finished = {t.info.run_id for t in trials if t.info.status == "FINISHED"}
    assert set(compared["run_id"]) == finished and str(use_store["sweep"]) not in set(compared["run_id"])
    note = unescaped(i.value for i in at.info)
    assert f"sw is a sweep: its {len(finished)} finished trials are compared instead" in note
    key = figures(at)["colour_key"]["data"][0]["text"]
    assert "sw" not in key and len(key) == len(finished)  # the parent has no colour, no legend entry


def runs_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/runs.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_selecting_a_sweep_on_the_runs_page_selects_its_finished_trials(use_store: dict[str, object]) -> None:
    at = runs_page()
    ids = list(at.session_state["runs_table_ids"])
    sweep = str(use_store["sweep"])
    assert at.multiselect(key="expanded_sweeps").placeholder == "Expand: 1 sweep and 1 set of references"
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index(sweep)], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    selected = list(at.session_state["selected_runs"])
    client = MlflowClient()
    trials = [r.info.run_id for r in client.search_runs([client.get_run(sweep).info.experiment_id],
                                                        f"tags.mlflow.parentRunId = '{sweep}'")]  # fmt: skip
    finished = {t for t in trials if client.get_run(t).info.status == "FINISHED"}
    assert set(selected) == finished and sweep not in selected
    assert at.multiselect(key="expanded_sweeps").value == [sweep]  # listed under it, ticked
    shown = list(at.session_state["runs_table_ids"])
    assert sorted(at.session_state["runs_table"]["selection"]["rows"]) == sorted(shown.index(t) for t in finished)
    assert f"sw is a sweep: its {len(finished)} finished trials are selected instead" in unescaped(
        c.value for c in at.caption
    )


def test_runs_table_names_each_runs_data_and_its_kept_epoch(use_store: dict[str, object]) -> None:
    at = runs_page()
    table = at.dataframe(key="runs_table").value
    assert list(table.columns[:3]) == ["run_name", "data", "metrics.best_val_ndcg_at_10"]
    rows = table.set_index("run_name")
    assert rows.loc["other-data", "data"] != rows.loc["warp-s1", "data"]
    client = MlflowClient()
    run = client.get_run(str(use_store["repeats"]["warp"][0]))  # type: ignore[index]
    history = client.get_metric_history(run.info.run_id, "val_ndcg_at_10")
    kept = next(h.value for h in history if h.step == run.data.metrics["best_epoch"])
    assert rows.loc["warp-s1", "metrics.best_val_ndcg_at_10"] == pytest.approx(kept)
    assert "different datasets or splits" in unescaped(c.value for c in at.caption)


def test_an_experiment_without_runs_is_not_called_a_filter_miss(use_store: dict[str, object]) -> None:
    import streamlit as st

    client = MlflowClient()
    empty = client.get_experiment_by_name("no runs yet")
    empty = empty or client.get_experiment(client.create_experiment("no runs yet"))
    st.cache_data.clear()  # the experiments list is cached for 30 s
    at = runs_page()
    at.multiselect(key="experiments").set_value([empty.experiment_id]).run()
    assert not at.exception
    text = unescaped(i.value for i in at.info)
    assert "have no runs yet" in text and "Clear the filter" not in text


# ---- is the difference real? (issue 24) ---------------------------------------------------------------------------


def test_each_run_is_measured_against_the_best_reference_with_a_paired_interval(
    use_store: dict[str, object],
) -> None:
    repeats = use_store["repeats"]
    ids = [*repeats["warp"], *repeats["bpr"], use_store["other"]]  # type: ignore[index]
    at = compare(ids)
    shown = table(at, "verdict", "95% interval")
    metric = at.selectbox(key="sig_metric").value
    assert metric == "test_ndcg_at_10"
    uri = str(use_store["uri"])
    references = use_store["references"]
    logged = {name: MlflowClient(uri).get_run(r).data.metrics[metric] for name, r in references.items()}  # type: ignore[union-attr]
    best = max(logged, key=logged.get)
    on_a = shown[shown["data"] == shown["data"].iloc[0]]
    assert on_a["run"].iloc[0] == f"reference: {best}" and on_a["verdict"].iloc[0].startswith("reference")
    # each difference is the paired statistic over the users, recomputed here from the artifacts
    ref_users = per_user.read(references[best], uri).set_index("user_id")[metric]  # type: ignore[index]
    run = repeats["warp"][0]  # type: ignore[index]
    mine = per_user.read(run, uri).set_index("user_id")[metric]
    row = on_a.set_index("run").loc[use_store_label(at, run)]
    assert row["difference"] == pytest.approx(float((mine - ref_users.loc[mine.index]).mean()), abs=1e-12)
    expected = stats.ttest_rel(mine, ref_users.loc[mine.index]).pvalue
    assert row["p"] == ("< 0.001" if expected < 0.001 else f"{expected:.3f}")  # never "0.0000"

    def number(text: str) -> float:
        return 0.0 if text == "< 0.001" else float(text)

    compared = on_a.dropna(subset=["p"])
    assert len(compared) == len(on_a) - 1
    assert all(number(h) >= number(p) for p, h in zip(compared["p"], compared["p (Holm)"], strict=True))
    assert set(on_a["verdict"].iloc[1:]) <= {"better beyond noise", "worse beyond noise", "within noise"}
    # the run on other data is never paired with DATA_A's reference: its own data, its own first row
    on_b = shown[shown["data"] != shown["data"].iloc[0]]
    assert list(on_b["run"]) == ["other-data"] and on_b["verdict"].iloc[0].startswith("reference")
    # any run can be the one measured against
    at.selectbox(key="sig_reference").set_value(run)
    run_ok(at)
    again = table(at, "verdict", "95% interval")
    assert again["run"].iloc[0] == use_store_label(at, run)
    (heading,) = [h for h in at.subheader if h.value == "Is the difference real?"]
    assert heading.proto.help == sv.METHOD and "bootstrap over users" in sv.METHOD  # the method, as help text


def use_store_label(at: AppTest, run_id: str) -> str:
    """The label the page gives ``run_id`` (its run name, as the colour key shows it)."""
    return MlflowClient().get_run(run_id).info.run_name


def test_bars_have_interval_whiskers_and_the_best_says_if_it_is_within_noise(use_store: dict[str, object]) -> None:
    repeats = use_store["repeats"]
    ids = [*repeats["warp"], *repeats["bpr"]]  # type: ignore[index]
    at = compare(ids)
    at.toggle(key="aggregate").set_value(False)
    run_ok(at)
    spec = figures(at)["bars_chart"]
    bars = [t for t in spec["data"] if t.get("type") == "bar"]
    assert bars and all("error_y" in t for t in bars)
    frames = per_user.read_many(ids, str(use_store["uri"]))
    expected = sv.interval_whiskers(frames, "test_ndcg_at_10", ids).set_index("run_id")
    names = {MlflowClient().get_run(r).info.run_name: r for r in ids}
    for trace in bars:
        run = names[trace["name"]]
        x = list(trace["x"]).index("test_ndcg_at_10")
        value = decoded(trace["y"])[x]
        assert value + decoded(trace["error_y"]["array"])[x] == pytest.approx(expected.at[run, "high"], abs=1e-9)
        assert value - decoded(trace["error_y"]["arrayminus"])[x] == pytest.approx(expected.at[run, "low"], abs=1e-9)
    stars = [text for t in bars for text in t["text"] if text]
    assert stars and all(s in ("★ best", "★ best?") for s in stars)
    assert re.search(r"★ test_ndcg_at_10: \S+ is best, (but within|beyond) noise of \S+", unescaped(
        [c.value for c in at.caption]))  # fmt: skip


def test_repeats_name_seed_noise_and_user_sampling(use_store: dict[str, object]) -> None:
    repeats = use_store["repeats"]
    ids = [*repeats["warp"], *repeats["bpr"], use_store["duplicate"]]  # type: ignore[index]
    at = compare(ids)
    spread = table(at, "seed noise (std over seeds)", "user sampling (SE over users)")
    logged = {r: MlflowClient().get_run(r).data.metrics["test_ndcg_at_10"] for r in repeats["warp"]}  # type: ignore[index]
    warp = spread[(spread["metric"] == "test_ndcg_at_10") & spread["configuration"].str.contains("loss=warp")]
    assert len(warp) == 1 and warp["repeats"].iloc[0] == 3  # the duplicate seed counted once
    assert warp["seed noise (std over seeds)"].iloc[0] == pytest.approx(np.std(list(logged.values()), ddof=1))
    assert warp["user sampling (SE over users)"].iloc[0] > 0


def test_segments_have_per_quartile_whiskers(use_store: dict[str, object]) -> None:
    ids = list(use_store["repeats"]["warp"])  # type: ignore[index]
    at = compare(ids, view="Segments")
    spec = figures(at)["segment_chart"]
    bars = [t for t in spec["data"] if t.get("type") == "bar"]
    assert bars and all("error_y" in t and len(decoded(t["error_y"]["array"])) == 4 for t in bars)
    assert "a quartile has a quarter of the users" in texts(at, "caption").replace("\n", " ")


def test_the_sweep_view_marks_the_trials_within_noise_of_the_best(use_store: dict[str, object]) -> None:
    at = compare([str(use_store["sweep"])], view="Sweep")
    marked = table(at, "within noise of the best")
    assert marked["within noise of the best"].iloc[0] == "★ the best"
    assert marked["test_ndcg_at_10"].is_monotonic_decreasing
    sentence = unescaped([c.value for c in at.caption])
    assert re.search(r"The top \d+ trials are within noise|is beyond noise of all \d+ other trials", sentence)


def test_runs_without_per_user_results_get_a_plain_note(use_store: dict[str, object]) -> None:
    ids = [*use_store["foreign"], *use_store["repeats"]["warp"]]  # type: ignore[misc]
    at = compare(ids)
    captions = unescaped([c.value for c in at.caption])
    assert "No intervals for xgb-0, xgb-1" in captions and per_user.NOT_LOGGED in captions
    assert not at.error
