"""Run filters: MLflow's search syntax, plus numeric comparisons of params (MLflow compares params as text and
refuses ``params.factors > 50``; recdash evaluates those clauses itself on the runs table)."""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recdash.tracking.client import FilterError, mlflow_message

NUMERIC_FILTER_HELP = (
    "A param compared with an unquoted number (params.factors > 50, params.learning_rate <= 0.1) is compared as a "
    "number by recdash, and runs whose param is not a number do not match; a quoted value (params.loss = 'warp') "
    "is compared as text, as MLflow does."
)


_NUMERIC_PARAM = re.compile(
    r"^\s*(?:params|param|parameters|parameter)\.(`[^`]+`|\"[^\"]+\"|[\w.\-]+)\s*(<=|>=|!=|<|>|=)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$",
    re.IGNORECASE,
)


def _split_and(filter_string: str) -> list[str]:
    """Clauses of an MLflow filter (they are joined by AND only), leaving quoted text alone."""
    clauses, start, quote = [], 0, None
    for match in re.finditer(r"[`'\"]|\s+and\s+", filter_string, re.IGNORECASE):
        token = match.group(0)
        if token in "`'\"":
            quote = None if quote == token else (quote or token)
        elif quote is None:
            clauses.append(filter_string[start : match.start()])
            start = match.end()
    clauses.append(filter_string[start:])
    return [c.strip() for c in clauses if c.strip()]


def split_numeric_filter(filter_string: str) -> tuple[str, list[tuple[str, str, float]]]:
    """The part of a filter MLflow evaluates, and the numeric param comparisons recdash evaluates itself
    (MLflow compares params as strings and refuses ``params.factors > 50``); see NUMERIC_FILTER_HELP."""
    kept, numeric = [], []
    for clause in _split_and(filter_string):
        match = _NUMERIC_PARAM.match(clause)
        if match:
            name = match.group(1).strip('`"')
            numeric.append((name, match.group(2), float(match.group(3))))
        else:
            kept.append(clause)
    return " and ".join(kept), numeric


def numeric_mask(frame: pd.DataFrame, clauses: Sequence[tuple[str, str, float]]) -> np.ndarray:
    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq,
           "!=": operator.ne}  # fmt: skip
    mask = np.ones(len(frame), dtype=bool)
    for name, op, value in clauses:
        col = f"params.{name}"
        if col not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        numbers = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            mask &= ~np.isnan(numbers) & ops[op](numbers, value)
    return mask


def validate_filter(filter_string: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    try:
        SearchUtils.parse_search_filter(filter_string)
    except MlflowException as exc:
        raise FilterError(filter_message(filter_string, exc)) from None


def filter_message(filter_string: str, exc: BaseException) -> str:
    text = " ".join(mlflow_message(exc).split())
    text = re.sub(r"\s*(Tokens|Parsed|Statement):.*$", "", text).rstrip(" .")
    return (
        f"Invalid filter {filter_string!r}: {text}. Example of a valid filter: "
        "metrics.val_ndcg_at_10 > 0.1 and params.loss = 'warp' and tags.`recdash.kind` = 'train'"
    )
