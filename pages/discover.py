"""Discover: one search box over datasets, models, runs, experiments and people, and a detail view for each
(``?q=``, ``?dataset=<digest>``, ``?model=<name>``, ``?run=<id>``, ``?experiment=<id>``, ``?user=<name>``).

The page only lays things out; :mod:`recdash.catalog` builds the catalog and its views, :mod:`recdash.annotations`
writes descriptions and tags. Edits run in button callbacks and are shown once as a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from pages._common import (
    clear_run_caches,
    experiments_table,
    read_only_notice,
    require_store,
    runs_loader,
    runs_table,
    stop_on_store_error,
    store_client,
    store_uri,
)
from recdash import annotations, catalog, contract, registry, tracking
from recdash.data import load_dataset
from recdash.data import profile as data_profile
from recdash.errors import UserError
from recdash.views import cards
from recdash.views.text import escape_markdown

FLASH = "discover_flash"
PER_KIND = 8  # results listed per kind; the count says how many more matched
VIEWS = ("dataset", "model", "run", "experiment", "user")
NOUNS = {
    "dataset": ("dataset", "datasets"),
    "model": ("registered model", "registered models"),
    "version": ("model version", "model versions"),
    "run": ("run", "runs"),
    "experiment": ("experiment", "experiments"),
    "person": ("person", "people"),
}


# ---- cached reads ----------------------------------------------------------------------------------------------


@st.cache_resource(ttl=15, show_spinner="Building the catalog…")
def load_catalog(uri: str) -> catalog.Catalog:
    """One catalog (and search index) per store, rebuilt at most every 15 s; never mutated by the page."""
    experiments = experiments_table(uri)
    active = experiments[experiments["lifecycle_stage"] == "active"]
    ids = tuple(active.loc[active["run_count"] > 0, "experiment_id"].astype(str))
    runs = runs_table(uri, ids) if ids else pd.DataFrame(columns=tracking.BASE_COLUMNS)
    notes = []
    try:
        models, versions = registry.snapshot(store_client(uri))
    except UserError as exc:
        models = versions = None
        notes.append(f"Registered models are not listed: {exc}")
    return catalog.build(runs, experiments, models, versions, notes)


@st.cache_data(ttl=300, show_spinner=False)
def logged_profile(uri: str, run_ids: tuple[str, ...]) -> tuple[str, data_profile.Profile] | None:
    """The data profile the first of these runs logged when it trained (run id, profile); None if none did."""
    for run_id in run_ids[: cards.PROFILE_RUNS_TRIED]:
        found = data_profile.read(run_id, uri)
        if found is not None:
            return run_id, found
    return None


@st.cache_data(ttl=300, show_spinner="Loading the data to profile it…", max_entries=4)
def loaded_profile(name: str, options: dict[str, Any]) -> tuple[data_profile.Profile, str]:
    """The profile and digest of the data as it loads now, for runs that logged no profile (the page checks the
    digest); only the small profile is kept in the cache, never the rows."""
    data = load_dataset(name, **options)
    return data_profile.profile(data.interactions, data.items), data.digest


@st.cache_data(ttl=300, show_spinner=False)
def logged_dataset(uri: str, run_id: str, digest: str) -> cards.LoggedDataset | None:
    return cards.logged_dataset(store_client(uri), run_id, digest)


def refresh() -> None:
    """After an edit: tags of finished runs are cached by the runs loader until cleared, so clear it too."""
    runs_loader(uri).clear()
    clear_run_caches()
    load_catalog.clear()


# ---- small pieces ------------------------------------------------------------------------------------------------


def link_column(label: str = "open") -> Any:
    return st.column_config.LinkColumn(label, display_text="open", width="small")


def links(kind: str, keys: pd.Series) -> list[str | None]:
    return [catalog.link(kind, str(k)) if isinstance(k, str) and k else None for k in keys]


def page_link(kind: str, key: str, label: str, icon: str) -> None:
    param = catalog.KIND_PARAMS[kind]
    st.page_link("pages/discover.py", label=escape_markdown(label), icon=icon, query_params={param: key})


def back_to_search() -> None:
    """Back to the search this view was opened from (the session's last query)."""
    query = str(st.session_state.get("_q_in_url") or "")
    st.page_link(
        "pages/discover.py",
        label="Search the catalog",
        icon=":material/search:",
        query_params={"q": query} if query else {},
    )


def when(value: object) -> str:
    """A date for a metric tile (a time does not fit its width)."""
    stamp = pd.Timestamp(value) if value is not None else pd.NaT
    return "–" if pd.isna(stamp) else f"{stamp:%Y-%m-%d}"


def show_flash() -> None:
    kind, message = st.session_state.pop(FLASH, (None, None))
    if kind == "success":
        st.success(escape_markdown(message), icon=":material/check_circle:")
    elif kind == "error":
        st.error(escape_markdown(message))


def act(action: Callable[[], str]) -> None:
    """Run one write from a button callback and remember its outcome for the run that follows."""
    try:
        st.session_state[FLASH] = ("success", action())
    except UserError as exc:
        st.session_state[FLASH] = ("error", str(exc))
    refresh()


def editor(uri: str, target: annotations.Target, description: str, tags: dict[str, str], read_only: bool) -> None:
    """Description and tags of one entity, saved to the store's own fields (see docs/catalog.md)."""
    st.subheader("Description and tags")
    if st.session_state.get("_editing") != target:  # another entity: load its text into the editor
        st.session_state["description"] = description
        st.session_state["_editing"] = target

    def save() -> None:
        act(lambda: annotations.set_description(uri, target, st.session_state.get("description", "")))

    def set_tag() -> None:
        act(
            lambda: annotations.set_tag(
                uri, target, st.session_state.get("tag_key", ""), st.session_state.get("tag_value", "")
            )
        )

    def delete_tag() -> None:
        act(lambda: annotations.delete_tag(uri, target, st.session_state.get("delete_tag_key") or ""))

    st.text_area("Description", key="description", height=90, disabled=read_only)
    st.button("Save description", key="save_description", on_click=save, disabled=read_only)
    if tags:
        st.dataframe(pd.DataFrame(sorted(tags.items()), columns=["tag", "value"]), hide_index=True, key="tags_table")
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    c1.text_input("Tag key", key="tag_key", disabled=read_only)
    c2.text_input("Tag value", key="tag_value", disabled=read_only)
    c3.button("Set tag", key="set_tag", on_click=set_tag, disabled=read_only)
    if tags:
        d1, d2 = st.columns([4, 1], vertical_alignment="bottom")
        d1.selectbox("Tag to delete", sorted(tags), key="delete_tag_key", disabled=read_only)
        d2.button("Delete tag", key="delete_tag", on_click=delete_tag, disabled=read_only)


def runs_frame(runs: pd.DataFrame, key: str, limit: int = 50) -> None:
    """Runs as a table, newest first, each linked to its view."""
    shown = runs.sort_values("start_time", ascending=False).head(limit)
    key = cards.key_values(shown)
    table = pd.DataFrame(
        {
            "run": shown["label"],
            "experiment": shown["experiment"],
            "user": shown["user"],
            "dataset": shown["ds_name"],
            "status": shown["status"],
            "key metric": key["key metric"],
            "value": key["value"],
            "started": shown["start_time"],
            "link": links("run", shown["run_id"]),
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        key=key,
        placeholder="–",
        column_config={
            "link": link_column(),
            "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
            "value": st.column_config.NumberColumn("value", format="%.4f"),
        },
    )
    if len(runs) > limit:
        st.caption(f"The newest {limit} of {len(runs):,} runs.")


# ---- search --------------------------------------------------------------------------------------------------------


def results(found: pd.DataFrame, landing: bool) -> None:
    counts = found["kind"].value_counts()
    if not landing:
        summary = ", ".join(f"{counts[k]} {NOUNS[k][int(counts[k] != 1)]}" for k in catalog.KINDS if k in counts)
        st.caption(f"Found {summary}. Ranked by how well they match, how much they are used and how recently.")
    for kind in catalog.KINDS:
        rows = found[found["kind"] == kind]
        if rows.empty:
            continue
        st.subheader(f"{catalog.KIND_TITLES[kind]} ({len(rows)})")
        top = catalog.with_links(rows.head(PER_KIND))
        st.dataframe(
            top[["title", "subtitle", "link"]],
            hide_index=True,
            key=f"results_{kind}",
            column_config={
                "title": st.column_config.TextColumn("name", width="medium"),
                "subtitle": st.column_config.TextColumn("about", width="large"),
                "link": link_column(),
            },
        )
        if len(rows) > PER_KIND:
            st.caption(f"and {len(rows) - PER_KIND:,} more: add words to narrow the search.")


def search_view(cat: catalog.Catalog) -> None:
    from_url = st.query_params.get("q", "")
    if st.session_state.get("_q_in_url") != from_url:  # a link or the back button: the URL's query wins
        st.session_state["q"] = from_url
    query = st.text_input(
        "Search",
        key="q",
        placeholder="a dataset, model, run, experiment or person — typos are fine",
        help="Words match names, ids, digests, params, tags, descriptions and users; every word must match "
        "(fuzzily: movielen and movilens find movielens-100k).",
    )
    query = query.strip()
    if query:
        st.query_params["q"] = query
    elif "q" in st.query_params:
        del st.query_params["q"]
    st.session_state["_q_in_url"] = query
    if not query:
        if cat.index.entries.empty:
            st.info("This store has nothing to discover yet: train a model or create demo runs on the Home page.")
            return
        st.caption("Most used and most recent, by kind. Type to search.")
        results(cat.index.popular(per_kind=5), landing=True)
        return
    found = cat.index.search(query)
    if found.empty:
        st.info(f"Nothing matches {escape_markdown(query)!s}. Try fewer or shorter words.")
        return
    results(found, landing=False)


# ---- dataset -------------------------------------------------------------------------------------------------------


def dataset_view(uri: str, cat: catalog.Catalog, digest: str, read_only: bool) -> None:
    row = cat.dataset(digest)
    runs = cards.runs_on(cat, digest)
    st.subheader(f"Dataset: {escape_markdown(row['name'])}")
    st.caption(f"digest {escape_markdown(digest)} · source {escape_markdown(row['source'] or 'not recorded')}")
    c = st.columns(4)
    c[0].metric("Runs on it", f"{row['runs']:,}")
    c[1].metric("People", f"{row['users']:,}")
    c[2].metric("First used", when(row["first_used"]))
    c[3].metric("Last used", when(row["last_used"]))
    if row["description"]:
        st.text(row["description"])

    st.subheader("Versions of this data")
    history = cards.digest_history(cat, digest)
    newer = cards.newer_digest(cat, digest)
    if newer:
        st.warning(
            f"This is an older version of {escape_markdown(row['name'])}: the data changed since (newest "
            f"digest {newer}).",
            icon=":material/history:",
        )
    if len(history) < 2:
        st.caption("Every run on this dataset saw the same data (one digest).")
    st.dataframe(
        history.assign(this=history["digest"].eq(digest), link=links("dataset", history["digest"])),
        hide_index=True,
        key="digest_history",
        placeholder="–",
        column_config={
            "n_users": st.column_config.NumberColumn("users"),
            "n_items": st.column_config.NumberColumn("items"),
            "Δ n_users": st.column_config.NumberColumn("Δ users", format="%+d"),
            "Δ n_items": st.column_config.NumberColumn("Δ items", format="%+d"),
            "Δ rows": st.column_config.NumberColumn("Δ rows", format="%+d"),
            "latest": st.column_config.CheckboxColumn("newest", help="The most recent data under this name."),
            "this": st.column_config.CheckboxColumn("shown", help="The digest this page is about."),
            "first_used": st.column_config.DatetimeColumn("first used", format="YYYY-MM-DD HH:mm"),
            "last_used": st.column_config.DatetimeColumn("last used", format="YYYY-MM-DD HH:mm"),
            "link": link_column(),
        },
    )

    profile_section(uri, runs, row)
    leaderboard_section(cat, runs)

    st.subheader("Models registered from these runs")
    versions = cat.versions[cat.versions["run_id"].isin(runs["run_id"])]
    if versions.empty:
        st.caption("No run on this dataset has a registered model yet.")
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    "model": versions["name"],
                    "version": versions["version"],
                    "aliases": [", ".join(a) for a in versions["aliases"]],
                    "run": versions["run_label"],
                    "link": links("model", versions["name"]),
                }
            ),
            hide_index=True,
            key="dataset_models",
            column_config={"link": link_column()},
        )

    st.subheader("Who trains on it")
    people = cards.top_users(runs)
    st.dataframe(
        people.assign(link=links("person", people["user"])),
        hide_index=True,
        key="dataset_people",
        column_config={
            "last_run": st.column_config.DatetimeColumn("last run", format="YYYY-MM-DD HH:mm"),
            "link": link_column(),
        },
    )
    target = annotations.Target("dataset", str(row["name"]), tuple(row["experiment_ids"]))
    editor(uri, target, row["description"], row["tags"], read_only)
    st.caption(
        "MLflow's dataset inputs cannot carry a description: it is kept as the tag "
        f"`{annotations.dataset_key(str(row['name']), 'description')}` on the experiments whose runs use this data."
    )


