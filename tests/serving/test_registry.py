"""recdash.registry on a real SQLite store: register, alias, describe, tag, compare — and a registry that says no."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store

from recdash import contract, registry
from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train
from recdash.views import models as model_views

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two trained runs with models plus one run without a model, in a store each test gets a copy of."""
    root = tmp_path_factory.mktemp("registry_template")
    with sqlite_store(root):
        base = TrainConfig(
            dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="reg",
            hparams=Hyperparams(factors=8, max_samples=10),
        )  # fmt: skip
        data = load_data(base)
        a = train(TrainConfig(**{**base.__dict__, "run_name": "run-a"}), data).run_id
        b = train(TrainConfig(**{**base.__dict__, "run_name": "run-b", "seed": 7}), data).run_id
        bare = train(TrainConfig(**{**base.__dict__, "run_name": "no-model", "log_model": False}), data).run_id
    return {"db": root / "mlflow.db", "a": a, "b": b, "bare": bare}


@pytest.fixture
def store(template: dict[str, object], tracking_store: str, tmp_path: Path) -> dict[str, object]:
    """This test's store = a copy of the template database (artifacts stay in the template dir, read-only)."""
    shutil.copy(template["db"], tmp_path / "mlflow.db")  # type: ignore[arg-type]
    return {**template, "client": MlflowClient(tracking_store)}


def test_register_a_runs_model_creates_versions_with_lineage(store: dict[str, object]) -> None:
    assert registry.list_registered_models().empty
    v1 = registry.register_run_model(str(store["a"]), "recs")
    v2 = registry.register_run_model(str(store["b"]), "recs")
    assert (v1, v2) == (1, 2)
    models = registry.list_registered_models()
    assert models["name"].tolist() == ["recs"] and models["latest_version"].tolist() == [2]

    versions = registry.model_versions("recs")
    assert versions["version"].tolist() == [2, 1]
    assert versions["run_id"].tolist() == [store["b"], store["a"]]
    assert versions["run_name"].tolist() == ["run-b", "run-a"]
    assert (versions["status"] == "READY").all()
    assert (versions["dataset_name"] == "synthetic").all() and versions["dataset_digest"].str.len().min() > 0
    run = MlflowClient().get_run(str(store["a"]))
    row = versions.set_index("version").loc[1]
    for metric in ("precision", "recall", "ndcg", "mrr", "map", "hit_rate"):
        assert row[f"test_{metric}_at_10"] == pytest.approx(run.data.metrics[f"test_{metric}_at_10"])
    assert "baseline_test_ndcg_at_10" not in versions.columns
    assert row["model_uri"] == "models:/recs/1"
    assert list(versions.columns[-3:]) == ["dataset_name", "dataset_digest", "model_uri"]
    assert pd.api.types.is_datetime64_any_dtype(versions["created"])
    assert registry.run_versions(str(store["a"])) == [("recs", 1)]

    # the registered version is the run's model: it loads and predicts like the run's own
    loaded = mlflow.pyfunc.load_model("models:/recs/1")
    users = pd.DataFrame({"user_id": ["u0001", "nobody"]})
    expected = mlflow.pyfunc.load_model(f"runs:/{store['a']}/model").predict(users, params={"k": 3})
    pd.testing.assert_frame_equal(loaded.predict(users, params={"k": 3}), expected)


def test_register_rejects_runs_without_a_model_and_bad_names(store: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="has no logged model named 'model'"):
        registry.register_run_model(str(store["bare"]), "recs")
    with pytest.raises(ValueError, match="not found"):
        registry.register_run_model("0" * 32, "recs")
    with pytest.raises(ValueError, match=r"has no logged model named 'weights'.*'model'"):
        registry.register_run_model(str(store["a"]), "recs", artifact_path="weights")
    for bad in ("", "  ", "a/b", "x:y", "m@champion"):
        with pytest.raises(ValueError, match="model name"):
            registry.register_run_model(str(store["a"]), bad)
    assert registry.list_registered_models().empty  # nothing half-created


