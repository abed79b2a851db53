"""Logging any recdash recommender as an MLflow "models from code" pyfunc with the recdash predict contract.

The model is ``recdash/pyfunc_model.py`` plus the saved arrays (``weights.npz`` + ``ids.json``) as an artifact;
the recdash package is shipped as code, so the model loads wherever MLflow, numpy and pandas (and scipy, for
models whose scoring needs it) are installed. No pickle anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recdash.models import Recommender

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.models.model import ModelInfo

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def model_signature(recommender: Recommender | None = None) -> Any:
    """Input ``user_id`` (and, for a model trained with user features, each attribute column as an optional input:
    text for categories and lists, any for numbers and ages); params ``k`` and ``exclude_seen``; output the
    recommendation frame (declared, not inferred, so ``rank`` is a long that MLflow does not warn about)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import schema

    inputs = [schema.ColSpec("string", "user_id")]
    encoding = recommender.user_encoding if recommender is not None else None
    for column in encoding.columns if encoding is not None else ():
        # numbers as "any": MLflow refuses int64 for a double column ("can not safely convert"), and an age is
        # usually an int; the encoding checks the value is a number
        kind = schema.AnyType() if column.kind in ("number", "bucket") else "string"
        inputs.append(schema.ColSpec(kind, column.name, required=False))
    return ModelSignature(
        inputs=schema.Schema(inputs),
        outputs=schema.Schema(
            [
                schema.ColSpec("string", "user_id"),
                schema.ColSpec("long", "rank"),
                schema.ColSpec("string", "item_id"),
                schema.ColSpec("double", "score"),
                schema.ColSpec("string", "source"),
            ]
        ),
        params=schema.ParamSchema(
            [schema.ParamSpec("k", "long", 10), schema.ParamSpec("exclude_seen", "boolean", True)]
        ),
    )


def log_model(
    recommender: Recommender,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    input_example_user: str | None = None,
    workdir: str | Path | None = None,
) -> ModelInfo:
    """Log ``recommender`` (any algorithm) to the active MLflow run as a models-from-code pyfunc."""
    import tempfile

    import mlflow

    example_user = input_example_user or (recommender.user_ids[0] if recommender.n_users else "1")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        weights_dir = recommender.save(Path(tmp) / "weights")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_FILE),
            artifacts={"weights": str(weights_dir)},
            code_paths=[str(Path(__file__).parent)],
            signature=model_signature(recommender),
            input_example=pd.DataFrame({"user_id": [str(example_user)]}),
            pip_requirements=model_requirements(recommender),
            registered_model_name=registered_model_name,
            metadata=model_metadata(),
        )


def model_metadata() -> dict[str, Any]:
    """What the MLmodel file's ``metadata`` says about the saved files, so MLflow and catalogs show it without
    opening them: the recdash version that wrote the model and its saved model format (as in ``ids.json``)."""
    from recdash import __version__
    from recdash.models.base import FORMAT_VERSION

    return {"recdash_version": __version__, "recdash_model_format": FORMAT_VERSION}


def model_requirements(recommender: Recommender | None = None) -> list[str]:
    """What loading the model needs: mlflow, numpy and pandas at the versions it was logged with (and scipy for
    models that score with sparse matrices)."""
    from importlib.metadata import version

    packages = ["mlflow", "numpy", "pandas"]
    if recommender is not None and recommender.scoring_needs_scipy:
        packages.append("scipy")
    return [f"{p}=={version(p)}" for p in packages]
