"""Every RECDASH_* variable has one typed entry in recdash.settings, and the README's table is that list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recdash import settings

ROOT = Path(__file__).parents[2]


def test_the_readme_lists_every_setting_as_the_module_states_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in readme


def test_no_module_reads_a_recdash_variable_itself() -> None:
    """Settings are read through recdash.settings only (tests and benchmarks set them; that is their business)."""
    offenders = []
    for path in [*(ROOT / "recdash").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]:
        if path.name == "settings.py":
            continue
        if re.search(r"environ(\.get)?\(?\[?[\"']RECDASH_", path.read_text(encoding="utf-8")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_values_are_typed_and_bad_ones_fall_back_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECDASH_MAX_JOBS", "3")
    assert settings.MAX_JOBS.get() == 3
    monkeypatch.setenv("RECDASH_MAX_JOBS", "many")
    assert settings.MAX_JOBS.get() >= 1
    monkeypatch.setenv("RECDASH_CACHE_DIR", "/tmp/recdash-cache-x")
    monkeypatch.delenv("RECDASH_JOBS_DIR", raising=False)
    assert settings.JOBS_DIR.get() == Path("/tmp/recdash-cache-x/jobs")
    monkeypatch.setenv("RECDASH_REST_RECHECK_S", "0")
    assert settings.REST_RECHECK_S.get() == 0.0
    monkeypatch.setenv("RECDASH_USER", "alice")
    assert settings.USER.get() == "alice"
