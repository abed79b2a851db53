"""Recommend: a user's top-k from any logged or registered model, next to their history and held-out hits; or a
new user's, described by attributes, from a model trained with user features (its cold-start strategy).
``?run=<id>`` or ``?model=<uri>`` chooses the model, ``?user=<id>`` the user."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from pages._common import per_user_results, require_store, store_uri
from recdash import recommend as rx
from recdash.data.features import FeatureEncoding
from recdash.errors import UserError
from recdash.views import charts
from recdash.views import recommend as rv
from recdash.views.style import RunStyle, run_colors
from recdash.views.text import escape_markdown as _md
from recdash.views.text import literal

SOURCE_RUN, SOURCE_REGISTERED, SOURCE_URI = "Run with a model", "Registered model", "Model URI"
MAX_K = 500  # the page's longest list


@st.cache_data(ttl=30, show_spinner=False)
def _model_sources(tracking_uri: str) -> pd.DataFrame:
    return rx.model_sources(tracking_uri)


@st.cache_data(ttl=30, show_spinner=False)
def _registered_sources(tracking_uri: str) -> pd.DataFrame:
    return rx.registered_sources(tracking_uri)


@st.cache_data(ttl=30, show_spinner=False)
def _model_label(model_uri: str, tracking_uri: str) -> str:
    return rv.model_label(model_uri, tracking_uri)


def model_label(uri: str) -> str:
    """The picked model by run, experiment and registry name (escaped: it is store text)."""
    return _md(_model_label(uri, URI))


@st.cache_resource(ttl=3600, max_entries=8, show_spinner="Loading model…")
def _load(model_uri: str, tracking_uri: str) -> rx.LoadedModel:
    """Keyed by model URI and store; the tracking URI is global, so it is read by the caller and passed in."""
    return rx.load(model_uri)


@st.cache_resource(ttl=3600, max_entries=8, show_spinner="Rebuilding the run's train/test split…")
def _context(run_id: str, tracking_uri: str) -> rx.RunContext:
    return rx.run_context(run_id, tracking_uri)


def pick_model(
    prefix: str, preselect_run: str | None = None, preselect_uri: str | None = None, avoid_uri: str | None = None
) -> str | None:
    """Model source selector: a run with a logged model, a registered version/alias, or a pasted URI.

    ``avoid_uri`` makes the default another model than that one (the second model of a comparison)."""
    tracking_uri = URI
    runs = _model_sources(tracking_uri)
    registered = _registered_sources(tracking_uri)
    choices = [SOURCE_RUN, SOURCE_REGISTERED, SOURCE_URI]
    default = 2 if preselect_uri else (0 if len(runs) or not len(registered) else 1)
    source = st.radio("Model source", choices, index=default, horizontal=True, key=f"{prefix}_source")
    if source == SOURCE_RUN:
        if runs.empty:
            st.info("No run in this tracking store has a logged model yet. Train one on the Train page.")
            return None
        uris = runs["model_uri"].astype(str).tolist()
        group_of = dict(zip(uris, runs["data_group"].astype(str), strict=True))
        default = uris[0]
        if avoid_uri is not None:  # another model, on the same data as that one when there is one
            others = [u for u in uris if u != avoid_uri]
            alike = [u for u in others if group_of[u] == group_of.get(avoid_uri)]
            default = (alike or others or uris)[0]
        if preselect_run:
            matches = runs.loc[runs["run_id"] == preselect_run, "model_uri"]
            if len(matches):
                default = str(matches.iat[0])
            elif rx.run_exists(preselect_run, tracking_uri):
                st.warning(f"Run {literal(preselect_run)} has no logged model; pick another.")
            else:
                st.warning(f"There is no run {literal(preselect_run)} in this tracking store; pick a model below.")
        groups = rv.data_groups_in_order(runs)
        if len(groups) > 1:  # key metrics compare only on the same data: one data group at a time
            group = st.selectbox(
                "Data (dataset and split)",
                groups,
                index=groups.index(group_of[default]),
                format_func=lambda g: rv.data_group_label(g, runs),
                key=f"{prefix}_data",
                help="Models are listed by the data they were evaluated on: their test metrics compare only there.",
            )
            uris = [u for u in uris if group_of[u] == group]
        labels = dict(zip(runs["model_uri"].astype(str), runs["label"].astype(str), strict=True))
        return st.selectbox(
            "Run (type to search experiment, run name or metric)",
            uris,
            index=uris.index(default) if default in uris else 0,
            format_func=labels.__getitem__,
            key=f"{prefix}_run",
        )
    if source == SOURCE_REGISTERED:
        if registered.empty:
            st.info("No registered models yet. Register one on the Models page or with --register-as.")
            return None
        row = st.selectbox(
            "Registered model (version or alias)",
            range(len(registered)),
            format_func=lambda i: str(registered["label"].iat[i]),
            key=f"{prefix}_registered",
        )
        return None if row is None else str(registered["model_uri"].iat[row])
    uri = st.text_input(
        "Model URI", value=preselect_uri or "", placeholder="runs:/<run_id>/model or models:/<name>@champion",
        key=f"{prefix}_uri",
    )  # fmt: skip
    return uri.strip() or None


def load_model(uri: str | None) -> rx.LoadedModel | None:
    """The cached model, or None after showing why it cannot be used."""
    if not uri:
        return None
    try:
        tracking_uri = URI
        return _load(rx.resolve_alias(uri, tracking_uri), tracking_uri)
    except rx.ModelFilesMissing as exc:  # a fact about the store, not a failure of the page: a note
        st.info(_escaped(exc), icon=":material/folder_off:")
    except rx.ModelLoadError as exc:
        st.error(_escaped(exc), icon=":material/error:")
    return None


def _escaped(exc: Exception) -> str:
    """A load message for Markdown: it echoes the URI, which may come from a shared ?model= link."""
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", str(exc))


def run_context(loaded: rx.LoadedModel) -> rx.RunContext | None:
    """The run's rebuilt split (for history and hits), or None after saying why it is unavailable."""
    if not loaded.run_id:
        st.info("This model is not linked to a run, so the user's history and test hits are not available.")
        return None
    try:
        context = _context(loaded.run_id, URI)
    except rx.ContextError as exc:
        st.warning(f"History and hits are unavailable: {_md(exc)}")
        return None
    for note in context.warnings:
        st.warning(_md(note))
    return context