def profile_section(uri: str, runs: pd.DataFrame, row: pd.Series) -> None:
    st.subheader("Profile")
    found = logged_profile(uri, tuple(runs.sort_values("start_time", ascending=False)["run_id"].astype(str)))
    if found is not None:
        run_id, prof = found
        label = runs.loc[runs["run_id"].astype(str) == run_id, "label"]
        st.caption(
            f"As logged by run {escape_markdown(label.iloc[0] if len(label) else run_id)} when it trained on this "
            f"data (`{contract.PROFILE_ARTIFACT}`)."
        )
        return show_profile(prof)
    rows = row["rows"]
    if pd.notna(rows) and rows > cards.PROFILE_LOAD_LIMIT:
        st.info(
            f"The runs on this data logged no profile (they predate it), and {int(rows):,} rows are too many to load "
            "on a page visit. A new training on this data logs one. Meanwhile, this is what the runs logged about it.",
            icon=":material/info:",
        )
        return logged_section(uri, runs, row)
    try:
        name, options = cards.dataset_arguments(runs)
        if cards.needs_download(name, options) and not st.session_state.get(f"download_{row['digest']}"):
            st.info(
                "This data is not on this machine yet; profiling it downloads it first (seconds to minutes). "
                "Meanwhile, this is what the runs logged about it.",
                icon=":material/download:",
            )
            if st.button("Download and profile", key="download_data"):
                st.session_state[f"download_{row['digest']}"] = True
                st.rerun()
            return logged_section(uri, runs, row)
        prof, loaded_digest = loaded_profile(name, options)
    except UserError as exc:
        st.info(
            f"The data itself cannot be loaded here ({escape_markdown(exc)}), so this is what the runs logged "
            "about it.",
            icon=":material/info:",
        )
        return logged_section(uri, runs, row)
    if loaded_digest != row["digest"]:
        st.info(
            f"The data loads with digest {loaded_digest} now, not {escape_markdown(row['digest'])}: it changed "
            "since these runs, so this is what the runs logged about it.",
            icon=":material/info:",
        )
        return logged_section(uri, runs, row)
    show_profile(prof)


