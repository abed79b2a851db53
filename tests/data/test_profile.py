"""The data profile a training logs for Discover: its numbers are the data's (checked against plain pandas), it
survives the JSON round trip unchanged, it stays a few kilobytes at any size, and a real training logs it."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd

from recdash import contract
from recdash.config import TrainConfig
from recdash.data import profile as data_profile
from recdash.data.synthetic import make_synthetic
from recdash.training.run import train


def test_the_profile_is_the_datas_shape() -> None:
    data = make_synthetic(n_users=300, n_items=120, n_interactions=6_000, seed=3)
    prof = data_profile.profile(data.interactions, data.items)
    frame = data.interactions.assign(user_id=data.interactions["user_id"].astype(str))
    per_user = frame["user_id"].value_counts()
    per_item = frame["item_id"].astype(str).value_counts()
    assert (prof.interactions, prof.users, prof.items) == (len(frame), len(per_user), len(per_item))
    assert prof.per_user.median == per_user.median() and prof.per_user.max == per_user.max()
    assert sum(prof.per_user.counts) == len(per_user) and sum(prof.per_item.counts) == len(per_item)
    counts, edges = np.histogram(per_item.to_numpy(), bins=data_profile.HISTOGRAM_BINS)
    assert prof.per_item.counts == tuple(counts) and np.allclose(prof.per_item.edges, edges)
    shares = per_item.sort_values(ascending=False).cumsum().to_numpy() / len(frame)
    assert prof.head_items == int(np.argmax(shares >= 0.5)) + 1  # the fewest items holding half the interactions
    tail = prof.long_tail
    assert tail["share_of_interactions"].iloc[-1] == 1.0 and tail["share_of_items"].iloc[-1] == 1.0
    assert tail["share_of_interactions"].is_monotonic_increasing and len(tail) <= data_profile.TAIL_POINTS
    assert len(prof.sample) == data_profile.SAMPLE_ROWS and prof.sample["user_id"].isin(per_user.index).all()


def test_the_json_round_trip_changes_nothing_and_stays_small() -> None:
    data = make_synthetic(n_users=5_000, n_items=2_000, n_interactions=200_000, seed=1)
    prof = data_profile.profile(data.interactions, data.items)
    text = json.dumps(prof.to_dict())
    assert len(text) < 20_000  # the page reads this on a visit, whatever the data's size
    back = data_profile.Profile.from_dict(json.loads(text))
    assert back is not None
    pd.testing.assert_frame_equal(back.summary(), prof.summary())
    pd.testing.assert_frame_equal(back.long_tail, prof.long_tail)
    pd.testing.assert_frame_equal(back.sample, prof.sample, check_dtype=False)
    assert back.per_user == prof.per_user and back.per_item == prof.per_item
    assert data_profile.Profile.from_dict({**prof.to_dict(), "format": 99}) is None  # a newer writer: not guessed


def test_ratings_and_time_range() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b"],
            "item_id": ["x", "y", "x"],
            "weight": [1.0, 5.0, 3.0],
            "timestamp": [1_600_000_000, 1_600_086_400, 1_700_000_000],
        }
    )
    prof = data_profile.profile(frame)
    summary = prof.summary().set_index("what")["value"]
    assert summary["ratings"] == "1 to 5 (3 distinct values)"
    assert summary["time range"] == "2020-09-13 to 2023-11-14"
    back = data_profile.Profile.from_dict(json.loads(json.dumps(prof.to_dict())))
    assert back is not None and back.summary().equals(prof.summary())


def test_a_training_logs_its_datas_profile() -> None:
    config = TrainConfig(
        model="popularity",
        dataset="synthetic",
        dataset_options={"n_users": 80, "n_items": 40, "n_interactions": 1_500, "seed": 5},
        split_seed=5,
        experiment="profiled",
    )
    result = train(config)
    logged = data_profile.read(result.run_id)
    assert logged is not None
    data = make_synthetic(n_users=80, n_items=40, n_interactions=1_500, seed=5)
    pd.testing.assert_frame_equal(logged.summary(), data_profile.profile(data.interactions, data.items).summary())
    artifacts = [f.path for f in mlflow.MlflowClient().list_artifacts(result.run_id, "dataset")]
    assert artifacts == [contract.PROFILE_ARTIFACT]
    other = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name("profiled").experiment_id)
    assert data_profile.read(other.info.run_id) is None  # a run without it (older code, other tools): None