def test_set_move_and_delete_aliases(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    registry.register_run_model(str(store["b"]), "recs")
    assert registry.set_alias("recs", "champion", 1) is None
    assert registry.set_alias("recs", "challenger", "2") is None
    assert registry.get_model("recs")["aliases"] == {"champion": 1, "challenger": 2}
    assert registry.model_versions("recs").set_index("version")["aliases"].to_dict() == {2: "challenger", 1: "champion"}
    assert str(MlflowClient().get_model_version_by_alias("recs", "champion").version) == "1"

    assert registry.set_alias("recs", "champion", 2) == 1  # moved; the previous version is reported
    assert registry.model_versions("recs").set_index("version")["aliases"].to_dict() == {
        2: "challenger, champion",
        1: "",
    }
    assert registry.delete_alias("recs", "challenger") == 2
    assert registry.get_model("recs")["aliases"] == {"champion": 2}
    assert "champion→v2" in registry.list_registered_models()["aliases"].iloc[0]
    with pytest.raises(ValueError, match=r"has no alias 'challenger'.*champion"):
        registry.delete_alias("recs", "challenger")


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("", "must not be empty"),
        ("v1", "looks like a version"),
        ("V12", "looks like a version"),
        ("latest", "reserved"),
        ("Latest", "reserved"),
        ("a b", "letters, digits"),
        ("champ/ion", "letters, digits"),
        ("x" * 256, "at most 255"),
    ],
)
def test_bad_aliases_get_a_clear_message(store: dict[str, object], alias: str, message: str) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    with pytest.raises(ValueError, match=message):
        registry.set_alias("recs", alias, 1)
    assert registry.get_model("recs")["aliases"] == {}