def show_profile(prof: data_profile.Profile) -> None:
    left, right = st.columns([1, 1])
    left.dataframe(
        prof.summary(),
        hide_index=True,
        key="profile_summary",
        column_config={
            "what": st.column_config.TextColumn("measure", width="large"),
            "value": st.column_config.TextColumn("value"),
        },
    )
    right.plotly_chart(cards.long_tail_figure(prof), key="long_tail")
    a, b = st.columns(2)
    a.plotly_chart(cards.activity_figure(prof.per_user, "Interactions per user"), key="hist_per_user")
    b.plotly_chart(cards.activity_figure(prof.per_item, "Interactions per item"), key="hist_per_item")
    st.caption("Sample rows (seeded):")
    st.dataframe(
        prof.sample,
        hide_index=True,
        key="preview",
        column_config={"timestamp": st.column_config.DatetimeColumn("time", format="YYYY-MM-DD HH:mm")},
    )


def logged_section(uri: str, runs: pd.DataFrame, row: pd.Series) -> None:
    logged = logged_dataset(uri, str(runs["run_id"].iloc[0]), str(row["digest"]))
    counts = {k: row[k] for k in ("rows", "n_users", "n_items") if pd.notna(row[k])}
    if counts:
        st.dataframe(pd.DataFrame([counts]), hide_index=True, key="logged_counts")
    if logged is None:
        st.caption("No MLflow dataset input was logged with the data's schema or profile.")
        return
    st.caption(f"MLflow dataset input: {escape_markdown(logged.source_type)} {escape_markdown(logged.source)}")
    left, right = st.columns(2)
    left.json(logged.profile or {}, expanded=True)
    right.json(logged.schema or {}, expanded=False)


