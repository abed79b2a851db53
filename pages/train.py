"""Train page: start trainings of any model (rankfm, EASE, ItemKNN, popularity), Optuna sweeps and reference runs
as background jobs, watch them live, cancel them.

Thin layer: every job is a ``python -m recdash train|sweep|references`` subprocess managed by :mod:`recdash.jobs`,
whose state lives in MLflow, so the page survives restarts and never blocks while a job runs.

The job list polls the store every few seconds only while a job is queued, running or cancelling, and slowly
otherwise (a fragment run costs the server a full garbage collection). The controls that change a job (picker,
Cancel) are drawn by the full page run, not the live fragment: a click there preempts a fragment run in
progress instead of queueing behind it, so a cancel reaches the job at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pages._common import read_only_notice, require_store, store_uri
from recdash import tracking
from recdash.config import STOPPING_METRICS, TrainConfig
from recdash.contract import run_label
from recdash.data import Dataset
from recdash.data.features import BUILTIN_ITEM_COLUMNS, BUILTIN_USER_COLUMNS, FeatureTable, read_feature_table
from recdash.data.files import check_roles, guess_id_columns, table_header
from recdash.data.split import SPLIT_METHODS
from recdash.errors import UserError
from recdash.models import DEFAULT_MODEL, MODELS, get_model, reference_models
from recdash.training import jobs, progress
from recdash.training.references import ReferencesSpec
from recdash.training.run import load_config_dataset
from recdash.training.sweep_spec import SAMPLERS, SWEEP_DEFAULTS, SweepSpec, parse_space
from recdash.views import jobs as job_views
from recdash.views.text import escape_markdown

ACTIVE_POLL = "2s"  # while a job of this store is queued, running or cancelling
IDLE_POLL = "30s"  # otherwise: only to notice jobs queued from another tab or machine
DATASETS = ("movielens-100k", "synthetic", "csv upload")
NO_COLUMN = "(none)"
BUILTIN_FEATURES = ("movielens-100k", "synthetic")  # the datasets with their own user and item attributes
FEATURE_UPLOAD = "upload"
TRAIN_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in TrainConfig().to_form().items() if k != "hparams"},
    "repeats": 1,
}


def hp_key(prefix: str, model: str, name: str) -> str:
    """A hyperparameter's widget key: per model, since two models may share a name with different ranges."""
    return f"{prefix}_{model}__{name}"


def _init_hyperparameters(prefix: str) -> None:
    for model in MODELS.values():
        for name, spec in model.hyperparameters().items():
            st.session_state.setdefault(hp_key(prefix, model.name, name), spec.default)


def choice_label(name: object, run_id: str) -> str:
    """A run in a picker: :func:`run_label`, plus the short ID when that is a name (names repeat, IDs don't)."""
    label = run_label(name, run_id)
    return label if label == run_id[:8] else f"{label}  [{run_id[:8]}]"


@st.cache_data(ttl=30, show_spinner=False)
def recent_runs(uri: str) -> pd.DataFrame:
    """Recent runs with params, for "Start from run", each with its picker label."""
    runs = tracking.recent_runs(uri)
    return runs.assign(label=[choice_label(n, r) for n, r in zip(runs["run_name"], runs["run_id"], strict=True)])


def _init_state(prefix: str, defaults: dict[str, Any]) -> None:
    for name, value in defaults.items():
        st.session_state.setdefault(f"{prefix}_{name}", value)
    _init_hyperparameters(prefix)


def set_form(prefix: str, config: TrainConfig) -> None:
    """Put a config's values into the form's widgets (the model's hyperparameters under its own keys)."""
    values = config.to_form()
    for name, value in values.pop("hparams").items():
        st.session_state[hp_key(prefix, config.model, name)] = value
    for name, value in values.items():
        if name in TRAIN_DEFAULTS:
            st.session_state[f"{prefix}_{name}"] = type(TRAIN_DEFAULTS[name])(value)


def _prefill(prefix: str, uri: str) -> None:
    """Button callback: copy the chosen run's configuration into the form's widgets."""
    runs = recent_runs(uri)
    label = st.session_state.get(f"{prefix}_from_run")  # labels carry the short ID, so they are unique
    match = runs[runs["label"] == label] if len(runs) else runs
    if match.empty:
        return
    config, notes = TrainConfig.from_run_params(match.iloc[0]["params"])
    if config.dataset not in ("movielens-100k", "synthetic"):  # an uploaded file is chosen again on the page
        config = config.replace(dataset=TrainConfig().dataset, data_path=None, dataset_options={})
    set_form(prefix, config)
    if notes:
        st.session_state[f"{prefix}_prefill_note"] = "Not restored from the run: " + "; ".join(notes) + "."
    st.session_state[f"{prefix}_prefilled"] = match.iloc[0]["run_id"]


