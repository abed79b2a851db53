"""What a ``python -m recdash train|sweep|references`` process knows about itself: how it stops, and how it is
recognised later.

**Stopping.** A cancel from the dashboard sends SIGTERM. Raising at an arbitrary point could interrupt an open
SQLite transaction and leave the tracking store locked, so :func:`request_stop` only sets a flag and the training
loop calls :func:`check_stop` at each epoch or trial boundary (a second SIGTERM stops at once).

**Identity.** A PID alone does not identify the process that owns a run: after it ends, the PID can be handed to
any later process. :func:`process_start` is ``"<boot id>:<start time in clock ticks since boot>"`` from /proc,
recorded on the run (:data:`recdash.contract.TAG_PROCESS_START`) by :func:`identity_tags`; the job queue
(:mod:`recdash.training.jobs`) compares it before it signals or reconciles a run's process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recdash.contract import TAG_PROCESS_START

_STOP = {"requested": False}


def request_stop(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop at the next epoch or trial boundary; a second SIGTERM stops at once."""
    if _STOP["requested"]:
        raise KeyboardInterrupt(f"signal {signum}")
    _STOP["requested"] = True


def check_stop() -> None:
    """Raise KeyboardInterrupt (the run then ends KILLED) if a stop was requested by SIGTERM."""
    if _STOP["requested"]:
        raise KeyboardInterrupt("cancelled")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``[0]`` the state, ``[19]`` the start time in
    clock ticks since boot), or None when there is no such process or no procfs. The name is in parentheses and
    may hold spaces and parentheses itself, hence the split after the last ")"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
    except (OSError, ValueError):
        return None
    return fields if len(fields) > 19 else None


def process_start(pid: int | None = None) -> str | None:
    """The identity of process ``pid`` (default: this one) as stored in :data:`TAG_PROCESS_START`.

    Clock ticks since boot never change for a process's lifetime (unlike wall-clock start times, which move
    when the clock is stepped), and the boot id tells a reboot apart. None where there is no procfs.
    """
    fields = proc_stat(pid or os.getpid())
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{fields[19]}" if fields is not None else None


def identity_tags() -> dict[str, str]:
    """Tags a recdash process puts on the runs it owns, so a later process that reuses its PID is not taken
    for it."""
    token = process_start()
    return {TAG_PROCESS_START: token} if token else {}


def start_epoch(pid: int) -> float | None:
    """When the process started (seconds since the epoch), from /proc; None where there is no procfs."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    try:
        btime = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line[:5] == "btime"
        )
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return None


__all__ = ["check_stop", "identity_tags", "proc_stat", "process_start", "request_stop", "start_epoch"]