def leaderboard_section(cat: catalog.Catalog, runs: pd.DataFrame) -> None:
    st.subheader("Leaderboard")
    metrics = cards.metric_choices(runs)
    if not metrics:
        st.caption("No run on this dataset logged a metric.")
        return
    groups = runs["data_group"].value_counts()
    c1, c2 = st.columns([3, 2])
    group = groups.index[0]
    if len(groups) > 1:
        group = c1.selectbox(
            "Split",
            list(groups.index),
            key="board_group",
            format_func=lambda g: f"{g} ({groups[g]} runs)",
            help="Runs are ranked only against runs on the same data and split.",
        )
    else:
        c1.caption(f"All runs here share one split: {escape_markdown(group)}.")
    metric = c2.selectbox("Metric", metrics, key="board_metric")
    board = cards.leaderboard(runs, metric, group)
    direction = "lowest" if contract.lower_is_better(metric) else "highest"
    st.caption(
        f"Best first ({direction} {escape_markdown(metric)}); baseline: the popularity baseline on the same test split."
    )
    st.dataframe(
        board.assign(link=links("run", board["run_id"])).drop(columns="run_id"),
        hide_index=True,
        key="leaderboard",
        column_config={
            metric: st.column_config.NumberColumn(metric, format="%.4f"),
            "baseline": st.column_config.NumberColumn("baseline", format="%.4f"),
            "link": link_column(),
        },
    )


