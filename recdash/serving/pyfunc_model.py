"""The MLflow "models from code" file for recdash recommenders.

MLflow executes this file when the model loads (``mlflow.pyfunc.load_model``, ``mlflow models serve``). It needs
MLflow, numpy and pandas (and scipy for ItemKNN); the ``recdash`` package itself travels with the model as
``code_paths``. Any algorithm of :mod:`recdash.models` loads through the same class: the saved files name it.

Predict contract: a DataFrame with a ``user_id`` column, and optionally the user attribute columns of a model
trained with user features (``age``, ``gender``, ``occupation`` for the built-in ones); params ``k`` (default 10)
and ``exclude_seen`` (default true); returns ``user_id, rank, item_id, score, source`` where ``source`` is
``model``; for a user the model has never seen, ``features`` or ``blend`` when their attributes are given and the
model's cold-start strategy (chosen on validation) uses them, else ``popular``.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from recdash.data.features import FeatureError
from recdash.models import Recommender, load, validate_k


def _bad_input(message: str) -> MlflowException:
    """INVALID_PARAMETER_VALUE makes MLflow's scoring server answer 400 with this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class RecdashModel(PythonModel):
    """Top-k recommendations from a saved recdash model (any algorithm), with a popularity fallback."""

    recommender: Recommender

    def load_context(self, context: Any) -> None:
        self.recommender = load(context.artifacts["weights"])

    # pd.DataFrame is a hint MLflow infers no schema from (the signature is declared at logging), and without a
    # hint MLflow warns at every load that predict has none.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "user_id" not in frame.columns:
            raise _bad_input(f"input needs a 'user_id' column; got columns {list(map(str, frame.columns))}")
        values = frame["user_id"].tolist()  # plain Python values: checking them costs little per row
        for v in values:
            if v is None or (isinstance(v, float) and v != v):
                raise _bad_input("user_id must not be empty")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, np.integer)):
                raise _bad_input(f"user_id must be a string or an integer id; got {type(v).__name__} {v!r}")
        try:
            k = validate_k(params.get("k", 10))
        except ValueError as exc:
            raise _bad_input(str(exc)) from None
        exclude_seen = params.get("exclude_seen", True)
        if not isinstance(exclude_seen, bool):
            raise _bad_input(f"exclude_seen must be true or false; got {exclude_seen!r}")
        users = [v if isinstance(v, str) else str(v) for v in values]
        try:  # attribute columns, if any, are picked out of the input by the model's own encoding
            return self.recommender.recommend(users, k=k, exclude_seen=exclude_seen, user_features=frame)
        except FeatureError as exc:  # an attribute value the model does not know: the client's to fix
            raise _bad_input(str(exc)) from None


mlflow.models.set_model(RecdashModel())
