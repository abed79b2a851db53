"""Models page: the MLflow Model Registry — versions, aliases, lineage, and champion vs challenger.

Every change runs in a button callback, so the script run that follows already shows the new state; the caches
are cleared by the callback and the outcome is shown once as a message (and a toast).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from pages._common import per_user_results, read_only_notice, stop_on_store_error, store_client, store_uri
from recdash import catalog, registry, tracking
from recdash import recommend as rx
from recdash.errors import UserError
from recdash.views import models as model_views
from recdash.views.text import escape_markdown

FLASH = "models_flash"
SELECT_NEXT = "models_select_next"
PROMOTE = "models_promote_pending"  # (model name, challenger version) awaiting confirmation


@st.cache_data(ttl=30, show_spinner=False)
def registered_models(uri: str) -> pd.DataFrame:
    return registry.list_registered_models(store_client(uri))


@st.cache_data(ttl=30, show_spinner=False)
def model_info(uri: str, name: str) -> dict[str, Any]:
    return registry.get_model(name, store_client(uri))


@st.cache_data(ttl=30, show_spinner="Loading versions…")
def versions_table(uri: str, name: str) -> pd.DataFrame:
    return registry.model_versions(name, store_client(uri))


@st.cache_data(ttl=30, show_spinner=False)
def model_sources(uri: str) -> pd.DataFrame:
    """The same list of logged models the Recommend page offers: one definition of "a run has a model"."""
    return rx.model_sources(uri)


@st.cache_data(ttl=300, show_spinner=False)
def data_difference(uri: str, run_ids: tuple[tuple[str, str], ...]) -> str | None:
    return model_views.data_difference(dict(run_ids), store_client(uri))


@st.cache_data(ttl=30, show_spinner=False)
def run_versions(uri: str, run_id: str) -> list[tuple[str, int]]:
    return registry.run_versions(run_id, store_client(uri))


def _refresh() -> None:
    """Registry changed: drop every cached registry read so the next run shows the new state."""
    for cached in (registered_models, model_info, versions_table, run_versions):
        cached.clear()


def _act(action: Callable[[], str]) -> None:
    """Run one registry change from a callback; remember its outcome for the run that follows."""
    try:
        message = action()
    except UserError as exc:
        st.session_state[FLASH] = ("error", str(exc))
    else:
        st.session_state[FLASH] = ("success", message)
    _refresh()


def _show_flash() -> None:
    kind, message = st.session_state.pop(FLASH, (None, None))
    message = escape_markdown(message)  # registry messages echo names, aliases and tags people typed
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
        st.toast(message)
    elif kind == "error":
        st.error(message)


# ---- actions (button callbacks) ------------------------------------------------------------------------------------


def _register(uri: str) -> None:
    def action() -> str:
        run_id = st.session_state.get("register_run") or ""
        name = st.session_state.get("register_name", "")
        sources = model_sources(uri)
        paths = sources.loc[sources["run_id"] == run_id, "model_name"].tolist()
        artifact_path = paths[0] if paths else registry.DEFAULT_ARTIFACT_PATH
        version = registry.register_run_model(run_id, name, artifact_path, client=store_client(uri))
        st.session_state[SELECT_NEXT] = name.strip()
        return f"Registered run {run_id}'s model as {name.strip()} version {version}."

    _act(action)


def _set_alias(uri: str, name: str) -> None:
    def action() -> str:
        alias = str(st.session_state.get("alias", "")).strip()
        version = st.session_state.get("alias_version")
        if version is None:
            raise ValueError("choose a version for the alias")
        previous = registry.set_alias(name, alias, version, client=store_client(uri))
        if previous is None:
            return f"Alias {alias} now points to {name} version {version}."
        if int(previous) == int(version):
            return f"Alias {alias} already pointed to {name} version {version}; nothing changed."
        return f"Moved alias {alias} of {name} from version {previous} to version {version}."

    _act(action)


def _delete_alias(uri: str, name: str) -> None:
    def action() -> str:
        alias = st.session_state.get("delete_alias_name") or ""
        version = registry.delete_alias(name, alias, client=store_client(uri))
        return f"Deleted alias {alias} (was version {version}) of {name}."

    _act(action)


def _save_description(uri: str, name: str) -> None:
    def action() -> str:
        registry.update_description(name, st.session_state.get("description", ""), client=store_client(uri))
        return f"Saved the description of {name}."

    _act(action)


def _set_tag(uri: str, name: str) -> None:
    def action() -> str:
        key = str(st.session_state.get("tag_key", "")).strip()
        registry.set_model_tag(name, key, st.session_state.get("tag_value", ""), client=store_client(uri))
        return f"Set tag {key} on {name}."

    _act(action)


def _delete_tag(uri: str, name: str) -> None:
    def action() -> str:
        key = st.session_state.get("delete_tag_key") or ""
        registry.delete_model_tag(name, key, client=store_client(uri))
        return f"Deleted tag {key} of {name}."

    _act(action)


# ---- sections ------------------------------------------------------------------------------------------------------


def register_section(uri: str, models: pd.DataFrame, requested_run: str | None) -> None:
    sources = model_sources(uri)
    runs = sources[sources["run_id"].notna()].drop_duplicates("run_id")
    with st.expander("Register a run's model", expanded=bool(requested_run) or models.empty):
        if runs.empty:
            st.info("No run has a logged model yet. Train one on the Train page, then register it here.")
            return
        run_ids = runs["run_id"].tolist()
        labels = dict(zip(run_ids, runs["label"], strict=True))
        if requested_run and requested_run not in run_ids:
            st.warning(f"Run {escape_markdown(requested_run)} has no logged model in this store; pick another run.")
        elif requested_run and st.session_state.get("_register_run_from_url") != requested_run:
            st.session_state["register_run"] = requested_run  # preselect once; the user may change it afterwards
            st.session_state["_register_run_from_url"] = requested_run
        st.session_state.setdefault("register_name", models["name"].iloc[0] if len(models) else "recdash")
        c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="bottom")
        c1.selectbox("Run", run_ids, format_func=labels.__getitem__, key="register_run")
        c2.text_input("Registered model name", key="register_name", help="A new name creates a registered model.")
        c3.button("Register", key="register", type="primary", on_click=_register, args=(uri,), disabled=READ_ONLY)
        picked = st.session_state.get("register_run")
        if picked:
            existing = run_versions(uri, picked)
            if existing:
                st.caption("Already registered as " + ", ".join(f"{escape_markdown(n)} v{v}" for n, v in existing))


def versions_section(name: str, versions: pd.DataFrame) -> None:
    st.subheader("Versions")
    if versions.empty:
        st.info("This model has no versions yet. Register a run's model above.")
        return
    metric_cols = [c for c in versions.columns if str(c).startswith("test_")]
    config: dict[str, Any] = {
        # a column per test metric does not fit the page: version and aliases stay in view while it scrolls
        "version": st.column_config.NumberColumn("version", format="v%d", pinned=True),
        "aliases": st.column_config.TextColumn("aliases", pinned=True),
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        "run_id": st.column_config.TextColumn("source run"),
        **{c: st.column_config.NumberColumn(c, format="%.4f") for c in metric_cols},
        "discover": st.column_config.LinkColumn("source run in Discover", display_text="open"),
    }
    runs = versions["run_id"]
    shown = versions.assign(discover=[catalog.link("run", r) if r else None for r in runs])
    st.dataframe(shown, hide_index=True, column_config=config, key="versions_table")
    st.page_link(
        "pages/discover.py",
        label=f"{escape_markdown(name)}'s model card: lineage, badges, data",
        icon=":material/travel_explore:",
        query_params={"model": name},
    )


def alias_section(uri: str, name: str, info: dict[str, Any], versions: pd.DataFrame) -> None:
    st.subheader("Aliases")
    aliases = info["aliases"]
    if aliases:
        st.caption("Current: " + ", ".join(f"{escape_markdown(a)} → v{v}" for a, v in sorted(aliases.items())))
    c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    c1.selectbox("Version", versions["version"].tolist(), format_func=lambda v: f"v{v}", key="alias_version")
    c2.text_input("Alias", key="alias", placeholder="champion", help="Setting an alias that exists moves it.")
    c3.button("Set / move alias", key="set_alias", on_click=_set_alias, args=(uri, name), disabled=READ_ONLY)
    if aliases:
        d1, d2 = st.columns([3, 1], vertical_alignment="bottom")
        d1.selectbox("Alias to delete", sorted(aliases), key="delete_alias_name")
        d2.button("Delete alias", key="delete_alias", on_click=_delete_alias, args=(uri, name), disabled=READ_ONLY)


def description_and_tags_section(uri: str, name: str, info: dict[str, Any]) -> None:
    st.subheader("Description and tags")
    if st.session_state.get("_description_for") != name:  # a different model: load its text into the editor
        st.session_state["description"] = info["description"]
        st.session_state["_description_for"] = name
    st.text_area("Description", key="description", height=100)
    st.button(
        "Save description", key="save_description", on_click=_save_description, args=(uri, name), disabled=READ_ONLY
    )
    tags = info["tags"]
    if tags:
        st.dataframe(
            pd.DataFrame(sorted(tags.items()), columns=["key", "value"]), hide_index=True, key="model_tags_table"
        )
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    c1.text_input("Tag key", key="tag_key")
    c2.text_input("Tag value", key="tag_value")
    c3.button("Set tag", key="set_tag", on_click=_set_tag, args=(uri, name), disabled=READ_ONLY)
    if tags:
        d1, d2 = st.columns([4, 1], vertical_alignment="bottom")
        d1.selectbox("Tag to delete", sorted(tags), key="delete_tag_key")
        d2.button("Delete tag", key="delete_tag", on_click=_delete_tag, args=(uri, name), disabled=READ_ONLY)


def _promote(uri: str, name: str, version: int) -> None:
    def action() -> str:
        return registry.promote_challenger(name, version, client=store_client(uri)).message

    st.session_state.pop(PROMOTE, None)
    _act(action)


def _ask_promote(name: str, version: int) -> None:
    st.session_state[PROMOTE] = (name, version)


def _cancel_promote() -> None:
    st.session_state.pop(PROMOTE, None)


# better / worse cells: translucent, so they read on light and dark themes; the words say it without colour too
_OUTCOME_CSS = {
    model_views.BETTER: "background-color: rgba(33, 195, 84, 0.22)",
    model_views.WORSE: "background-color: rgba(255, 75, 75, 0.22)",
}


def _styled(frame: pd.DataFrame) -> Any:
    """The comparison as it is read: each difference and verdict green where the challenger is better beyond noise,
    red where worse; which way each metric is better is said in the caption under it (a column of it did not fit)."""
    shown = frame.drop(columns=["outcome", "better when"])
    shown[model_views.INTERVAL] = shown[model_views.INTERVAL].fillna("–")
    shown[model_views.P_VALUE] = [
        "–" if p != p else ("< 0.001" if p < 0.001 else f"{p:.3f}") for p in shown[model_views.P_VALUE]
    ]
    css = [_OUTCOME_CSS.get(o, "") for o in frame["outcome"]]
    values = [c for c in shown.columns if c not in ("difference", model_views.INTERVAL, model_views.P_VALUE, "verdict")]
    return (
        shown.style.format("{:.4f}", subset=values, na_rep="–")
        .format("{:+.4f}", subset=["difference"], na_rep="–")
        .apply(lambda _: css, subset=["difference", "verdict"])
    )


def _direction_caption(frame: pd.DataFrame) -> str:
    lower = [str(m) for m, way in frame["better when"].items() if way == "lower"]
    text = (
        "difference = challenger − champion, with its 95% interval (paired bootstrap over the test users both "
        "versions' runs evaluated, 2,000 resamples, seed 0) and the paired t-test's p-value. Green: the challenger is "
        "better beyond noise (p < 0.05), red: worse beyond noise; uncoloured: within noise. p-values are per metric, "
        "not corrected across metrics: the key metric alone decides the promotion. Coverage, Gini and the other "
        "list-level metrics describe all lists together: they have no per-user values, so no interval, and are "
        "coloured by their difference alone. "
    )
    if not lower:
        return text + "Higher is better for every metric here."
    names = ", ".join(escape_markdown(m) for m in lower)
    text += f"Higher is better for every metric except {names}, where lower is better"
    if any("popularity" in m for m in lower):
        text += " (mean popularity: recommending less popular items means more novel recommendations)"
    if any("gini" in m for m in lower):
        text += " (Gini: 0 means every item is recommended equally often)"
    return text + "."


def champion_section(uri: str, name: str, info: dict[str, Any]) -> None:
    st.subheader("Champion vs challenger")
    aliases = info["aliases"]
    if registry.CHAMPION in aliases:
        st.caption("Serve the champion with MLflow's own server:")
        st.code(f"mlflow models serve -m 'models:/{name}@{registry.CHAMPION}' --env-manager local -p 5001", "bash")
    missing = [a for a in (registry.CHAMPION, registry.CHALLENGER) if a not in aliases]
    if missing:
        st.info(f"Set the aliases {registry.CHAMPION} and {registry.CHALLENGER} on two versions to compare them here.")
        return
    try:
        frame = model_views.champion_vs_challenger(name, client=store_client(uri))
    except UserError as exc:
        st.error(escape_markdown(exc))
        return
    runs = frame.attrs["runs"]
    pair = ((registry.CHAMPION, runs[registry.CHAMPION]), (registry.CHALLENGER, runs[registry.CHALLENGER]))
    results = per_user_results(uri, tuple(r for _, r in pair))
    per_user = {alias: results.get(run_id) for alias, run_id in pair}
    frame = model_views.with_intervals(frame, per_user, data_difference(uri, pair))
    key_text = frame.attrs["key_text"]
    st.markdown(escape_markdown(key_text))
    counts = frame["outcome"].value_counts()
    st.caption(
        f"Of {len(frame)} test metrics, the challenger is better on {counts.get(model_views.BETTER, 0)}, worse on "
        f"{counts.get(model_views.WORSE, 0)} and within noise on {counts.get(model_views.NOISE, 0)}."
    )
    versions = [c for c in frame.columns if str(c).startswith((registry.CHAMPION, registry.CHALLENGER))]
    widths: dict[str, Any] = {
        "_index": st.column_config.TextColumn("metric", width=190),
        **{c: st.column_config.Column(width=100) for c in versions},
        "difference": st.column_config.Column(width=75),
        model_views.INTERVAL: st.column_config.Column(width=130),
        model_views.P_VALUE: st.column_config.Column("p", width=62),
        "verdict": st.column_config.Column(width=150),
    }  # every column in view at 1280 px: nothing of the verdict hides behind a scroll
    st.dataframe(_styled(frame), key="champion_table", column_config=widths)
    st.caption(_direction_caption(frame))
    uris = frame.attrs["uris"]
    st.page_link(
        "pages/recommend.py",
        label="Compare their recommendations on the Recommend page",
        icon=":material/recommend:",
        query_params={"model": uris[registry.CHAMPION], "compare": uris[registry.CHALLENGER]},
    )
    champion, challenger = frame.attrs["versions"][registry.CHAMPION], frame.attrs["versions"][registry.CHALLENGER]
    if champion == challenger:
        st.caption(f"Both aliases point to version {challenger}: there is nothing to promote.")
        return
    pending = st.session_state.get(PROMOTE) == (name, challenger)
    st.button(
        f"Promote challenger (v{challenger}) to champion",
        key="promote",
        on_click=_ask_promote,
        args=(name, challenger),
        disabled=READ_ONLY or pending,
        help="Moves the champion alias to the challenger's version, after you confirm.",
    )
    if pending and not READ_ONLY:
        st.warning(
            f"Move alias {registry.CHAMPION} of {escape_markdown(name)} from version {champion} to version "
            f"{challenger}? Anything serving models:/{escape_markdown(name)}@{registry.CHAMPION} gets version "
            f"{challenger} from its next load. The {registry.CHALLENGER} alias is then removed (it would point to "
            f"the champion itself). To roll back later, set {registry.CHAMPION} on version {champion} again.\n\n"
            + escape_markdown(key_text),
            icon=":material/swap_vert:",
        )
        c1, c2, _ = st.columns([1, 1, 3])
        c1.button(
            "Confirm promotion", key="confirm_promote", type="primary", on_click=_promote, args=(uri, name, challenger)
        )
        c2.button("Cancel", key="cancel_promote", on_click=_cancel_promote)


# ---- page ----------------------------------------------------------------------------------------------------------

st.title("Models")
st.caption("The MLflow Model Registry: versions, aliases, where each version came from, and how good it was.")
uri = store_uri()
READ_ONLY = read_only_notice(uri, "registering models and changing aliases, descriptions or tags")
_show_flash()

try:
    tracking.check_store(uri)
    models = registered_models(uri)
except UserError as exc:
    stop_on_store_error(exc, on_retry=_refresh)

register_section(uri, models, st.query_params.get("run"))

if models.empty:
    st.info("No registered models yet. Register a run's model above.")
    st.stop()

st.subheader("Registered models")
st.dataframe(
    models,
    hide_index=True,
    column_config={"updated": st.column_config.DatetimeColumn("updated", format="YYYY-MM-DD HH:mm")},
    key="models_table",
)

names = models["name"].tolist()
pending = st.session_state.pop(SELECT_NEXT, None)
if pending in names:
    st.session_state["model"] = pending
elif st.session_state.get("model") not in names:
    requested = st.query_params.get("name")
    st.session_state["model"] = requested if requested in names else names[0]
name = st.selectbox("Model", names, key="model")

try:
    info = model_info(uri, name)
    versions = versions_table(uri, name)
except UserError as exc:
    st.error(escape_markdown(exc))
    st.stop()

versions_section(name, versions)
if not versions.empty:
    alias_section(uri, name, info, versions)
description_and_tags_section(uri, name, info)
champion_section(uri, name, info)