# ---- model ---------------------------------------------------------------------------------------------------------


def model_view(uri: str, cat: catalog.Catalog, name: str, read_only: bool) -> None:
    model = cat.model(name)
    st.subheader(f"Model: {escape_markdown(name)}")
    requested = st.query_params.get("version")
    versions = cat.versions[cat.versions["name"] == name]
    chosen = versions[versions["version"].astype(str) == str(requested)] if requested else versions.iloc[0:0]
    if requested and chosen.empty:
        st.warning(f"{escape_markdown(name)} has no version {escape_markdown(requested)}; showing its main version.")
    main = chosen.iloc[0] if len(chosen) else cards.main_version(cat, name)
    if main is not None:
        with st.container(horizontal=True):
            st.badge(
                f"v{main['version']}",
                color="gray",
                help="The version these badges are about: the champion's, else the newest (or the one in the link).",
            )
            for badge in cards.badges(cat, main):
                st.badge(badge.label, icon=badge.icon, color=badge.color, help=badge.help or None)
    c1, c2, c3 = st.columns(3)
    c1.metric("Versions", model["n_versions"])
    c2.metric("Updated", when(model["updated"]))
    with c3:
        st.caption("Owner")
        if model["owner"]:
            page_link("person", str(model["owner"]), str(model["owner"]), ":material/person:")
    aliases = ", ".join(f"{a} → v{v}" for a, v in sorted(model["aliases"].items()))
    st.caption(f"Aliases: {escape_markdown(aliases) if aliases else 'none'}")
    if model["description"]:
        st.text(model["description"])

    st.subheader("Versions")
    table = cards.version_table(cat, name)
    table = table.assign(run_link=links("run", table["run_id"]), data_link=links("dataset", table["digest"]))
    order = [
        "version",
        "aliases",
        "run",
        "run_link",
        "dataset",
        "data_link",
        "key metric",
        "value",
        "created",
        "badges",
        "description",
    ]
    if not table["description"].astype(bool).any():
        order.remove("description")
    st.dataframe(
        table[order],
        hide_index=True,
        key="model_versions",
        column_config={
            "version": st.column_config.NumberColumn("version", format="v%d", pinned=True),
            "value": st.column_config.NumberColumn("value", format="%.4f"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
            "run_link": link_column(""),
            "data_link": link_column(""),
        },
    )
    if main is not None:
        st.subheader(f"v{main['version']} against its popularity baseline")
        run = cat.runs[cat.runs["run_id"] == main["run_id"]]
        vs = cards.metrics_vs_baseline(run.iloc[0]) if len(run) else pd.DataFrame()
        if vs.empty:
            st.caption("Its source run logged no test metrics.")
        else:
            st.dataframe(
                vs,
                hide_index=True,
                key="vs_baseline",
                column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in ("model", "baseline")}
                | {"ratio": st.column_config.NumberColumn("model / baseline", format="%.2fx")},
            )
        if main["run_id"]:
            page_link(
                "run",
                str(main["run_id"]),
                f"source run: {main['run_label'] or main['run_id']}",
                ":material/play_arrow:",
            )

    st.subheader("Lineage")
    st.caption("dataset digest → run → logged model → registered version → alias")
    st.graphviz_chart(cards.lineage_dot(cat, name))
    st.subheader("Serve it")
    st.code(cards.serve_command(name, model["aliases"], main["version"] if main is not None else None), "bash")
    editor(uri, annotations.Target("model", name), model["description"], model["tags"], read_only)


