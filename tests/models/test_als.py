"""ALS (implicit's AlternatingLeastSquares) behind recdash's interface: epochs are implicit's iterations, rankings
and similar items are implicit's own, the logged pyfunc serves it without implicit, and the CLI, the Train form and
sweeps offer it. The shared model suite (test_model.py) runs it through every check the other models pass."""

from __future__ import annotations

import json
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from apps import page

from recdash.cli import main
from recdash.config import TrainConfig
from recdash.models import ALS, HyperparameterError, Interactions, als, models_of_param
from recdash.models import base as models_base
from recdash.models.als import ALSParams
from recdash.serving import log_model, model_requirements
from recdash.training.sweep import run_sweep
from recdash.training.sweep_spec import SweepSpec, parse_space

SMALL = ["--dataset", "synthetic", "--synthetic-users", "60", "--synthetic-items", "40",
         "--synthetic-interactions", "1200"]  # fmt: skip
PARAMS = ALSParams(factors=8, regularization=0.5, alpha=5.0)


@pytest.fixture(scope="module")
def data() -> Interactions:
    """60 users, about 80 items with Zipf popularity (duplicates included: ALS counts a pair once)."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, 3000).astype(str)
    items = rng.zipf(1.5, 3000).clip(max=80).astype(str)
    return Interactions.from_frame(pd.DataFrame({"user_id": users, "item_id": items}))


@pytest.fixture(scope="module")
def fitted(data: Interactions) -> ALS:
    return ALS(PARAMS, seed=5).fit(data, epochs=4)  # type: ignore[return-value]


def test_epochs_are_implicits_iterations(data: Interactions, fitted: ALS) -> None:
    """Four recdash epochs give exactly the factors of implicit's fit with iterations=4 and the same seed; a
    snapshot keeps its factors while training goes on (implicit updates its arrays in place)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        theirs = AlternatingLeastSquares(factors=8, regularization=0.5, alpha=5.0, iterations=4, random_state=5)
        theirs.fit(data.matrix(), show_progress=False)
    np.testing.assert_array_equal(fitted.user_factors, theirs.user_factors)
    np.testing.assert_array_equal(fitted.item_factors, theirs.item_factors)
    assert fitted.epochs_done == 4 and fitted.item_factors.dtype == np.float32
    again = ALS(PARAMS, seed=5).fit(data, epochs=2)
    snapshot = again.snapshot()
    again.fit_epoch(data)
    assert not np.array_equal(snapshot.item_factors, again.item_factors)
    np.testing.assert_array_equal(snapshot.item_factors, ALS(PARAMS, seed=5).fit(data, epochs=2).item_factors)
    assert not np.array_equal(ALS(PARAMS, seed=6).fit(data, epochs=2).item_factors, snapshot.item_factors)


