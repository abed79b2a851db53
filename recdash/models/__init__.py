"""Recommender algorithms behind one interface (:class:`~recdash.models.base.Recommender`), one module each.

``get_model(name)`` gives the class for a ``--model`` value; :func:`load` reads any saved model back (the file
names which algorithm wrote it). Importing this package never imports rankfmc, scipy or MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recdash.models.base import (
    FORMAT_VERSION,
    IDS_FILE,
    OUTPUT_COLUMNS,
    READABLE_FORMATS,
    WEIGHTS_FILE,
    HyperparameterError,
    Interactions,
    Params,
    ParamSpec,
    Recommender,
    coerce_param,
    empty_recommendations,
    validate_k,
)
from recdash.models.ease import EASE
from recdash.models.itemknn import ItemKNN
from recdash.models.popularity import Popularity
from recdash.models.rankfm import RankFM

MODELS: dict[str, type[Recommender]] = {m.name: m for m in (RankFM, EASE, ItemKNN, Popularity)}
DEFAULT_MODEL = "rankfm"
REFERENCE_MODELS = ("popularity", "ease", "itemknn")


class UnknownModelError(ValueError):
    """A ``--model`` value that names no algorithm."""


def get_model(name: str) -> type[Recommender]:
    """The class of algorithm ``name`` (case-insensitive)."""
    key = str(name).strip().lower()
    if key not in MODELS:
        raise UnknownModelError(f"--model must be one of {', '.join(MODELS)}; got {name!r}")
    return MODELS[key]


def all_hyperparameters() -> dict[str, ParamSpec]:
    """Every model's hyperparameters by name (the names are unique across models, so each is one CLI flag)."""
    out: dict[str, ParamSpec] = {}
    for model in MODELS.values():
        out.update(model.hyperparameters())
    return out


def model_of_param(name: str) -> str | None:
    """Which model a hyperparameter belongs to (None for a name no model has)."""
    return next((m.name for m in MODELS.values() if name in m.hyperparameters()), None)


def params_for(model: str, values: dict[str, Any] | None = None) -> Params:
    """Validated hyperparameters of ``model`` from a mapping (e.g. MLflow params); other keys are ignored."""
    return get_model(model).Params.from_mapping(values or {})


class ModelFormatError(ValueError):
    """A saved model in a format this recdash cannot read; the message says which recdash wrote it and what to do."""


def check_format(meta: dict[str, Any], where: str | Path) -> None:
    """Refuse ``ids.json`` metadata in a format outside :data:`READABLE_FORMATS` (a model saved by a newer recdash,
    or loaded by an older one: in one process every model runs the first ``recdash`` imported there)."""
    found = meta.get("format_version", 1)
    if found in READABLE_FORMATS:
        return
    import recdash

    wrote = meta.get("recdash_version") or "an unknown version"
    raise ModelFormatError(
        f"the recdash model in {where} is in model format {found!r}, written by recdash {wrote}; the recdash "
        f"running here ({recdash.__version__}, {Path(recdash.__file__).parent}) reads formats "
        f"{', '.join(map(str, READABLE_FORMATS))}. Load it with recdash {wrote} or newer: in a Python process of its "
        "own (mlflow.pyfunc.load_model runs the recdash the model ships with when no other recdash was imported "
        "first; `mlflow models serve` does that), or after upgrading the recdash installed here."
    )


def load(directory: str | Path) -> Recommender:
    """Read a directory written by :meth:`Recommender.save`; raises :class:`ModelFormatError` for a format this
    code cannot read and ValueError on a missing or corrupt file.

    Format 1 (before there were several algorithms) has no ``model`` key: it is rankfm's factor arrays."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / IDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"not a readable recdash model in {directory}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"not a readable recdash model in {directory}: {IDS_FILE} is not a JSON object")
    check_format(meta, directory)
    try:
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        return get_model(meta.get("model", "rankfm")).from_export(arrays, meta)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a readable recdash model in {directory}: {exc}") from exc


__all__ = [
    "DEFAULT_MODEL",
    "EASE",
    "FORMAT_VERSION",
    "IDS_FILE",
    "MODELS",
    "OUTPUT_COLUMNS",
    "READABLE_FORMATS",
    "REFERENCE_MODELS",
    "WEIGHTS_FILE",
    "HyperparameterError",
    "Interactions",
    "ItemKNN",
    "ModelFormatError",
    "ParamSpec",
    "Params",
    "Popularity",
    "RankFM",
    "Recommender",
    "UnknownModelError",
    "all_hyperparameters",
    "check_format",
    "coerce_param",
    "empty_recommendations",
    "get_model",
    "load",
    "model_of_param",
    "params_for",
    "validate_k",
]
