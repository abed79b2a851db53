"""The small interface every backend implements for the runs loader, and the cache the loader keeps.

A :class:`RunSource` knows how to read one kind of store and how to tell what changed there since the last read;
:class:`~recdash.tracking.loader.RunsLoader` keeps only what is the same for every store (the cached runs, the
on-disk snapshot, the background recheck, the last results). MLflow's own store layering is the model
(``mlflow/store/tracking/abstract_store.py`` and one class per backend); :func:`recdash.tracking.loader.open_source`
picks the class by URI, as MLflow's ``registry.py`` does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import pandas as pd

from recdash.tracking.frame import assemble, empty_parts, order_columns


class RunsCache:
    """The loader's runs: one wide frame indexed by run id, and a version bumped whenever it changes."""

    def __init__(self) -> None:
        self.wide = assemble(empty_parts())
        self.version = 0

    def of(self, experiment_ids: Sequence[str]) -> pd.DataFrame:
        """The cached runs of these experiments."""
        return self.wide[self.wide["experiment_id"].isin(list(experiment_ids))]

    def replace(
        self, fresh: pd.DataFrame, *, experiment_ids: Sequence[str] | None = None, gone: Sequence[str] = ()
    ) -> None:
        """Swap fresh rows in (all rows of ``experiment_ids`` when given), dropping ``gone`` runs."""
        self.version += 1
        old = self.wide
        if experiment_ids is not None:
            old = old[~old["experiment_id"].isin(list(experiment_ids))]
        drop = set(gone) | set(fresh.index)
        old = old[~old.index.isin(list(drop))] if drop else old
        if old.empty:
            merged = fresh
        elif fresh.empty:
            merged = old
        else:
            merged = pd.concat([old, fresh], axis=0)
        self.wide = merged[order_columns(merged.columns)]

    def restore(self, wide: pd.DataFrame) -> None:
        """Start from a snapshot's runs."""
        self.wide = wide[order_columns(wide.columns)]
        self.version = 1


class RunSource(ABC):
    """Reads the runs of one store and keeps what it needs to tell, at the next refresh, which of them changed."""

    kind: ClassVar[str]  # written into the snapshot: a snapshot made by another kind of source is not used
    rechecks: ClassVar[bool] = False  # True: edits of finished runs are only seen by a periodic full re-read

    def __init__(self, uri: str, client: Any) -> None:
        self.uri = uri
        self.client = client

    @abstractmethod
    def sync(self, cache: RunsCache, experiment_ids: list[str]) -> None:
        """Bring the cached runs of ``experiment_ids`` up to date with the store (new, active, changed, gone)."""

    @abstractmethod
    def model_run_ids(self, experiment_ids: list[str]) -> set[str]:
        """Runs with a logged model (see :mod:`recdash.recommend` for the whole definition)."""

    @abstractmethod
    def experiment_names(self, experiment_ids: list[str]) -> dict[str, str | None]:
        """Experiment id -> name."""

    @abstractmethod
    def filter_ids(self, experiment_ids: list[str], filter_string: str) -> set[str]:
        """The runs an MLflow filter string matches (FilterError when it is malformed)."""

    def forget(self) -> None:
        """The cache was emptied: forget what was read, so the next sync reads everything."""
        return None  # optional hook

    def snapshot_meta(self) -> dict[str, Any]:
        """What the source needs to trust a snapshot later (JSON), besides the runs themselves."""
        return {}

    def snapshot_columns(self, run_ids: pd.Index) -> dict[str, list[str]]:
        """Per-run values the snapshot keeps beside each run (columns named ``__...``)."""
        return {}

    def restore(self, meta: dict[str, Any], frame: pd.DataFrame) -> None:
        """Take back :meth:`snapshot_meta` and :meth:`snapshot_columns` from a snapshot (raise to refuse it)."""
        return None  # optional hook

    # periodic re-reads (sources with ``rechecks``)
    def recheck_due(self, now: float) -> bool:
        return False

    def recheck_experiments(self) -> list[str]:
        """The experiments a full re-read covers."""
        return []

    def read_all(self, experiment_ids: Sequence[str]) -> tuple[pd.DataFrame, set[str]]:
        """Every run of the experiments, and the runs whose tags list an MLflow 2 model."""
        raise NotImplementedError

    def after_full_read(self, started: float, run_ids: pd.Index, markers: set[str]) -> None:
        """A full re-read that began at ``started`` replaced these runs."""
        return None  # optional hook

    def force_recheck(self) -> None:
        """Make the next sync compare every run again (a store whose every sync checks runs)."""
        return None  # optional hook
