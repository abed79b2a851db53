"""Compatibility imports: rankfm's hyperparameters under their old module name.

Algorithms now live in :mod:`recdash.models` (one module each, one interface); this module only keeps
``from recdash.model import Hyperparams, HYPERPARAMS`` working for code written before that split.
"""

from __future__ import annotations

from recdash.models.rankfm import HYPERPARAMS, Hyperparams

__all__ = ["HYPERPARAMS", "Hyperparams"]
