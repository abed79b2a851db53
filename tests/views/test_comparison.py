"""What makes a comparison fair, on hand-made runs whose right answers are known: data groups, lineage is not a
hyperparameter, mean ± std of repeats (checked against numpy), importance only with enough runs, sweeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_charts import make_runs

from recdash import comparison as cmp
from recdash.views import style as style_module
from recdash.views.style import RunStyle


def test_data_groups_name_dataset_digest_and_split_in_full() -> None:
    runs = make_runs(4, dataset_name=["movielens-100k", "movielens-100k", "synthetic", None],
                     dataset_digest=["d1", "d1", "d2", None], params__split_method="random",
                     params__split_train="0.8", params__split_validation="0.1", params__split_test="0.1",
                     params__split_seed=["42", "42", "42", None])  # fmt: skip
    runs.loc[3, ["params.split_method", "params.split_train", "params.split_validation", "params.split_test"]] = None
    groups = cmp.data_groups(runs).tolist()
    assert groups[0] == groups[1] == "movielens-100k d1 · random split 0.8/0.1/0.1, seed 42"
    assert groups[2] == "synthetic d2 · random split 0.8/0.1/0.1, seed 42"
    assert groups[3] == "exp: data not recorded"  # nothing says it saw the same data as anything else
    warning = cmp.mixed_data_warning(cmp.data_groups(runs))
    assert warning is not None and "3 different datasets" in warning
    assert "movielens-100k d1 · random split 0.8/0.1/0.1, seed 42 (2 runs)" in warning  # never cut off
    assert cmp.mixed_data_warning(cmp.data_groups(runs.iloc[:2])) is None


def test_split_seed_or_rating_threshold_make_different_data() -> None:
    runs = make_runs(3, params__split_seed=["42", "7", "42"], params__min_rating=[None, None, "4"])
    groups = cmp.data_groups(runs).tolist()
    assert len(set(groups)) == 3 and "seed 7" in groups[1] and "rating ≥ 4" in groups[2]


def test_a_sweep_parent_is_in_its_trials_data_group() -> None:
    trials = make_runs(3)
    parent = make_runs(1, seed=5, dataset_digest=None, dataset_name=None, params__split_seed=None)
    trials["parent_run_id"] = parent.run_id[0]
    runs = pd.concat([parent, trials], ignore_index=True)
    groups = cmp.data_groups(runs)
    assert groups.nunique() == 1 and groups[0] == "ml abc123 · split, seed 42"
    alone = RunStyle.of(parent, context=runs)  # shown without its trials, it still gets their group
    assert alone.groups[parent.run_id[0]] == groups[1]


def test_lineage_and_sweep_bookkeeping_are_not_hyperparameters() -> None:
    runs = make_runs(2, params__dataset="x", params__dataset_rows="10", params__split_method="random",
                     params__min_rating="4", params__data_path="/x", params__search_space="{}",
                     params__best_factors="8", params__n_trials="5", params__seed=["1", "2"])  # fmt: skip
    assert cmp.hyperparameters(runs) == ["factors", "learning_rate", "loss", "seed"]
    assert cmp.default_axes(runs) == ["factors", "learning_rate", "loss"]  # the seed is noise, not a setting
    assert cmp.default_group_params(runs) == ["factors", "learning_rate", "loss"]


def test_varying_treats_numbers_alike_and_missing_as_a_value_when_asked() -> None:
    runs = make_runs(3, params__alpha=["0.1", "0.10", "1e-1"], params__tool=["a", None, "a"])
    assert cmp.varying(runs, ["alpha", "tool"]) == ["tool"]
    assert cmp.varying(runs, ["alpha", "tool"], missing_counts=False) == []


def test_mean_std_and_n_per_configuration_match_numpy() -> None:
    rng = np.random.default_rng(3)
    warp, bpr = rng.normal(0.30, 0.01, 3), rng.normal(0.25, 0.02, 3)
    runs = make_runs(6, params__loss=["warp"] * 3 + ["bpr"] * 3, params__factors="64",
                     params__learning_rate="0.1", params__seed=["1", "2", "3"] * 2,
                     metrics__test_ndcg_at_10=np.concatenate([warp, bpr]))  # fmt: skip
    runs.loc[5, "metrics.test_ndcg_at_10"] = np.nan  # a failed repeat: n counts finite values only
    configs = cmp.config_groups(runs, cmp.default_group_params(runs))
    assert configs.tolist() == ["loss=warp"] * 3 + ["loss=bpr"] * 3
    assert cmp.has_repeats(configs)
    summary = cmp.aggregate(runs, ["test_ndcg_at_10"], configs).set_index("group")
    assert summary.loc["loss=warp", "test_ndcg_at_10 mean"] == pytest.approx(np.mean(warp))
    assert summary.loc["loss=warp", "test_ndcg_at_10 std"] == pytest.approx(np.std(warp, ddof=1))
    assert summary.loc["loss=bpr", "test_ndcg_at_10 mean"] == pytest.approx(np.mean(bpr[:2]))
    assert summary.loc["loss=bpr", "test_ndcg_at_10 std"] == pytest.approx(np.std(bpr[:2], ddof=1))
    assert summary["test_ndcg_at_10 n"].tolist() == [3, 2]
    single = cmp.aggregate(runs.iloc[:1], ["test_ndcg_at_10"], configs.iloc[:1])
    assert np.isnan(single.loc[0, "test_ndcg_at_10 std"]) and single.loc[0, "test_ndcg_at_10 n"] == 1
    assert cmp.config_groups(runs, []).unique().tolist() == ["all runs"]
    assert not cmp.has_repeats(pd.Series(["a", "b"]))


def test_importance_needs_ten_runs_and_finds_the_param_that_matters() -> None:
    n = 24
    rng = np.random.default_rng(1)
    lr = np.geomspace(1e-3, 1, n)
    rng.shuffle(lr)
    loss = np.array(["warp", "bpr"] * (n // 2))
    runs = make_runs(
        n, params__learning_rate=[str(v) for v in lr], params__loss=loss,
        params__factors=[str(v) for v in rng.choice([8, 16, 32], n)],
        metrics__val_ndcg_at_10=np.log10(lr) + 0.05 * (loss == "warp") + 0.01 * rng.normal(size=n),
    )  # fmt: skip
    frame, note = cmp.importance(runs, "val_ndcg_at_10", ["learning_rate", "loss", "factors"])
    assert frame["param"].iloc[0] == "learning_rate" and frame["importance"].iloc[0] > 0.8
    assert frame["importance"].sum() == pytest.approx(1.0) and "fANOVA" in note
    few, note = cmp.importance(runs.head(7), "val_ndcg_at_10", ["learning_rate"])
    assert few.empty and "7 run(s)" in note and "3 more" in note  # says what is missing instead of drawing bars
    flat, note = cmp.importance(runs.assign(**{"params.loss": "warp"}), "val_ndcg_at_10", ["loss"])
    assert flat.empty and "none of the hyperparameters vary" in note
    assert cmp.importance(runs, "absent", ["loss"])[0].empty


def test_a_sweep_study_is_rebuilt_from_its_trial_runs() -> None:
    runs = make_runs(6, metrics__best_val=[0.1, 0.3, 0.2, np.nan, 0.5, 0.4])
    study = cmp.study_from_runs(runs, "best_val", ["loss", "factors", "learning_rate"])
    assert study is not None and len(study.trials) == 5  # the trial without a value (pruned) is left out
    assert study.best_value == pytest.approx(0.5)
    best = runs.loc[4]
    assert (
        study.best_params["factors"] == int(best["params.factors"]) and study.best_params["loss"] == best["params.loss"]
    )
    assert cmp.study_from_runs(runs.head(1), "best_val", ["loss"]) is None


def test_trial_states_and_sweep_parents() -> None:
    runs = make_runs(3, status=["FINISHED", "KILLED", "FAILED"],
                     tags__recdash__trial_state=["complete", "pruned", "failed"])  # fmt: skip
    assert cmp.trial_state(runs).tolist() == ["FINISHED", "PRUNED", "FAILED"]
    runs["parent_run_id"] = [None, runs.run_id[0], runs.run_id[0]]
    assert cmp.sweep_parents(runs) == {runs.run_id[0]}
    parent = pd.Series({"params.search_space": '{"factors": "32:128"}', "params.best_factors": "87",
                        "params.best_loss": "bpr"})  # fmt: skip
    assert cmp.search_space(parent) == {"factors": "32:128"}
    assert cmp.best_params(parent) == {"factors": "87", "loss": "bpr"}
    assert cmp.search_space(pd.Series({"params.search_space": "not json"})) == {}


def test_colours_follow_the_selection_and_labels_are_unique() -> None:
    runs = make_runs(3, run_name=["same", "same", None])
    style = RunStyle.of(runs, order=[runs.run_id[2], runs.run_id[0]])
    palette = style_module.palette()
    assert style.colors[runs.run_id[2]] == palette[0] and style.colors[runs.run_id[0]] == palette[1]
    assert len(set(palette)) == len(palette) > 40
    assert len(set(style.labels.values())) == 3
    assert style.labels[runs.run_id[2]] == runs.run_id[2][:8]
    assert style.labels[runs.run_id[0]].startswith("same (")


def _with_references() -> pd.DataFrame:
    """Two rankfm runs on data d1, one on d2; references on d1 (EASE trained twice: the newer counts), and one on
    d2 that failed (it is no yardstick)."""
    runs = make_runs(7, dataset_digest=["d1", "d1", "d2", "d1", "d1", "d1", "d2"],
                     metrics__test_ndcg_at_10=[0.30, 0.20, 0.25, 0.10, 0.24, 0.99, 0.5],
                     params__model=["rankfm", "rankfm", "rankfm", "popularity", "ease", "ease", "ease"],
                     tags__recdash__reference=[None, None, None, "true", "true", "true", "true"],
                     status=["FINISHED"] * 6 + ["FAILED"])  # fmt: skip
    return runs


def test_references_are_the_newest_finished_reference_per_model_on_the_same_data() -> None:
    runs = _with_references()
    assert runs.columns.str.startswith("tags.recdash").any()
    assert cmp.is_reference(runs).tolist() == [False, False, False, True, True, True, True]
    groups = cmp.data_groups(runs)
    refs = cmp.references_for(groups.iloc[:3], runs)
    # start_time runs newest first in make_runs: row 4 (0.24) is newer than row 5 (0.99)
    assert sorted(zip(refs["reference"], refs["metrics.test_ndcg_at_10"], strict=True)) == [
        ("ease", 0.24),
        ("popularity", 0.10),
    ]
    assert set(refs["data"]) == {groups[0]}  # the d2 reference failed: d2 has none
    assert cmp.best_reference(refs, "test_ndcg_at_10") == {groups[0]: ("ease", 0.24)}
    ratio = cmp.reference_ratio(runs.iloc[:3], groups.iloc[:3], refs, "test_ndcg_at_10")
    assert ratio.iloc[:2].tolist() == pytest.approx([0.30 / 0.24, 0.20 / 0.24])
    assert np.isnan(ratio.iloc[2])  # nothing to compare with on d2
    assert cmp.references_for(groups.iloc[2:3], runs).empty


# ------------------------------------------------------------------------------------------ issue 21


def test_values_a_run_chose_itself_are_results_not_settings() -> None:
    """cold_start_strategy is chosen on validation by the run (or fixed, unvalidated, on other splits) and logged
    only by models with user encodings: naming or grouping configurations by it splits repeats by an outcome and
    shows "(missing)" for every other model."""
    runs = make_runs(4, params__seed=["1", "2", "1", "2"], params__loss="warp", params__factors="8",
                     params__cold_start_strategy=["popular", None, "blend", None], params__reference_models="ease",
                     params__item_features_digest=["a", "a", "b", "b"])  # fmt: skip
    assert "cold_start_strategy" not in cmp.hyperparameters(runs) and cmp.run_choices(runs) == ["cold_start_strategy"]
    assert "reference_models" not in cmp.hyperparameters(runs)  # the references parent's description of itself
    assert "item_features_digest" not in cmp.hyperparameters(runs)  # a side-feature table's digest is lineage
    assert cmp.default_group_params(runs) == ["learning_rate"]
    assert "cold_start" not in cmp.config_groups(runs, cmp.default_group_params(runs)).iloc[0]


def test_default_axes_put_the_models_own_hyperparameters_first() -> None:
    names = ("epochs", "k", "patience", "early_stopping_metric", "item_features", "user_features", "max_samples")
    runs = make_runs(4, **{f"params__{name}": ["a", "b", "a", "b"] for name in names})
    axes = cmp.default_axes(runs)
    assert len(axes) == 8 and {"loss", "factors", "learning_rate"} <= set(axes)  # loss varies: it is drawn
    assert axes[:4] == ["factors", "learning_rate", "loss", "max_samples"]  # the model's own first
    assert cmp.rank_hyperparameters(["epochs", "loss", "model"]) == ["model", "loss", "epochs"]


def test_the_same_seed_on_the_same_configuration_and_data_counts_once() -> None:
    """The default run (seed 42) and a repeat with seed 42 are one draw: averaged as two they shrink the spread."""
    runs = make_runs(5, params__seed=["42", "42", "43", "44", "42"], params__factors="8", params__loss="warp",
                     params__learning_rate=["0.05"] * 4 + ["0.1"],
                     metrics__test_ndcg_at_10=[0.2983, 0.2983, 0.2960, 0.3010, 0.25])  # fmt: skip
    groups = cmp.data_groups(runs)
    duplicate = cmp.duplicate_runs(runs, groups)
    # make_runs starts runs newest first: row 1 is older than row 0, so row 0 is the repeat; another rate is not
    assert duplicate.tolist() == [True, False, False, False, False]
    configs = cmp.config_groups(runs, cmp.default_group_params(runs))
    summary = cmp.aggregate(runs[~duplicate], ["test_ndcg_at_10"], configs[~duplicate]).set_index("group")
    values = np.array([0.2983, 0.2960, 0.3010])
    assert summary.loc["learning_rate=0.05", "test_ndcg_at_10 n"] == 3
    assert summary.loc["learning_rate=0.05", "test_ndcg_at_10 std"] == pytest.approx(values.std(ddof=1))
    other_data = runs.assign(dataset_digest=["zz", "abc123", "abc123", "abc123", "abc123"])
    assert not cmp.duplicate_runs(other_data, cmp.data_groups(other_data)).any()  # other data: another draw
    no_seed = runs.drop(columns="params.seed")  # another tool's runs: a seed nobody recorded may differ
    assert not cmp.duplicate_runs(no_seed, cmp.data_groups(no_seed)).any()


def test_a_parent_in_a_selection_stands_for_its_finished_children() -> None:
    trials = make_runs(4, status=["FINISHED", "KILLED", "FINISHED", "FINISHED"],
                       run_name=["t3", "t2", "t1", "t0"])  # fmt: skip
    parent = make_runs(1, seed=5, run_name=["my-sweep"], tags__recdash__kind="sweep")
    refs = make_runs(2, seed=6, run_name=["reference-ease", "reference-popularity"])
    ref_parent = make_runs(1, seed=7, run_name=["references"], tags__recdash__kind="references")
    trials["parent_run_id"] = parent.run_id[0]
    refs["parent_run_id"] = ref_parent.run_id[0]
    plain = make_runs(1, seed=8, run_name=["plain"])
    runs = pd.concat([plain, parent, trials, ref_parent, refs], ignore_index=True)
    selected, notes = cmp.expand_parents(runs, [plain.run_id[0], parent.run_id[0], ref_parent.run_id[0]])
    names = dict(zip(runs.run_id, runs.run_name, strict=True))
    assert [names[r] for r in selected] == ["plain", "t0", "t1", "t3", "reference-popularity", "reference-ease"]
    assert notes == [
        "my-sweep is a sweep: its 3 finished trials are selected instead (1 not finished: left out).",
        "references holds the reference models: its 2 finished reference runs are selected instead.",
    ]
    assert cmp.expand_parents(runs, [plain.run_id[0]]) == ([plain.run_id[0]], [])


def test_configurations_get_letters_and_data_groups_a_short_name() -> None:
    assert cmp.config_letters(["b", "a", "b", "c"]) == {"b": "A", "a": "B", "c": "C"}
    assert list(cmp.config_letters(str(i) for i in range(28)).values())[-2:] == ["AA", "AB"]
    full = ["synthetic f39 · random split 0.8/0.1/0.1, seed 42",
            "synthetic f39 · cold-users split 0.8/0.1/0.1, seed 42", "exp: data not recorded"]  # fmt: skip
    assert cmp.short_data_labels(full) == {full[0]: "synthetic · random split", full[1]: "synthetic · cold-users split",
                                           full[2]: "exp: data not recorded"}  # fmt: skip
    clash = ["synthetic a1b2c3d4e5 · random split 0.8/0.1/0.1, seed 42",
             "synthetic b2c3d4e5f6 · random split 0.8/0.1/0.1, seed 42",
             "synthetic b2c3d4e5f6 · random split 0.7/0.2/0.1, seed 42"]  # fmt: skip
    assert cmp.short_data_labels(clash) == {  # two datasets called synthetic: their digests tell them apart
        clash[0]: "synthetic a1b2c3d4 · random split", clash[1]: clash[1], clash[2]: clash[2]
    }  # fmt: skip


def test_configurations_of_different_models_are_named_by_their_own_params() -> None:
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "params.model": ["rankfm", "rankfm", "rankfm", "ease"],
            "params.loss": ["warp", "warp", "bpr", None],
            "params.factors": ["64", "64", "64", None],
            "params.seed": ["1", "2", "1", None],
            "params.l2": [None, None, None, "300"],
        }
    )
    labels = cmp.config_groups(runs, ["model", "loss", "factors", "l2"]).tolist()
    # factors is the same for every rankfm run and l2 for the one EASE run: they tell nothing apart; no "(missing)"
    assert labels == ["model=rankfm, loss=warp", "model=rankfm, loss=warp", "model=rankfm, loss=bpr", "model=ease"]
    assert len(set(labels)) == 3  # still one label per configuration