def recommendations(
    loaded: rx.LoadedModel, context: rx.RunContext | None, user: str, k: int, exclude: bool
) -> tuple[pd.DataFrame, bool, set[str] | None] | None:
    """Top-k for display plus whether it is the popularity fallback; None after showing an error."""
    try:
        recs = rx.recommend(loaded, user, k, exclude)
    except UserError as exc:
        st.error(_md(exc))
        return None
    test_items = context.test_items(user) if context is not None else None
    table = rv.decorate(recs, context.items if context else None, rx.model_popularity(loaded, context), test_items)
    return table, rx.is_fallback(recs), test_items


# Narrow tables (history next to the top-k, model A next to model B): small fixed widths that fit side by side at
# 1280 px and up; st.dataframe spreads the room that is left over the columns, so titles get most of it, and their
# rows are tall enough for a title to wrap onto three lines instead of being cut off.
COLUMNS = {
    "rank": st.column_config.NumberColumn("rank", width=40),
    "item": st.column_config.TextColumn("item", width=140, help="Title (item ID)"),
    "year": st.column_config.NumberColumn("year", format="%d", width=44),
    "score": st.column_config.NumberColumn(
        "score", format="%.3f", width=58, help="The model's ranking score: higher ranks first (not a probability)."
    ),
    "popularity": st.column_config.NumberColumn(
        "popularity", format="%d", width=78, help="Training interactions of the item: how popular it is."
    ),
    rv.FALLBACK_SCORE: st.column_config.NumberColumn(
        rv.FALLBACK_SCORE,
        format="%d",
        width=132,
        help="How often the item occurs in the model's training data; the popularity fallback ranks by this count.",
    ),
    "hit": st.column_config.TextColumn("hit", width=38, help="One of the user's held-out test items."),
    "in both": st.column_config.TextColumn("in both", width=60, help="Model A and model B both recommend it."),
    "weight": st.column_config.NumberColumn("weight", width=50),
    "time": st.column_config.DatetimeColumn("time", format="YYYY-MM-DD", width=84),
}


WRAPPING_ROW = 66  # px: Streamlit wraps a cell's text only in rows taller than 4rem (64 px); three lines fit
VISIBLE_ROWS = 10  # a longer table scrolls inside this height


def narrow_table(frame: pd.DataFrame, config: dict[str, Any], order: list[str] | None = None) -> None:
    """A history or top-k table with whole titles: rows tall enough to wrap, the first ten rows in view."""
    height = 38 + WRAPPING_ROW * max(1, min(len(frame), VISIBLE_ROWS))
    st.dataframe(
        frame, hide_index=True, column_order=order, column_config=config, row_height=WRAPPING_ROW, height=height
    )


def show_recs(
    table: pd.DataFrame, shared: set[str] | None = None, *, popularity: bool = True, narrow: bool = True
) -> None:
    """A top-k table; ``narrow`` for one beside another (wrapping titles), else full width (one line a row)."""
    shown = rv.display_recs(table, shared, popularity=popularity)
    labels = shown.attrs["labels"]
    config = {c: COLUMNS[labels.get(c, c)] for c in shown.columns if labels.get(c, c) in COLUMNS}
    if narrow:
        narrow_table(shown, config, shown.attrs["shown"])
    else:
        st.dataframe(shown, hide_index=True, column_order=shown.attrs["shown"], column_config=config)
    if rv.FALLBACK_SCORE in labels.values():
        st.caption(
            f"Ranked by {rv.FALLBACK_SCORE}: how often each item occurs in the model's training data. "
            "This is a count, not a model score."
        )


def hits_caption(table: pd.DataFrame, test_items: set[str] | None) -> str:
    if test_items is None or "hit" not in table.columns:
        return "Test hits unknown (no rebuilt split)."
    if not test_items:
        return "The user has no held-out test interactions, so there are no hits to mark."
    return f"{int(table['hit'].sum())} of the user's {len(test_items)} held-out test items are in this list (✓)."


KNOWN_USER, NEW_USER = "A known user", "A new user"
SOURCES = {  # how a new user's list was made, by its ``source``
    "features": "Ranked by the model from the attributes alone.",
    "blend": "Ranked by the model from the attributes, mixed with popularity.",
    "popular": "The most popular items: the same for every new user.",
}


def attribute_inputs(encoding: FeatureEncoding) -> dict[str, Any]:
    """One input per attribute of the model's user encoding: its categories, lists, age in years or number."""
    values: dict[str, Any] = {}
    columns = st.columns(min(4, max(1, len(encoding.columns))))
    for i, column in enumerate(encoding.columns):
        key, label, box = f"new_user_{column.name}", _md(column.name), columns[i % len(columns)]
        if column.kind in ("category", "multi"):
            chosen = st.session_state.get(key)  # another model's value that this one does not know: start over
            if chosen is not None and not set([chosen] if isinstance(chosen, str) else chosen) <= set(column.values):
                del st.session_state[key]
        if column.kind == "category":
            values[column.name] = box.selectbox(label, column.values, key=key)
        elif column.kind == "multi":
            values[column.name] = box.multiselect(label, column.values, key=key, placeholder="none")
        elif column.kind == "bucket":
            values[column.name] = box.number_input(
                f"{label} (years)", 0, 120, value=30, step=1, key=key,
                help=f"The model knows it in buckets: {', '.join(column.values)}.",
            )  # fmt: skip
        else:
            values[column.name] = box.number_input(label, value=float(column.mean), format="%g", key=key)
    return values


def new_user_section(loaded: rx.LoadedModel, context: rx.RunContext | None, k: int) -> pd.DataFrame | None:
    """The new-user mode: attributes in, the model's top-k for someone it never saw out, and how it served them."""
    rec = loaded.recommender
    note, attributes_matter = rv.cold_start_note(rec)
    if rec is None:
        st.info(_md(note))
        return None
    values: dict[str, Any] = {}
    if rec.user_encoding is None:
        st.info(_md(note), icon=":material/person_add:")
    else:
        st.markdown("**The new user's attributes**")
        values = attribute_inputs(rec.user_encoding)
        (st.caption if attributes_matter else st.warning)(_md(note))
    try:
        recs = rx.recommend_new_user(loaded, values, k)
    except UserError as exc:
        st.error(_md(exc))
        return None
    table = rv.decorate(recs, context.items if context else None, rx.model_popularity(loaded, context))
    sources = sorted(set(recs["source"].astype(str)))
    st.subheader("Popular items" if rx.is_fallback(recs) else f"Top {k} for this new user")
    st.caption(f"Source: {_md(', '.join(sources))}. " + SOURCES.get(sources[0], "") if sources else "No items.")
    show_recs(table, narrow=False)
    return table


def known_user_attributes(loaded: rx.LoadedModel, context: rx.RunContext | None, user: str) -> None:
    """A known user's own attribute values, for a model trained with user features (what the model knows them by)."""
    users_meta = context.dataset.users if context is not None else None
    attributes = rv.user_attributes(loaded.recommender, user, users_meta)
    if attributes:
        shown = " · ".join(f"{_md(name)} {_md(value)}" for name, value in attributes.items())
        st.markdown(f"**User features:** {shown}", help="The user's attributes the model was trained with.")


# ---- page ---------------------------------------------------------------------------------------------------------

URI = store_uri()  # read on every run of the page: tests and restarts may point it elsewhere
st.title("Recommend")
st.caption(
    "Top-k items for any user from any logged or registered model, next to what the user actually did; or for a new "
    "user described by attributes."
)

require_store(URI)

params = st.query_params
uri_a = pick_model("a", preselect_run=params.get("run"), preselect_uri=params.get("model"))
loaded = load_model(uri_a)
if loaded is None:
    st.stop()
assert loaded is not None
label_a = model_label(uri_a or "")
st.markdown(f"**Model A:** {label_a}")
st.caption(literal(loaded.uri) + (f" · run {literal(loaded.run_id)}" if loaded.run_id else ""))
if loaded.run_id:
    c1, c2 = st.columns(2)
    c1.page_link(
        "pages/models.py",
        label="Register this run's model",
        icon=":material/inventory_2:",
        query_params={"run": loaded.run_id},
    )
    c2.page_link(
        "pages/discover.py", label="This run in Discover", icon=":material/search:", query_params={"run": loaded.run_id}
    )
context = run_context(loaded)
users = rx.known_users(loaded, context)


PICKER_USERS = 2_000  # users offered in the picker; any other is typed, or drawn by Random user


def _keep_k_in_range() -> None:
    """A k outside 1..MAX_K is set to the nearest end, and the page says so (the widget itself would refuse it)."""
    typed = int(st.session_state["k"])
    k = min(max(typed, 1), MAX_K)
    st.session_state["k"] = k
    st.session_state["k_note"] = f"k is between 1 and {MAX_K}: {typed:,} was set to {k}." if k != typed else None


def _use_picked_user() -> None:
    st.session_state["user_id"] = st.session_state.get("user_pick") or ""


