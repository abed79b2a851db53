"""The item-item co-occurrence (Gram) matrix XᵀX that EASE and ItemKNN are both built from, made once per fit, or
once for all the candidates of a search (:func:`shared`).

At MovieLens-20M's 26,744 items it is a dense 26,744 x 26,744 float32 array (2.9 GB) built from 16 million training
interactions a block of columns at a time. The references fit EASE for 7 values of λ and ItemKNN for 12 settings on
one training split: without :func:`shared` each of the 19 fits built it again (and ItemKNN through a sparse product
of up to 715 million entries, several times that memory); inside it, the first fit builds it and the others read it.
float32 holds co-occurrence counts exactly below 2²⁴ (16.7 million users).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from recdash.models.base import Interactions

BLOCK = 2048  # columns built (and mirrored) at once: a few n_items x BLOCK temporaries

_kept: dict[int, np.ndarray | None] = {}  # id(train) -> its lower Gram matrix, inside shared(train)


@contextmanager
def shared(train: Interactions) -> Iterator[None]:
    """Inside this block, fits on ``train`` build its Gram matrix once and share it (read-only; a fit that needs to
    overwrite it gets a copy, and the matrix is kept for those only while memory has room for that copy and the
    search's best model). Outside, each fit builds its own and nothing is kept."""
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
    kept = _kept[key]
    if kept is None:
        kept = _build(train)
        if writable and not _room_beside(kept):
            return kept  # no room to keep it beside the caller's copy: each fit builds its own, as outside shared()
        _kept[key] = kept
    return kept.copy() if writable else kept


def _room_beside(matrix: np.ndarray) -> bool:
    """Whether a kept matrix leaves room for a fit that overwrites a copy of it while the search holds its best
    model's n x n weights so far: two more arrays of its size (unknown memory: assumed there)."""
    have = available_memory()
    return have is None or have > 2 * matrix.nbytes


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable), None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


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