def model_section(prefix: str) -> None:
    """The algorithm (outside the form: it decides which hyperparameters the form shows)."""
    st.selectbox(
        "Model",
        tuple(MODELS),
        key=f"{prefix}_model",
        format_func=lambda name: f"{name}: {MODELS[name].description}",
        help="rankfm trains epoch by epoch with early stopping; EASE, ItemKNN and popularity are fitted once.",
    )


def data_section(prefix: str) -> dict[str, Any] | None:
    """Dataset choice and, for an upload, the file and its column mapping (outside the form: they drive it)."""
    st.selectbox(
        "Dataset",
        DATASETS,
        key=f"{prefix}_dataset",
        help="MovieLens 100K (cached locally), a synthetic dataset of the size you choose, or your own CSV.",
    )
    if st.session_state[f"{prefix}_dataset"] != "csv upload":
        return {}
    upload = st.file_uploader(
        "Interactions file (CSV/TSV, one row per user-item interaction)",
        type=["csv", "tsv", "txt"],
        key=f"{prefix}_upload",
        help=f"At most {jobs.MAX_UPLOAD_BYTES // 2**20} MB. Kept in the recdash cache folder for the job to read.",
    )
    if upload is None:
        st.info("Upload a file to map its columns.")
        st.caption(
            f"Uploads are limited to {jobs.MAX_UPLOAD_BYTES // 2**20} MB. A larger file (any size this machine's "
            "memory holds, CSV or Parquet) is read where it lies by the command line, "
            "`python -m recdash train --dataset parquet --data-path FILE --user-col USER --item-col ITEM`, or by "
            "the MLproject, `mlflow run . -e train --env-manager local -P dataset=parquet -P file=FILE`; its run "
            'shows here like any other (README, "Datasets").'
        )
        return None
    try:
        path = jobs.save_upload(upload.name, upload.getvalue())
    except jobs.JobError as exc:
        st.error(str(exc))
        return None
    columns = table_header(path)
    if len(columns) < 2:
        st.error("Could not read a header with at least two columns from that file.")
        return None
    if st.session_state.get(f"{prefix}_columns_of") != str(path):  # a new file: start from what its names say
        st.session_state[f"{prefix}_columns_of"] = str(path)
        guessed = guess_id_columns(columns)
        st.session_state[f"{prefix}_user_col"] = guessed["user_id"]
        st.session_state[f"{prefix}_item_col"] = guessed["item_id"]
        st.session_state[f"{prefix}_weight_col"] = st.session_state[f"{prefix}_timestamp_col"] = NO_COLUMN
    c1, c2, c3, c4 = st.columns(4)
    user = c1.selectbox("User column", columns, index=None, key=f"{prefix}_user_col", placeholder="Choose…")
    item = c2.selectbox("Item column", columns, index=None, key=f"{prefix}_item_col", placeholder="Choose…")
    optional = [NO_COLUMN, *columns]
    weight = c3.selectbox("Rating/weight column", optional, key=f"{prefix}_weight_col", help="Optional.")
    ts = c4.selectbox("Timestamp column", optional, key=f"{prefix}_timestamp_col", help="Needed by temporal split.")
    data = {
        "path": str(path),
        "name": upload.name,
        "user_col": user,
        "item_col": item,
        "weight_col": None if weight == NO_COLUMN else weight,
        "timestamp_col": None if ts == NO_COLUMN else ts,
        "problem": None,  # why no job can be queued on this file yet (shown here, and again on a click)
    }
    if user is None or item is None:
        data["problem"] = (
            f"Choose which column of {upload.name} holds the user IDs and which the item IDs: its column names do "
            "not say, so none is taken for granted."
        )
        st.info(escape_markdown(data["problem"]))
        return data
    roles = {"user_id": user, "item_id": item, "weight": data["weight_col"], "timestamp": data["timestamp_col"]}
    try:
        check_roles({role: col for role, col in roles.items() if col}, upload.name)
    except UserError as exc:  # the data layer's own words, as the CLI and a job would say it
        data["problem"] = str(exc)
        st.error(escape_markdown(exc))
    return data


