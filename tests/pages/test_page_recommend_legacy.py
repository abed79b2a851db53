"""The Recommend page over a legacy file store whose model files did not all come along (issue 21, finding 3): a
model that is simply absent is a note, not an error box, and the note names the model's own artifact location --
never the temporary folder MLflow copies a model into while loading it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from legacy_store import MISSING_MODEL_TRIAL, MODEL_TRIAL, build_legacy_store
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from recdash.tracking import filestore

APP = str(Path(__file__).parents[2] / "app.py")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' legacy store, exported from git by someone whose .gitignore holds ``*.pkl``: trial 20's model
    folder came along without its python_model.pkl; trial 19's files never left the machine it ran on."""
    root = build_legacy_store(tmp_path_factory.mktemp("old-project") / "mlruns")
    (pickle,) = root.glob("*/*/artifacts/model/python_model.pkl")
    pickle.unlink()
    return root


@pytest.fixture
def store(legacy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    uri = legacy.as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    filestore.install()
    runs = MlflowClient(uri).search_runs([p.name for p in legacy.iterdir() if p.name.isdigit()])
    yield {r.info.run_name or "": r.info.run_id for r in runs}


def _recommend(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/recommend.py")
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _notes(at: AppTest) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", i.value) for i in at.info]


def test_a_model_missing_a_file_names_it_in_its_own_folder(legacy: Path, store: dict[str, str]) -> None:
    run_id = store[MODEL_TRIAL]
    at = _recommend(run=run_id)
    assert not at.error, [e.value for e in at.error]
    (folder,) = legacy.glob(f"*/{run_id}/artifacts/model")
    assert _notes(at) == [
        f"The files of runs:/{run_id}/model are incomplete: python_model.pkl is missing from its artifact location "
        f"{folder}, so this model cannot be loaded."
    ]
    assert not at.text_input  # the page stops there: no user ID box for a model that cannot load


def test_a_model_on_another_machine_is_a_note_with_its_recorded_location(legacy: Path, store: dict[str, str]) -> None:
    run_id = store[MISSING_MODEL_TRIAL]
    at = _recommend(run=run_id)
    assert not at.error, [e.value for e in at.error]
    (note,) = _notes(at)
    (experiment,) = [p.name for p in legacy.iterdir() if p.name.isdigit() and (p / run_id).is_dir()]
    assert note.startswith(
        f"The files of runs:/{run_id}/model are not on this machine: its artifact location "
        f"/workspace/mlruns/{experiment}/{run_id}/artifacts/model does not exist here."
    )
    for at in (_recommend(), _recommend(model=f"runs:/{run_id}/model")):  # the default pick, a pasted URI
        assert not at.error and not any("/tmp/tmp" in n for n in _notes(at))
