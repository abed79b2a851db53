"""rankfm factorization machines (the ``rankfmc`` fork), trained epoch by epoch, served from plain factor arrays.

Scores are ``user_factors @ item_factors.T + item_bias`` in float32, exactly what rankfmc's ``recommend`` computes
for a model without side features, so rankings match rankfmc's. rankfmc is imported only to train: serving the
exported arrays needs numpy alone.
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


class RankFM(Recommender):
    """rankfm (BPR or WARP loss) without side features, fitted one SGD epoch at a time."""

    name: ClassVar[str] = "rankfm"
    Params: ClassVar[type[Params]] = Hyperparams
    iterative: ClassVar[bool] = True
    description: ClassVar[str] = "Factorization machine trained by SGD on a BPR or WARP ranking loss (rankfmc)."
    similarity: ClassVar[str | None] = "cosine similarity of the item factors"
    params: Hyperparams

    def __init__(self, params: Params | None = None, *, seed: int = 42) -> None:
        super().__init__(params, seed=seed)
        self.user_factors = np.zeros((0, 1), dtype=np.float32)
        self.item_factors = np.zeros((0, 1), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
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
        more than the epoch itself, and restarts its learning-rate schedule at each call. So the first epoch
        initialises through rankfmc, the prepared arrays are kept, and every epoch calls rankfmc's own SGD kernel
        with that epoch's learning rate (``rate / (epoch + 1) ** exponent`` for invscaling, as rankfmc defines it).
        rankfmc draws from numpy's global RNG (initialisation, shuffling), so it is seeded per epoch.
        """
        from rankfmc import RankFM as RankFMC  # imported here: serving the exported model never needs rankfmc
        from rankfmc._rankfm import _fit

        np.random.seed((self.seed * 100_003 + self.epochs_done) % 2**32)
        if self._prepared is None:
            self.check(self.params, train)  # before rankfmc's kernel can crash the process
            if self.n_users != train.n_users:
                self._set_data(train.user_ids, train.item_ids, train.indptr, train.indices, train.popularity)
            self.model = RankFMC(n_jobs=1, **self.params.as_dict())
            # the same string IDs in the same row order as the data: rankfmc's sorted ID maps equal ours
            frame = pd.DataFrame({"user_id": train.user_ids[train.user_idx], "item_id": train.item_ids[train.item_idx]})
            interactions, weights = self.model._init_all(frame)
            if not np.array_equal(self.model.index_to_user.to_numpy(dtype=str), train.user_ids):
                raise RuntimeError("rankfmc indexed users differently from recdash")  # pragma: no cover
            self._prepared = (interactions, weights, *self.model._build_ui_csr())
            self.model.is_fit = True
            # views on rankfmc's arrays, which its kernel updates in place
            self.user_factors, self.item_factors, self.item_bias = self.model.v_u, self.model.v_i, self.model.w_i
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
        uf = np.asarray(self.user_factors[np.asarray(user_idx)], dtype=np.float32)
        return uf @ np.asarray(self.item_factors, dtype=np.float32).T + np.asarray(self.item_bias, dtype=np.float32)

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """Cosine similarity of item factors (dot products would favour long vectors)."""
        factors = np.asarray(self.item_factors, dtype=np.float32)
        norms = np.linalg.norm(factors, axis=1)
        norms[norms == 0] = 1.0
        return (factors @ factors[item_idx]) / (norms * norms[item_idx])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": np.ascontiguousarray(self.user_factors, dtype=np.float32),
            "item_factors": np.ascontiguousarray(self.item_factors, dtype=np.float32),
            "item_bias": np.ascontiguousarray(self.item_bias, dtype=np.float32),
        }

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self.item_bias = np.ascontiguousarray(arrays["item_bias"], dtype=np.float32)
        if self.user_factors.shape[0] != self.n_users or self.item_factors.shape[0] != self.n_items:
            raise ValueError("factor matrices do not match the ID maps")
        if self.item_bias.shape != (self.n_items,):
            raise ValueError("item bias does not match the item map")

    def snapshot(self) -> RankFM:
        """A copy of the current weights that later epochs cannot change (rankfmc updates its arrays in place)."""
        copy = RankFM(self.params, seed=self.seed)
        copy._set_data(self.user_ids, self.item_ids, self.seen_indptr, self.seen_indices, self.item_popularity)
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
