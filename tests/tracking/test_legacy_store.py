"""A legacy file store from someone else's 2021 scripts, exported from git (no empty folders, locations pointing at
another machine): every page reads it without an exception and without writing a byte; writes are refused with a
message that says why and what to do; the suggested migration cannot overwrite a database."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from legacy_store import MISSING_MODEL_TRIAL, MODEL_TRIAL, RUN_COUNT, build_legacy_store, snapshot
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from recdash import recommend as rx
from recdash import registry, tracking
from recdash.config import ConfigError, TrainConfig
from recdash.tracking import filestore
from recdash.training import jobs
from recdash.training.run import train

APP = str(Path(__file__).parents[2] / "app.py")
PAGES = ["home", "runs", "compare", "train", "recommend", "models", "discover"]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_legacy_store(tmp_path_factory.mktemp("old-project") / "mlruns")


@pytest.fixture
def store(legacy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The legacy store as this process's tracking store, opened the way the dashboard opens it."""
    uri = legacy.as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    filestore.install()
    before = snapshot(legacy)
    yield legacy
    assert snapshot(legacy) == before, "the legacy store changed"


def run_ids(root: Path) -> dict[str, str]:
    runs = MlflowClient(root.as_uri()).search_runs([p.name for p in root.iterdir() if p.name.isdigit()])
    return {r.info.run_name or "": r.info.run_id for r in runs}


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first st.dataframe showing all of ``columns`` (read-only tables carry no key in AppTest)."""
    return next(f.value for f in at.dataframe if set(columns) <= set(f.value.columns))


def page(name: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    if name != "home":
        at.switch_page(f"pages/{name}.py")
        at.run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


@pytest.mark.parametrize("name", PAGES)
def test_every_page_reads_without_writing(store: Path, name: str) -> None:
    page(name)  # the fixture checks the store's bytes afterwards


def test_opening_the_store_creates_nothing(legacy: Path, store: Path) -> None:
    client = MlflowClient(legacy.as_uri())
    assert len(client.search_runs([p.name for p in legacy.iterdir() if p.name.isdigit()])) == RUN_COUNT
    assert client.search_registered_models() == []
    assert not (legacy / ".trash").exists() and not (legacy / "models").exists()


def test_every_run_and_history_readable(store: Path) -> None:
    client = MlflowClient(store.as_uri())
    ids = run_ids(store)
    for run_id in ids.values():
        assert client.get_run(run_id).info.run_id == run_id  # MLflow's own FileStore: "Run '...' not found"
    history = client.get_metric_history(ids["3"], "val_auc")
    assert [m.step for m in history] == list(range(10))


def test_compare_draws_histories_of_legacy_runs(store: Path) -> None:
    ids = run_ids(store)
    at = page("compare", runs=",".join([ids["3"], ids["7"]]), view="Learning curves")
    at.selectbox(key="history_metric").set_value("val_auc").run()
    assert not at.exception and not at.warning
    frame = tracking.metric_histories([ids["3"], ids["7"]], ["val_auc"], uri=store.as_uri())
    assert len(frame) == 10 and frame.attrs["unreadable"] == []


def test_moved_artifacts_found_or_explained(store: Path) -> None:
    ids = run_ids(store)
    travelled = rx.load(f"runs:/{ids[MODEL_TRIAL]}/model")  # files came with the store: read from there
    assert rx.recommend(travelled, "someone", k=3)["item_id"].tolist() == ["item-0", "item-1", "item-2"]
    with pytest.raises(rx.ModelLoadError) as info:
        rx.load(f"runs:/{ids[MISSING_MODEL_TRIAL]}/model")
    message = str(info.value)
    assert "does not exist here" in message and "/workspace/mlruns/" in message and ids[MISSING_MODEL_TRIAL] in message


def test_models_recommend_and_runs_agree_on_models(store: Path) -> None:
    ids = run_ids(store)
    expected = {ids[MODEL_TRIAL], ids[MISSING_MODEL_TRIAL]}
    assert set(rx.model_sources()["run_id"]) == expected
    exps = [e.experiment_id for e in MlflowClient().search_experiments()]
    loaded = tracking.RunsLoader(store.as_uri()).load(exps)
    assert set(loaded.loc[loaded["has_model"], "run_id"]) == expected
    at = page("models")
    assert set(at.selectbox(key="register_run").options) == {
        label for label in rx.model_sources()["label"]
    }  # the register form offers exactly what Recommend offers
    recommend = page("recommend")
    assert len(recommend.selectbox(key="a_run").options) == 2


def test_writes_refused_with_what_to_do(store: Path) -> None:
    ids = run_ids(store)
    with pytest.raises(ConfigError, match="migrate-filestore"):
        train(TrainConfig(dataset="synthetic", epochs=1))
    with pytest.raises(tracking.TrackingError, match="Training is not possible here"):
        jobs.submit(jobs.parse_job("train", ["--dataset", "synthetic", "--epochs", "1"]), tracking_uri=store.as_uri())
    with pytest.raises(registry.RegistryError, match=r"legacy MLflow file store.*migrate-filestore"):
        registry.register_run_model(ids[MODEL_TRIAL], "old-model")
    at = page("models")
    assert at.button(key="register").disabled
    assert any("not possible here" in i.value for i in at.info)


def test_discover_finds_legacy_runs_and_refuses_edits(store: Path) -> None:
    """Runs without dataset inputs are found by name, params and tags; editing is refused with the reason."""
    from recdash import annotations

    ids = run_ids(store)
    found = {str(link): title for df in page("discover", q="optuna lightgbm").dataframe
             for title, link in zip(df.value["title"], df.value["link"], strict=True)}  # fmt: skip
    assert "optuna-lightgbm-2021" in [t for link, t in found.items() if link.startswith("discover?experiment=")]
    assert len([link for link in found if link.startswith("discover?run=")]) >= 8  # its runs, by experiment name
    runs = table(page("discover", q=MODEL_TRIAL), "title", "subtitle", "link")
    assert f"discover?run={ids[MODEL_TRIAL]}" in runs["link"].tolist()
    at = page("discover", run=ids[MODEL_TRIAL])
    assert at.button(key="save_description").disabled and at.button(key="set_tag").disabled
    assert any("Editing descriptions and tags is not possible here" in i.value for i in at.info)
    with pytest.raises(annotations.AnnotationError, match="migrate-filestore"):
        annotations.set_description(store.as_uri(), annotations.Target("run", ids[MODEL_TRIAL]), "text")


def test_empty_legacy_store_offers_no_demo_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "mlruns"
    script = f"import mlflow; mlflow.MlflowClient({root.as_uri()!r}).search_experiments()"
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "PATH": str(Path(sys.executable).parent)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True, timeout=120)
    before = snapshot(root)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", root.as_uri())
    mlflow.set_tracking_uri(root.as_uri())
    at = page("home")
    assert not [b for b in at.button if b.key == "create_demo"]
    assert any("Creating demo runs is not possible here" in i.value for i in at.info)
    assert snapshot(root) == before


def test_unnamed_run_is_called_by_its_short_id(store: Path) -> None:
    at = page("home")
    latest = table(at, "run_name", "status")
    unnamed = run_ids(store)[""]
    assert unnamed[:8] in set(latest["run_name"]) and "None" not in set(latest["run_name"].astype(str))


def test_migration_target_never_overwrites(tmp_path: Path) -> None:
    store = tmp_path / "mlruns"
    store.mkdir()
    (tmp_path / "mlflow.db").write_bytes(b"recdash's own runs")
    first = filestore.migration_target(store)
    assert first == tmp_path / "mlruns-migrated.db"
    first.write_bytes(b"an earlier migration")
    assert filestore.migration_target(store) == tmp_path / "mlruns-migrated-2.db"
    advice = filestore.migration_advice(store)
    assert "sqlite:///mlflow.db" not in advice and "mlruns-migrated-2.db" in advice


def test_unopened_legacy_store_message_suggests_a_safe_target(legacy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(tracking.TrackingError) as info:
        tracking.check_store(legacy.as_uri())
    message = str(info.value)
    assert f"--target sqlite:///{legacy.parent / 'mlruns-migrated.db'}" in message
    assert "--target sqlite:///mlflow.db" not in message


def test_migrated_store_keeps_run_dates_and_explains_moved_artifacts(
    legacy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the suggested migration, Home's last activity is the runs' 2021 dates, not the migration's, and the
    model whose recorded location is on another machine gets that explanation."""
    copy = tmp_path / "mlruns"
    shutil.copytree(legacy, copy)
    target = filestore.migration_target(copy)
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "PATH": str(Path(sys.executable).parent)}
    subprocess.run(
        [sys.executable, "-m", "mlflow", "migrate-filestore", "--source", str(copy), "--target", f"sqlite:///{target}",
         "--no-progress"], check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    uri = f"sqlite:///{target}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiments = table(page("home"), "name", "last_update")
    assert str(experiments.iloc[0]["last_update"]).startswith("2021-06-01")
    ids = run_ids_sql(uri)
    with pytest.raises(rx.ModelLoadError, match="does not exist here"):
        rx.load(f"runs:/{ids[MODEL_TRIAL]}/model")


def run_ids_sql(uri: str) -> dict[str, str]:
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {r.info.run_name or "": r.info.run_id for r in runs}


def test_compare_says_what_to_do_instead_of_training_references_here(store: Path) -> None:
    """Training is refused on this store, so Compare does not send the user to the Train page for references; a run
    without the chosen metric is named, not left as an empty legend entry."""
    ids = run_ids(store)
    at = page("compare", runs=",".join([ids["3"], ids["7"]]))
    shown = " ".join(str(e.value) for kind in ("caption", "info", "code", "markdown") for e in at.get(kind))
    shown = re.sub(r"\\(.)", r"\1", shown)  # Markdown escapes
    assert "on the Train page" not in shown
    assert "not possible here" in shown and "migrate-filestore" in shown

    def bars() -> dict:
        return json.loads(next(e for e in at.get("plotly_chart") if e.key == "bars_chart").proto.spec)

    assert at.multiselect(key="bar_metrics").value == ["value"]  # the metric every one of them logged
    assert [t["name"] for t in bars()["data"]] == ["3", "7"]
    at.multiselect(key="bar_metrics").set_value(["val_auc"]).run()  # only run 3 logged it
    assert [t["name"] for t in bars()["data"]] == ["3"]
    assert "Not drawn, no value for val_auc: 7" in bars()["layout"]["title"]["subtitle"]["text"]
