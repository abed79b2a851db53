"""Descriptions and tags people write about runs, experiments, registered models and datasets, stored in the
tracking store's own fields so the MLflow UI and catalogs that ingest MLflow (DataHub, OpenMetadata) see them.

Where each one lives (see docs/catalog.md):

* run, experiment: the ``mlflow.note.content`` tag (what the MLflow UI edits as "Description"); tags as tags;
* registered model and model version: their ``description`` field; model tags as registered-model tags;
* dataset: MLflow's run-input datasets (name, digest, source, schema, profile) cannot be changed once logged and
  have no description or tags (MLflow 3's ``set_dataset_tags`` is for GenAI evaluation datasets, another entity).
  A dataset's description and tags are experiment tags ``recdash.dataset/<name>/description`` and
  ``recdash.dataset/<name>/tag/<key>``, written to every experiment whose runs used the dataset, so each of those
  experiments shows them in the MLflow UI. They are keyed by dataset name: a description outlives a data change.

Every write is refused on a store recdash opens read-only (a legacy file store), with the reason. No Streamlit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recdash import contract, registry, tracking
from recdash.errors import UserError

NOTE_TAG = contract.MLFLOW_NOTE
DATASET_PREFIX = contract.TAG_DATASET_PREFIX
KINDS = ("run", "experiment", "model", "version", "dataset")
_UNSAFE_KEY = re.compile(r"[^\w.\- ]")
_MAX_NAME = 150


class AnnotationError(UserError, ValueError):
    """A write that cannot be done: read-only store, unknown target or a key MLflow refuses; the message says why."""


@dataclass(frozen=True)
class Target:
    """What a description or tag is about: ``kind`` (one of KINDS) and its key (run id, experiment id, model name,
    ``name/version``, dataset name). A dataset also names the experiments its runs are in."""

    kind: str
    key: str
    experiment_ids: tuple[str, ...] = field(default=())

    def label(self) -> str:
        return f"{self.kind} {self.key}"


def dataset_key(name: str, what: str) -> str:
    """The experiment tag key for a dataset's ``description`` or ``tag/<key>``. MLflow tag keys allow letters,
    digits, ``_ - . /`` and space: other characters of a file name become ``_``, with a short hash of the name so
    two names never share a key."""
    safe = _UNSAFE_KEY.sub("_", name)[:_MAX_NAME]
    if safe != name:
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{DATASET_PREFIX}{safe}/{what}"


def dataset_annotations(experiment_tags: Iterable[Mapping[str, str]], name: str) -> tuple[str, dict[str, str]]:
    """A dataset's description and tags, read from its experiments' tags (the first experiment that has a value
    wins: recdash writes the same value to all of them)."""
    description = ""
    tags: dict[str, str] = {}
    key = dataset_key(name, "description")
    prefix = dataset_key(name, "tag/")
    for exp_tags in experiment_tags:
        if not description and exp_tags.get(key):
            description = exp_tags[key]
        for k, v in exp_tags.items():
            if k.startswith(prefix):
                tags.setdefault(k[len(prefix) :], v)
    return description, tags


def _write(uri: str, target: Target, what: str, fn: Any) -> None:
    """Check the store is writable, then call ``fn``; MLflow's refusals come back as AnnotationError."""
    from mlflow.exceptions import MlflowException

    if target.kind not in KINDS:
        raise AnnotationError(f"cannot annotate a {target.kind!r}; one of {', '.join(KINDS)}")
    try:
        tracking.check_writable(uri, f"editing {what}")
    except tracking.TrackingError as exc:
        raise AnnotationError(str(exc)) from None
    try:
        fn()
    except registry.RegistryError as exc:
        raise AnnotationError(str(exc)) from None
    except MlflowException as exc:
        message = str(getattr(exc, "message", "") or exc).strip().splitlines()[0]
        raise AnnotationError(f"Could not save the {what} of {target.label()}: {message}") from None


def _version(key: str) -> tuple[str, str]:
    name, _, version = key.rpartition("/")
    if not name or not version.isdigit():
        raise AnnotationError(f"a model version is 'name/version', got {key!r}")
    return name, version


def set_description(uri: str, target: Target, text: str) -> str:
    """Replace the description of ``target`` (empty text clears it); returns what was done, for the page."""
    client = tracking.client(uri)
    text = text or ""

    def apply() -> None:
        if target.kind == "run":
            client.set_tag(target.key, NOTE_TAG, text)
        elif target.kind == "experiment":
            client.set_experiment_tag(target.key, NOTE_TAG, text)
        elif target.kind == "model":
            registry.update_description(target.key, text, client=client)
        elif target.kind == "version":
            registry.update_version_description(*_version(target.key), text, client=client)
        else:
            _on_experiments(client, target, dataset_key(target.key, "description"), text)

    _write(uri, target, "description", apply)
    return f"Saved the description of {target.label()}."


def set_tag(uri: str, target: Target, key: str, value: str) -> str:
    """Set one tag on ``target``; returns what was done."""
    key = (key or "").strip()
    if not key:
        raise AnnotationError("tag key must not be empty")
    client = tracking.client(uri)

    def apply() -> None:
        if target.kind == "run":
            client.set_tag(target.key, key, str(value))
        elif target.kind == "experiment":
            client.set_experiment_tag(target.key, key, str(value))
        elif target.kind == "model":
            registry.set_model_tag(target.key, key, str(value), client=client)
        elif target.kind == "dataset":
            _on_experiments(client, target, dataset_key(target.key, f"tag/{key}"), str(value))
        else:
            raise AnnotationError("version tags are not edited here; tag the registered model")

    _write(uri, target, "tags", apply)
    return f"Set tag {key} on {target.label()}."


def delete_tag(uri: str, target: Target, key: str) -> str:
    """Remove one tag from ``target``; returns what was done."""
    client = tracking.client(uri)

    def apply() -> None:
        if target.kind == "run":
            client.delete_tag(target.key, key)
        elif target.kind == "experiment":
            client.delete_experiment_tag(target.key, key)
        elif target.kind == "model":
            registry.delete_model_tag(target.key, key, client=client)
        elif target.kind == "dataset":
            tag = dataset_key(target.key, f"tag/{key}")
            for experiment_id in target.experiment_ids:
                if tag in (client.get_experiment(experiment_id).tags or {}):
                    client.delete_experiment_tag(experiment_id, tag)
        else:
            raise AnnotationError("version tags are not edited here; tag the registered model")

    _write(uri, target, "tags", apply)
    return f"Deleted tag {key} of {target.label()}."


def _on_experiments(client: Any, target: Target, key: str, value: str) -> None:
    if not target.experiment_ids:
        raise AnnotationError(f"dataset {target.key!r} is used by no experiment, so it has nowhere to keep this")
    for experiment_id in target.experiment_ids:
        client.set_experiment_tag(experiment_id, key, value)
