"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): a closed-form item-item model.

B = argmin ||X - XB||² + λ||B||² subject to diag(B) = 0 has the solution P = (XᵀX + λI)⁻¹, B = -P / diag(P)
(column-wise), diag(B) = 0. Scores are ``X_u @ B``. One n_items x n_items inverse: well under a second for a few
thousand items, and memory grows with the square of the catalogue (refused above :data:`MAX_ITEMS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recdash.models.base import (
    HyperparameterError,
    Interactions,
    Params,
    ParamSpec,
    Recommender,
    dense_rows,
    spec_table,
)

MAX_ITEMS = 30_000  # a 30k x 30k float64 Gram matrix is 7 GB: beyond that EASE is the wrong tool
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
        if train.n_items > MAX_ITEMS:
            raise HyperparameterError(
                f"EASE (--model ease) needs an n_items x n_items matrix; {train.n_items} items is above its limit of "
                f"{MAX_ITEMS}. Use --model itemknn for catalogues this large."
            )

    def _fit(self, train: Interactions) -> None:
        x = train.matrix()
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.params.l2
        precision = np.linalg.inv(gram)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        rows = dense_rows(self.seen_indptr, self.seen_indices, np.asarray(user_idx), self.n_items)
        return rows @ self.weights

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """How much item ``item_idx`` in a history raises each item's score (its row of B)."""
        return self.weights[item_idx]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
        if self.weights.shape != (self.n_items, self.n_items):
            raise ValueError("EASE weights do not match the item map")