@st.cache_resource(ttl=600, max_entries=2, show_spinner="Loading the dataset to check the table's IDs…")
def job_dataset(argv: tuple[str, ...]) -> Dataset:
    """The form's dataset as the job will load it (cached by the config's command line: every rerun of the page
    checks the uploaded table)."""
    return load_config_dataset(TrainConfig.from_argv(list(argv)))


def features_section(prefix: str, data: dict[str, Any]) -> dict[str, str | None]:
    """User and item side features, for a model that trains on them (outside the form: an upload is checked at
    once). Per kind the ``--<kind>-features`` value, or None when the chosen upload is missing or unusable."""
    model = get_model(st.session_state[f"{prefix}_model"])
    if not model.uses_features:
        return {}
    st.markdown(f"**Side features** (used by {model.name})")
    out: dict[str, str | None] = {}
    for column, kind in zip(st.columns(2), ("user", "item"), strict=True):
        with column:
            out[kind] = feature_choice(prefix, kind, data)
    if out.get("user") != "none":
        st.caption(
            "New users are served by their attributes only when validation says so, which needs the cold-users "
            "split (below): there, features, popularity or a blend is chosen on held-out new users. On another "
            "split new users get the popular list."
        )
    return out


def feature_choice(prefix: str, kind: str, data: dict[str, Any]) -> str | None:
    """none / built-in (datasets that have them) / an uploaded table / a table file prefilled from a run."""
    key = f"{prefix}_{kind}_features"
    builtin = BUILTIN_USER_COLUMNS if kind == "user" else BUILTIN_ITEM_COLUMNS
    options = ["none", *(["builtin"] if st.session_state[f"{prefix}_dataset"] in BUILTIN_FEATURES else []), "upload"]
    current = str(st.session_state.get(key, "none"))
    if current not in options:
        if current != "builtin" and Path(current).is_file():
            options.append(current)  # "Start from run" of a run trained with a table file
        else:
            st.session_state[key] = "none"  # e.g. built-in chosen, then a dataset without attributes
    labels = {
        "none": "none",
        "builtin": f"built-in: {', '.join(builtin)}",
        FEATURE_UPLOAD: "upload a CSV or Parquet table",
    }
    choice = st.selectbox(
        f"{kind.capitalize()} features",
        options,
        key=key,
        format_func=lambda o: labels.get(o, f"file {Path(o).name} (from the run)"),
        help=f"Attributes of each {kind}: the dataset's own (movielens-100k and synthetic), or a table with a "
        f"{kind}_id column and one column per attribute (text: one-hot, 'a|b' lists: multi-hot, numbers: "
        "standardised).",
    )
    if choice in ("none", "builtin"):
        return choice
    if choice != FEATURE_UPLOAD:
        return choice if check_feature_table(prefix, kind, data, choice, Path(choice).name) else None
    upload = st.file_uploader(
        f"{kind.capitalize()} feature table ({kind}_id plus attribute columns)",
        type=["csv", "tsv", "txt", "parquet", "pq"],
        key=f"{key}_upload",
        help=f"At most {jobs.MAX_UPLOAD_BYTES // 2**20} MB. Kept in the recdash cache folder for the job to read.",
    )
    if upload is None:
        st.info(f"Upload a {kind} feature table, or choose another option.")
        return None
    try:
        path = jobs.save_upload(upload.name, upload.getvalue())
    except jobs.JobError as exc:
        st.error(escape_markdown(exc))
        return None
    return str(path) if check_feature_table(prefix, kind, data, str(path), upload.name) else None


def check_feature_table(prefix: str, kind: str, data: dict[str, Any], path: str, name: str) -> FeatureTable | None:
    """Read the table as training will, against the form's dataset when it loads: the reason it cannot be used
    (st.error), its warnings, and what its encoding is; None when unusable. Messages name the uploaded file."""

    def shown(text: object) -> str:
        return escape_markdown(str(text).replace(Path(path).name, name))

    try:
        table = read_feature_table(path, kind)
    except UserError as exc:
        st.error(shown(exc))
        return None
    try:
        dataset = job_dataset(tuple(form_config(prefix, data).to_argv()))
    except UserError as exc:
        st.caption(f"IDs not checked against the data: {shown(exc)}")
    else:
        try:
            table = read_feature_table(path, kind, dataset)
        except UserError as exc:
            st.error(shown(exc))
            return None
    for warning in table.warnings:
        st.warning(shown(warning))
    st.caption(f"{escape_markdown(name)}: {len(table.frame):,} {kind}s; {shown(table.encoding.describe())}")
    return table


