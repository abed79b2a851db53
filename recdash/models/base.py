"""The one recommender interface every algorithm implements, and what they share.

A model is fitted on :class:`Interactions` (training data mapped to integer indices once), scores a block of users
against the whole catalogue (:meth:`Recommender.scores`), and exports itself as plain numpy arrays plus JSON-able
params (:meth:`Recommender.export`), which :meth:`Recommender.save` writes as ``weights.npz`` + ``ids.json``: no
pickle anywhere. Everything else -- top-k with the popularity fallback, similar items, evaluation, the pyfunc --
is written once against this interface, so every algorithm gets the same run layout and predict contract.

Module level imports stay light (numpy, pandas): the logged pyfunc imports this package; scipy is imported only
by the models whose scoring needs it.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from recdash import __version__
from recdash.data.dataset import id_codes
from recdash.data.features import FeatureEncoding, FeatureTable
from recdash.errors import UserError
from recdash.evaluation.metrics import top_k

# The saved model format (docs/serving.md, "Saved model format"): ids.json's "format_version" is the format, and
# "recdash_version" the recdash that wrote it. A change that a reader of the previous format would misread bumps
# FORMAT_VERSION; new optional keys do not. A reader refuses a format outside READABLE_FORMATS (recdash.models.load).
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # 1: rankfm factor arrays only (no "model" key)
WEIGHTS_FILE = "weights.npz"
IDS_FILE = "ids.json"
OUTPUT_COLUMNS = ["user_id", "rank", "item_id", "score", "source"]
# How a model serves a user it never saw: the popular list, its side-feature scores, or a blend of the two.
COLD_STRATEGIES = ("popular", "features", "blend")
# scores per block in recommend(): 1 MB of float32 (~150 users of ML-100K), measured fastest here, and a batch of
# a million users never needs a [users x items] matrix
_BLOCK_SCORES = 1 << 18


class InputError(UserError, ValueError):
    """Bad input to a model (a k that is not a positive integer, an item outside the catalogue, a model asked for
    something it does not have); the message is shown to users as it is."""


class HyperparameterError(UserError, ValueError):
    """A hyperparameter outside its allowed range; the message names the parameter, its flag and the bound."""


# ---- hyperparameters -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: its type, bounds and help, shared by the CLI, the Train page and sweeps."""

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    log: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any) -> Any:
        """``value`` in this parameter's type, checked against its bounds (HyperparameterError naming it)."""
        return coerce_param(self, value)

    def describe(self) -> str:
        """The range or choices, as ``--help`` and the form show them."""
        if self.choices:
            return f"One of: {', '.join(self.choices)}."
        return f"Range {self.low:g}..{self.high:g}" + (" (log scale)." if self.log else ".")


def coerce_param(spec: ParamSpec, value: Any) -> Any:
    """Convert ``value`` to the parameter's type and check its bounds, naming the parameter on failure."""
    flag = spec.flag
    if spec.choices is not None:
        text = str(value).strip().lower()
        if text not in spec.choices:
            raise HyperparameterError(f"{spec.name} ({flag}) must be one of {', '.join(spec.choices)}; got {value!r}")
        return text
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if spec.kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        kind = "an integer" if spec.kind is int else "a finite number"
        raise HyperparameterError(f"{spec.name} ({flag}) must be {kind}; got {value!r}") from None
    if not math.isfinite(number):
        raise HyperparameterError(f"{spec.name} ({flag}) must be finite; got {value!r}")
    if (spec.low is not None and number < spec.low) or (spec.high is not None and number > spec.high):
        raise HyperparameterError(f"{spec.name} ({flag}) must be between {spec.low:g} and {spec.high:g}; got {value!r}")
    return number


@dataclass(frozen=True)
class Params:
    """Base of every model's hyperparameter dataclass: fields are validated against ``SPECS`` on construction,
    so a bad value never starts a run. Subclasses declare ``SPECS`` and one field per spec."""

    SPECS: ClassVar[dict[str, ParamSpec]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, coerce_param(self.SPECS[f.name], getattr(self, f.name)))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Params:
        """Build from e.g. MLflow params (strings); keys of other models or runs are ignored."""
        return cls(**{k: v for k, v in values.items() if k in cls.SPECS})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def spec_table(*specs: ParamSpec) -> dict[str, ParamSpec]:
    return {s.name: s for s in specs}