def test_alias_on_missing_version_or_model(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    with pytest.raises(ValueError, match=r"version 9 of 'recs'.*not found"):
        registry.set_alias("recs", "champion", 9)
    with pytest.raises(ValueError, match="version must be a positive integer"):
        registry.set_alias("recs", "champion", "one")
    with pytest.raises(ValueError, match=r"'nope'.*not found"):
        registry.set_alias("nope", "champion", 1)
    with pytest.raises(ValueError, match=r"'nope'.*not found"):
        registry.model_versions("nope")


def test_description_and_tags(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    registry.update_description("recs", "WARP on ML-100K; *not* markdown")
    registry.set_model_tag("recs", "team", "recsys")
    registry.set_model_tag("recs", "stage", "prod")
    info = registry.get_model("recs")
    assert info["description"] == "WARP on ML-100K; *not* markdown"
    assert info["tags"] == {"team": "recsys", "stage": "prod"}
    assert registry.list_registered_models()["tags"].iloc[0] == "stage=prod, team=recsys"
    registry.delete_model_tag("recs", "stage")
    registry.update_description("recs", "")
    info = registry.get_model("recs")
    assert info["tags"] == {"team": "recsys"} and info["description"] == ""
    with pytest.raises(ValueError, match="no tag 'stage'"):
        registry.delete_model_tag("recs", "stage")
    with pytest.raises(ValueError, match="tag key must not be empty"):
        registry.set_model_tag("recs", " ", "x")


def test_champion_vs_challenger_side_by_side(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    registry.register_run_model(str(store["b"]), "recs")
    with pytest.raises(ValueError, match="no version with alias 'champion', 'challenger'"):
        model_views.champion_vs_challenger("recs")
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    frame = model_views.champion_vs_challenger("recs")
    assert list(frame.columns[:3]) == ["champion (v1)", "challenger (v2)", "difference"]
    client = MlflowClient()
    ma, mb = (client.get_run(str(store[k])).data.metrics for k in ("a", "b"))
    assert frame.loc["test_ndcg_at_10", "champion (v1)"] == pytest.approx(ma["test_ndcg_at_10"])
    assert frame.loc["test_ndcg_at_10", "challenger (v2)"] == pytest.approx(mb["test_ndcg_at_10"])
    assert frame.loc["test_ndcg_at_10", "difference"] == pytest.approx(mb["test_ndcg_at_10"] - ma["test_ndcg_at_10"])
    assert {f"test_{m}_at_10" for m in ("precision", "recall", "ndcg", "mrr", "map", "hit_rate")} <= set(frame.index)
    assert frame.attrs["uris"] == {"champion": "models:/recs/1", "challenger": "models:/recs/2"}
    assert frame.attrs["runs"] == {"champion": store["a"], "challenger": store["b"]}


def test_champion_vs_challenger_says_which_way_each_difference_goes(store: dict[str, object]) -> None:
    """A bare difference does not say who is ahead: mean popularity (novelty) and Gini (how unevenly items are
    recommended) are better lower, the rest higher."""
    registry.register_run_model(str(store["a"]), "recs")
    registry.register_run_model(str(store["b"]), "recs")
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    frame = model_views.champion_vs_challenger("recs")
    assert list(frame.columns) == [
        "champion (v1)", "challenger (v2)", "difference", "better when", "verdict", "outcome"
    ]  # fmt: skip
    lower = ["test_mean_popularity_at_10", "test_gini_at_10"]
    assert set(frame.loc[lower, "better when"]) == {"lower"}
    assert set(frame.drop(index=lower)["better when"]) == {"higher"}
    client = MlflowClient()
    ma, mb = (client.get_run(str(store[k])).data.metrics for k in ("a", "b"))
    for metric, row in frame.iterrows():
        a, b = ma[metric], mb[metric]
        ahead = b < a if metric in lower else b > a
        expected = "equal" if a == b else ("better" if ahead else "worse")
        assert row["outcome"] == expected, metric
        if expected != "equal":
            assert row["verdict"] == f"challenger {expected} by {abs(b - a):.4f}", metric
    assert {"better", "worse"} & set(frame["outcome"])  # the two runs differ (different seeds)


def test_outcome_and_verdict_by_hand() -> None:
    assert model_views.outcome(0.20, 0.25, lower_is_better=False) == model_views.BETTER
    assert model_views.outcome(0.20, 0.15, lower_is_better=False) == model_views.WORSE
    assert model_views.outcome(268.44, 266.09, lower_is_better=True) == model_views.BETTER  # less popular: more novel
    assert model_views.outcome(266.09, 268.44, lower_is_better=True) == model_views.WORSE
    assert (
        model_views.outcome(0.1 + 0.2, 0.3, lower_is_better=False) == model_views.EQUAL
    )  # float noise is not a change
    assert model_views.outcome(float("nan"), 0.3, lower_is_better=False) == model_views.UNKNOWN
    assert model_views.verdict("challenger", model_views.BETTER, -2.355) == "challenger better by 2.3550"
    assert model_views.verdict("challenger", model_views.WORSE, -0.0056) == "challenger worse by 0.0056"
    assert model_views.verdict("challenger", model_views.EQUAL, 0.0) == "equal"
    assert contract.lower_is_better("test_mean_popularity_at_10")
    assert not contract.lower_is_better("test_ndcg_at_10")


def test_promote_challenger_moves_champion_and_removes_challenger(store: dict[str, object]) -> None:
    for run in ("a", "b", "a"):
        registry.register_run_model(str(store[run]), "recs")
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    promotion = registry.promote_challenger("recs", 2)
    assert registry.get_model("recs")["aliases"] == {"champion": 2}
    assert (promotion.version, promotion.previous) == (2, 1)
    assert promotion.message == (
        "Promoted recs version 2 to champion (it was version 1). The challenger alias was removed, since it pointed "
        "to the new champion; set it on another version to compare again. To roll back, set champion on version 1."
    )
    assert str(MlflowClient().get_model_version_by_alias("recs", "champion").version) == "2"

    # the version the user confirmed is checked: a challenger moved in the meantime is not promoted blindly
    registry.set_alias("recs", "challenger", 3)
    with pytest.raises(ValueError, match="challenger of 'recs' now points to version 3, not version 1"):
        registry.promote_challenger("recs", 1)
    registry.set_alias("recs", "challenger", 2)
    with pytest.raises(ValueError, match="version 2 of 'recs' is already the champion"):
        registry.promote_challenger("recs", 2)
    registry.delete_alias("recs", "challenger")
    with pytest.raises(ValueError, match="has no 'challenger' alias to promote"):
        registry.promote_challenger("recs", 3)
    assert registry.get_model("recs")["aliases"] == {"champion": 2}  # refusals change nothing

    registry.delete_alias("recs", "champion")  # no champion yet: the challenger simply becomes it
    registry.set_alias("recs", "challenger", 3)
    promotion = registry.promote_challenger("recs", "v3")
    assert promotion.previous is None and "it was" not in promotion.message and "roll back" not in promotion.message
    assert registry.get_model("recs")["aliases"] == {"champion": 3}


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame({"user_id": model_input["user_id"], "rank": 1, "item_id": "x", "score": 1.0})


def test_a_model_logged_by_mlflow_2_is_listed_and_registered(store: dict[str, object], tmp_path: Path) -> None:
    """MLflow 2 kept a run's models in artifacts plus the log-model history tag, with no logged-model entity: the
    Models page, Recommend and the Runs table all count it (one definition), and registering it works."""
    from recdash import recommend as rx
    from recdash.tracking import RunsLoader

    client = store["client"]
    mlflow.pyfunc.save_model(tmp_path / "saved", python_model=_Constant())
    run = client.create_run(client.get_experiment_by_name("reg").experiment_id, run_name="mlflow-2-run")
    client.log_artifacts(run.info.run_id, str(tmp_path / "saved"), "model")
    client.set_tag(run.info.run_id, "mlflow.log-model.history", '[{"artifact_path": "model", "flavors": {}}]')
    client.set_terminated(run.info.run_id)
    with_models = {store["a"], store["b"], run.info.run_id}
    assert set(rx.model_sources()["run_id"]) == with_models
    runs = RunsLoader().load([run.info.experiment_id])
    assert set(runs.loc[runs["has_model"], "run_id"]) == with_models

    version = registry.register_run_model(run.info.run_id, "old")
    mv = client.get_model_version("old", str(version))
    assert mv.source == f"runs:/{run.info.run_id}/model" and mv.run_id == run.info.run_id
    with pytest.raises(ValueError, match=r"no logged model named 'other'.*'model'"):
        registry.register_run_model(run.info.run_id, "old", artifact_path="other")
    with pytest.raises(ValueError, match="it logged no model"):
        registry.register_run_model(str(store["bare"]), "old")


def test_a_server_that_refuses_registry_calls_gives_a_clear_error(refusing_registry: str) -> None:
    for call in (registry.list_registered_models, lambda: registry.model_versions("recs")):
        with pytest.raises(registry.RegistryError, match=f"not available for {refusing_registry}.*disabled"):
            call()


_NO_REGISTRY = """
import sys
from mlflow.tracking import MlflowClient
from recdash import registry
try:
    registry.list_registered_models(MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[2]))
except registry.RegistryError as exc:
    print(exc)
"""


def test_a_store_without_registry_gives_a_clear_error(tracking_store: str, tmp_path: Path) -> None:
    """MLflow 3 no longer offers a registry on a ./mlruns file store. Checked in a fresh process: once any page has
    run in this one, recdash.filestore opens file stores read-only, where a store without models/ has no models."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    registry_uri = f"file://{tmp_path / 'mlruns'}"
    out = subprocess.run(
        [sys.executable, "-c", _NO_REGISTRY, tracking_store, registry_uri],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert re.search(r"not available.*database-backed store", out.stdout), out.stdout + out.stderr
