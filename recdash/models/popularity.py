"""Most popular items: every user gets the training catalogue ranked by interaction count (the floor any
personalised model has to clear)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recdash.models.base import Interactions, Params, ParamSpec, Recommender


@dataclass(frozen=True)
class PopularityParams(Params):
    """No hyperparameters."""

    SPECS: ClassVar[dict[str, ParamSpec]] = {}


class Popularity(Recommender):
    """score(u, i) = training interactions of item i, the same for every user."""

    name: ClassVar[str] = "popularity"
    Params: ClassVar[type[Params]] = PopularityParams
    reference_grid: ClassVar[tuple[dict[str, Any], ...] | None] = ({},)
    description: ClassVar[str] = "Most popular items by training interactions (no personalisation)."

    def _fit(self, train: Interactions) -> None:
        pass  # the shared item popularity is the whole model

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        row = self.item_popularity.astype(np.float32)
        return np.broadcast_to(row, (len(np.asarray(user_idx)), self.n_items)).copy()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass
