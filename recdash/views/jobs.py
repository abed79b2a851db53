"""The Train page's job views: the live chart of a training job, a sweep's trials, and the table of all jobs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from recdash import contract
from recdash.training.jobs import Job
from recdash.training.progress import Progress
from recdash.views.charts import empty_figure
from recdash.views.text import plotly_text


def progress_text(p: Progress) -> str:
    """The job panel's line of how far a job got: trials (sweep), reference models, or epochs (training), and while
    it runs what it is doing now (its stage: "splitting 20,000,263 interactions", "evaluating test users
    40,960/138,493"), so the minutes before the first epoch and after the last are not a silent "Epoch 0"."""
    job = p.job
    if job.kind == contract.KIND_SWEEP:
        best = "-" if p.best_value is None else f"{p.best_value:.4f}"
        line = f"Trial {p.epoch} of {p.trials_total or '?'} finished; best value so far {best}"
    elif job.kind == contract.KIND_REFERENCES:
        line = f"Reference model {p.epoch} of {p.epochs_total or '?'} finished"
    else:
        line = f"Epoch {p.epoch} of {p.epochs_total or '?'}"
    if job.active and job.state != "queued" and p.stage:
        line += f"; now: {p.stage}"
    return line


def jobs_frame(jobs: list[Job]) -> pd.DataFrame:
    """A table of jobs for display."""
    now = time.time()
    rows = []
    for j in jobs:
        start = j.launched_at  # a job that never launched (cancelled while queued) has no duration
        end = j.ended_at if not j.active else now
        rows.append(
            {
                "state": j.state,
                "kind": j.kind,
                "name": j.name,
                "queued": pd.Timestamp(j.queued_at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
                "duration_s": round(end - start, 1) if start and end else None,
                "reason": j.error,
                "run_id": j.run_id,
            }
        )
    return pd.DataFrame(rows, columns=["state", "kind", "name", "queued", "duration_s", "reason", "run_id"])


TRIAL_COLORS = {"complete": "#1f77b4", "pruned": "#ff7f0e", "failed": "#d62728", "running": "#7f7f7f"}


def padded_range(values: Sequence[float], fraction: float = 0.08) -> list[float]:
    """An axis range holding every value with room to spare, so no marker sits on (or past) the plot's edge."""
    lo, hi = float(min(values)), float(max(values))
    pad = max((hi - lo) * fraction, abs(hi) * 0.02, 1e-3)
    return [lo - pad, hi + pad]


def _steps_axis(steps: Sequence[float]) -> dict[str, Any]:
    """x axis of whole numbers (epochs, trial numbers) with half a step of room at both ends."""
    lo, hi = float(min(steps)), float(max(steps))
    axis: dict[str, Any] = {"range": [lo - 0.5, hi + 0.5], "tickformat": "d"}
    if hi - lo <= 15:
        axis["dtick"] = 1  # few points: one tick per step, never "1.5"
    return axis


def _is_val_ranking(name: str) -> bool:
    parsed = contract.MetricName.parse(name)
    return parsed is not None and parsed.is_own and parsed.split == "val" and parsed.metric in contract.RANKING


def history_figure(history: pd.DataFrame) -> Any:
    """The live chart of a training job: each validation ranking metric against the epoch.

    Lines with markers, so the first epoch (one point per metric) already shows; mean popularity is left out
    (an item count, it would flatten the ranking metrics, which lie in 0..1).
    """
    if history.empty:
        return empty_figure("No epoch has finished yet")
    ranking = history[[_is_val_ranking(m) for m in history["metric"]]]
    ranking = ranking[np.isfinite(ranking["value"].astype(float))]
    if ranking.empty:
        return empty_figure("No validation ranking metric logged yet")
    # plain dicts, validated once by go.Figure: this is redrawn every few seconds while a job runs
    traces = [
        {
            "type": "scatter", "x": rows["step"].tolist(), "y": rows["value"].tolist(), "name": plotly_text(metric),
            "mode": "lines+markers" if len(rows) <= 100 else "lines",
            "hovertemplate": "%{y:.4f}<extra>%{fullData.name}</extra>",
        }
        for metric, rows in ranking.groupby("metric", sort=True)
    ]  # fmt: skip
    layout = {
        "xaxis": {"title": {"text": "epoch"}, **_steps_axis(ranking["step"].tolist())},
        "yaxis": {"title": {"text": "validation"}, "range": padded_range(ranking["value"].tolist())},
        "height": 360, "hovermode": "x unified", "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 20, "b": 20},
    }  # fmt: skip
    return go.Figure(data=traces, layout=layout)


def trials_figure(trials: pd.DataFrame, objective: str = "objective") -> Any:
    """A sweep's trials: each trial's objective value by trial number, coloured by state, with the best value
    so far as a step line. Both axes are padded so the first, the last and the best trials are fully visible."""
    values = trials.dropna(subset=["value"]) if not trials.empty else trials
    if not values.empty:
        values = values[np.isfinite(values["value"].astype(float))]
    if values.empty:
        return empty_figure("No trial has a value yet")
    params = [c for c in values.columns if c not in ("trial", "state", "value", "run_id")]
    fig = go.Figure()
    for state, rows in values.groupby("state", sort=False):
        hover = [
            "<br>".join(
                [f"trial {int(r['trial'])} ({plotly_text(state)})", f"{plotly_text(objective)} = {r['value']:.4f}"]
                + [f"{plotly_text(p)} = {plotly_text(r[p])}" for p in params if pd.notna(r[p])]
            )
            for _, r in rows.iterrows()
        ]
        fig.add_trace(
            go.Scatter(
                x=rows["trial"].tolist(), y=rows["value"].tolist(), mode="markers", name=plotly_text(state),
                hovertext=hover,
                hoverinfo="text", marker={"size": 10, "color": TRIAL_COLORS.get(str(state), "#9467bd")},
            )
        )  # fmt: skip
    complete = values[values["state"] == "complete"].sort_values("trial")
    if len(complete):
        fig.add_trace(
            go.Scatter(
                x=complete["trial"].tolist(), y=complete["value"].cummax().tolist(), mode="lines", name="best so far",
                line={"shape": "hv", "color": "#2ca02c", "width": 1.5}, hoverinfo="skip",
            )
        )  # fmt: skip
    fig.update_xaxes(title_text="trial", **_steps_axis(values["trial"].tolist()))
    fig.update_yaxes(title_text=plotly_text(objective), range=padded_range(values["value"].tolist()))
    fig.update_layout(height=360, legend={"orientation": "h", "y": -0.25}, margin={"t": 20, "b": 20})
    return fig
