"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008, with Takács et al.'s conjugate-gradient steps) from `implicit`.

Minimises sum over all user-item pairs of c_ui (p_ui - x_u . y_i)² + λ (|x_u|² + |y_i|²), where p_ui = 1 for a
training interaction and 0 otherwise, and c_ui = ``alpha`` for an interaction, 1 for every other pair (implicit
scales the binary matrix by alpha). Repeated rows of a pair count once, as for EASE and ItemKNN.

Trained epoch by epoch (one epoch = one ALS iteration: users solved against the items, then items against the users),
so recdash validates after each and stops early like rankfm: the number of iterations is chosen on validation
instead of guessed. Scoring is ``user_factors @ item_factors.T`` in numpy from the exported factors, which is the
score implicit ranks by, so the logged model serves without implicit installed; implicit is imported only to train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recdash.models.base import Interactions, Params, ParamSpec, Recommender, spec_table

# implicit's solver runs one OpenMP thread per core it is given; its result does not depend on the count (each user's
# and each item's solve is independent), only its speed. Every core (2 on the development machine): one job then
# uses the whole machine, and two jobs side by side (the queue's default limit is the number of cores) share it as
# any two processes do. Measured while other work kept the machine busy (load 3), 20k x 10k x 5M: 1.46 s per epoch
# on 2 threads, 1.58 s on 1 (best of 9 epochs each).
NUM_THREADS = os.cpu_count() or 1
HYPERPARAMS: dict[str, ParamSpec] = spec_table(
    ParamSpec("factors", int, 128, "ALS: latent factor rank (embedding size).", 1, 1024),
    ParamSpec("regularization", float, 30.0, "ALS: L2 penalty λ on the user and item factors.", 1e-4, 1e5, log=True),
    # below 1 an interaction would count for less than a pair never seen: not implicit feedback any more
    ParamSpec(
        "alpha",
        float,
        4.0,
        "ALS: confidence weight of an observed interaction (every pair never seen weighs 1).",
        1.0,
        1e4,
        log=True,
    ),
)


@dataclass(frozen=True)
class ALSParams(Params):
    SPECS: ClassVar[dict[str, ParamSpec]] = HYPERPARAMS

    factors: int = HYPERPARAMS["factors"].default
    regularization: float = HYPERPARAMS["regularization"].default
    alpha: float = HYPERPARAMS["alpha"].default


class ALS(Recommender):
    """implicit's AlternatingLeastSquares (CPU, conjugate gradient), one ALS iteration per recdash epoch."""

    name: ClassVar[str] = "als"
    Params: ClassVar[type[Params]] = ALSParams
    iterative: ClassVar[bool] = True
    # Around what ML-100K's validation rewarded (λ 10-30 with α 2-4 at 100-200 factors: NDCG@10 0.277-0.282; λ has to
    # grow with α). 10 trials here found validation NDCG@10 0.278 (test 0.2691 / 0.3267); over factors 32-256, λ
    # 1-300, α 1-50 they found 0.248 at best (most of that box scores 0.12-0.23).
    default_space: ClassVar[tuple[str, ...]] = ("factors=64:256:log", "regularization=5:60:log", "alpha=1.5:10:log")
    description: ClassVar[str] = "Implicit-feedback matrix factorisation by alternating least squares (implicit)."
    similarity: ClassVar[str | None] = "cosine similarity of the item factors"
    params: ALSParams

    def __init__(self, params: Params | None = None, *, seed: int = 42) -> None:
        super().__init__(params, seed=seed)
        self.user_factors = np.zeros((0, self.params.factors), dtype=np.float32)
        self.item_factors = np.zeros((0, self.params.factors), dtype=np.float32)
        self.epochs_done = 0
        self.model: Any = None  # implicit's AlternatingLeastSquares while training
        self._matrix: Any = None  # the binary user x item CSR matrix implicit is fitted on

    def _fit(self, train: Interactions) -> None:  # pragma: no cover - iterative models train through fit_epoch
        self.fit_epoch(train)

    def fit_epoch(self, train: Interactions) -> None:
        """One ALS iteration through implicit's own ``fit`` (``iterations=1``): implicit initialises the factors
        from the seed on the first call and continues from them on the next ones, so n epochs give exactly the
        factors of ``fit`` with ``iterations=n`` (a test holds it). BLAS is held to one thread meanwhile: implicit's
        OpenMP threads call it, and a threaded OpenBLAS inside them is many times slower (implicit warns of it)."""
        from implicit.cpu.als import AlternatingLeastSquares  # serving the exported model never needs implicit
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            if self.model is None:
                if self.n_users != train.n_users:
                    self._set_data(train.user_ids, train.item_ids, train.indptr, train.indices, train.popularity)
                p = self.params
                self.model = AlternatingLeastSquares(
                    factors=p.factors,
                    regularization=p.regularization,
                    alpha=p.alpha,
                    iterations=1,
                    random_state=self.seed,
                    num_threads=NUM_THREADS,
                )
                self._matrix = train.matrix()
            self.model.fit(self._matrix, show_progress=False)
        self.user_factors, self.item_factors = self.model.user_factors, self.model.item_factors
        self.epochs_done += 1

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors[np.asarray(user_idx)] @ self.item_factors.T

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """Cosine similarity of item factors (dot products would favour long vectors)."""
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1.0
        return (self.item_factors @ self.item_factors[item_idx]) / (norms * norms[item_idx])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": np.ascontiguousarray(self.user_factors, dtype=np.float32),
            "item_factors": np.ascontiguousarray(self.item_factors, dtype=np.float32),
        }

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        if self.user_factors.shape[0] != self.n_users or self.item_factors.shape[0] != self.n_items:
            raise ValueError("ALS factor matrices do not match the ID maps")
        if self.user_factors.shape[1:] != self.item_factors.shape[1:]:
            raise ValueError("ALS user and item factors differ in rank")

    def snapshot(self) -> ALS:
        """A copy of the current factors that later epochs cannot change (implicit updates them in place)."""
        copy = ALS(self.params, seed=self.seed)
        copy._set_data(self.user_ids, self.item_ids, self.seen_indptr, self.seen_indices, self.item_popularity)
        copy.cold_start = dict(self.cold_start)
        copy._from_arrays({k: np.array(v, copy=True) for k, v in self._arrays().items()})
        copy.epochs_done = self.epochs_done
        return copy
