"""Item-based k-nearest neighbours (Deshpande & Karypis 2004; Sarwar et al. 2001) on binary interactions.

sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink): cosine similarity of the items' user vectors, shrunk
towards 0 for items with little support. Each item keeps its ``neighbours`` most similar items;
score(u, i) = sum of sim(i, j) over the items j in u's history that are among i's neighbours.
Plain numpy/scipy: the similarity is built one block of items at a time, so memory is n_items x block, and stored
sparse (n_items x neighbours), so the logged model stays small for any catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recdash.models import gram
from recdash.models.base import Interactions, Params, ParamSpec, Recommender, spec_table

BLOCK = 2048  # items whose similarity columns are built at once
HYPERPARAMS: dict[str, ParamSpec] = spec_table(
    ParamSpec("neighbours", int, 100, "ItemKNN: most similar items kept per item.", 1, 10_000),
    ParamSpec("shrink", float, 10.0, "ItemKNN: shrinkage added to the cosine denominator.", 0.0, 10_000.0),
)


@dataclass(frozen=True)
class ItemKNNParams(Params):
    SPECS: ClassVar[dict[str, ParamSpec]] = HYPERPARAMS

    neighbours: int = HYPERPARAMS["neighbours"].default
    shrink: float = HYPERPARAMS["shrink"].default


class ItemKNN(Recommender):
    """Cosine item-item neighbourhood with shrinkage, top-k neighbours per item."""

    name: ClassVar[str] = "itemknn"
    Params: ClassVar[type[Params]] = ItemKNNParams
    scoring_needs_scipy: ClassVar[bool] = True
    default_space: ClassVar[tuple[str, ...]] = ("neighbours=10:500:log", "shrink=0:200")
    reference_grid: ClassVar[tuple[dict[str, Any], ...] | None] = tuple(
        {"neighbours": n, "shrink": s} for n in (20, 50, 100, 200) for s in (0.0, 10.0, 100.0)
    )
    description: ClassVar[str] = "Item-based kNN: cosine item similarity with shrinkage, top-k neighbours per item."
    similarity: ClassVar[str | None] = "shrunk cosine similarity among each item's nearest neighbours"
    params: ItemKNNParams

    def __init__(self, params: Params | None = None, *, seed: int = 42) -> None:
        super().__init__(params, seed=seed)
        self.item_similarity: Any = None  # scipy CSR, rows = history item j, columns = scored item i

    def _fit(self, train: Interactions) -> None:
        from scipy.sparse import csr_matrix

        co = gram.lower(train, writable=False)  # item x item co-occurrence counts (lower triangle)
        norms = np.sqrt(np.diagonal(co))  # an item's count with itself: how many users have it
        n = train.n_items
        k = min(self.params.neighbours, max(n - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            block = gram.columns(co, start, stop)  # [n_items, b]: column c = co-occurrences with item start+c
            denom = norms[:, None] * norms[None, start:stop] + self.params.shrink
            sim = np.divide(block, denom, out=np.zeros_like(block), where=denom > 0)
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0  # an item is not its own neighbour
            if k < n:
                top = np.argpartition(-sim, k - 1, axis=0)[:k]  # [k, b] neighbour rows per column
            else:
                top = np.broadcast_to(np.arange(n)[:, None], (n, stop - start))
            values = np.take_along_axis(sim, top, axis=0)
            keep = values > 0
            rows.append(top[keep])
            cols.append(np.broadcast_to(np.arange(start, stop), top.shape)[keep])
            vals.append(values[keep])
        self.item_similarity = csr_matrix(
            (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        history = self.history_rows(user_idx)
        return np.asarray((history @ self.item_similarity).toarray(), dtype=np.float32)

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """Item ``item_idx``'s similarity to its neighbours (-inf for the rest: they are not similar at all)."""
        column = self.item_similarity[:, [item_idx]].tocsc()
        out = np.full(self.n_items, -np.inf, dtype=np.float32)
        out[column.indices] = column.data
        return out

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.item_similarity
        return {
            "similarity_indptr": s.indptr.astype(np.int64),
            "similarity_indices": s.indices.astype(np.int32),
            "similarity_data": s.data.astype(np.float32),
        }

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        from scipy.sparse import csr_matrix

        indptr = np.asarray(arrays["similarity_indptr"])
        if indptr.shape != (self.n_items + 1,):
            raise ValueError("ItemKNN similarity does not match the item map")
        self.item_similarity = csr_matrix(
            (arrays["similarity_data"], arrays["similarity_indices"], indptr), shape=(self.n_items, self.n_items)
        )
