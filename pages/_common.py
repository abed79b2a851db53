"""What the pages share: the deep-link router fix, the store in use, and the cached store readers (one RunsLoader per
store per process). Every page imports this module first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from recdash import tracking
from recdash.evaluation import per_user
from recdash.tracking import filestore
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
    return tracking.list_experiments(uri)


@st.cache_data(ttl=15, show_spinner="Loading runs…")
def runs_table(
    uri: str,
    experiment_ids: tuple[str, ...],
    filter_string: str = "",
    statuses: tuple[str, ...] = (),
    include_deleted: bool = False,
) -> pd.DataFrame:
    return runs_loader(uri).load(
        list(experiment_ids), filter_string=filter_string, statuses=list(statuses) or None,
        include_deleted=include_deleted,
    )  # fmt: skip


@st.cache_data(ttl=60, show_spinner="Reading per-user results…", max_entries=8)
def per_user_results(uri: str, run_ids: tuple[str, ...]) -> dict[str, pd.DataFrame | None]:
    """Each run's per-user test results, None for a run that has none (not logged, or not finished yet: hence the
    short ttl). What Compare, Models and Recommend put intervals on."""
    return per_user.read_many(run_ids, uri)


def clear_run_caches() -> None:
    """After a change (demo runs, refresh): the next read goes to the store (the loader refreshes incrementally)."""
    experiments_table.clear()
    runs_table.clear()


def stop_on_store_error(exc: Exception, on_retry: Callable[[], None] = clear_run_caches) -> NoReturn:
    """End the page with which store failed and why (no stack trace) and a Retry button that reads it again."""
    st.error(escape_markdown(exc))
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
        st.info(escape_markdown(exc), icon=":material/lock:")
        return True
    return False
