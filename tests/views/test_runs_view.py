"""The Runs table as data: default columns on stores of any origin, numbers as numbers, sweeps nested, and param
filters compared as numbers (on a real SQLite store through the loader)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from test_charts import make_runs

from recdash import tracking
from recdash.views import runs_view


def foreign_runs(n: int = 3) -> pd.DataFrame:
    """Runs of another tool: no recdash metric or param names."""
    runs = make_runs(n).drop(columns=[c for c in make_runs(1).columns if c.startswith(("params.", "metrics."))])
    runs["params.max_depth"] = [str(3 + i) for i in range(n)]
    runs["params.eta"] = ["0.30000000000000004", "0.1", "0.2"][:n]
    runs["metrics.auc"] = np.linspace(0.7, 0.8, n)
    runs["metrics.logloss"] = np.linspace(0.5, 0.4, n)
    return runs


def test_a_store_recdash_did_not_write_gets_its_own_metrics_and_params() -> None:
    columns = runs_view.default_columns(foreign_runs())
    assert {"metrics.auc", "metrics.logloss", "params.max_depth", "params.eta"} <= set(columns)
    assert columns[-2:] == ["status", "start_time"]  # make_runs has no duration column; one experiment: no column
    several = foreign_runs().assign(experiment=["a", "b", "b"])
    assert runs_view.default_columns(several)[-1] == "experiment"


def test_key_metrics_come_first_and_mixed_stores_cover_every_run() -> None:
    ours = make_runs(3, metrics__val_recall_at_10=0.2, metrics__test_ndcg_at_10=0.3,
                     metrics__baseline_test_ndcg_at_10=0.1, params__seed=["1", "2", "3"],
                     metrics__best_val_ndcg_at_10=0.25, metrics__best_val_recall_at_10=0.3)  # fmt: skip
    columns = runs_view.default_columns(ours)
    # the key metrics first, left, visible at 1400 px: validation at the kept epoch, then test; never the last
    # epoch's validation value while the kept epoch's is there
    assert columns[:3] == ["metrics.best_val_ndcg_at_10", "metrics.best_val_recall_at_10", "metrics.test_ndcg_at_10"]
    assert "metrics.baseline_test_ndcg_at_10" not in columns and "params.seed" not in columns
    assert "params.split_seed" not in columns  # lineage is one click away, not a default
    mixed = pd.concat([ours, foreign_runs()], ignore_index=True)
    columns = runs_view.default_columns(mixed)
    assert "metrics.auc" in columns or "metrics.logloss" in columns  # the other tool's runs are not blank rows


def test_numeric_params_are_numbers_with_full_precision() -> None:
    table = runs_view.display_frame(foreign_runs(), ["params.eta", "params.max_depth", "metrics.auc"])
    assert table.columns[0] == "run_name"
    assert table["params.eta"].dtype == float and table["params.eta"][0] == 0.30000000000000004
    assert runs_view.numeric_params(make_runs(2), ["params.loss", "params.factors"]) == ["params.factors"]


def sweep_runs() -> pd.DataFrame:
    trials = make_runs(3, run_name=["sweep-trial-0", "sweep-trial-1", "sweep-trial-2"], status="FINISHED",
                       tags__recdash__trial_state=["complete", "pruned", "complete"],
                       tags__recdash__trial_number=["0", "1", "2"])  # fmt: skip
    trials.loc[1, "status"] = "KILLED"
    parent = make_runs(1, seed=9, run_name=["my-sweep"], params__loss="warp", params__factors="64",
                       params__search_space='{"factors": "32:128", "loss": "bpr,warp"}', params__best_factors="87",
                       params__best_loss="bpr", tags__recdash__kind="sweep")  # fmt: skip
    trials["parent_run_id"] = parent.run_id[0]
    other = make_runs(1, seed=3, run_name=["plain"])
    return pd.concat([other, parent, trials.iloc[::-1]], ignore_index=True)


def test_sweeps_are_nested_pruned_trials_say_so_and_parents_show_the_search() -> None:
    runs = sweep_runs()
    parent = runs.run_id[1]
    collapsed = runs_view.sweep_tree(runs, set())
    assert collapsed["run_name"].tolist() == ["plain", "▸ my-sweep (3 trials)"]
    row = collapsed.iloc[1]
    assert row[runs_view.SEARCH_SPACE] == "factors=32:128, loss=bpr,warp"
    assert row[runs_view.BEST_TRIAL] == "factors=87, loss=bpr"
    assert pd.isna(row["params.loss"]) and pd.isna(row["params.factors"])  # not the form's base values
    expanded = runs_view.sweep_tree(runs, {parent})
    assert expanded["run_name"].tolist() == [
        "plain", "▾ my-sweep (3 trials)", "   └ sweep-trial-0", "   └ sweep-trial-1", "   └ sweep-trial-2"
    ]  # fmt: skip
    assert expanded[runs_view.TRIAL_STATE].tolist()[2:] == ["FINISHED", "PRUNED", "FINISHED"]  # not KILLED
    assert runs_view.sweep_labels(runs) == {parent: "my-sweep"}
    plain = runs_view.sweep_tree(make_runs(2), set())
    assert runs_view.SEARCH_SPACE not in plain.columns and len(plain) == 2


# ------------------------------------------------------------------------------------------ numeric param filters


def test_param_comparisons_with_numbers_are_split_off() -> None:
    assert tracking.split_numeric_filter("params.factors > 50") == ("", [("factors", ">", 50.0)])
    assert tracking.split_numeric_filter("params.factors > 50 and params.loss = 'warp'") == (
        "params.loss = 'warp'", [("factors", ">", 50.0)]
    )  # fmt: skip
    assert tracking.split_numeric_filter("metrics.x > 0.2 AND params.`my p` <= 1e-3") == (
        "metrics.x > 0.2", [("my p", "<=", 0.001)]
    )  # fmt: skip
    assert tracking.split_numeric_filter("params.name = 'a and b' and params.k != 10") == (
        "params.name = 'a and b'", [("k", "!=", 10.0)]
    )  # fmt: skip


@pytest.fixture
def factor_runs(tracking_store: str) -> list[str]:
    client = MlflowClient(tracking_store)
    exp = client.create_experiment("numeric")
    ids = []
    for factors, loss in (("8", "warp"), ("64", "warp"), ("128", "bpr"), ("lots", "warp")):
        run = client.create_run(exp, run_name=f"f{factors}")
        client.log_param(run.info.run_id, "factors", factors)
        client.log_param(run.info.run_id, "loss", loss)
        client.set_terminated(run.info.run_id)
        ids.append(exp)
    return ids


@pytest.mark.parametrize("fast", [True, False])
def test_numeric_param_filter_on_a_real_store(tracking_store: str, factor_runs: list[str], fast: bool) -> None:
    """MLflow compares params as strings ("128" < "50") and refuses `params.factors > 50`; recdash compares numbers,
    on the SQL path and on MLflow's API path alike."""
    loader = tracking.RunsLoader(tracking_store, fast_path=fast)
    names = lambda f: sorted(loader.load([factor_runs[0]], filter_string=f)["run_name"])  # noqa: E731
    assert names("params.factors > 50") == ["f128", "f64"]  # "lots" is not a number: no match
    assert names("params.factors > 50 and params.loss = 'warp'") == ["f64"]
    assert names("params.factors <= 64") == ["f64", "f8"]
    assert names("params.factors = 8") == ["f8"]
    assert names("params.factors = '8'") == ["f8"]  # quoted: MLflow's text comparison, as before
    with pytest.raises(tracking.FilterError) as info:
        loader.load([factor_runs[0]], filter_string="params.loss >")
    assert ".." not in str(info.value)  # no double period in the message


