"""rankfm factorization machines (the ``rankfmc`` fork), trained epoch by epoch, served from plain arrays.

rankfmc's utility of user u and item i, with user features ``x_u`` and item features ``x_i`` (its
``compute_ui_utility``)::

    w_i + x_i . w_if  +  (v_u + x_u V_uf) . v_i  +  v_u . (x_i V_if)

Scoring computes exactly that in float32 with numpy, so rankings match rankfmc's ``recommend``; without features
it is ``user_factors @ item_factors.T + item_bias``. A user the model never saw has no ``v_u``: the features alone
give ``w_i + x_i . w_if + (x_u V_uf) . v_i`` (:meth:`RankFM.feature_scores`), and an item it never saw, with
features, ``x_i . w_if + v_u . (x_i V_if)`` (:meth:`RankFM.with_new_items`). rankfmc is imported only to train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from recdash.models.base import HyperparameterError, Interactions, Params, ParamSpec, Recommender, spec_table

HYPERPARAMS: dict[str, ParamSpec] = spec_table(
    ParamSpec("factors", int, 64, "Latent factor rank (embedding size).", 1, 1024),
    ParamSpec(
        "loss",
        str,
        "warp",
        "bpr: one sampled negative per positive; warp: search up to "
        "max_samples negatives for a violating one (usually better top-k).",
        choices=("bpr", "warp"),
    ),
    ParamSpec("max_samples", int, 30, "WARP only: negatives sampled per positive before giving up.", 1, 1000),
    ParamSpec("alpha", float, 0.01, "L2 penalty on user and item weights.", 1e-8, 10.0, log=True),
    ParamSpec("beta", float, 0.1, "L2 penalty on user-feature and item-feature weights.", 1e-8, 10.0, log=True),
    ParamSpec("sigma", float, 0.1, "Standard deviation of the random factor initialisation.", 1e-6, 10.0, log=True),
    # 0.05, not rankfmc's 0.1: on ML-100K the slower rate peaks later but higher (test NDCG@10 0.298 vs 0.282)
    ParamSpec("learning_rate", float, 0.05, "Initial SGD step size.", 1e-6, 10.0, log=True),
    ParamSpec(
        "learning_schedule",
        str,
        "constant",
        "constant, or invscaling: rate / (epoch+1)^exponent.",
        choices=("constant", "invscaling"),
    ),
    ParamSpec("learning_exponent", float, 0.25, "Exponent of the invscaling schedule.", 1e-6, 10.0),
)


@dataclass(frozen=True)
class Hyperparams(Params):
    """rankfm's hyperparameters, validated up front so a bad value never starts a run."""

    SPECS: ClassVar[dict[str, ParamSpec]] = HYPERPARAMS

    factors: int = HYPERPARAMS["factors"].default
    loss: str = HYPERPARAMS["loss"].default
    max_samples: int = HYPERPARAMS["max_samples"].default
    alpha: float = HYPERPARAMS["alpha"].default
    beta: float = HYPERPARAMS["beta"].default
    sigma: float = HYPERPARAMS["sigma"].default
    learning_rate: float = HYPERPARAMS["learning_rate"].default
    learning_schedule: str = HYPERPARAMS["learning_schedule"].default
    learning_exponent: float = HYPERPARAMS["learning_exponent"].default


_CONTIGUOUS_FROM = 64  # users per scores() call from which the item factors are transposed into a contiguous copy


