"""How far a job got, read from its MLflow run (nothing is kept in memory, so it works after an app restart):
epochs and the validation history of a training, trials of a sweep, reference runs of a references job, timing,
and the end of its log. What the Train page's live panel draws."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recdash import contract, tracking
from recdash.contract import MLFLOW_PARENT_RUN
from recdash.models import MODELS, get_model
from recdash.training.jobs import MAX_CHART_POINTS, STATES, Job, _job, _search, get_job


@dataclass
class Progress:
    """How far a job got: epochs (training) or trials (sweep), timing, and metric history."""

    job: Job
    epoch: int = 0
    epochs_total: int | None = None
    elapsed_s: float | None = None
    remaining_s: float | None = None
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # step, metric, value
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)  # sweeps: trial, state, value, run_id
    trials_total: int | None = None
    best_value: float | None = None
    objective: str | None = None  # sweeps: the validation metric maximised
    stage: str | None = None  # what the job is doing now (its run's recdash.stage tag: reading, splitting, epoch ...)


def progress(run_id: str, tracking_uri: str | None = None) -> Progress:
    """Progress of a job read from its MLflow run (works after an app restart: nothing is kept in memory)."""
    client = tracking.client(tracking_uri)
    run = client.get_run(run_id)
    job = _job(run)
    out = Progress(job=job, epochs_total=job.epochs_total, stage=run.data.tags.get(contract.TAG_STAGE) or None)
    now = time.time()
    if job.launched_at:
        out.elapsed_s = (job.ended_at if job.ended_at and not job.active else now) - job.launched_at
    if job.kind == contract.KIND_SWEEP:
        return _sweep_progress(client, run, out)
    if job.kind == contract.KIND_REFERENCES:
        return _references_progress(client, run, out)
    keys = sorted(k for k in run.data.metrics if k.startswith("val_"))
    if not keys:
        return out
    # one read for every series (the page polls this every few seconds), at most MAX_CHART_POINTS per series:
    # the first, last, lowest and highest are always kept, so the epoch count and the chart stay right
    hist = tracking.metric_histories(
        [run_id], [*keys, "epoch_seconds"], max_points=MAX_CHART_POINTS, uri=tracking.resolve(tracking_uri)
    )
    val = hist[hist["key"] != "epoch_seconds"].rename(columns={"key": "metric"})
    out.history = val[["step", "metric", "value"]].sort_values(["metric", "step"], ignore_index=True)
    out.epoch = int(val["step"].max()) if len(val) else 0
    seconds = hist.loc[hist["key"] == "epoch_seconds", "value"]
    if job.state == "running" and out.epoch and out.epochs_total and len(seconds):
        out.remaining_s = max(0, out.epochs_total - out.epoch) * float(seconds.mean())
    return out


def _sweep_progress(client: Any, run: Any, out: Progress) -> Progress:
    run_id = run.info.run_id
    try:
        out.trials_total = int(run.data.tags.get(contract.TAG_TRIALS_TOTAL, ""))
    except ValueError:
        out.trials_total = None
    children = _search(client, f"tags.`{MLFLOW_PARENT_RUN}` = '{run_id}'", 10_000, "ASC")
    monitor = run.data.params.get("objective_metric") or contract.metric_name(
        "val", contract.KEY_METRIC, _k_of(run.data.params)
    )
    out.objective = monitor
    searched = _searched_params(run.data.params)
    rows = []
    for child in children:
        tags = child.data.tags
        value = child.data.metrics.get(f"best_{monitor}")
        if value is None:
            history = [m.value for m in client.get_metric_history(child.info.run_id, monitor)]
            value = max(history) if history else None
        rows.append(
            {
                "trial": int(tags.get(contract.TAG_TRIAL_NUMBER, "-1")),
                "state": tags.get(contract.TAG_TRIAL_STATE, STATES.get(child.info.status, "")),
                "value": value,
                **{name: child.data.params.get(name) for name in searched},
                "run_id": child.info.run_id,
            }
        )
    trials = pd.DataFrame(rows, columns=["trial", "state", "value", *searched, "run_id"]).sort_values("trial")
    for name in searched:  # params are text in MLflow; numbers sort and align as numbers
        numbers = pd.to_numeric(trials[name], errors="coerce")
        if numbers.notna().sum() == trials[name].notna().sum():
            trials[name] = numbers
    out.trials = trials.reset_index(drop=True)
    done = out.trials[out.trials["state"].isin(["complete", "pruned", "failed"])]
    out.epoch = len(done)
    complete = out.trials[out.trials["state"] == "complete"]["value"].dropna()
    out.best_value = float(complete.max()) if len(complete) else None
    if out.job.state == "running" and out.trials_total and len(done) and out.elapsed_s:
        out.remaining_s = out.elapsed_s / len(done) * max(0, out.trials_total - len(done))
    return out


def _references_progress(client: Any, run: Any, out: Progress) -> Progress:
    """A references job: one row per reference run (model, state, chosen hyperparameters, validation value)."""
    children = _search(client, f"tags.`{MLFLOW_PARENT_RUN}` = '{run.info.run_id}'", 100, "ASC")
    k = _k_of(run.data.params)
    monitor = run.data.params.get("early_stopping_metric") or contract.metric_name("val", contract.KEY_METRIC, k)
    test_metric = contract.key_metric(k)
    out.objective = monitor
    rows = []
    for child in children:
        p, m = child.data.params, child.data.metrics
        names = get_model(p["model"]).hyperparameters() if p.get("model") in MODELS else {}
        chosen = ", ".join(f"{name}={p[name]}" for name in names if name in p)
        rows.append(
            {
                "model": p.get("model", ""),
                "state": STATES.get(child.info.status, ""),
                "hyperparameters": chosen,
                "value": m.get(f"best_{monitor}"),
                "test_ndcg": m.get(test_metric),
                "run_id": child.info.run_id,
            }
        )
    out.trials = pd.DataFrame(rows, columns=["model", "state", "hyperparameters", "value", "test_ndcg", "run_id"])
    out.epoch = int((out.trials["state"] == "finished").sum()) if len(out.trials) else 0
    out.trials_total = out.epochs_total
    return out


def _k_of(params: dict[str, str]) -> int:
    """A run's cut-off k from its params (10, recdash's default, when it did not log one)."""
    try:
        return int(float(params.get(contract.K_PARAM, "10")))
    except ValueError:
        return 10


def _searched_params(params: dict[str, str]) -> list[str]:
    """The hyperparameters a sweep searched, from its parent run's ``search_space`` param (JSON)."""
    try:
        space = json.loads(params.get("search_space", "{}"))
    except ValueError:
        return []
    reserved = {"trial", "state", "value", "run_id"}
    return [str(name) for name in space if str(name) not in reserved] if isinstance(space, dict) else []


def job_log(run_id: str, tracking_uri: str | None = None, max_chars: int = 20_000) -> str:
    """The end of a job's stdout/stderr log (empty when it is on another machine or not started)."""
    path = get_job(run_id, tracking_uri).log_path
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - max_chars))
        return fh.read().decode("utf-8", "replace")
