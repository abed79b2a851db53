"""What the pages share: the deep-link router fix, the store in use, and the cached store readers (one RunsLoader per
store per process). Every page imports this module first."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from recdash import tracking
from recdash.evaluation import per_user
from recdash.tracking import filestore
from recdash.training import jobs
from recdash.views.text import escape_markdown

# A legacy file store is only ever read by the dashboard: MLflow's FileStore would write to it just by being opened.
filestore.install()

# Deep links on a fresh server. Streamlit starts every process in its legacy "pages/ folder" mode and leaves it only
# once app.py's st.navigation has run; so when a process's first request is a page URL (/runs?runs=...), Streamlit
# runs that page file directly: no wide layout, a sidebar of file names. This module is imported by every page before
# it draws anything, and its body runs once per process: if that first run is such a direct one, leave the legacy mode
# and rerun, which sends the same URL through app.py's router. Every later run of the process is routed already.
if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    st.rerun()  # raised from this import: the module is imported again, in the routed run


def store_uri() -> str:
    """The store this dashboard reads (MLFLOW_TRACKING_URI, else MLflow's default), read on every page run."""
    return tracking.tracking_uri()


@st.cache_resource(show_spinner=False)
def store_client(uri: str) -> Any:
    """One MLflow client per store for the registry and annotation calls (made by recdash's one client factory)."""
    return tracking.client(uri)


@st.cache_resource(show_spinner=False)
def runs_loader(uri: str) -> tracking.RunsLoader:
    """One loader per store: it keeps runs in memory and in a snapshot on disk (so a restart reads only what
    changed) and re-reads only new, active or changed runs."""
    return tracking.RunsLoader(uri)


@st.cache_data(ttl=30, show_spinner=False)
def experiments_table(uri: str) -> pd.DataFrame:
    """The experiments with their run counts, refused jobs' runs not counted (:func:`runs_table` leaves them out)."""
    return jobs.without_refused_counts(tracking.list_experiments(uri), uri)


@st.cache_data(ttl=15, show_spinner="Loading runs…")
def runs_table(
    uri: str,
    experiment_ids: tuple[str, ...],
    filter_string: str = "",
    statuses: tuple[str, ...] = (),
    include_deleted: bool = False,
) -> pd.DataFrame:
    """The runs the pages list and compare: a refused job's run holds no result and is left out (the Jobs panel
    shows it, with why)."""
    runs = runs_loader(uri).load(
        list(experiment_ids), filter_string=filter_string, statuses=list(statuses) or None,
        include_deleted=include_deleted,
    )  # fmt: skip
    return jobs.without_refused(runs)


@st.cache_data(ttl=60, show_spinner="Reading per-user results…", max_entries=8)
def per_user_results(uri: str, run_ids: tuple[str, ...]) -> dict[str, pd.DataFrame | None]:
    """Each run's per-user test results, None for a run that has none (not logged, or not finished yet: hence the
    short ttl). What Compare, Models and Recommend put intervals on."""
    return per_user.read_many(run_ids, uri)


def clear_run_caches() -> None:
    """After a change (demo runs, refresh): the next read goes to the store (the loader refreshes incrementally)."""
    experiments_table.clear()
    runs_table.clear()


def with_commands(message: object) -> str:
    """A store message as Markdown: its prose escaped (it names paths and URIs, which are not formatting) and each
    command in it (a `code span` of the message) as code: a block of its own to copy where it ends a sentence,
    inline code inside one. Punctuation left alone after a block is dropped."""
    parts = re.split(r"`([^`\n]+)`", str(message))
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            text = part if i == 0 or not _ends_sentence(part) else part.lstrip(" .,;:")
            block_follows = i + 1 < len(parts) and _ends_sentence(_after(parts, i + 1))
            out.append(escape_markdown(text.rstrip() if block_follows else text))
        elif _ends_sentence(_after(parts, i)):
            out.append(f"\n\n```\n{_folded(part)}\n```\n\n")
        else:
            out.append(f"`{part}`")
    return "".join(out).strip()


def _folded(command: str, width: int = 60) -> str:
    """A long shell command over several lines (an option or the command after an environment variable on each),
    so a narrow block shows all of it and a paste still runs it."""
    if len(command) <= width:
        return command
    command = re.sub(r"^(\w+=\S+) ", "\\1 \\\n    ", command)
    return command.replace(" --", " \\\n    --")


def _after(parts: list[str], i: int) -> str:
    return parts[i + 1] if i + 1 < len(parts) else ""


def _ends_sentence(text: str) -> bool:
    """Does the prose after a command start a new sentence (or is there none)?"""
    return re.match(r"[\s.,;:]*($|[A-Z])", text) is not None


def stop_on_store_error(exc: Exception, on_retry: Callable[[], None] = clear_run_caches) -> NoReturn:
    """End the page with which store failed and why (no stack trace) and a Retry button that reads it again."""
    st.error(with_commands(exc))
    if st.button("Retry", key="retry"):
        on_retry()
        st.rerun()
    st.stop()


def require_store(uri: str) -> None:
    """Stop the page early, with the reason, when the tracking store cannot be reached or opened."""
    try:
        tracking.check_store(uri)
    except tracking.TrackingError as exc:
        stop_on_store_error(exc)


def read_only_notice(uri: str, action: str) -> bool:
    """On a store recdash only reads (a legacy file store): say that ``action`` is refused, why and what to do
    instead, and return True so the page disables its writing buttons."""
    try:
        tracking.check_writable(uri, action)
    except tracking.TrackingError as exc:
        st.info(with_commands(exc), icon=":material/lock:")
        return True
    return False
