"""Champion vs challenger with intervals, on real runs: the interval and p-value are the paired statistics of the two
runs' own per-user results, the promotion verdict says plainly which way it goes, and runs on other data or without
per-user results get a sentence, never a number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats
from stores import sqlite_store

from recdash import registry
from recdash.config import TrainConfig
from recdash.evaluation import per_user
from recdash.training.run import load_data, train
from recdash.views import models as model_views

SMALL = {"n_users": 200, "n_items": 90, "n_interactions": 6000}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Popularity and EASE on one split, EASE on another split; each registered as a version of "recs"."""
    with sqlite_store(tmp_path_factory.mktemp("models_view")) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=SMALL, model="popularity", experiment="mv")
        data = load_data(base)
        pop = train(base.replace(run_name="pop"), data).run_id
        ease = train(base.replace(model="ease", run_name="ease"), data).run_id
        other = base.replace(model="ease", run_name="ease-other-split", split_seed=5)
        moved = train(other, load_data(other)).run_id
        for run in (pop, ease, moved):
            registry.register_run_model(run, "recs")
    return {"uri": uri, "pop": pop, "ease": ease, "moved": moved}


def _compare(uri: str, champion: int, challenger: int) -> object:
    client = MlflowClient(uri)
    registry.set_alias("recs", registry.CHAMPION, champion, client=client)
    registry.set_alias("recs", registry.CHALLENGER, challenger, client=client)
    frame = model_views.champion_vs_challenger("recs", client=client)
    runs = frame.attrs["runs"]
    results = per_user.read_many(list(runs.values()), uri)
    why_not = model_views.data_difference(runs, client)
    return model_views.with_intervals(frame, {alias: results[r] for alias, r in runs.items()}, why_not)


def test_interval_and_p_value_are_the_paired_statistics_of_the_two_runs(store: dict[str, str]) -> None:
    frame = _compare(store["uri"], champion=1, challenger=2)  # popularity -> EASE
    a, b = per_user.read(store["pop"], store["uri"]), per_user.read(store["ease"], store["uri"])
    b = b.set_index("user_id").loc[a["user_id"]].reset_index()  # same users, same order
    metric = "test_ndcg_at_10"
    assert frame.attrs["key"] == metric
    expected = stats.ttest_rel(b[metric], a[metric])
    assert frame.loc[metric, model_views.P_VALUE] == pytest.approx(expected.pvalue, rel=1e-9)
    assert frame.loc[metric, "difference"] == pytest.approx(float(np.mean(b[metric] - a[metric])), abs=1e-12)
    low, high = (float(x) for x in frame.loc[metric, model_views.INTERVAL].split(" … "))
    assert low <= frame.loc[metric, "difference"] <= high
    # list-level metrics describe all lists together: no per-user values, so no interval
    assert pd.isna(frame.loc["test_coverage_at_10", model_views.INTERVAL])
    assert np.isnan(frame.loc["test_coverage_at_10", model_views.P_VALUE])
    # the verdict follows the test: EASE beats popularity on this data by far
    assert expected.pvalue < 0.001 and frame.loc[metric, "outcome"] == model_views.BETTER
    assert frame.loc[metric, "verdict"] == "better beyond noise"
    assert frame.attrs["key_text"].startswith(f"On {metric}, the key metric, challenger is better than champion")
    assert f"over {len(a)} test users" in frame.attrs["key_text"]


def test_a_difference_within_noise_is_not_called_better(store: dict[str, str]) -> None:
    frame = _compare(store["uri"], champion=2, challenger=2)  # a version against itself: exactly no difference
    assert (frame["difference"].dropna() == 0).all()
    assert "is NOT distinguishable from champion" in frame.attrs["key_text"]
    assert not frame["outcome"].isin([model_views.BETTER, model_views.WORSE]).any()


def test_other_data_or_no_per_user_results_give_a_sentence_not_an_interval(store: dict[str, str]) -> None:
    frame = _compare(store["uri"], champion=2, challenger=3)  # EASE on two different splits
    assert frame[model_views.INTERVAL].isna().all()
    text = frame.attrs["key_text"]
    assert "evaluated on different data" in text and "seed 5" in text and "seed 42" in text
    plain = model_views.champion_vs_challenger("recs", client=MlflowClient(store["uri"]))
    unknown = model_views.with_intervals(plain, {registry.CHAMPION: None, registry.CHALLENGER: None})
    assert per_user.NOT_LOGGED in unknown.attrs["key_text"]
    assert unknown[model_views.INTERVAL].isna().all()