def _use_random_user() -> None:
    if len(users):
        st.session_state["user_id"] = str(np.random.default_rng().choice(users))


mode = st.radio(
    "Recommend for", (KNOWN_USER, NEW_USER), horizontal=True, key="user_mode",
    help="A new user is one the model never saw, described by attributes (for a model trained with user features).",
)  # fmt: skip
st.session_state.setdefault("user_id", str(params.get("user") or "").strip())  # ?user=<id>: a link to one user
if mode == KNOWN_USER:
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    c1.text_input("User ID", key="user_id", placeholder="type a user ID")
    listed = users[:PICKER_USERS]  # every option goes to the browser on each run: 138k of them took seconds
    more = f", the first {len(listed):,} listed" if len(listed) < len(users) else ""
    c2.selectbox(
        "…or pick a user", listed, index=None, placeholder=f"{len(users):,} known users{more}", key="user_pick",
        on_change=_use_picked_user,
        help="Type any known user's ID in the box beside, or press Random user (drawn from all of them)." if more
        else None,
    )  # fmt: skip
    c3.button("Random user", key="random_user", on_click=_use_random_user, disabled=not len(users))
c4, c5, _ = st.columns([1, 2, 2], vertical_alignment="bottom")
k = int(
    c4.number_input(
        f"k (1–{MAX_K})", value=10, step=1, key="k", on_change=_keep_k_in_range,
        help=f"How many items to recommend, from 1 to {MAX_K}; a number outside that is set to the nearest end.",
    )  # no min/max here: Streamlit would refuse an out-of-range number silently, with only a red border
)  # fmt: skip
exclude_seen = c5.checkbox(
    "Exclude already-seen items", value=True, key="exclude_seen", disabled=mode == NEW_USER,
    help="A new user has seen nothing yet." if mode == NEW_USER else None,
)  # fmt: skip
if st.session_state.get("k_note"):
    st.caption(st.session_state["k_note"])

user = str(st.session_state.get("user_id", "")).strip()
if mode == NEW_USER:
    new_table = new_user_section(loaded, context, k)
    if new_table is None:
        st.stop()
    table = new_table
