"""Recommender algorithms behind one interface (:class:`~recdash.models.base.Recommender`), one module each.

Adding a model is one module plus :func:`register` (see docs/architecture.md): the CLI's ``--model`` choices, the
Train form, sweeps (its ``default_space``) and references (its ``reference_grid``) read the registry at call time.
``get_model(name)`` gives the class for a ``--model`` value; :func:`load` reads any saved model back (the file
names which algorithm wrote it). Importing this package never imports rankfmc, scipy or MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recdash.errors import UserError
from recdash.models.als import ALS
from recdash.models.base import (
    FORMAT_VERSION,
    IDS_FILE,
    OUTPUT_COLUMNS,
    READABLE_FORMATS,
    WEIGHTS_FILE,
    HyperparameterError,
    InputError,
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

MODELS: dict[str, type[Recommender]] = {}
DEFAULT_MODEL = "rankfm"


class UnknownModelError(UserError, ValueError):
    """A ``--model`` value that names no algorithm."""


def register(model: type[Recommender]) -> type[Recommender]:
    """Make ``model`` available under its ``name`` everywhere a model is chosen (usable as a class decorator)."""
    for name, spec in model.hyperparameters().items():
        if spec.name != name:
            raise ValueError(f"{model.__name__}: hyperparameter {name!r} is declared as {spec.name!r}")
    MODELS[model.name] = model
    return model


def unregister(name: str) -> None:
    """Remove a model registered by :func:`register` (tests that define toy models)."""
    MODELS.pop(name, None)


for _model in (RankFM, Popularity, EASE, ItemKNN, ALS):
    register(_model)


def reference_models() -> tuple[str, ...]:
    """The models fitted by ``recdash references``: those with a ``reference_grid``, in registration order."""
    return tuple(name for name, cls in MODELS.items() if cls.reference_grid is not None)


def reference_candidates(name: str) -> list[Params]:
    """The validated hyperparameter grid reference model ``name`` is chosen from on validation."""
    cls = get_model(name)
    return [cls.Params.from_mapping(values) for values in (cls.reference_grid or ({},))]


def get_model(name: str) -> type[Recommender]:
    """The class of algorithm ``name`` (case-insensitive)."""
    key = str(name).strip().lower()
    if key not in MODELS:
        raise UnknownModelError(f"--model must be one of {', '.join(MODELS)}; got {name!r}")
    return MODELS[key]


def models_of_param(name: str) -> list[str]:
    """The models that have a hyperparameter called ``name`` (two models may share a name, each with its range)."""
    return [m.name for m in MODELS.values() if name in m.hyperparameters()]


def log_scale_params() -> dict[str, bool]:
    """Hyperparameter name -> whether a model searches it on a log scale (charts draw it so)."""
    out: dict[str, bool] = {}
    for model in MODELS.values():
        for name, spec in model.hyperparameters().items():
            out[name] = out.get(name, False) or spec.log
    return out


def params_for(model: str, values: dict[str, Any] | None = None) -> Params:
    """Validated hyperparameters of ``model`` from a mapping (e.g. MLflow params); other keys are ignored."""
    return get_model(model).Params.from_mapping(values or {})


class ModelFormatError(UserError, ValueError):
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
    "ALS",
    "DEFAULT_MODEL",
    "EASE",
    "FORMAT_VERSION",
    "IDS_FILE",
    "MODELS",
    "OUTPUT_COLUMNS",
    "READABLE_FORMATS",
    "WEIGHTS_FILE",
    "HyperparameterError",
    "InputError",
    "Interactions",
    "ItemKNN",
    "ModelFormatError",
    "ParamSpec",
    "Params",
    "Popularity",
    "RankFM",
    "Recommender",
    "UnknownModelError",
    "check_format",
    "coerce_param",
    "empty_recommendations",
    "get_model",
    "load",
    "log_scale_params",
    "models_of_param",
    "params_for",
    "reference_candidates",
    "reference_models",
    "register",
    "unregister",
    "validate_k",
]