class RankFM(Recommender):
    """rankfm (BPR or WARP loss), with optional user and item side features, fitted one SGD epoch at a time."""

    name: ClassVar[str] = "rankfm"
    Params: ClassVar[type[Params]] = Hyperparams
    iterative: ClassVar[bool] = True
    uses_features: ClassVar[bool] = True
    # Centred on what ML-100K rewarded in our runs: WARP (BPR's best validation NDCG@10 in 3 tries was 0.239,
    # WARP's 0.251-0.256), rates around 0.05 (0.1 peaks early and lower), light L2 (alpha 0.03 lost 0.01).
    # 20 trials with pruning took 102 s on ML-100K.
    default_space: ClassVar[tuple[str, ...]] = ("factors=32:128", "learning_rate=0.02:0.1:log", "alpha=0.001:0.03:log")
    description: ClassVar[str] = "Factorization machine trained by SGD on a BPR or WARP ranking loss (rankfmc)."
    similarity: ClassVar[str | None] = "cosine similarity of the item factors"
    params: Hyperparams

    def __init__(self, params: Params | None = None, *, seed: int = 42) -> None:
        super().__init__(params, seed=seed)
        self.user_factors = np.zeros((0, 1), dtype=np.float32)
        self.item_factors = np.zeros((0, 1), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        # side features (None without them): encoded rows, and their weights and factors
        self.user_x: np.ndarray | None = None
        self.user_feature_factors: np.ndarray | None = None
        self.item_x: np.ndarray | None = None
        self.item_feature_weights: np.ndarray | None = None
        self.item_feature_factors: np.ndarray | None = None
        self.epochs_done = 0
        self.model: Any = None  # rankfmc.RankFM while training
        self._prepared: tuple[np.ndarray, ...] | None = None

    @classmethod
    def check(cls, params: Params, train: Interactions) -> None:
        """Refuse settings rankfmc cannot train on this data. WARP samples up to ``max_samples`` negatives per
        positive; with as many or more than the catalogue's items, rankfmc's C kernel writes past its buffer and the
        process dies with heap corruption (``free(): invalid next size``) instead of an error."""
        assert isinstance(params, Hyperparams)
        n_items = train.n_items
        if params.loss == "warp" and params.max_samples >= n_items:
            raise HyperparameterError(
                f"max_samples (--max-samples) must be below the number of items in the training data ({n_items}) "
                f"for the WARP loss; got {params.max_samples}. Use at most {max(n_items - 1, 1)}, or the BPR loss."
            )

    def _fit(self, train: Interactions) -> None:  # pragma: no cover - iterative models train through fit_epoch
        self.fit_epoch(train)

    def fit_epoch(self, train: Interactions) -> None:
        """One SGD pass over the training interactions.

        rankfmc's ``fit_partial`` re-indexes the data and rebuilds its user-item sets on every call, which costs
        more than the epoch itself, and restarts its learning-rate schedule at each call. So the first epoch sets
        rankfmc's state from the training arrays recdash already has -- the rows as (user, item) index pairs, the
        feature matrices aligned with the ID maps, the items each user saw as CSR (rankfmc's kernel only asks
        whether an item is among them) -- and initialises the weights with rankfmc's own ``_init_weights`` (the same
        random draws its ``_init_all`` makes; ``_init_all`` itself would sort the IDs again and build a Python
        set per user). Every epoch then calls rankfmc's SGD kernel with that epoch's learning rate (``rate / (epoch
        + 1) ** exponent`` for invscaling, as rankfmc defines it). rankfmc draws from numpy's global RNG
        (initialisation, shuffling), so it is seeded per epoch.
        """
        from rankfmc import RankFM as RankFMC  # imported here: serving the exported model never needs rankfmc
        from rankfmc._rankfm import _fit

        np.random.seed((self.seed * 100_003 + self.epochs_done) % 2**32)
        if self._prepared is None:
            self.check(self.params, train)  # before rankfmc's kernel can crash the process
            if self.n_users != train.n_users:
                self._set_data(train.user_ids, train.item_ids, train.indptr, train.indices, train.popularity)
            self.model = m = RankFMC(n_jobs=1, **self.params.as_dict())
            user_x, item_x = train.user_x(), train.item_x()
            m.user_idx = np.arange(train.n_users, dtype=np.int32)
            m.item_idx = np.arange(train.n_items, dtype=np.int32)
            m.x_uf = _features(user_x, train.n_users)
            m.x_if = _features(item_x, train.n_items)
            m._init_weights(user_x, item_x)  # only whether features were given matters to it
            interactions = np.ascontiguousarray(np.column_stack([train.user_idx, train.item_idx]), dtype=np.int32)
            weights = np.ones(len(interactions), dtype=np.float32)
            ui_ptr = np.ascontiguousarray(train.indptr, dtype=np.int32)
            ui_idx = np.ascontiguousarray(train.indices, dtype=np.int32)
            self._prepared = (interactions, weights, ui_ptr, ui_idx)
            _set_id_maps(m, train)
            m.is_fit = True
            # views on rankfmc's arrays, which its kernel updates in place
            self.user_factors, self.item_factors, self.item_bias = m.v_u, m.v_i, m.w_i
            if user_x is not None:
                self.user_x, self.user_feature_factors = m.x_uf, m.v_uf
            if item_x is not None:
                self.item_x, self.item_feature_weights, self.item_feature_factors = m.x_if, m.w_if, m.v_if
        m = self.model
        interactions, weights, ui_ptr, ui_idx = self._prepared
        rate = m.learning_rate
        if m.learning_schedule == "invscaling":
            rate = m.learning_rate / (self.epochs_done + 1) ** m.learning_exponent
        max_samples = m.max_samples if m.loss == "warp" else 1
        _fit(
            interactions, weights, ui_ptr, ui_idx, m.x_uf, m.x_if, m.w_i, m.w_if, m.v_u, m.v_i, m.v_uf, m.v_if,
            m.alpha, m.beta, rate, "constant", m.learning_exponent, max_samples, 1, False, m.n_jobs,
        )  # fmt: skip
        self.epochs_done += 1

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(user_idx)
        v_u = np.asarray(self.user_factors[idx], dtype=np.float32)
        user = v_u if self.user_x is None else v_u + self.user_x[idx] @ self.user_feature_factors
        items = np.asarray(self.item_factors, dtype=np.float32)
        # a block of users: BLAS multiplies by a contiguous transposed copy markedly faster (about 40%) than by the
        # transposed view, and the copy costs less than a tenth of the product; one user is not worth the copy
        out = user @ (np.ascontiguousarray(items.T) if len(idx) >= _CONTIGUOUS_FROM else items.T)
        out += self._item_bias()
        if self.item_x is not None:
            out += v_u @ (self.item_x @ self.item_feature_factors).T
        return out

    def feature_scores(self, user_x: np.ndarray) -> np.ndarray:
        """A new user's scores from their encoded features alone (rankfmc's utility with ``v_u`` = 0)."""
        if self.user_x is None or self.user_encoding is None:
            raise ValueError("this rankfm model was not trained with user features")
        x = np.asarray(user_x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.user_x.shape[1]:
            raise ValueError(f"user features must be [n, {self.user_x.shape[1]}]; got {x.shape}")
        return (x @ self.user_feature_factors) @ np.asarray(self.item_factors, dtype=np.float32).T + self._item_bias()

    def _item_bias(self) -> np.ndarray:
        """``w_i + x_i . w_if``: the part of every item's score that does not depend on the user."""
        bias = np.asarray(self.item_bias, dtype=np.float32)
        return bias if self.item_x is None else bias + self.item_x @ self.item_feature_weights

    def with_new_items(self, items: pd.DataFrame) -> RankFM:
        """A copy whose catalogue also holds ``items`` (``item_id`` plus the attribute columns of the item
        encoding), items it never saw in training, scored by their features alone (no ``v_i``, no ``w_i``)."""
        if self.item_x is None or self.item_encoding is None:
            raise ValueError("this rankfm model was not trained with item features; new items cannot be scored")
        ids = items["item_id"].astype(str)
        if ids.duplicated().any() or (self.item_index(ids) >= 0).any():
            raise ValueError("new items must have unique IDs that are not in the model's catalogue")
        x = self.item_encoding.encode(items.reset_index(drop=True))
        copy = self.snapshot()
        n = len(ids)
        copy._set_data(
            self.user_ids,
            np.concatenate([self.item_ids, ids.to_numpy(dtype=str)]),
            self.seen_indptr,
            self.seen_indices,
            np.concatenate([self.item_popularity, np.zeros(n, dtype=np.int64)]),
        )
        factors = np.asarray(self.item_factors, dtype=np.float32)
        copy.item_factors = np.vstack([factors, np.zeros((n, factors.shape[1]), dtype=np.float32)])
        copy.item_bias = np.concatenate([np.asarray(self.item_bias, np.float32), np.zeros(n, dtype=np.float32)])
        copy.item_x = np.vstack([self.item_x, x])
        return copy

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """Cosine similarity of item factors (dot products would favour long vectors)."""
        factors = np.asarray(self.item_factors, dtype=np.float32)
        norms = np.linalg.norm(factors, axis=1)
        norms[norms == 0] = 1.0
        return (factors @ factors[item_idx]) / (norms * norms[item_idx])

    _FEATURE_ARRAYS = ("user_x", "user_feature_factors", "item_x", "item_feature_weights", "item_feature_factors")

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "user_factors": np.ascontiguousarray(self.user_factors, dtype=np.float32),
            "item_factors": np.ascontiguousarray(self.item_factors, dtype=np.float32),
            "item_bias": np.ascontiguousarray(self.item_bias, dtype=np.float32),
        }
        for name in self._FEATURE_ARRAYS:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
        return arrays

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self.item_bias = np.ascontiguousarray(arrays["item_bias"], dtype=np.float32)
        for name in self._FEATURE_ARRAYS:
            value = arrays.get(name)
            setattr(self, name, None if value is None else np.ascontiguousarray(value, dtype=np.float32))
        if self.user_factors.shape[0] != self.n_users or self.item_factors.shape[0] != self.n_items:
            raise ValueError("factor matrices do not match the ID maps")
        if self.item_bias.shape != (self.n_items,):
            raise ValueError("item bias does not match the item map")
        if (self.user_x is None) != (self.user_feature_factors is None) or (
            self.user_x is not None and self.user_x.shape[0] != self.n_users
        ):
            raise ValueError("user feature arrays do not match the user map")
        if (self.item_x is None) != (self.item_feature_weights is None) or (
            self.item_x is not None and self.item_x.shape[0] != self.n_items
        ):
            raise ValueError("item feature arrays do not match the item map")

    def snapshot(self) -> RankFM:
        """A copy of the current weights that later epochs cannot change (rankfmc updates its arrays in place)."""
        copy = RankFM(self.params, seed=self.seed)
        copy._set_data(self.user_ids, self.item_ids, self.seen_indptr, self.seen_indices, self.item_popularity)
        copy.user_encoding, copy.item_encoding = self.user_encoding, self.item_encoding
        copy.cold_start = dict(self.cold_start)
        copy._from_arrays({k: np.array(v, copy=True) for k, v in self._arrays().items()})
        copy.epochs_done = self.epochs_done
        return copy

    @classmethod
    def from_factors(
        cls,
        user_ids: Any,
        item_ids: Any,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        item_bias: np.ndarray,
        seen_indptr: np.ndarray,
        seen_indices: np.ndarray,
        item_popularity: np.ndarray,
        params: Hyperparams | None = None,
    ) -> RankFM:
        """A model from given arrays (tests, benches, models built elsewhere)."""
        model = cls(params)
        model._set_data(user_ids, item_ids, seen_indptr, seen_indices, item_popularity)
        model._from_arrays({"user_factors": user_factors, "item_factors": item_factors, "item_bias": item_bias})
        return model


def _set_id_maps(m: Any, train: Interactions) -> None:
    """rankfmc's ID maps and per-user item sets, as its ``_init_all`` would have made them (its own ``predict`` and
    ``recommend`` then work on the model while it trains), built from recdash's arrays without a sort or a
    per-row string."""
    m.user_id = m.index_to_user = pd.Series(train.user_ids)
    m.item_id = m.index_to_item = pd.Series(train.item_ids)
    m.user_to_index = pd.Series(np.arange(train.n_users), index=train.user_ids)
    m.item_to_index = pd.Series(np.arange(train.n_items), index=train.item_ids)
    items = np.split(train.indices, train.indptr[1:-1])
    m.user_items = dict(enumerate(items))


def _features(x: np.ndarray | None, n: int) -> np.ndarray:
    """rankfmc's feature matrix: ``x`` as contiguous float32 (rows aligned with the ID map), or its [n, 1] zeros
    when there are no features."""
    if x is None:
        return np.zeros((n, 1), dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)
