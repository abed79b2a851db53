"""The saved model format is a contract: models saved by earlier code load and recommend as they did (committed
fixtures, tests/fixtures/model-format-<n>/), every model records its format and the recdash that wrote it, and a
format this code cannot read is refused with a message that says who wrote it and what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

import recdash
from recdash.models import FORMAT_VERSION, IDS_FILE, READABLE_FORMATS, ModelFormatError, Popularity, load
from recdash.models.base import Interactions
from recdash.serving import PYFUNC_FILE, model_requirements, model_signature

FIXTURES = Path(__file__).parents[1] / "fixtures"
FORMAT_2 = FIXTURES / "model-format-2"
ALGORITHMS = ("ease", "itemknn", "popularity", "rankfm")


def _expected(folder: Path) -> tuple[list[str], int, pd.DataFrame]:
    spec = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    return spec["users"], spec["k"], pd.DataFrame(spec["recommendations"])


def _same_recommendations(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.reset_index(drop=True)
    assert got[["user_id", "rank", "item_id", "source"]].to_dict("records") == (
        expected[["user_id", "rank", "item_id", "source"]].to_dict("records")
    )
    assert got["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), abs=1e-4)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_models_saved_in_format_2_recommend_what_they_did(algorithm: str) -> None:
    folder = FORMAT_2 / algorithm
    meta = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
    assert meta["format_version"] == 2 and meta["model"] == algorithm and "recdash_version" not in meta
    users, k, expected = _expected(folder)
    model = load(folder)
    assert model.name == algorithm
    _same_recommendations(model.recommend(users, k=k), expected)


def test_a_format_2_model_serves_through_the_pyfunc(tmp_path: Path) -> None:
    """The same files as the artifact of today's pyfunc (what a registered version of an old run is)."""
    folder = FORMAT_2 / "ease"
    path = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(PYFUNC_FILE),
        artifacts={"weights": str(folder)},
        code_paths=[str(Path(recdash.__file__).parent)],
        signature=model_signature(),
        input_example=pd.DataFrame({"user_id": ["u0001"]}),
        pip_requirements=model_requirements(),
    )
    users, k, expected = _expected(folder)
    got = mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame({"user_id": users}), params={"k": k})
    _same_recommendations(got, expected)


def test_every_saved_model_records_its_format_and_the_recdash_that_wrote_it(tmp_path: Path) -> None:
    train = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    folder = Popularity().fit(Interactions.from_frame(train)).save(tmp_path / "m")
    meta = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
    assert meta["format_version"] == FORMAT_VERSION and FORMAT_VERSION in READABLE_FORMATS
    assert meta["recdash_version"] == recdash.__version__


@pytest.mark.parametrize("found", [3, 0, "2"])
def test_a_format_this_code_cannot_read_is_refused_saying_who_wrote_it(tmp_path: Path, found: object) -> None:
    folder = shutil.copytree(FORMAT_2 / "rankfm", tmp_path / "m")
    meta = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
    (folder / IDS_FILE).write_text(json.dumps({**meta, "format_version": found, "recdash_version": "0.7.1"}))
    with pytest.raises(ModelFormatError) as err:
        load(folder)
    message = str(err.value)
    assert f"model format {found!r}, written by recdash 0.7.1" in message
    assert f"({recdash.__version__}, " in message and "reads formats 1, 2" in message
    assert "Load it with recdash 0.7.1 or newer" in message and "process of its own" in message


def test_a_model_that_does_not_say_who_wrote_it_is_refused_all_the_same(tmp_path: Path) -> None:
    folder = shutil.copytree(FORMAT_2 / "ease", tmp_path / "m")
    meta = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
    (folder / IDS_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelFormatError, match="model format 99, written by recdash an unknown version"):
        load(folder)
