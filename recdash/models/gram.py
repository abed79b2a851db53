"""The item-item co-occurrence (Gram) matrix XᵀX that EASE and ItemKNN are both built from, made once per fit, or
once for all the candidates of a search (:func:`shared`).

At MovieLens-20M's 26,744 items it is a dense 26,744 x 26,744 float32 array (2.9 GB) built from 16 million training
interactions a block of columns at a time. The references fit EASE for 7 values of λ and ItemKNN for 12 settings on
one training split: without :func:`shared` each of the 19 fits built it again (and ItemKNN through a sparse product
of up to 715 million entries, several times that memory); inside it, the first fit builds it and the others read it.
float32 holds co-occurrence counts exactly below 2²⁴ (16.7 million users).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from recdash.models.base import Interactions

BLOCK = 2048  # columns built (and mirrored) at once: a few n_items x BLOCK temporaries

_kept: dict[int, np.ndarray | None] = {}  # id(train) -> its lower Gram matrix, inside shared(train)


@contextmanager
def shared(train: Interactions) -> Iterator[None]:
    """Inside this block, fits on ``train`` build its Gram matrix once and share it (read-only; a fit that needs to
    overwrite it gets a copy). Outside, each fit builds its own and nothing is kept."""
    key = id(train)
    _kept[key] = None
    try:
        yield
    finally:
        _kept.pop(key, None)


def lower(train: Interactions, *, writable: bool) -> np.ndarray:
    """The lower triangle (diagonal included) of XᵀX as a dense float32 array; the upper triangle is unset (the
    Cholesky routines EASE uses read one triangle, so half the sparse products are skipped). ``writable``: the
    caller overwrites it (EASE inverts it in place), so a shared matrix is copied."""
    key = id(train)
    if key not in _kept:
        return _build(train)
    if _kept[key] is None:
        _kept[key] = _build(train)
    kept = _kept[key]
    assert kept is not None
    return kept.copy() if writable else kept


def columns(lower_gram: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Columns ``start:stop`` of the whole symmetric matrix from its lower triangle (a new array)."""
    block = lower_gram[:, start:stop].copy()
    block[:start] = lower_gram[start:stop, :start].T  # rows above the block: the mirrored lower triangle
    diagonal = block[start:stop]
    upper = np.triu_indices(stop - start, 1)
    diagonal[upper] = diagonal.T[upper]
    return block


def _build(train: Interactions) -> np.ndarray:
    x = train.matrix()
    xt, xc = x.T.tocsr(), x.tocsc()
    n = train.n_items
    gram = np.empty((n, n), dtype=np.float32)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        gram[start:, start:stop] = (xt[start:] @ xc[:, start:stop]).toarray()
    return gram
