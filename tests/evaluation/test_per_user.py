"""Per-user results written by real runs: they average back to the logged metrics exactly (one computation), carry
each user's activity quartile, and the paired test on them is scipy's own."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from scipy import stats
from stores import sqlite_store

from recdash import contract
from recdash.config import TrainConfig
from recdash.evaluation import per_user, significance
from recdash.training.run import load_data, train

SMALL = {"n_users": 160, "n_items": 90, "n_interactions": 4000}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    with sqlite_store(tmp_path_factory.mktemp("per_user")) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, log_model=False)
        data = load_data(base)
        fm = train(base.replace(hparams={"factors": 8, "max_samples": 10}, k=5), data).run_id
        ease = train(base.replace(model="ease", k=5), data).run_id
        cold_config = base.replace(split="cold-users", user_features="builtin", hparams={"factors": 8})
        cold = train(cold_config, load_data(cold_config)).run_id
        foreign = mlflow.MlflowClient().create_run("0").info.run_id
        mlflow.MlflowClient().set_terminated(foreign)
    return {"uri": uri, "fm": fm, "ease": ease, "cold": cold, "foreign": foreign}


def test_per_user_values_average_back_to_the_logged_metrics_exactly(runs: dict[str, object]) -> None:
    uri = str(runs["uri"])
    for name in ("fm", "ease", "cold"):
        run = mlflow.MlflowClient(uri).get_run(str(runs[name]))
        frame = per_user.read(run.info.run_id, uri)
        assert frame is not None and frame["user_id"].is_unique
        k = int(run.data.params["k"])
        for metric in contract.RANKING:
            column = contract.metric_name("test", metric, k)
            assert float(np.mean(frame[column].to_numpy())) == run.data.metrics[column], (name, column)
        assert int(run.data.metrics.get("n_users_evaluated", len(frame))) == len(frame)


def test_quartiles_average_back_to_the_segment_metrics(runs: dict[str, object]) -> None:
    uri = str(runs["uri"])
    run = mlflow.MlflowClient(uri).get_run(str(runs["fm"]))
    frame = per_user.read(run.info.run_id, uri)
    assert sorted(frame["quartile"].unique()) == [0, 1, 2, 3]
    assert frame["quartile"].value_counts().max() - frame["quartile"].value_counts().min() <= 1
    for q in range(4):
        column = "test_recall_at_5"
        values = frame.loc[frame["quartile"] == q, column].to_numpy()
        assert float(values.mean()) == run.data.metrics[f"{column}_q{q + 1}"]
    cold = per_user.read(str(runs["cold"]), uri)
    assert (cold["quartile"] == -1).all()  # cold users have no training activity


def test_the_paired_t_test_on_real_runs_is_scipys(runs: dict[str, object]) -> None:
    uri = str(runs["uri"])
    a, b = per_user.read(str(runs["ease"]), uri), per_user.read(str(runs["fm"]), uri)
    ids, values = significance.align_users([a["user_id"], b["user_id"]], [a["test_ndcg_at_5"], b["test_ndcg_at_5"]])
    assert len(ids) == len(a) == len(b)
    t, p = significance.paired_t_test(values[:, 1] - values[:, 0])
    expected = stats.ttest_rel(values[:, 1], values[:, 0])
    assert float(t[0]) == pytest.approx(expected.statistic, rel=1e-12)
    assert float(p[0]) == pytest.approx(expected.pvalue, rel=1e-12)


def test_runs_without_per_user_results_read_as_none(runs: dict[str, object]) -> None:
    uri = str(runs["uri"])
    got = per_user.read_many([str(runs["foreign"]), str(runs["fm"]), "no-such-run"], uri)
    assert got[str(runs["foreign"])] is None and got["no-such-run"] is None and got[str(runs["fm"])] is not None