# ---- run, experiment, person ---------------------------------------------------------------------------------------


def run_view(uri: str, cat: catalog.Catalog, run_id: str, read_only: bool) -> None:
    run = cat.run(run_id)
    st.subheader(f"Run: {escape_markdown(run['label'])}")
    st.caption(f"{escape_markdown(run_id)} · {escape_markdown(run['status'])} · started {when(run['start_time'])}")
    cols = st.columns(3)
    with cols[0]:
        page_link("experiment", str(run["experiment_id"]), f"experiment: {run['experiment']}", ":material/science:")
    if isinstance(run["user"], str) and run["user"]:
        with cols[1]:
            page_link("person", run["user"], f"by {run['user']}", ":material/person:")
    if isinstance(run["ds_digest"], str):
        with cols[2]:
            page_link("dataset", run["ds_digest"], f"data: {run['ds_name']}", ":material/dataset:")
    st.page_link(
        "pages/compare.py", label="Compare it", icon=":material/compare_arrows:", query_params={"runs": run_id}
    )
    note = run.get("tags." + catalog.NOTE_TAG)
    if isinstance(note, str) and note:
        st.text(note)
    vs = cards.metrics_vs_baseline(run)
    if len(vs):
        st.dataframe(
            vs,
            hide_index=True,
            key="run_vs_baseline",
            column_config={"ratio": st.column_config.NumberColumn("model / baseline", format="%.2fx")},
        )
    versions = cat.versions[cat.versions["run_id"] == run_id]
    for _, v in versions.iterrows():
        page_link("model", v["name"], f"registered as {v['name']} v{v['version']}", ":material/inventory_2:")
    params = {k[len("params.") :]: v for k, v in run.items() if str(k).startswith("params.") and isinstance(v, str)}
    with st.expander(f"Params ({len(params)})"):
        st.dataframe(pd.DataFrame(sorted(params.items()), columns=["param", "value"]), hide_index=True, key="params")
    editor(
        uri, annotations.Target("run", run_id), note if isinstance(note, str) else "", cards.run_tags(run), read_only
    )