def feature_specs(features: dict[str, str | None]) -> dict[str, str] | None:
    """The ``user_features``/``item_features`` values of the job; None (after saying why) while an upload is
    missing or unusable."""
    for kind, spec in features.items():
        if spec is None:
            st.error(f"{kind.capitalize()} features: upload a usable table first, or choose none or built-in.")
            return None
    return {f"{kind}_features": str(spec) for kind, spec in features.items()}


def run_fields(prefix: str, dataset: str) -> None:
    """Split, training, tracking and hyperparameter fields (inside the form).

    The synthetic sizes sit in a container drawn for every dataset, so choosing one never moves the fields below:
    a field that moves is briefly on screen twice (old and new place) while the page reruns."""
    sizes = st.container()
    if dataset == "synthetic":
        c1, c2, c3 = sizes.columns(3)
        c1.number_input("Users", 10, 200_000, step=10, key=f"{prefix}_synthetic_n_users", help="Synthetic users.")
        c2.number_input("Items", 10, 100_000, step=10, key=f"{prefix}_synthetic_n_items", help="Synthetic items.")
        c3.number_input(
            "Interactions", 100, 5_000_000, step=100, key=f"{prefix}_synthetic_n_interactions", help="Total rows."
        )
    c1, c2, c3, c4 = st.columns(4)
    c1.selectbox(
        "Split",
        SPLIT_METHODS,
        key=f"{prefix}_split",
        help="random: per-user shuffle (RecBole's protocol); temporal: each user's latest interactions held out; "
        "cold-users: whole users held out (the fractions apply to users), to measure new users.",
    )
    c2.text_input(
        "Train, validation, test fractions", key=f"{prefix}_split_fractions", help="Three numbers summing to 1."
    )
    c3.number_input(
        "Split seed", 0, 2**31 - 1, key=f"{prefix}_split_seed",
        help="Seed of the train/validation/test split (and of synthetic data). Runs compared together must share it.",
    )  # fmt: skip
    c4.number_input(
        "Validation users", 0, 100_000_000, step=1_000, key=f"{prefix}_validation_users",
        help="Validation users scored after each epoch: a fixed sample (seeded by the split seed) when the validation "
        "set has more; 0 scores them all. The test set is always scored in full.",
    )  # fmt: skip
    iterative = get_model(st.session_state[f"{prefix}_model"]).iterative
    # closed-form models are fitted once: no epochs to count, nothing to stop early
    cols = iter(st.columns(5) if iterative else st.columns(3))
    if iterative:
        next(cols).number_input("Epochs", 1, 10_000, key=f"{prefix}_epochs", help="Maximum training epochs.")
        next(cols).number_input(
            "Patience", 0, 10_000, key=f"{prefix}_patience",
            help="Stop after this many epochs without improvement; 0=off.",
        )  # fmt: skip
    next(cols).number_input("k", 1, 1000, key=f"{prefix}_k", help="Cut-off of the ranking metrics (@k).")
    next(cols).selectbox(
        "Early-stopping metric" if iterative else "Validation metric",
        STOPPING_METRICS,
        key=f"{prefix}_early_stopping_metric",
        help="Validation metric watched."
        if iterative
        else "Validation metric the run reports as its best (sweeps optimise it).",
    )
    next(cols).number_input(
        "Seed", 0, 2**31 - 1, key=f"{prefix}_seed",
        help="Seed of the model's initialisation and sampling. Change it (or repeat with seeds) to see how much of a "
        "result is luck.",
    )  # fmt: skip
    c1, c2 = st.columns(2)
    c1.text_input("Experiment", key=f"{prefix}_experiment", help="MLflow experiment (created if missing).")
    c2.text_input("Run name", key=f"{prefix}_run_name", help="Optional MLflow run name.")
    model = get_model(st.session_state[f"{prefix}_model"])
    specs = model.hyperparameters()
    if not specs:
        st.caption(f"{model.name} has no hyperparameters.")
        return
    st.markdown(f"**{model.name} hyperparameters**")
    cols = st.columns(3)
    for i, spec in enumerate(specs.values()):
        col = cols[i % 3]
        key = hp_key(prefix, model.name, spec.name)
        if spec.choices:
            col.selectbox(spec.name, spec.choices, key=key, help=spec.help)
        elif spec.kind is int:
            col.number_input(
                spec.name, int(spec.low or 0), int(spec.high or 10**6), step=1, key=key,
                help=f"{spec.help} {spec.describe()}",
            )  # fmt: skip
        else:
            col.number_input(
                spec.name, float(spec.low or 0.0), float(spec.high or 1e6), step=None, format="%g", key=key,
                help=f"{spec.help} {spec.describe()}",
            )  # fmt: skip


