"""A run looks the same in every chart and table of a page: one colour, one unique label, one hover text, and its
data group (:func:`recdash.comparison.data_groups`). Configurations (mean ± std views) get colours and markers of
their own, so a mean is never taken for a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from recdash.comparison import data_groups, run_labels

# Configurations (mean ± std views) get colours apart from the runs' own, so a mean is never taken for a run.
CONFIG_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC")


def palette() -> list[str]:
    """Distinct colours, in order: Plotly's, D3's, then Dark24's (plotly.express qualitative palettes)."""
    import plotly.express as px

    out: list[str] = []
    for colours in (px.colors.qualitative.Plotly, px.colors.qualitative.D3, px.colors.qualitative.Dark24):
        out += [c for c in colours if c.upper() not in {o.upper() for o in out}]
    return out


def run_colors(run_ids: Sequence[str]) -> dict[str, str]:
    """One colour per run, by its place in ``run_ids`` (the selection's order, so every page agrees)."""
    colours = palette()
    return {str(r): colours[i % len(colours)] for i, r in enumerate(dict.fromkeys(map(str, run_ids)))}


def hover_name(runs: pd.DataFrame, labels: Mapping[str, str]) -> dict[str, str]:
    """What hovering a run shows first: its label, short id and experiment."""
    experiments = runs["experiment"] if "experiment" in runs.columns else pd.Series([None] * len(runs), runs.index)
    out = {}
    for run_id, experiment in zip(runs["run_id"].astype(str), experiments, strict=True):
        where = f" · {experiment}" if isinstance(experiment, str) and experiment else ""
        out[run_id] = f"{labels.get(run_id, run_id[:8])} · {run_id[:8]}{where}"
    return out


@dataclass(frozen=True)
class RunStyle:
    """How every chart and table of one page shows each run: label, colour, hover text and data group."""

    labels: dict[str, str]
    colors: dict[str, str]
    hover: dict[str, str]
    groups: dict[str, str]

    @classmethod
    def of(
        cls,
        runs: pd.DataFrame,
        order: Sequence[str] | None = None,
        context: pd.DataFrame | None = None,
        context_groups: pd.Series | None = None,
    ) -> RunStyle:
        """Styles for ``runs``; colours follow ``order`` (the selection) when given, else the frame's order. Data
        groups are worked out over ``context`` (e.g. every run of the store) when given, so a sweep parent shown
        without its trials still gets their group; ``context_groups`` is its :func:`data_groups` if the caller
        already has it."""
        labels = run_labels(runs)
        ids = runs["run_id"].astype(str).tolist()
        ordered = [r for r in (order or []) if r in set(ids)] + [r for r in ids if r not in set(order or [])]
        frame = runs if context is None else context
        frame_groups = context_groups if context is not None and context_groups is not None else data_groups(frame)
        groups = dict(zip(frame["run_id"].astype(str), frame_groups.astype(str), strict=True))
        if context is not None and not set(ids) <= set(groups):
            groups |= dict(zip(ids, data_groups(runs).astype(str), strict=True))
        return cls(
            labels=labels,
            colors=run_colors(ordered),
            hover=hover_name(runs, labels),
            groups={r: groups[r] for r in ids},
        )

    def label(self, run_id: str) -> str:
        return self.labels.get(run_id, run_id[:8])

    def color(self, run_id: str) -> str:
        return self.colors.get(run_id, "#888888")

    def group_names(self, run_ids: Iterable[str] | None = None) -> list[str]:
        """The data groups of ``run_ids`` (all runs by default), always in the page's order (the order the groups
        first appear among all the page's runs), so every chart stacks its facets the same way."""
        wanted = set(self.groups.values()) if run_ids is None else {self.groups[r] for r in run_ids if r in self.groups}
        return [g for g in dict.fromkeys(self.groups.values()) if g in wanted]

    def config_colors(self, configs: Iterable[str]) -> dict[str, str]:
        """One colour per configuration (mean ± std views), from a palette apart from the runs' own colours."""
        return {c: CONFIG_PALETTE[i % len(CONFIG_PALETTE)] for i, c in enumerate(dict.fromkeys(configs))}

    def config_colors_of(self, configs: Mapping[str, str]) -> dict[str, str]:
        """:meth:`config_colors` for run id -> configuration, in the page's run order (every chart agrees)."""
        return self.config_colors(configs[r] for r in self.labels if r in configs)