def experiment_view(uri: str, cat: catalog.Catalog, experiment_id: str, read_only: bool) -> None:
    exp = cat.experiment(experiment_id)
    runs = cat.runs[cat.runs["experiment_id"] == experiment_id]
    st.subheader(f"Experiment: {escape_markdown(exp['name'])}")
    c = st.columns(3)
    c[0].metric("Runs", f"{len(runs):,}")
    c[1].metric("People", f"{runs['user'].nunique():,}")
    c[2].metric("Last activity", when(exp["last_update"]))
    if exp["description"]:
        st.text(exp["description"])
    datasets_table(cat, runs, "experiment_datasets")
    st.subheader("Runs")
    runs_frame(runs, "experiment_runs")
    tags = {k: v for k, v in exp["tags"].items() if not k.startswith(("mlflow.", annotations.DATASET_PREFIX))}
    editor(uri, annotations.Target("experiment", experiment_id), exp["description"], tags, read_only)


def datasets_table(cat: catalog.Catalog, runs: pd.DataFrame, key: str) -> None:
    """The datasets ``runs`` trained on, with how many of them used each and a link to its view."""
    data = cards.datasets_of(cat, runs)
    if len(data):
        st.subheader("Datasets")
        st.dataframe(
            data[["name", "digest", "used_by"]].assign(link=links("dataset", data["digest"])),
            hide_index=True,
            key=key,
            column_config={"used_by": st.column_config.NumberColumn("runs"), "link": link_column()},
        )


def person_view(cat: catalog.Catalog, user: str) -> None:
    person = cat.person(user)
    runs = cards.person_runs(cat, user)
    st.subheader(f"Person: {escape_markdown(user)}")
    c = st.columns(4)
    c[0].metric("Runs", f"{person['runs']:,}")
    c[1].metric("Experiments", f"{person['experiments']:,}")
    c[2].metric("Datasets", f"{person['datasets']:,}")
    c[3].metric("Models", f"{person['models']:,}")
    models = cards.person_models(cat, user)
    if len(models):
        st.subheader("Registered models")
        st.dataframe(
            pd.DataFrame(
                {
                    "model": models["name"],
                    "versions": models["n_versions"],
                    "aliases": [", ".join(sorted(a)) for a in models["aliases"]],
                    "link": links("model", models["name"]),
                }
            ),
            hide_index=True,
            key="person_models",
            column_config={"link": link_column()},
        )
    datasets_table(cat, runs, "person_datasets")
    experiments = runs.groupby(["experiment_id", "experiment"], dropna=False).size().rename("runs").reset_index()
    if len(experiments):
        st.subheader("Experiments")
        st.dataframe(
            experiments.assign(link=links("experiment", experiments["experiment_id"])).drop(columns="experiment_id"),
            hide_index=True,
            key="person_experiments",
            column_config={"link": link_column()},
        )
    st.subheader("Runs")
    runs_frame(runs, "person_runs")


# ---- page ----------------------------------------------------------------------------------------------------------

st.title("Discover")
uri = store_uri()
require_store(uri)
try:
    cat = load_catalog(uri)
except UserError as exc:
    stop_on_store_error(exc, on_retry=refresh)
show_flash()
for note in cat.notes:
    st.caption(escape_markdown(note))

view = next((v for v in VIEWS if st.query_params.get(v)), None)
if view is None:
    search_view(cat)
    st.stop()
back_to_search()
key = str(st.query_params.get(view))
read_only = view != "user" and read_only_notice(uri, "editing descriptions and tags")
try:
    if view == "dataset":
        dataset_view(uri, cat, key, read_only)
    elif view == "model":
        model_view(uri, cat, key, read_only)
    elif view == "run":
        run_view(uri, cat, key, read_only)
    elif view == "experiment":
        experiment_view(uri, cat, key, read_only)
    else:
        person_view(cat, key)
except catalog.NotFound as exc:
    st.warning(escape_markdown(exc), icon=":material/search_off:")