def test_the_thread_count_changes_nothing_but_speed(
    data: Interactions, fitted: ALS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(als, "NUM_THREADS", 1 if als.NUM_THREADS > 1 else 2)
    np.testing.assert_array_equal(ALS(PARAMS, seed=5).fit(data, epochs=4).item_factors, fitted.item_factors)


@pytest.mark.parametrize("block_users", [None, 7], ids=["one-block", "blocks-of-7-users"])
def test_rankings_match_implicits_recommend(
    data: Interactions, fitted: ALS, block_users: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scored in numpy from the exported factors, recdash ranks as implicit's recommend with
    filter_already_liked_items on the same fitted model."""
    ids, _ = fitted.model.recommend(np.arange(data.n_users), data.matrix(), N=10, filter_already_liked_items=True)
    if block_users:
        monkeypatch.setattr(models_base, "_BLOCK_SCORES", block_users * fitted.n_items)
    ours = fitted.recommend(data.user_ids, k=10)
    for u, user in enumerate(data.user_ids):
        mine = ours.loc[ours["user_id"] == user, "item_id"].tolist()
        assert mine == data.item_ids[ids[u][ids[u] >= 0]].tolist(), user


def test_similar_items_are_implicits_cosine_neighbours(data: Interactions, fitted: ALS) -> None:
    ids, scores = fitted.model.similar_items(3, N=6)  # implicit lists the item itself first
    assert ids[0] == 3
    ours = fitted.similar_items(data.item_ids[3], k=5)
    assert ours["item_id"].tolist() == data.item_ids[ids[1:]].tolist()
    np.testing.assert_allclose(ours["similarity"], scores[1:], rtol=1e-5)


def test_the_logged_pyfunc_serves_without_implicit(fitted: ALS, monkeypatch: pytest.MonkeyPatch) -> None:
    """No implicit in the logged model's requirements, and predict works where importing implicit fails."""
    assert not any(r.startswith(("implicit", "scipy")) for r in model_requirements(fitted))
    with mlflow.start_run():
        uri = log_model(fitted).model_uri
    monkeypatch.setitem(sys.modules, "implicit", None)  # any import of implicit now raises ImportError
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)
    loaded = mlflow.pyfunc.load_model(uri)
    users = [str(fitted.user_ids[0]), str(fitted.user_ids[7]), "nobody"]
    got = loaded.predict(pd.DataFrame({"user_id": users}), params={"k": 5})
    pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(fitted.recommend(users, k=5)))
    requirements = mlflow.pyfunc.get_model_dependencies(uri)
    with open(requirements, encoding="utf-8") as f:
        assert "implicit" not in f.read()


def test_hyperparameters_have_their_own_ranges_next_to_rankfms() -> None:
    assert models_of_param("factors") == ["rankfm", "als"] and models_of_param("alpha") == ["rankfm", "als"]
    assert TrainConfig(model="rankfm", hparams={"alpha": 0.01}).params_.as_dict()["alpha"] == 0.01
    with pytest.raises(HyperparameterError, match=r"alpha \(--alpha\) must be between 1 and 10000"):
        TrainConfig.from_argv(["--model", "als", "--alpha", "0.01"])
    with pytest.raises(HyperparameterError, match=r"regularization \(--regularization\)"):
        ALSParams(regularization=0)
    config = TrainConfig.from_argv(["--model", "als", "--factors", "16", "--regularization", "3", "--alpha", "2"])
    assert config.params_ == ALSParams(factors=16, regularization=3.0, alpha=2.0)
    assert TrainConfig.from_argv(config.to_argv()) == config and config.epochs_total == config.epochs


def test_the_cli_trains_als_with_early_stopping_and_a_sweep_searches_it(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--model", "als", *SMALL, "--epochs", "4", "--factors", "8", "--regularization", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "als" and summary["params"] == {"factors": 8, "regularization": 2.0, "alpha": 4.0}
    assert 1 <= summary["best_epoch"] <= 4 and summary["model_uri"]
    history = mlflow.MlflowClient().get_metric_history(summary["run_id"], "val_ndcg_at_10")
    assert mlflow.get_run(summary["run_id"]).data.params["epochs"] == "4" and 1 <= len(history) <= 4
    config = TrainConfig.from_argv(["--model", "als", *SMALL, "--epochs", "2", "--experiment", "sweep", "--no-model"])
    spec = SweepSpec(config, parse_space(None, "als"), n_trials=2, prune=False)
    assert list(spec.space) == ["factors", "regularization", "alpha"]
    result = run_sweep(spec)
    assert result.n_complete == 2 and result.best_run_id


def test_the_train_form_offers_als_and_its_hyperparameters() -> None:
    at = page("train")
    assert any(o.startswith("als: ") for o in at.selectbox(key="t_model").options)
    at.selectbox(key="t_model").set_value("als").run()
    keys = {w.key for w in at.number_input}
    assert {"t_als__factors", "t_als__regularization", "t_als__alpha", "t_epochs", "t_patience"} <= keys
    assert "t_rankfm__alpha" not in keys and at.number_input(key="t_als__alpha").min == 1.0
    assert "als" in at.selectbox(key="s_model").options  # it has a default space: sweeps offer it
