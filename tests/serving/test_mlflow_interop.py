"""What MLflow itself (its API and UI) and catalogs read from a store recdash wrote (issue 22): registered versions
linked to their logged model both ways, registry and annotation calls that touch only the store they are given and
leave nothing behind when they fail, the model's own metrics on its logged model, the experiment kind MLflow's UI
opens on, and the saved format the running recdash checks. Real SQLite stores, real (tiny) trainings."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store

from recdash import annotations, registry
from recdash.config import TrainConfig
from recdash.contract import MLFLOW_EXPERIMENT_KIND
from recdash.models.rankfm import Hyperparams
from recdash.training import jobs
from recdash.training.run import experiment_id_for, load_data, train
from recdash.views import models as model_views

TINY = {"n_users": 60, "n_items": 40, "n_interactions": 900}
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # what mlflow.register_model writes on the logged model
# the metrics a run's logged model carries: the model's own test metrics on the whole test set
OWN_METRICS = {
    f"test_{name}_at_10"
    for name in (
        *("precision", "recall", "ndcg", "mrr", "map", "hit_rate", "coverage", "mean_popularity"),
        *("tail_hit_share", "novelty", "gini", "tail_share", "personalization", "ild"),
    )
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two runs with a logged model and one without, trained once; each test gets a copy of the database."""
    root = tmp_path_factory.mktemp("interop_template")
    with sqlite_store(root):
        base = TrainConfig(
            dataset="synthetic", dataset_options=TINY, epochs=1, patience=0, experiment="interop",
            hparams=Hyperparams(factors=4, max_samples=5),
        )  # fmt: skip
        data = load_data(base)
        a = train(TrainConfig(**{**base.__dict__, "run_name": "a"}), data).run_id
        b = train(TrainConfig(**{**base.__dict__, "run_name": "b", "seed": 7}), data).run_id
        bare = train(TrainConfig(**{**base.__dict__, "run_name": "bare", "log_model": False}), data).run_id
    return {"db": root / "mlflow.db", "a": a, "b": b, "bare": bare}


@pytest.fixture
def store(template: dict[str, object], tracking_store: str, tmp_path: Path) -> dict[str, object]:
    shutil.copy(template["db"], tmp_path / "mlflow.db")  # type: ignore[arg-type]
    return {**template, "uri": tracking_store, "client": MlflowClient(tracking_store)}


def _model_id(client: MlflowClient, run_id: str) -> str:
    return client.get_run(run_id).data.tags["recdash.model_id"]


def _registry_state(client: MlflowClient) -> list[object]:
    """Everything the registry holds, and the logged models' tags, as plain values to compare before and after."""
    models = [(m.name, m.description, dict(m.tags), dict(m.aliases)) for m in client.search_registered_models()]
    versions = [(v.name, v.version, v.source, v.run_id, dict(v.tags)) for v in client.search_model_versions()]
    experiments = [e.experiment_id for e in client.search_experiments()]
    logged = [(m.model_id, dict(m.tags)) for m in client.search_logged_models(experiments)]
    return sorted(map(repr, models)) + sorted(map(repr, versions)) + sorted(map(repr, logged))


def test_registering_links_the_logged_model_the_way_mlflow_register_model_does(store: dict[str, object]) -> None:
    """MLflow's UI shows a logged model as registered, with its versions, from the logged model's
    ``mlflow.modelVersions`` tag; recdash must leave it exactly as ``mlflow.register_model`` does."""
    client: MlflowClient = store["client"]  # type: ignore[assignment]
    a, b = str(store["a"]), str(store["b"])
    for name in ("first", "second"):  # the same two registrations of one logged model each: MLflow's, recdash's
        mlflow.register_model(f"runs:/{a}/model", f"{name}-by-mlflow")
        registry.register_run_model(b, f"{name}-by-recdash", client=client)
    by_mlflow = client.get_logged_model(_model_id(client, a)).tags[MODEL_VERSIONS_TAG]
    by_recdash = client.get_logged_model(_model_id(client, b)).tags[MODEL_VERSIONS_TAG]
    assert json.loads(by_mlflow) == [
        {"name": "first-by-mlflow", "version": 1},
        {"name": "second-by-mlflow", "version": 1},
    ]
    assert by_recdash == by_mlflow.replace("-by-mlflow", "-by-recdash")  # the same JSON, byte for byte

    # and the versions themselves: the same source (the logged model), run and status
    ours = client.get_model_version("first-by-recdash", "1")
    theirs = client.get_model_version("first-by-mlflow", "1")
    assert (ours.source, ours.run_id, ours.status) == (f"models:/{_model_id(client, b)}", b, "READY")
    assert (theirs.source, theirs.run_id, theirs.status) == (f"models:/{_model_id(client, a)}", a, "READY")


