"""A user's file with its column mapping: one column is never two roles (user and item), on every path (the data
layer, the CLI), and the Train page preselects a column only when its name says what it holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recdash.data import DatasetError, load_table
from recdash.data.files import _normalise, guess_id_columns

ROOT = Path(__file__).parents[2]


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,item_id,rating\n1,2,5\n1,3,4\n2,3,1\n")
    return path


@pytest.mark.parametrize(
    ("columns", "needle"),
    [
        ({"user_col": "user_id", "item_col": "user_id"}, "column 'user_id' is chosen as both the user and the item"),
        ({"item_col": "rating", "weight_col": "rating"}, "column 'rating' is chosen as both the item and the rating"),
        ({"timestamp_col": "user_id"}, "column 'user_id' is chosen as both the user and the timestamp"),
    ],
)
def test_one_column_in_two_roles_is_a_dataset_error_naming_it(
    ratings: Path, columns: dict[str, str], needle: str
) -> None:
    with pytest.raises(DatasetError) as err:
        load_table(str(ratings), **columns)
    assert str(err.value).startswith("ratings.csv: ") and needle in str(err.value)


def test_normalise_refuses_it_too() -> None:
    raw = pd.DataFrame({"item_id": ["2", "3"]})  # what reading one column under two names leaves
    with pytest.raises(DatasetError, match="chosen as both the user and the item column"):
        _normalise(raw, {"user_id": "user_id", "item_id": "user_id"}, "f.csv", 2, "line")


def test_the_cli_says_error_and_exits_2_without_a_traceback(ratings: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'cli.db'}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "recdash", "train", "--dataset", "csv", "--data-path", str(ratings),
         "--user-col", "user_id", "--item-col", "user_id", "--no-model"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line == "error: ratings.csv: column 'user_id' is chosen as both the user and the item column; choose a " \
        "different column for each."  # fmt: skip


@pytest.mark.parametrize(
    ("columns", "user", "item"),
    [
        (["user_id", "item_id", "rating"], "user_id", "item_id"),
        (["userId", "movieId", "rating", "timestamp"], "userId", "movieId"),  # MovieLens' own CSVs
        (["Customer ID", "product_id", "qty"], "Customer ID", "product_id"),
        (["user", "item", "stars"], "user", "item"),
        (["a", "b", "c"], None, None),  # nothing says which is which: ask
        (["visitor", "b"], "visitor", None),
    ],
)
def test_columns_are_preselected_only_when_their_names_say_so(
    columns: list[str], user: str | None, item: str | None
) -> None:
    assert guess_id_columns(columns) == {"user_id": user, "item_id": item}
