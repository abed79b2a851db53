"""Compare's significance frames on real runs: differences to the chosen run are the paired statistics of the runs'
own per-user results, only runs of one data group are paired, seed noise is the spread of the repeats' logged
values, quartile intervals are centred on the logged segment metrics, and runs without per-user results say so."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from stores import sqlite_store

from recdash import comparison as cmp
from recdash import contract, tracking
from recdash.config import TrainConfig
from recdash.evaluation import per_user
from recdash.training.run import load_data, train
from recdash.views import significance as sv

SMALL = {"n_users": 200, "n_items": 90, "n_interactions": 6000}
METRIC = "test_ndcg_at_10"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """On one data group: popularity and EASE as references, rankfm in two configurations x two seeds, and a run
    another tool logged; on a second split: two rankfm runs."""
    with sqlite_store(tmp_path_factory.mktemp("significance_views")) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="sv")
        data = load_data(base)
        ref = {contract.TAG_REFERENCE: "true"}
        ids = {
            "pop": train(base.replace(model="popularity", run_name="pop", tags=ref), data).run_id,
            "ease": train(base.replace(model="ease", run_name="ease", tags=ref), data).run_id,
        }
        for factors in (4, 8):
            for seed in (1, 2):
                config = base.replace(
                    hparams={"factors": factors, "max_samples": 10}, seed=seed, run_name=f"f{factors}-s{seed}"
                )
                ids[f"f{factors}-s{seed}"] = train(config, data).run_id
        other = base.replace(split_seed=9, hparams={"factors": 4, "max_samples": 10})
        other_data = load_data(other)
        ids["o1"] = train(other.replace(run_name="o1"), other_data).run_id
        ids["o2"] = train(other.replace(run_name="o2", seed=3), other_data).run_id
        client = mlflow.MlflowClient()
        foreign = client.create_run(client.get_run(ids["pop"]).info.experiment_id, run_name="foreign")
        for key in ("dataset_name", "dataset_digest", *contract.SPLIT_KEYS):
            value = client.get_run(ids["pop"]).data.params.get(key)
            if value is not None:
                client.log_param(foreign.info.run_id, key, value)
        client.log_metric(foreign.info.run_id, METRIC, 0.01)
        client.set_terminated(foreign.info.run_id)
        ids["foreign"] = foreign.info.run_id
        runs = tracking.RunsLoader(uri).load([client.get_run(ids["pop"]).info.experiment_id])
    frames = per_user.read_many(list(ids.values()), uri)
    return {"uri": uri, "ids": ids, "runs": runs, "frames": frames}


def _setup(store: dict[str, object]) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, dict[str, str]]:
    runs = store["runs"]
    groups = cmp.data_groups(runs)
    refs = cmp.references_for(groups, runs, groups)
    names = dict(zip(runs["run_id"], runs["run_name"], strict=True))
    return runs, groups, refs, names


def test_the_default_reference_is_the_best_reference_on_that_data(store: dict[str, object]) -> None:
    runs, groups, refs, _ = _setup(store)
    ids = store["ids"]
    chosen = sv.default_references(runs, groups, refs, METRIC)
    assert len(chosen) == 2  # one per data group
    logged = {r: mlflow.MlflowClient(store["uri"]).get_run(r).data.metrics[METRIC] for r in (ids["pop"], ids["ease"])}
    best_ref = max(logged, key=logged.get)
    assert chosen[groups[runs["run_id"] == ids["pop"]].iloc[0]] == best_ref
    other_group = groups[runs["run_id"] == ids["o1"]].iloc[0]  # no references there: the group's best run
    o = runs.set_index("run_id").loc[[ids["o1"], ids["o2"]], f"metrics.{METRIC}"]
    assert chosen[other_group] == o.idxmax()


def test_differences_are_paired_within_each_data_group_only(store: dict[str, object]) -> None:
    runs, groups, refs, names = _setup(store)
    ids, frames = store["ids"], store["frames"]
    reference_of = sv.default_references(runs, groups, refs, METRIC)
    table = sv.difference_table(runs, groups, frames, METRIC, reference_of, names.get)
    main = groups[runs["run_id"] == ids["pop"]].iloc[0]
    ref = reference_of[main]
    ours = table[table["data"] == main].set_index("run")
    assert ours.index[0] == names[ref] and ours["verdict"].iloc[0].startswith("reference")
    # the difference and the interval are over users: per-user values of the run minus the reference's
    a, b = frames[ref].set_index("user_id")[METRIC], frames[ids["f8-s1"]].set_index("user_id")[METRIC]
    row = ours.loc["f8-s1"]
    assert row["difference"] == pytest.approx(float((b - a.loc[b.index]).mean()), abs=1e-12)
    assert row["low"] <= row["difference"] <= row["high"] and row["users"] == len(b)
    compared = ours.dropna(subset=["p"])
    assert len(compared) == 5  # pop/ease (one is the reference), 4 rankfm
    assert (compared["p (Holm)"] >= compared["p"] - 1e-15).all()
    assert per_user.NOT_LOGGED in ours.loc["foreign", "verdict"]  # another tool's run: a note, no number
    # runs on the other split are measured against a run of their own split, never against the references above
    theirs = table[table["data"] != main]
    assert set(theirs["run"]) == {"o1", "o2"}


def test_the_best_says_whether_it_is_beyond_noise_of_the_runner_up(store: dict[str, object]) -> None:
    runs, groups, _, names = _setup(store)
    notes = sv.best_notes(runs, groups, store["frames"], METRIC, names.get)
    assert len(notes) == 2
    for _, text in notes.values():
        assert text.startswith(("best, but within noise of ", "best, beyond noise of "))
    values = runs.set_index("run_id")[f"metrics.{METRIC}"]
    main = groups[runs["run_id"] == store["ids"]["pop"]].iloc[0]
    members = runs.loc[groups == main, "run_id"]
    with_results = [r for r in members if store["frames"][r] is not None]
    assert notes[main][0] == values.loc[with_results].idxmax()


def test_repeats_split_seed_noise_from_user_sampling(store: dict[str, object]) -> None:
    runs, groups, _, _ = _setup(store)
    configs = cmp.config_groups(runs, cmp.default_group_params(runs))
    table = sv.repeat_spreads(runs, groups, configs, store["frames"], METRIC)
    ids = store["ids"]
    logged = runs.set_index("run_id")[f"metrics.{METRIC}"]
    for factors in (4, 8):
        pair = [ids[f"f{factors}-s1"], ids[f"f{factors}-s2"]]
        at = runs["run_id"] == pair[0]
        row = table[(table["configuration"] == configs[at].iloc[0]) & (table["data"] == groups[at].iloc[0])].iloc[0]
        assert row["repeats"] == 2
        # seed noise: how far the repeats' logged values are apart (std over seeds, same users)
        assert row["seed noise (std over seeds)"] == pytest.approx(float(np.std(logged.loc[pair], ddof=1)), rel=1e-9)
        assert row["mean"] == pytest.approx(float(logged.loc[pair].mean()), rel=1e-9)
        assert row["user sampling (SE over users)"] > 0


def test_quartile_intervals_are_centred_on_the_logged_segment_metrics(store: dict[str, object]) -> None:
    run = store["ids"]["f8-s1"]
    found = sv.quartile_intervals(store["frames"], METRIC, [run]).set_index("segment")
    metrics = mlflow.MlflowClient(store["uri"]).get_run(run).data.metrics
    for q in ("q1", "q2", "q3", "q4"):
        assert found.loc[q, "mean"] == pytest.approx(metrics[f"{METRIC}_{q}"], abs=1e-12)
        assert found.loc[q, "low"] <= found.loc[q, "mean"] <= found.loc[q, "high"]


def test_sweep_trials_within_noise_of_the_best(store: dict[str, object]) -> None:
    runs, _, _, names = _setup(store)
    ids = store["ids"]
    trials = runs[runs["run_id"].isin([ids[k] for k in ("f4-s1", "f4-s2", "f8-s1", "f8-s2", "ease")])]
    close, text = sv.within_noise_sentence(trials, store["frames"], METRIC, names.get)
    best = runs.set_index("run_id").loc[trials["run_id"], f"metrics.{METRIC}"].idxmax()
    assert close[0] == best
    assert (f"The top {len(close)} trials are within noise" in text) or ("is beyond noise of all" in text)
    none, why = sv.within_noise_sentence(runs[runs["run_id"] == ids["foreign"]], store["frames"], METRIC, names.get)
    assert none == [] and per_user.NOT_LOGGED in why