def form_config(prefix: str, data: dict[str, Any], features: dict[str, str] | None = None) -> TrainConfig:
    """The training the form describes (ConfigError/HyperparameterError when a value cannot work): the chosen model
    with its hyperparameters, the data (``data``: the uploaded table and its mapping, for a CSV upload) and
    ``features`` (``user_features``/``item_features``; none by default)."""
    values = {
        name: st.session_state[f"{prefix}_{name}"] for name in TRAIN_DEFAULTS if f"{prefix}_{name}" in st.session_state
    }
    model = get_model(values["model"])
    values["hparams"] = {name: st.session_state[hp_key(prefix, model.name, name)] for name in model.hyperparameters()}
    values |= features or {"user_features": "none", "item_features": "none"}
    return TrainConfig.from_form(values, data or None)


def upload_ready(data: dict[str, Any]) -> bool:
    """Is the form's data ready to queue a job on (an upload's columns chosen, each once)? Says why not."""
    if data and data.get("problem"):
        st.error(escape_markdown(data["problem"]))
        return False
    return True


@st.cache_data(ttl=600, max_entries=16, show_spinner="Checking the data as the job will read it…")
def job_check(kind: str, argv: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """What the job would refuse about its data (its message, or None) and notes, from the checks its process
    makes before training (:func:`recdash.training.jobs.check_spec`); cached by the job's command line (an upload
    is named by its content), so a second click or a rerun does not read the data again."""
    try:
        notes = jobs.check_spec(jobs.parse_job(kind, list(argv)))
    except UserError as exc:
        return str(exc), ()
    return None, tuple(notes)


def data_accepted(spec: jobs.JobSpec, data: dict[str, Any]) -> bool:
    """Check a job's data before it is queued: its refusal (st.error) or notes (st.warning), naming the file the
    user uploaded, not its content-addressed copy. True when the job may be queued."""
    path = Path(data["path"]) if data else None

    def shown(text: str) -> str:
        if path is not None:
            text = text.replace(path.name, data["name"]).replace(path.stem, data["name"])
        return escape_markdown(text)

    refusal, notes = job_check(spec.kind, tuple(spec.to_argv()))
    for note in notes:
        st.warning(shown(note))
    if refusal is not None:
        st.error(shown(refusal))
        return False
    return True


def submit(batch: list[jobs.JobSpec]) -> None:
    """Queue each job of ``batch`` (one, or one per seed of a repeated configuration)."""
    queued = []
    for spec in batch:
        try:
            queued.append(jobs.submit(spec, tracking_uri=URI))
        except UserError as exc:
            st.error(escape_markdown(exc))
            break
    if not queued:
        return
    kind = batch[0].kind
    st.session_state["job_select"] = queued[0]  # show the (first) new job in the live panel
    jobs.tick(URI)
    if len(queued) == 1:
        st.success(f"{kind.capitalize()} job queued as run {queued[0]}.")
    else:
        st.success(f"{len(queued)} {kind} jobs queued, one per seed: runs {', '.join(queued)}.")


def request_job(batch: list[jobs.JobSpec]) -> None:
    """Queue the jobs, unless the same configuration is already queued or running: then ask first (a double
    click or a second tab must not train the same thing twice without the user saying so)."""
    st.session_state.pop("pending_job", None)
    same = [job for spec in batch for job in jobs.same_jobs(spec, URI)]
    if same:
        st.session_state["pending_job"] = {"kind": batch[0].kind, "batch": batch, "same": same[0]}
        return
    submit(batch)


def confirm_pending(kind: str) -> None:
    """The question :func:`request_job` asked, with its two answers, until one is clicked."""
    pending = st.session_state.get("pending_job")
    if not pending or pending["kind"] != kind:
        return
    same: jobs.Job = pending["same"]
    box = st.empty()
    with box.container():
        st.warning(
            f"The same {kind} configuration is already {same.state}: "
            f"{escape_markdown(choice_label(same.name, same.run_id))}. Queue another one anyway?"
        )
        c1, c2, _ = st.columns([1, 1, 3])
        again = c1.button("Queue another anyway", key=f"{kind}_dup_queue")
        dropped = c2.button("Don't queue", key=f"{kind}_dup_cancel")
    if again or dropped:
        st.session_state.pop("pending_job", None)
        box.empty()
        if again:
            submit(pending["batch"])
        else:
            st.caption("Nothing was queued.")


def with_seeds(config: TrainConfig, repeats: int) -> list[TrainConfig]:
    """The same training once per seed ``seed .. seed+repeats-1`` (run names get ``-s<seed>``): the split has its
    own seed, so the repeats differ only in the model's initialisation and sampling, which is what Compare
    averages."""
    if repeats <= 1:
        return [config]
    return [config.with_seed(seed) for seed in range(config.seed, config.seed + repeats)]


def untrained_seeds(batch: list[TrainConfig]) -> list[TrainConfig]:
    """The repeats of ``batch`` whose seed has no FINISHED run of the same configuration on the same data in its
    experiment yet (train once, then repeat: the first seed is there already); says which seeds were skipped."""
    done = jobs.finished_seeds(batch[0], URI)
    skipped = [config.seed for config in batch if config.seed in done]
    if skipped:
        runs = ", ".join(f"seed {seed}: run {done[seed][:8]}" for seed in skipped) if len(skipped) > 1 else ""
        runs = runs or f"run {done[skipped[0]][:8]}"
        st.info(
            f"Skipped seed{'s' * (len(skipped) > 1)} {', '.join(map(str, skipped))}: this configuration already has "
            f"a finished run on the same data with {'those seeds' if len(skipped) > 1 else 'that seed'} in "
            f"experiment {escape_markdown(batch[0].experiment)} ({runs}), which Compare counts among the repeats."
        )
    kept = [config for config in batch if config.seed not in done]
    if not kept:
        st.info("Nothing was queued: every seed asked for has a finished run already. Raise the seed or the repeats.")
    return kept


def start_from_run(prefix: str) -> None:
    runs = recent_runs(URI)
    if runs.empty:
        return
    c1, c2 = st.columns([4, 1])
    c1.selectbox(
        "Start from run", runs["label"].tolist(), index=None, key=f"{prefix}_from_run",
        help="Fill the form with an existing run's parameters.", placeholder="Pick a run to copy its parameters",
    )  # fmt: skip
    c2.button("Load its params", key=f"{prefix}_load", on_click=_prefill, args=(prefix, URI))
    note = st.session_state.pop(f"{prefix}_prefill_note", None)
    if note:
        st.warning(escape_markdown(note))


def train_tab() -> None:
    _init_state("t", TRAIN_DEFAULTS)
    start_from_run("t")
    model_section("t")
    data = data_section("t")
    if data is None:
        return
    features = features_section("t", data)
    with st.form("t_form", enter_to_submit=False):  # Enter in a field must not start a job
        run_fields("t", st.session_state["t_dataset"])
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        c1.number_input(
            "Repeat with seeds", 1, 20, key="t_repeats",
            help="Train this configuration N times, with seeds seed, seed+1, …, on the same data and split. Compare "
            "then shows the configuration's mean ± std over the repeats, so you can tell a real difference from noise.",
        )  # fmt: skip
        clicked = c2.form_submit_button("Start training", type="primary", disabled=READ_ONLY)
        # a second submit button of the same form, so the references use the data and split typed into it
        c1, c2 = st.columns([1, 3], vertical_alignment="center")
        references = c1.form_submit_button("Train references for this data", disabled=READ_ONLY)
        c2.caption(
            f"Fits {', '.join(reference_models())} on this dataset and split (train only; EASE's λ and ItemKNN's "
            "neighbours and shrinkage chosen on validation), each logged as a run tagged recdash.reference=true: "
            "what Compare measures every model on this data against."
        )
    if (clicked or references) and upload_ready(data):
        try:
            if references:  # the reference models use no side features
                spec = ReferencesSpec(form_config("t", data))
                if data_accepted(spec, data):
                    request_job([spec])
            elif (chosen := feature_specs(features)) is not None:
                config = form_config("t", data, chosen)
                repeats = int(st.session_state["t_repeats"])
                if data_accepted(config, data):  # the seed changes nothing the check reads: once for every repeat
                    batch = untrained_seeds(with_seeds(config, repeats)) if repeats > 1 else [config]
                    if batch:
                        request_job(batch)
        except UserError as exc:
            st.error(escape_markdown(exc))
    confirm_pending("train")
    confirm_pending("references")


def _default_space(key: str) -> None:
    """Model picker callback: the search space box shows the new model's default space."""
    st.session_state["s_space"] = "\n".join(get_model(st.session_state[key]).default_space)


def sweep_tab() -> None:
    _init_state("s", {**TRAIN_DEFAULTS, **SWEEP_DEFAULTS})
    _init_state(
        "s",
        {
            "space": "\n".join(get_model(DEFAULT_MODEL).default_space),
            "n_trials": 20,
            "n_workers": 1,
            "sampler": "tpe",
            "prune": True,
        },
    )
    st.selectbox(
        "Model",
        tuple(name for name, model in MODELS.items() if model.default_space),
        key="s_model",
        on_change=_default_space,
        args=("s_model",),
        help="The search space below switches to the chosen model's default space.",
    )
    data = data_section("s")
    if data is None:
        return
    features = features_section("s", data)
    with st.form("s_form", enter_to_submit=False):
        st.text_area(
            "Search space (one per line)",
            key="s_space",
            height=130,
            help="NAME=LOW:HIGH (range), NAME=LOW:HIGH:log (log scale, for rates and penalties) or NAME=A,B,C "
            "(choices). Names: the chosen model's hyperparameters, and for rankfm user_features / item_features "
            "(e.g. user_features=none,builtin: features on or off, searched). Other settings keep the values below.",
        )
        c1, c2, c3, c4 = st.columns(4)
        c1.number_input("Trials", 1, 10_000, key="s_n_trials", help="Total trials of the study.")
        c2.number_input("Parallel workers", 1, 64, key="s_n_workers", help="Worker processes sharing the study.")
        c3.selectbox("Sampler", SAMPLERS, key="s_sampler", help="TPE (default), random, or grid (choices only).")
        c4.checkbox("Prune poor trials", key="s_prune", help="Optuna's median pruner on the per-epoch metric.")
        st.caption("The objective is the early-stopping metric below (validation, @k).")
        run_fields("s", st.session_state["s_dataset"])
        clicked = st.form_submit_button("Start sweep", type="primary", disabled=READ_ONLY)
    chosen = feature_specs(features) if clicked and upload_ready(data) else None
    if chosen is not None:
        try:
            config = form_config("s", data, chosen)
            space = [line.strip() for line in str(st.session_state["s_space"]).splitlines() if line.strip()]
            spec = SweepSpec(
                config,
                parse_space(space, config.model),
                n_trials=int(st.session_state["s_n_trials"]),
                n_workers=int(st.session_state["s_n_workers"]),
                sampler=st.session_state["s_sampler"],
                prune=bool(st.session_state["s_prune"]),
            )
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            if data_accepted(spec, data):
                request_job([spec])
    confirm_pending("sweep")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def job_detail(job: jobs.Job) -> None:
    """Progress, chart and outcome of one job (drawn by the live fragment)."""
    p = progress.progress(job.run_id, URI)
    job = p.job  # as fresh as the progress read with it
    st.markdown(f"**{job.kind}** job")
    st.text(f"{job.name}  [{job.run_id}]  state: {job.state}")
    if job.state == "queued":
        st.text(f"Queued: position {jobs.queue_position(job.run_id, URI) or '?'}; starts when a slot frees up.")
    elif job.state == "refused":
        st.text("Refused before training (reason below): nothing was trained; Runs and Compare leave it out.")
    else:
        st.text(job_views.progress_text(p))
    if job.state == "cancelling":
        st.text("Cancelling: the job stops at the end of its current epoch.")
    if job.state in ("running", "cancelling"):
        total = p.trials_total if job.kind == "sweep" else p.epochs_total
        if total:
            st.progress(min(1.0, p.epoch / total))
        remaining = f"; remaining at most {_duration(p.remaining_s)}" if job.state == "running" else ""
        st.text(f"Elapsed {_duration(p.elapsed_s)}{remaining}")
    if job.kind == "sweep" and not p.trials.empty:
        st.plotly_chart(job_views.trials_figure(p.trials, p.objective or "objective"), key="job_trials_chart")
        st.dataframe(p.trials, hide_index=True, key="job_trials_table")
    elif job.kind == "references":
        if not p.trials.empty:
            st.dataframe(p.trials, hide_index=True, key="job_references_table")
    elif job.kind != "sweep" and (not p.history.empty or job.state in ("running", "cancelling")):
        st.plotly_chart(job_views.history_figure(p.history), key="job_history_chart")
    if job.state == "finished":
        c1, c2, c3 = st.columns(3)
        c1.page_link("pages/compare.py", label="Open in Compare", query_params={"runs": job.run_id})
        best = p.trials[p.trials["state"].isin(["complete", "finished"])] if job.kind != "train" else None
        model_run = job.run_id
        if best is not None and len(best) and best["value"].notna().any():
            model_run = str(best.loc[best["value"].idxmax(), "run_id"])
        c2.page_link("pages/recommend.py", label="Try it on Recommend", query_params={"run": model_run})
        c3.page_link("pages/discover.py", label="See it in Discover", query_params={"run": job.run_id})
    elif job.error and job.state == "killed":  # cancelled: what the user asked for, not an error
        st.info(f"{job.state}: {escape_markdown(job.error)}")
    elif job.error and not job.active:
        st.error(f"{job.state}: {escape_markdown(job.error)}")
    log = progress.job_log(job.run_id, URI, max_chars=4000)
    if log:
        with st.expander("Log (end)"):
            st.code(log, language=None)


def refresh_jobs() -> list[jobs.Job]:
    """Start queued jobs, reconcile dead ones, and list this store's jobs."""
    jobs.tick(URI)
    return jobs.list_jobs(URI)


def signature(all_jobs: list[jobs.Job]) -> tuple[tuple[str, str], ...]:
    """What the full page run drew the job controls for: when it changes, the page redraws them."""
    return tuple((j.run_id, j.state) for j in all_jobs)


def _cancel(run_id: str) -> None:
    """Cancel button callback: runs first thing in the click's script run, before any store read of the page."""
    try:
        st.session_state["cancel_note"] = f"Cancel requested: {jobs.cancel(run_id, URI)}."
    except jobs.JobError as exc:
        st.session_state["cancel_note"] = f"Could not cancel: {exc}"


def job_controls(all_jobs: list[jobs.Job]) -> None:
    """The job picker and the selected job's Cancel button (full page run)."""
    by_id = {j.run_id: j for j in all_jobs}
    if st.session_state.get("job_select") not in by_id:
        st.session_state["job_select"] = all_jobs[0].run_id
    c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
    # labels that never change: a keyed selectbox whose option labels change keeps showing the old one
    choice = c1.selectbox(
        "Job", list(by_id), key="job_select", help="Its state is shown below and in the table of all jobs.",
        format_func=lambda rid: f"{by_id[rid].kind:6} {choice_label(by_id[rid].name, rid)}",
    )  # fmt: skip
    job = by_id[choice]
    if job.state in ("queued", "running"):
        c2.button("Cancel", key="cancel_job", on_click=_cancel, args=(job.run_id,), width="stretch")
    note = st.session_state.pop("cancel_note", None)
    if note:
        st.caption(note)


def jobs_panel() -> None:
    """The live part: counts, the selected job's progress, and the table of all jobs."""
    all_jobs = st.session_state.pop("_jobs_of_full_run", None)
    if all_jobs is None:  # a fragment rerun: read the store again
        all_jobs = refresh_jobs()
        if signature(all_jobs) != st.session_state.get("_jobs_signature"):
            st.rerun()  # a job started, ended or is being cancelled: redraw the controls and the polling rate
    if not all_jobs:
        st.info("No jobs yet. Start a training or a sweep above.")
        return
    active = [j for j in all_jobs if j.active]
    st.caption(
        f"{sum(j.state != 'queued' for j in active)} running, {sum(j.state == 'queued' for j in active)} queued; "
        f"at most {jobs.default_limit()} job slots at once. Updated {time.strftime('%H:%M:%S')}."
    )
    by_id = {j.run_id: j for j in all_jobs}
    job_detail(by_id.get(st.session_state.get("job_select"), all_jobs[0]))
    st.subheader("All jobs")
    st.dataframe(job_views.jobs_frame(all_jobs), hide_index=True, key="jobs_table")


@st.fragment(run_every=ACTIVE_POLL)
def live_panel() -> None:
    jobs_panel()


@st.fragment(run_every=IDLE_POLL)
def idle_panel() -> None:
    jobs_panel()


def jobs_section() -> None:
    all_jobs = refresh_jobs()
    st.session_state["_jobs_signature"] = signature(all_jobs)
    if all_jobs:
        job_controls(all_jobs)
    st.session_state["_jobs_of_full_run"] = all_jobs  # the fragment's first call draws these, no second read
    (live_panel if any(j.active for j in all_jobs) else idle_panel)()


URI = store_uri()  # read on every run of the page: tests and restarts may point it elsewhere
st.title("Train")
st.caption("Each job runs as its own process (`python -m recdash train|sweep`) and is tracked as an MLflow run.")
require_store(URI)
READ_ONLY = read_only_notice(URI, "training")
tab_train, tab_sweep = st.tabs(["Train a model", "Sweep (Optuna)"])
with tab_train:
    train_tab()
with tab_sweep:
    sweep_tab()
st.header("Jobs")
jobs_section()
