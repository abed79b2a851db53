"""A dataset as MLflow sees it: the ``mlflow.data`` dataset logged with ``log_input`` and the lineage params."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from recdash.data.dataset import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import mlflow.data.dataset


def lineage(ds: Dataset) -> tuple[mlflow.data.dataset.Dataset, dict[str, str]]:
    """An MLflow dataset for ``mlflow.log_input`` plus flat tags, so every run records exactly what it saw."""
    import mlflow.data
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.types.utils import _infer_schema

    # Explicit source objects: letting MLflow guess from a free-form string warns about ambiguity.
    if ds.source.startswith(("http://", "https://")):
        source: Any = HTTPDatasetSource(ds.source)
    else:
        source = LocalArtifactDatasetSource(ds.source)
    with warnings.catch_warnings():  # schema inference nags about int columns; ours never hold NaN
        warnings.simplefilter("ignore", UserWarning)
        mlflow_ds = mlflow.data.from_pandas(ds.interactions, source=source, name=ds.name, digest=ds.digest)
        # MLflow infers the schema element by element (~1.7 s on ML-100K, more than the training overhead budget);
        # the column types are uniform, so infer them on a sample and prime the cached property with the result.
        mlflow_ds.__dict__["schema"] = _infer_schema(ds.interactions.head(1000))
    tags = {
        "dataset_name": ds.name,
        "dataset_digest": ds.digest,
        "dataset_source": ds.source,
        "dataset_rows": str(ds.n_interactions),
        "dataset_users": str(ds.n_users),
        "dataset_items": str(ds.n_items),
    }
    return mlflow_ds, tags