# ---- training data ---------------------------------------------------------------------------------------------


def csr_rows(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unique column indices per row in CSR form (indptr, indices), rows sorted and each row's columns sorted.

    One sort of linear cell ids (row * n_cols + col) and a neighbour comparison: what ``np.unique(axis=1)`` gives,
    several times faster (it sorts rows of a structured view)."""
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    width = max(int(n_cols if n_cols is not None else (cols.max() + 1 if cols.size else 1)), 1)
    cells = np.sort(rows * width + cols)
    if cells.size:
        cells = cells[np.concatenate(([True], cells[1:] != cells[:-1]))]
    pair_rows, pair_cols = np.divmod(cells, width)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_rows, minlength=n_rows), out=indptr[1:])
    return indptr, pair_cols.astype(np.int32)


def _str_index(ids: Iterable[str]) -> pd.Index:
    """IDs as a string Index, vectorised (IDs are strings end to end; numbers given by callers are converted)."""
    values = ids if isinstance(ids, (pd.Series, pd.Index, np.ndarray)) else list(ids)
    return pd.Index(values, dtype=object).astype(str)


def lookup(index: pd.Index, ids: Iterable[str]) -> np.ndarray:
    """Positions of ``ids`` in ``index`` (-1 where absent). Coded IDs (a categorical column of a Dataset) are looked
    up once per distinct ID and reach the rows through their codes: no string per row."""
    if isinstance(getattr(ids, "dtype", None), pd.CategoricalDtype):
        coded = ids.array if isinstance(ids, (pd.Series, pd.Index)) else ids
        positions = index.get_indexer(_str_index(coded.categories))
        codes = np.asarray(coded.codes)
        if not positions.size:
            return np.full(codes.size, -1, dtype=np.int64)
        return np.where(codes >= 0, positions[np.maximum(codes, 0)], -1)
    return index.get_indexer(_str_index(ids))


class _IdMaps:
    """``n_users``/``n_items`` of anything holding the ID maps (index -> ID) ``user_ids`` and ``item_ids``."""

    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True, eq=False)
class Interactions(_IdMaps):
    """Training interactions mapped once to sorted string ID maps: what every model is fitted on.

    ``user_idx``/``item_idx`` keep every training row (in order, duplicates included: rankfm samples rows);
    ``indptr``/``indices`` are the distinct items per user (the binary user x item matrix closed-form models use
    and the items excluded from a user's recommendations); ``popularity`` counts rows per item.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_idx: np.ndarray
    item_idx: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    popularity: np.ndarray
    user_features: FeatureTable | None = None  # side features, for the models that use them
    item_features: FeatureTable | None = None

    @classmethod
    def from_frame(
        cls,
        train: pd.DataFrame,
        user_features: FeatureTable | None = None,
        item_features: FeatureTable | None = None,
    ) -> Interactions:
        """The training rows mapped to indices: the IDs that occur, sorted (what ``np.unique`` gives, so indices
        are what they always were), each row's index taken from its code. A Dataset's coded ID columns need no
        string work at all; plain string columns are coded first."""
        user_ids, user_idx = _observed(train["user_id"])
        item_ids, item_idx = _observed(train["item_id"])
        indptr, indices = csr_rows(user_idx, item_idx, len(user_ids), len(item_ids))
        return cls(
            user_ids,
            item_ids,
            user_idx,
            item_idx,
            indptr,
            indices,
            np.bincount(item_idx, minlength=len(item_ids)).astype(np.int64),
            user_features,
            item_features,
        )

    def user_x(self) -> np.ndarray | None:
        """Encoded user features aligned with ``user_ids`` (zeros for users without a row), or None."""
        return None if self.user_features is None else self.user_features.matrix(self.user_ids)

    def item_x(self) -> np.ndarray | None:
        """Encoded item features aligned with ``item_ids``, or None."""
        return None if self.item_features is None else self.item_features.matrix(self.item_ids)

    def matrix(self) -> Any:
        """The binary users x items CSR matrix (float32)."""
        return binary_csr(self.indptr, self.indices, self.n_users, self.n_items)


def _observed(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(the IDs that occur in ``column``, sorted, as str; each row's int32 index into them)."""
    codes, names = id_codes(column)
    if codes.size and codes.min() < 0:
        raise ValueError("training interactions have a missing ID")
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    ids = np.asarray(names[present], dtype=object).astype(str)
    order = np.argsort(ids, kind="stable")  # a Dataset's categories are sorted already: order is the identity
    index_of_code = np.full(len(names), -1, dtype=np.int32)
    index_of_code[present[order]] = np.arange(present.size, dtype=np.int32)
    return ids[order], index_of_code[codes]


def binary_csr(indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int) -> Any:
    from scipy.sparse import csr_matrix

    return csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_rows, n_cols))


def dense_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, n_cols: int) -> np.ndarray:
    """Rows of a binary CSR matrix as a dense float32 block, without scipy (serving needs numpy only)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    out = np.zeros((len(rows), n_cols), dtype=np.float32)
    if lengths.sum():
        first = np.cumsum(lengths) - lengths
        within = np.arange(int(lengths.sum())) - np.repeat(first, lengths)
        out[np.repeat(np.arange(len(rows)), lengths), indices[np.repeat(starts, lengths) + within]] = 1.0
    return out


# ---- the interface ---------------------------------------------------------------------------------------------


class Recommender(_IdMaps, ABC):
    """A recommender over a fixed user and item catalogue: fit, score a block of users, export/load plain arrays.

    Subclasses set ``name`` (the ``--model`` value), ``Params`` (their hyperparameters) and ``iterative`` (trained
    epoch by epoch with :meth:`fit_epoch`, validated after each; otherwise fitted in one :meth:`fit` call), and
    implement :meth:`_fit`, :meth:`scores`, :meth:`_arrays` and :meth:`_from_arrays`. The ID maps, the items each
    user saw in training and item popularity live here, so top-k, the popularity fallback and export are shared.
    """

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    iterative: ClassVar[bool] = False
    uses_features: ClassVar[bool] = False  # trains on user/item side features (and can score users by them)
    scoring_needs_scipy: ClassVar[bool] = False
    description: ClassVar[str] = ""
    similarity: ClassVar[str | None] = None  # what "similar items" means for this model; None: it has none
    # What a sweep searches when the user names no --space ("name=low:high[:log]" or "name=a,b,c" items).
    default_space: ClassVar[tuple[str, ...]] = ()
    # Candidates tried on validation when the model is fitted as a reference run (each fitted on train only);
    # None: not a reference model.
    reference_grid: ClassVar[tuple[dict[str, Any], ...] | None] = None

    def __init__(self, params: Params | None = None, *, seed: int = 42) -> None:
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{self.name} needs {self.Params.__name__}, got {type(self.params).__name__}")
        self.seed = seed
        self.user_ids = np.array([], dtype=str)
        self.item_ids = np.array([], dtype=str)
        self.seen_indptr = np.zeros(1, dtype=np.int64)
        self.seen_indices = np.array([], dtype=np.int32)
        self.item_popularity = np.array([], dtype=np.int64)
        self.user_encoding: FeatureEncoding | None = None  # set when fitted with user side features
        self.item_encoding: FeatureEncoding | None = None
        self.cold_start: dict[str, Any] = {"strategy": "popular"}  # see set_cold_start
        self._index()

    # ---- state shared by every model ---------------------------------------------------------------------------
    def _set_data(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        seen_indptr: np.ndarray,
        seen_indices: np.ndarray,
        item_popularity: np.ndarray,
    ) -> None:
        self.user_ids = np.asarray(user_ids, dtype=str)
        self.item_ids = np.asarray(item_ids, dtype=str)
        self.seen_indptr = np.asarray(seen_indptr, dtype=np.int64)
        self.seen_indices = np.asarray(seen_indices, dtype=np.int32)
        self.item_popularity = np.asarray(item_popularity, dtype=np.int64)
        if self.seen_indptr.shape != (self.n_users + 1,):
            raise ValueError("seen-items index does not match the user map")
        if self.item_popularity.shape != (self.n_items,):
            raise ValueError("item popularity does not match the item map")
        self._index()

    def history_rows(self, user_idx: np.ndarray) -> Any:
        """The users' training items as rows of a binary CSR matrix: item-item models (EASE, ItemKNN) score a block
        of users as these rows times their item x item matrix, reading |history| rows of it instead of all."""
        if self._history is None:
            self._history = binary_csr(self.seen_indptr, self.seen_indices, self.n_users, self.n_items)
        return self._history[np.asarray(user_idx, dtype=np.int64)]

    def _index(self) -> None:
        self._history: Any = None  # the users' training items as a CSR matrix (history_rows), built on first use
        self._user_pos = dict(zip(self.user_ids.tolist(), range(len(self.user_ids)), strict=True))
        self._user_index = pd.Index(self.user_ids)
        self._item_index = pd.Index(self.item_ids)
        self._item_objects = self.item_ids.astype(object)  # output IDs as Python strings, converted once
        self._popular_order = np.argsort(-self.item_popularity, kind="stable")

    @classmethod
    def hyperparameters(cls) -> dict[str, ParamSpec]:
        """Name -> spec of this model's hyperparameters (flags, form fields, sweep space)."""
        return cls.Params.SPECS

    # ---- fitting -----------------------------------------------------------------------------------------------
    @classmethod
    def check(cls, params: Params, train: Interactions) -> None:
        """Refuse settings this model cannot train on this data (before any run exists); nothing by default."""
        return None

    def fit(self, train: Interactions, epochs: int = 1) -> Recommender:
        """Fit on the training interactions (``epochs`` passes for iterative models); returns ``self``."""
        self.check(self.params, train)
        self._set_data(train.user_ids, train.item_ids, train.indptr, train.indices, train.popularity)
        if self.uses_features:
            self.user_encoding = train.user_features.encoding if train.user_features is not None else None
            self.item_encoding = train.item_features.encoding if train.item_features is not None else None
        if self.iterative:
            for _ in range(epochs):
                self.fit_epoch(train)
        else:
            self._fit(train)
        return self

    def fit_epoch(self, train: Interactions) -> None:
        """One more training pass (iterative models only)."""
        raise NotImplementedError(f"{self.name} is fitted in closed form; call fit()")

    @abstractmethod
    def _fit(self, train: Interactions) -> None:
        """Fit the model's own arrays (the shared data is already set)."""

    # ---- scoring -----------------------------------------------------------------------------------------------
    @abstractmethod
    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for the given internal user indices: float32 ``[len(user_idx), n_items]``, a new
        array the caller may change (evaluation masks seen items in it in place)."""

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """Similarity of item ``item_idx`` to every item (for "similar items"); models without one raise."""
        raise InputError(f"the {self.name} model has no notion of item similarity")

    # ---- users the model never saw -----------------------------------------------------------------------------
    def feature_scores(self, user_x: np.ndarray) -> np.ndarray:
        """Scores of every item for users known only by their encoded features ``[n, width]``: float32 ``[n,
        n_items]``. Only models fitted with user side features have them."""
        raise InputError(f"this {self.name} model was not trained with user features")

    def set_cold_start(self, strategy: str, blend_weight: float | None = None, **info: Any) -> None:
        """How users the model never saw are served when their features are given: ``popular`` (the popular
        list), ``features`` (:meth:`feature_scores`) or ``blend`` (``(1 - w) * z(features) + w * z(log
        popularity)``, z-scored per user over the catalogue). ``info`` (what it was chosen on) is kept with it."""
        if strategy not in COLD_STRATEGIES:
            raise ValueError(f"cold-start strategy must be one of {', '.join(COLD_STRATEGIES)}; got {strategy!r}")
        if strategy != "popular" and self.user_encoding is None:
            raise ValueError(f"the {strategy} cold-start strategy needs a model trained with user features")
        if strategy == "blend" and not (blend_weight is not None and 0.0 < blend_weight < 1.0):
            raise ValueError(f"the blend strategy needs a blend weight between 0 and 1; got {blend_weight!r}")
        self.cold_start = {"strategy": strategy, **({"blend_weight": blend_weight} if strategy == "blend" else {})}
        self.cold_start |= info

    def cold_scores(
        self, user_x: np.ndarray, strategy: str | None = None, blend_weight: float | None = None
    ) -> np.ndarray:
        """Scores for users known only by features, under ``strategy`` (default: the model's own cold start)."""
        strategy = strategy or self.cold_start["strategy"]
        popular = np.log1p(self.item_popularity.astype(np.float32))
        if strategy == "popular":
            return np.broadcast_to(popular, (len(user_x), self.n_items)).astype(np.float32)
        scores = np.asarray(self.feature_scores(user_x), dtype=np.float32)
        if strategy == "features":
            return scores
        weight = self.cold_start.get("blend_weight") if blend_weight is None else blend_weight
        if weight is None:
            raise ValueError("the blend strategy needs a blend weight")
        return ((1.0 - weight) * _standardise(scores) + weight * _standardise(popular[None, :])).astype(np.float32)

    @property
    def serves_features(self) -> bool:
        """True when a new user's features change what they are recommended."""
        return self.user_encoding is not None and self.cold_start.get("strategy", "popular") != "popular"

    # ---- lookups -----------------------------------------------------------------------------------------------
    def user_index(self, user_ids: Iterable[str]) -> np.ndarray:
        """Internal indices of ``user_ids``; -1 for users the model has never seen."""
        return lookup(self._user_index, user_ids)

    def item_index(self, item_ids: Iterable[str]) -> np.ndarray:
        """Internal indices of ``item_ids``; -1 for unknown items."""
        return lookup(self._item_index, item_ids)

    def seen_items(self, user_idx: int) -> np.ndarray:
        """Item indices the user interacted with in training."""
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]]

    # ---- top-k -------------------------------------------------------------------------------------------------
    def recommend(
        self,
        user_ids: Iterable[str],
        k: int = 10,
        exclude_seen: bool = True,
        user_features: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Top-k items per user as a long frame ``user_id, rank, item_id, score, source``, users in the given order.

        Users the model never saw get the most popular items with ``source="popular"`` (never an error), unless
        ``user_features`` (one row per user, ``user_id`` plus attribute columns of the model's user encoding) gives
        theirs and the model's cold-start strategy uses them (``source`` is then that strategy: ``features`` or
        ``blend``). A known user is scored by the model as trained; features given for them are not used.
        ``k`` above the number of available items returns all of them.

        Built for serving: one user's top-10 is a dict lookup, one matrix-vector product, a partial sort and the
        output frame (no per-call pandas work besides building that frame).
        """
        k = validate_k(k)
        users = [str(u) for u in user_ids]
        n = len(users)
        if n == 0 or self.n_items == 0:
            return empty_recommendations()
        get = self._user_pos.get
        idx = np.fromiter((get(u, -1) for u in users), dtype=np.int64, count=n)
        width = min(k, self.n_items)
        items = np.empty((n, width), dtype=np.int64)
        scores = np.empty((n, width), dtype=np.float64)
        valid = np.ones((n, width), dtype=bool)
        source = np.full(n, "popular", dtype=object)

        warm = np.flatnonzero(idx >= 0)
        step = max(1, _BLOCK_SCORES // max(self.n_items, 1))
        for start in range(0, warm.size, step):  # blocks of users: bounded memory, scores stay in cache
            rows = warm[start : start + step]
            block = np.array(self.scores(idx[rows]), dtype=np.float32)
            if exclude_seen:
                self._mask_seen(block, idx[rows])
            top = top_k(block, width)
            top_scores = np.take_along_axis(block, top, axis=1)
            items[rows], scores[rows], valid[rows] = top, top_scores, np.isfinite(top_scores)
        source[warm] = "model"
        cold_x, cold_rows = self._cold_features(users, idx >= 0, user_features)
        cold = np.flatnonzero(cold_rows)
        if cold.size:
            block = self.cold_scores(cold_x)
            top = top_k(block, width)
            items[cold], scores[cold] = top, np.take_along_axis(block, top, axis=1)
            source[cold] = self.cold_start["strategy"]
        popular = np.flatnonzero((idx < 0) & ~cold_rows)
        if popular.size:
            order = self._popular_order[:width]
            items[popular], scores[popular] = order, self.item_popularity[order]

        counts = valid.sum(axis=1)
        flat = valid.ravel()
        return output_frame(
            np.repeat(np.asarray(users, dtype=object), counts),
            np.tile(np.arange(1, width + 1), n)[flat],
            self._item_objects[items.ravel()[flat]],
            scores.ravel()[flat],
            np.repeat(source, counts),
        )

    def _mask_seen(self, block: np.ndarray, user_idx: np.ndarray) -> None:
        """Set each user's training items to -inf in their row of ``block`` (vectorised over the rows)."""
        starts, ends = self.seen_indptr[user_idx], self.seen_indptr[user_idx + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return
        rows = np.repeat(np.arange(len(user_idx)), lengths)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        block[rows, self.seen_indices[np.repeat(starts, lengths) + within]] = -np.inf

    def _cold_features(
        self, users: list[str], known: np.ndarray, user_features: pd.DataFrame | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encoded features of the unknown users that have some, and which of ``users`` they are."""
        none = np.zeros(len(users), dtype=bool)
        if user_features is None or not self.serves_features or known.all():
            return np.zeros((0, 0), dtype=np.float32), none
        assert self.user_encoding is not None
        columns = [c for c in self.user_encoding.column_names if c in user_features.columns]
        if not columns or "user_id" not in user_features.columns:
            return np.zeros((0, 0), dtype=np.float32), none
        given = user_features[["user_id", *columns]]
        given = given.assign(user_id=given["user_id"].astype(str)).drop_duplicates("user_id")
        rows = given.set_index("user_id").reindex(pd.Index(users, dtype=object))[columns]
        has_any = rows.notna().any(axis=1).to_numpy() & ~known
        if not has_any.any():
            return np.zeros((0, 0), dtype=np.float32), none
        return self.user_encoding.encode(rows[has_any].reset_index(drop=True)), has_any

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to ``item_id`` by the model's own item similarity, the item itself left out.

        Raises KeyError for an item outside the catalogue, ValueError for a model without item similarities."""
        k = validate_k(k)
        (idx,) = self.item_index([item_id])
        if idx < 0:
            raise KeyError(f"item {item_id!r} is not in this model's catalogue")
        sims = np.array(self.item_similarities(int(idx)), dtype=np.float64)
        sims[idx] = -np.inf
        top = top_k(sims[None, :], k)[0]
        top = top[np.isfinite(sims[top])]
        return pd.DataFrame(
            {"rank": np.arange(1, len(top) + 1), "item_id": self.item_ids[top], "similarity": sims[top].astype(float)}
        )

    # ---- export / import ---------------------------------------------------------------------------------------
    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The model's own arrays (the shared ones are added by :meth:`export`)."""

    @abstractmethod
    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the model's own arrays (the shared data is already set)."""

    def export(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Plain numpy arrays (no object dtype) and JSON-able metadata: model name, params and the ID maps."""
        arrays = {
            "seen_indptr": self.seen_indptr,
            "seen_indices": self.seen_indices,
            "item_popularity": self.item_popularity,
            **self._arrays(),
        }
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "recdash_version": __version__,
            "model": self.name,
            "params": self.params.as_dict(),
            "user_ids": self.user_ids.tolist(),
            "item_ids": self.item_ids.tolist(),
            "cold_start": self.cold_start,
        }
        if self.user_encoding is not None:
            meta["user_encoding"] = self.user_encoding.to_dict()
        if self.item_encoding is not None:
            meta["item_encoding"] = self.item_encoding.to_dict()
        return arrays, meta

    @classmethod
    def from_export(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Recommender:
        """The model :meth:`export` described (validating shapes)."""
        model = cls(cls.Params.from_mapping(meta.get("params") or {}))
        model._set_data(
            meta["user_ids"], meta["item_ids"], arrays["seen_indptr"], arrays["seen_indices"], arrays["item_popularity"]
        )
        if meta.get("user_encoding"):
            model.user_encoding = FeatureEncoding.from_dict(meta["user_encoding"])
        if meta.get("item_encoding"):
            model.item_encoding = FeatureEncoding.from_dict(meta["item_encoding"])
        model._from_arrays(arrays)
        model.cold_start = dict(meta.get("cold_start") or {"strategy": "popular"})
        return model

    def save(self, directory: str | Path) -> Path:
        """Write ``weights.npz`` (numbers) and ``ids.json`` (model, params, ID maps); no pickle anywhere."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays, meta = self.export()
        np.savez(directory / WEIGHTS_FILE, **arrays)
        (directory / IDS_FILE).write_text(json.dumps(meta), encoding="utf-8")
        return directory


def _standardise(scores: np.ndarray) -> np.ndarray:
    """Per row: zero mean, unit variance over the catalogue (a constant row becomes zeros)."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return (scores - mean) / np.where(std > 0, std, 1.0)


def validate_k(k: Any) -> int:
    """k must be a positive integer (``5``, ``5.0`` or ``"5"``); the message is shown to users as is."""
    value: int | None = None
    if (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))) or (
        isinstance(k, float) and k.is_integer()
    ):
        value = int(k)
    elif isinstance(k, str) and k.strip().isdigit():
        value = int(k.strip())
    if value is None or value < 1:
        raise InputError(f"k must be a positive integer; got {k!r}")
    return value


class Recommendations(pd.DataFrame):
    """The predict contract's frame: a plain DataFrame to every caller, whose ``to_dict(orient="records")`` skips
    pandas' row-by-row boxing.

    ``mlflow models serve`` turns every prediction into JSON with ``to_dict(orient="records")``; for a 10-row top-10
    that took longer than the scoring itself (pandas walks the rows with itertuples). The records are the same
    (Python ints, floats and strs, in column order; a test holds it). Frames derived from it (a filter, a merge)
    are plain DataFrames."""

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def to_dict(self, orient: str = "dict", *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if orient == "records" and not args and not kwargs:
            columns = [str(c) for c in self.columns]
            values = [self[c].tolist() for c in self.columns]
            return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
        return pd.DataFrame(self).to_dict(orient, *args, **kwargs)


_OUTPUT_INDEX = pd.Index(OUTPUT_COLUMNS, dtype=object)  # built once: inferring its dtype costs more than scoring


def output_frame(
    user_id: np.ndarray, rank: np.ndarray, item_id: np.ndarray, score: np.ndarray, source: np.ndarray
) -> pd.DataFrame:
    """The predict contract's frame from its five columns (IDs and source as object arrays of str).

    Built with ``DataFrame._from_arrays``: the public constructor infers pandas 3's Arrow-backed str dtype for the
    three text columns, which costs about as much as all the scoring of one user's top-10 (measured 2x slower for
    a 10-row frame). The columns stay object arrays of Python str, which MLflow and the pages take as they are."""
    arrays = [user_id, rank.astype(np.int64, copy=False), item_id, score.astype(np.float64, copy=False), source]
    try:
        return Recommendations._from_arrays(
            arrays, columns=_OUTPUT_INDEX, index=pd.RangeIndex(len(rank)), verify_integrity=False
        )
    except (AttributeError, TypeError):  # pragma: no cover - a pandas without the private constructor
        return Recommendations(dict(zip(OUTPUT_COLUMNS, arrays, strict=True)), copy=False)


def empty_recommendations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype=str),
            "rank": pd.Series(dtype=np.int64),
            "item_id": pd.Series(dtype=str),
            "score": pd.Series(dtype=np.float64),
            "source": pd.Series(dtype=str),
        }
    )
