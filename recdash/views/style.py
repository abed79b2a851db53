"""A run looks the same in every chart and table of a page: one colour, one unique label, one hover text, and its
data group (:func:`recdash.comparison.data_groups`). Configurations (mean ± std views) are not runs and never take a
run's colour: they are named by a letter and drawn in neutral tones with a pattern (bars) or a dash (lines)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from recdash.comparison import config_letters, data_groups, run_labels

# Configurations: greys (no run palette has them) with a hatch or a dash; 5 tones and 8 patterns or 6 dashes cycle
# together, so 40 (30) configurations in a row look different.
CONFIG_TONES = ("#56606b", "#9aa3ad", "#2f363d", "#bcc3cb", "#78828c")
CONFIG_PATTERNS = ("", "/", "x", "\\", ".", "+", "-", "|")
CONFIG_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


@dataclass(frozen=True)
class ConfigStyle:
    """How one configuration (runs that differ only in their seed) is drawn: a letter, what it is, a grey, a bar
    pattern and a line dash."""

    letter: str
    description: str  # the hyperparameters that differ between the configurations shown ("factors=8, loss=warp")
    color: str
    pattern: str
    dash: str

    @property
    def name(self) -> str:
        """Its legend entry and hover title: ``A: factors=8, loss=warp``."""
        return f"{self.letter}: {self.description}"


def config_styles(configs: Iterable[str]) -> dict[str, ConfigStyle]:
    """Configuration label -> its style, lettered A, B, ... in the order given (first appearance)."""
    out = {}
    for i, (config, letter) in enumerate(config_letters(configs).items()):
        tone, pattern = CONFIG_TONES[i % len(CONFIG_TONES)], CONFIG_PATTERNS[i % len(CONFIG_PATTERNS)]
        out[config] = ConfigStyle(letter, config, tone, pattern, CONFIG_DASHES[i % len(CONFIG_DASHES)])
    return out


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

    def config_styles(self, configs: Mapping[str, str]) -> dict[str, ConfigStyle]:
        """:func:`config_styles` for run id -> configuration, lettered facet by facet (data groups in the page's
        order), then in the page's run order: every chart and table of the page agrees, and reads A, B, C..."""
        facet = {group: i for i, group in enumerate(self.group_names())}
        ordered = sorted((r for r in self.labels if r in configs), key=lambda r: facet.get(self.groups.get(r), 0))
        return config_styles(configs[r] for r in ordered)
