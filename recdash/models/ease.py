"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): a closed-form item-item model.

B = argmin ||X - XB||² + λ||B||² subject to diag(B) = 0 has the solution P = (XᵀX + λI)⁻¹, B = -P / diag(P)
(column-wise), diag(B) = 0. Scores are ``X_u @ B``, the sum of B's rows for the items in u's history: a sparse
row times B (scipy), which reads |history| rows of B instead of all of it (5.7x faster than the dense product for
1,024 users at 26,744 items, the same rankings and metrics on ML-100K).

Memory grows with the square of the catalogue: one n_items x n_items float32 array does all the work (the Gram
matrix is built into it a block of columns at a time, inverted in place by LAPACK's Cholesky routines -- XᵀX + λI is
symmetric positive definite -- and scaled into B in place): 3.8 GB at 26,744 items with the column blocks (measured;
:func:`fit_memory` says 3.7), where the float64 Gram matrix and its inverse alone took 11.4 GB (the float64 fit
needed 3.2 GB at 10,000 items, this one 0.85). :meth:`EASE.check` refuses a catalogue whose matrix would not fit
in the memory available, before any run exists, and says what to use instead. float32 holds ML-100K's rankings and
metrics (identical for every λ of the reference grid); a λ so small that the matrix is not positive definite in
float32 is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recdash.models import gram
from recdash.models.base import (
    HyperparameterError,
    Interactions,
    Params,
    ParamSpec,
    Recommender,
    spec_table,
)
from recdash.models.gram import available_memory

HYPERPARAMS: dict[str, ParamSpec] = spec_table(
    ParamSpec(
        "l2",
        float,
        300.0,
        "EASE: L2 penalty λ on the item-item weights (larger = closer to popularity).",
        1e-3,
        1e6,
        log=True,
    ),
)


@dataclass(frozen=True)
class EASEParams(Params):
    SPECS: ClassVar[dict[str, ParamSpec]] = HYPERPARAMS

    l2: float = HYPERPARAMS["l2"].default


class EASE(Recommender):
    """Item-item weights B from one regularised least-squares solve; score(u) = x_u B."""

    name: ClassVar[str] = "ease"
    Params: ClassVar[type[Params]] = EASEParams
    scoring_needs_scipy: ClassVar[bool] = True
    default_space: ClassVar[tuple[str, ...]] = ("l2=10:5000:log",)
    reference_grid: ClassVar[tuple[dict[str, Any], ...] | None] = tuple(
        {"l2": v} for v in (50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)
    )
    description: ClassVar[str] = "EASE (Steck 2019): closed-form item-item linear model with L2 penalty λ."
    similarity: ClassVar[str | None] = "the item-item weights EASE learned"
    params: EASEParams

    def __init__(self, params: Params | None = None, *, seed: int = 42) -> None:
        super().__init__(params, seed=seed)
        self.weights = np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def check(cls, params: Params, train: Interactions) -> None:
        """Refuse a catalogue whose item x item matrix would not fit in the memory available now (naming what it
        needs and what to use instead): better than a run that dies of an out-of-memory kill halfway."""
        need, have = fit_memory(train.n_items), available_memory()
        if have is not None and need > have:
            raise HyperparameterError(
                f"EASE (--model ease) needs about {need / 1e9:.1f} GB of memory at {train.n_items:,} items (a "
                f"{train.n_items:,} x {train.n_items:,} float32 item-item matrix), and this machine has "
                f"{have / 1e9:.1f} GB available. Use --model als (memory grows with items x factors) or --model "
                "itemknn (keeps --neighbours similarities per item) for a catalogue this large, or train EASE on a "
                "machine with more memory."
            )

    def _fit(self, train: Interactions) -> None:
        weights = gram.lower(train, writable=True)  # becomes B in place: the one n x n array
        weights[np.diag_indices_from(weights)] += np.float32(self.params.l2)
        try:
            invert_spd_in_place(weights)
        except np.linalg.LinAlgError as exc:
            raise HyperparameterError(
                f"l2 (--l2) {self.params.l2:g} is too small for this data: EASE's regularised item-item matrix is not "
                f"positive definite in float32 ({exc}; items seen by the same users make it nearly singular). Use a "
                "larger --l2: EASE's useful values are usually 10 to 5000."
            ) from None
        weights /= -np.diag(weights)  # B = -P / diag(P): column j divided by -P_jj (a new 1-d array)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.history_rows(user_idx) @ self.weights)

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """How much item ``item_idx`` in a history raises each item's score (its row of B)."""
        return self.weights[item_idx]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
        if self.weights.shape != (self.n_items, self.n_items):
            raise ValueError("EASE weights do not match the item map")


def fit_memory(n_items: int) -> int:
    """Bytes EASE's fit needs at ``n_items``: the n x n float32 matrix and the temporaries of one column block
    (a sparse block of the Gram matrix and its dense copy, about 16 bytes per entry)."""
    return 4 * n_items * n_items + 16 * n_items * min(gram.BLOCK, n_items)


def invert_spd_in_place(a: np.ndarray) -> None:
    """Overwrite the symmetric positive definite float32 matrix ``a``, given by its lower triangle, with its whole
    inverse: LAPACK's Cholesky factorisation and inverse (spotrf, spotri) on its own memory, then the triangle they
    leave mirrored into the other, a block at a time (no second n x n array, half the work of a general inverse).
    Raises LinAlgError when ``a`` is not positive definite in float32."""
    from scipy.linalg.lapack import spotrf, spotri
    from threadpoolctl import threadpool_limits

    # a is C-ordered; its transpose is the same memory in Fortran order, which LAPACK overwrites without a copy.
    # The "upper" triangle of that view is the lower triangle of a.
    # The factorisation runs on one BLAS thread: the threaded spotrf of the OpenBLAS scipy ships (0.3.30) dies with
    # a segmentation fault at 26,744 items on 2 threads (measured; 23,200 passed), single-threaded it does not. It
    # is a third of the work; the inverse (spotri) keeps every thread.
    with threadpool_limits(limits=1, user_api="blas"):
        factor, info = spotrf(a.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"LAPACK spotrf info {info}")
    inverse, info = spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"LAPACK spotri info {info}")
    if not np.shares_memory(inverse, a):  # pragma: no cover - LAPACK wrappers copy only non-contiguous input
        a[...] = inverse.T
    n = len(a)
    for start in range(0, n, gram.BLOCK):  # copy the lower triangle (valid) onto the upper one
        stop = min(start + gram.BLOCK, n)
        diag = a[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        diag[upper] = diag.T[upper]
        a[start:stop, stop:] = a[stop:, start:stop].T