def test_registry_and_annotations_touch_only_the_store_they_are_given(
    store: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MLFLOW_TRACKING_URI, the working folder somewhere else: every call goes to the given store and nothing
    appears in the working folder (MLflow's default store there is ./mlflow.db)."""
    uri, a, b = str(store["uri"]), str(store["a"]), str(store["b"])
    mlflow.set_tracking_uri(None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    client = MlflowClient(uri)

    assert registry.register_run_model(a, "recs", client=client) == 1
    assert registry.register_run_model(b, "recs", client=client) == 2
    registry.set_alias("recs", "champion", 1, client=client)
    registry.set_alias("recs", "challenger", 2, client=client)
    registry.update_description("recs", "top-10", client=client)
    registry.set_model_tag("recs", "owner", "team", client=client)
    registry.update_version_description("recs", 2, "seed 7", client=client)
    assert not model_views.champion_vs_challenger("recs", client=client).empty
    registry.promote_challenger("recs", 2, client=client)
    registry.delete_model_tag("recs", "owner", client=client)
    assert registry.run_versions(a, client=client) == [("recs", 1)]
    assert registry.list_registered_models(client)["name"].tolist() == ["recs"]
    assert len(registry.snapshot(client)[1]) == 2
    experiment = client.get_run(a).info.experiment_id
    annotations.set_description(uri, annotations.Target("run", a), "note")
    annotations.set_tag(uri, annotations.Target("run", a), "k", "v")
    annotations.delete_tag(uri, annotations.Target("run", a), "k")
    annotations.set_description(uri, annotations.Target("experiment", experiment), "exp note")
    annotations.set_description(uri, annotations.Target("model", "recs"), "model note")
    annotations.set_description(uri, annotations.Target("version", "recs/1"), "v1 note")
    annotations.set_tag(uri, annotations.Target("model", "recs"), "team", "recs")
    dataset = annotations.Target("dataset", "synthetic", (experiment,))
    annotations.set_description(uri, dataset, "generated")
    annotations.set_tag(uri, dataset, "kind", "synthetic")

    assert sorted(os.listdir(elsewhere)) == []
    assert registry.get_model("recs", client)["aliases"] == {"champion": 2}
    assert client.get_run(a).data.tags["mlflow.note.content"] == "note"
    assert client.get_model_version("recs", "1").description == "v1 note"
    assert client.get_experiment(experiment).tags[annotations.dataset_key("synthetic", "description")] == "generated"


def test_a_registration_that_fails_leaves_the_store_and_the_folder_as_they_were(
    store: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, a, bare = str(store["uri"]), str(store["a"]), str(store["bare"])
    mlflow.set_tracking_uri(None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    client = MlflowClient(uri)
    before = _registry_state(client)

    with pytest.raises(ValueError, match="logged no model"):
        registry.register_run_model(bare, "recs", client=client)
    with pytest.raises(ValueError, match="not found"):
        registry.register_run_model("0" * 32, "recs", client=client)
    assert _registry_state(client) == before

    # the database refuses the version after the registered model was created (as a lost connection, a full disk
    # or a constraint would): the registered model this call created goes again
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute(
            "CREATE TRIGGER refuse_versions BEFORE INSERT ON model_versions "
            "BEGIN SELECT RAISE(ABORT, 'versions refused by this test'); END"
        )
    with pytest.raises((ValueError, registry.RegistryError), match="Model Version creation error"):
        registry.register_run_model(a, "recs", client=client)
    assert _registry_state(client) == before
    assert client.search_registered_models() == []

    # a model that already has versions keeps them, and stays
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute("DROP TRIGGER refuse_versions")
    registry.register_run_model(a, "recs", client=client)
    before = _registry_state(client)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute(
            "CREATE TRIGGER refuse_versions BEFORE INSERT ON model_versions "
            "BEGIN SELECT RAISE(ABORT, 'versions refused by this test'); END"
        )
    with pytest.raises((ValueError, registry.RegistryError), match="Model Version creation error"):
        registry.register_run_model(str(store["b"]), "recs", client=client)
    assert _registry_state(client) == before
    assert sorted(os.listdir(elsewhere)) == []


def test_the_logged_model_carries_exactly_the_models_own_test_metrics(store: dict[str, object]) -> None:
    client: MlflowClient = store["client"]  # type: ignore[assignment]
    run = client.get_run(str(store["a"]))
    logged = client.get_logged_model(_model_id(client, str(store["a"])))
    on_model = {m.key: m.value for m in logged.metrics}
    assert set(on_model) == OWN_METRICS
    assert all(on_model[key] == pytest.approx(run.data.metrics[key], nan_ok=True) for key in on_model)
    # the run keeps every figure: baseline, segments, training facts, validation
    for key in ("baseline_test_ndcg_at_10", "test_ndcg_at_10_q1", "baseline_test_recall_at_10_q4", "best_epoch",
                "train_seconds", "best_val_ndcg_at_10", "val_ndcg_at_10"):  # fmt: skip
        assert key in run.data.metrics, key
    assert set(run.data.metrics) - set(on_model), "the run has more than its model's metrics"
    assert not any(m.model_id for m in client.get_metric_history(run.info.run_id, "baseline_test_ndcg_at_10"))


def test_experiments_recdash_creates_open_on_training_runs(store: dict[str, object]) -> None:
    """``mlflow.experimentKind=custom_model_development``: the kind MLflow's UI writes for "Machine learning" (MLflow
    3.4-3.8's UIs take tabs and landing page from it; 3.17's switch is covered by tests/test_e2e_mlflow_ui.py)."""
    client: MlflowClient = store["client"]  # type: ignore[assignment]
    made_by_train = client.get_experiment(client.get_run(str(store["a"])).info.experiment_id)
    assert made_by_train.tags.get(MLFLOW_EXPERIMENT_KIND) == "custom_model_development"
    assert client.get_experiment(experiment_id_for("made-by-references-or-demo")).tags[MLFLOW_EXPERIMENT_KIND] == (
        "custom_model_development"
    )
    jobs.submit(
        jobs.parse_job("train", ["--experiment", "made-by-a-job", "--dataset", "synthetic"]),
        tracking_uri=str(store["uri"]),
    )
    assert client.get_experiment_by_name("made-by-a-job").tags[MLFLOW_EXPERIMENT_KIND] == "custom_model_development"
    # an experiment someone else created is left as it is
    theirs = client.create_experiment("theirs", tags={"team": "x"})
    assert experiment_id_for("theirs") == theirs
    assert client.get_experiment(theirs).tags == {"team": "x"}
    jobs.submit(
        jobs.parse_job("train", ["--experiment", "theirs", "--dataset", "synthetic"]), tracking_uri=str(store["uri"])
    )
    assert client.get_experiment(theirs).tags == {"team": "x"}


def test_the_mlmodel_says_which_recdash_wrote_the_model_and_its_format(store: dict[str, object]) -> None:
    import recdash
    from recdash.models.base import FORMAT_VERSION

    client: MlflowClient = store["client"]  # type: ignore[assignment]
    info = mlflow.models.get_model_info(f"models:/{_model_id(client, str(store['a']))}")
    assert info.metadata == {"recdash_version": recdash.__version__, "recdash_model_format": FORMAT_VERSION}


def test_the_running_recdash_refuses_a_model_in_a_format_it_cannot_read(
    store: dict[str, object], tmp_path: Path
) -> None:
    """In one process every recdash model runs the first ``recdash`` imported there (here: this checkout), not the
    copy it ships; that code must refuse a format it does not know, saying who wrote it and what to do."""
    client: MlflowClient = store["client"]  # type: ignore[assignment]
    uri = f"models:/{_model_id(client, str(store['a']))}"
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "copy")))
    assert mlflow.pyfunc.load_model(str(local)) is not None  # today's format loads
    ids = next(local.rglob("ids.json"))
    meta = json.loads(ids.read_text())
    ids.write_text(json.dumps({**meta, "format_version": 3, "recdash_version": "9.0.0"}))
    with pytest.raises(Exception, match=r"model format 3, written by recdash 9\.0\.0.*reads formats 1, 2") as err:
        mlflow.pyfunc.load_model(str(local))
    assert "process of its own" in str(err.value)


def test_aliases_are_mirrored_as_version_tags_for_catalogs(store: dict[str, object]) -> None:
    """DataHub's MLflow source lists versions with ``search_model_versions``, which returns no aliases; it maps
    version tags to the model's properties. recdash keeps ``recdash.aliases`` on each version equal to its aliases."""
    client: MlflowClient = store["client"]  # type: ignore[assignment]
    registry.register_run_model(str(store["a"]), "recs", client=client)
    registry.register_run_model(str(store["b"]), "recs", client=client)

    def seen_by_a_catalog() -> dict[int, tuple[list[str], str | None]]:
        return {
            int(v.version): (list(v.aliases), v.tags.get(registry.ALIASES_TAG))
            for v in client.search_model_versions("name = 'recs'")
        }

    registry.set_alias("recs", "champion", 1, client=client)
    registry.set_alias("recs", "challenger", 2, client=client)
    assert seen_by_a_catalog() == {1: ([], "champion"), 2: ([], "challenger")}  # the aliases only as tags
    registry.set_alias("recs", "champion", 2, client=client)  # moved: version 1 loses its tag
    assert seen_by_a_catalog() == {1: ([], None), 2: ([], "challenger, champion")}
    registry.delete_alias("recs", "challenger", client=client)
    assert seen_by_a_catalog() == {1: ([], None), 2: ([], "champion")}
    registry.set_alias("recs", "challenger", 1, client=client)
    registry.promote_challenger("recs", 1, client=client)
    assert seen_by_a_catalog() == {1: ([], "champion"), 2: ([], None)}
    client.set_registered_model_alias("recs", "shadow", "2")  # set outside recdash: caught up at the next change
    registry.set_alias("recs", "challenger", 2, client=client)
    assert seen_by_a_catalog() == {1: ([], "champion"), 2: ([], "challenger, shadow")}