else:
    if not user:
        st.info("Enter a user ID, pick one from the list, or press Random user.")
        st.stop()
    result = recommendations(loaded, context, user, k, exclude_seen)
    if result is None:
        st.stop()
    table, fallback, test_items = result
    if fallback:
        st.warning(
            f"User {literal(user)} is not in this model's training data; showing the most popular items instead.",
            icon=":material/person_off:",
        )
    else:
        known_user_attributes(loaded, context, user)

    left, right = st.columns([4, 5])  # the recommendations are what the page is for: a little more room
    with left:
        st.subheader("History (training data)")
        if context is None:
            st.caption("Not available for this model.")
        else:
            history = context.history(user)
            if history.empty:
                st.caption("No training interactions for this user.")
            else:
                st.caption(f"{len(history)} items" + (", most recent first." if "time" in history.columns else "."))
                shown = rv.compact(history)
                narrow_table(shown, {c: COLUMNS[c] for c in shown.columns if c in COLUMNS})
    with right:
        st.subheader("Popular items (fallback)" if fallback else f"Top {k} recommendations")
        st.caption(hits_caption(table, test_items))
        if len(table) < k:
            st.caption(f"The model has only {len(table)} items to recommend here.")
        show_recs(table)

    st.divider()
    st.subheader("Compare two models")
    # ?compare=<model uri> (the Models page's champion-vs-challenger link) opens the comparison with that model as B
    st.session_state.setdefault("compare", bool(params.get("compare")))
    if st.toggle(
        "Compare with another model (B)",
        key="compare",
        help="Show a second model's list for the same user next to A's.",
    ):
        uri_b = pick_model("b", preselect_uri=params.get("compare"), avoid_uri=loaded.uri)
        loaded_b = load_model(uri_b)
        if loaded_b is not None:
            context_b = context if loaded_b.run_id == loaded.run_id else run_context(loaded_b)
            result_b = recommendations(loaded_b, context_b, user, k, exclude_seen)
            if result_b is not None:
                table_b, fallback_b, test_items_b = result_b
                count, jaccard = rv.overlap(table, table_b)
                shared = set(table["item_id"].astype(str)) & set(table_b["item_id"].astype(str))
                m1, m2, m3, m4 = st.columns(4)
                m1.metric("Overlap", f"{count} of {k}")
                m2.metric("Jaccard", f"{jaccard:.2f}")
                m3.metric("Hits, model A", "–" if "hit" not in table.columns else int(table["hit"].sum()))
                m4.metric("Hits, model B", "–" if "hit" not in table_b.columns else int(table_b["hit"].sum()))
                run_a, run_b = loaded.run_id or "", loaded_b.run_id or ""
                if run_a and run_b and run_a != run_b:  # the colours the Runs and Compare pages draw these runs in
                    order = [*st.session_state.get("selected_runs", []), run_a, run_b]
                    key_style = RunStyle(
                        labels={run_a: f"A: {_model_label(uri_a or '', URI)}",
                                run_b: f"B: {_model_label(uri_b or '', URI)}"},
                        colors=run_colors(order), hover={}, groups={},
                    )  # fmt: skip
                    st.plotly_chart(charts.selection_figure(key_style, [run_a, run_b], per_row=2), key="ab_colours")
                if run_a and run_b:
                    found = per_user_results(URI, (run_a, run_b))
                    mine, note = rv.user_results({"A": found.get(run_a), "B": found.get(run_b)}, user)
                    if not mine.empty and mine.notna().any().any():
                        st.caption(
                            "This user's test metrics in each model's run (the runs' per-user results: what each "
                            "model's own evaluation scored for this user, on the run's test items)."
                        )
                        st.dataframe(
                            mine, key="ab_user_metrics",
                            column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in mine.columns},
                        )  # fmt: skip
                    if note:
                        st.caption(_md(note))
                col_a, col_b = st.columns(2)
                for column, name, label, ranked, is_fallback in (
                    (col_a, "A", label_a, table, fallback),
                    (col_b, "B", model_label(uri_b or ""), table_b, fallback_b),
                ):
                    with column:
                        st.markdown(f"**Model {name}:** {label}" + (" (popularity fallback)" if is_fallback else ""))
                        show_recs(ranked, shared, popularity=False)
                st.caption(f"✓ in both: the {count} items both models recommend to this user.")

st.divider()
st.subheader("Similar items")
similarity = getattr(loaded.recommender, "similarity", "cosine similarity of the item factors")
if loaded.recommender is None:
    st.info("Similar items need the model's item similarities; only recdash models expose them.")
elif similarity is None:
    st.info(f"Model A ({label_a}) ranks every user's items by popularity: it has no notion of similar items.")
else:
    items_meta = context.items if context is not None else None
    st.caption(f"From model A ({label_a}): the items closest to the chosen one by {similarity}.")
    rec = loaded.recommender
    order = np.argsort(-rec.item_popularity, kind="stable")
    labels = rv.item_labels(rec.item_ids[order], items_meta)
    item_ids = list(labels)
    first = str(table["item_id"].iat[0]) if len(table) else None
    item = st.selectbox(
        "Item (type to search titles)",
        item_ids,
        index=item_ids.index(first) if first in labels else 0,
        format_func=labels.__getitem__,
        key="similar_item",
    )
    if item is not None:
        try:
            similar = rx.similar_items(loaded, item, k, items_meta)
        except UserError as exc:
            st.error(_md(exc))
        else:
            st.dataframe(
                similar,
                hide_index=True,
                column_config={"similarity": st.column_config.NumberColumn(format="%.3f")},
            )