def test_runs_show_their_ratio_to_the_best_reference_on_the_same_data() -> None:
    runs = make_runs(4, dataset_digest=["d1", "d1", "d2", "d1"],
                     params__model=["rankfm", "ease", "rankfm", "rankfm"],
                     metrics__test_ndcg_at_10=[0.3, 0.25, 0.2, 0.1],
                     tags__recdash__reference=[None, "true", None, None])  # fmt: skip
    assert runs_view.REFERENCE_RATIO not in runs_view.add_reference_ratio(runs.drop(columns="tags.recdash.reference"))
    shown = runs_view.add_reference_ratio(runs)
    ratio = shown[runs_view.REFERENCE_RATIO]
    assert ratio[[0, 1, 3]].tolist() == pytest.approx([1.2, 1.0, 0.4]) and np.isnan(ratio[2])
    assert shown.attrs["reference_metric"] == "test_ndcg_at_10"
    assert runs_view.REFERENCE_RATIO in runs_view.default_columns(shown)


def test_runs_show_their_data_grouped_and_the_settings_that_vary() -> None:
    """A cold-users run next to random-split runs: a Data column says which is which, its rows are not interleaved
    with theirs, and the varying loss and factors are default columns even when many other settings vary too."""
    runs = make_runs(4, params__split_method=["random", "cold-users", "random", "random"],
                     params__epochs=["8", "8", "5", "5"], params__k="10", params__user_features=["none", "builtin",
                     "none", "none"], params__item_features=["none", "builtin", "none", "none"],
                     params__model="rankfm", params__seed="42")  # fmt: skip
    shown = runs_view.with_data_groups(runs)
    assert shown[runs_view.DATA].tolist() == ["ml · random split"] * 3 + ["ml · cold-users split"]
    assert shown["run_name"].tolist() == ["run-0", "run-2", "run-3", "run-1"] and shown.attrs["data_groups"] == 2
    columns = runs_view.default_columns(shown)
    assert columns[0] == runs_view.DATA
    params = [c for c in columns if c.startswith("params.")]
    assert params[:3] == ["params.factors", "params.learning_rate", "params.loss"]  # the model's own first


def test_the_expand_picker_tells_sweeps_from_references() -> None:
    runs = sweep_runs()
    refs = make_runs(1, seed=11, run_name=["references"], tags__recdash__kind="references")
    child = make_runs(1, seed=12, run_name=["reference-ease"])
    child["parent_run_id"] = refs.run_id[0]
    runs = pd.concat([runs, refs, child], ignore_index=True)
    assert runs_view.parents_text(runs, runs_view.sweep_labels(runs)) == "1 sweep and 1 set of references"
