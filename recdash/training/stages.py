"""What a training is doing right now, said once for both readers: a line on stdout (the CLI's output, a job's log)
and the run's ``recdash.stage`` tag (the Train page's job panel, :func:`recdash.training.progress.progress`).

Reading 20 million interactions, splitting them or evaluating 138k test users takes minutes before (and after) the
first epoch; without this a job shows "epoch 0" all that time. Before the run starts, a dashboard job's run is the
one named by ``MLFLOW_RUN_ID`` (the job queue created it); after, the active run. A plain CLI training has no run
until it starts: its first stages are printed only.
"""

from __future__ import annotations

import os
import time

import mlflow

from recdash import contract, tracking

COUNT_INTERVAL_S = 1.0  # counts that move with every block (users evaluated) are written at most this often

_last_count = 0.0


def report(text: str) -> None:
    """Say that the training is now at ``text`` ("splitting 20,000,263 interactions"): print it and tag the run."""
    global _last_count
    _last_count = 0.0  # a new stage: its first count is shown at once
    print(text, flush=True)
    run_id = _run_id()
    if run_id is None:
        return
    try:
        tracking.client().set_tag(run_id, contract.TAG_STAGE, text[:500])
    except Exception as exc:  # a progress note is never worth failing a training (the store answers again later)
        print(f"note: could not record the stage on run {run_id}: {exc}", flush=True)


def report_count(label: str, done: int, total: int) -> None:
    """``label done/total`` ("evaluating test users 40,960/138,493"), at most once per :data:`COUNT_INTERVAL_S`
    and always when ``done`` reaches ``total``."""
    global _last_count
    now = time.monotonic()
    if done < total and now - _last_count < COUNT_INTERVAL_S:
        return
    report(f"{label} {done:,}/{total:,}")
    _last_count = now


def _run_id() -> str | None:
    active = mlflow.active_run()
    if active is not None:
        return active.info.run_id
    return os.environ.get("MLFLOW_RUN_ID") or None
