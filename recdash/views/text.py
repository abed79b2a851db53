"""Run data shown as text on pages and in plotly figures, without it ever being read as markup."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable


def parse_run_ids(value: str | Iterable[str] | None) -> list[str]:
    """Run ids from a ``runs=a,b,c`` query param (or a list of them): stripped, de-duplicated, order kept."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    out: list[str] = []
    for part in parts:
        part = part.strip()
        if part and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", part) and part not in out:
            out.append(part)
    return out


def escape_markdown(text: object) -> str:
    """``text`` safe to embed in Streamlit markdown (captions, labels): run names and metric names from a shared
    store are data, not formatting."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~$:])", r"\\\1", str(text))


def plotly_text(text: object) -> str:
    """``text`` for a plotly label: plotly renders a subset of HTML (<b>, <a href>) in names, ticks and hover
    text, so run names and param values from the store are entity-escaped to show as typed."""
    return html.escape(str(text), quote=False)


def literal(text: object) -> str:
    """``text`` as a Markdown code span, shown exactly as typed: Streamlit's Markdown turns `` -- `` into a dash and
    ``->`` into an arrow even when they are escaped, and an ID (a user's, a run's, a model URI) is data, not prose."""
    value = " ".join(str(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    # CommonMark strips one space from each end of a code span that starts and ends with one: pad to keep them
    pad = " " if value[:1] == "`" or value[-1:] == "`" or (value[:1] == value[-1:] == " " and value.strip()) else ""
    return f"{fence}{pad}{value}{pad}{fence}"
