"""Setting up from a fresh clone (issue 21): `make test` names the one command that installs the system packages it
is missing (Chromium, PostgreSQL) instead of quietly skipping their tests, says so in its last line when told to
run without them, and `python -m recdash` works from the folder that holds the clone (a folder named recdash)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import recdash

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make (the README's requirements)")


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_make_test_stops_naming_the_command_that_installs_what_is_missing() -> None:
    done = make("prerequisites", "CHROMIUM=", "PG_INITDB=")
    assert done.returncode == 2
    assert "not installed here: chromium postgresql" in done.stdout
    assert "apt-get install -y chromium postgresql" in done.stdout and "SKIP_MISSING=1" in done.stdout
    assert make("prerequisites", "CHROMIUM=", "PG_INITDB=", "SKIP_MISSING=1").returncode == 0
    found = make("prerequisites", "CHROMIUM=/usr/bin/chromium", "PG_INITDB=/usr/bin/initdb")
    assert (found.returncode, found.stdout) == (0, "")


def test_a_run_without_them_says_so_in_its_last_line() -> None:
    quick = "PYTEST_ARGS=--collect-only -q tests/core/test_settings.py"  # the suite's last line, not its tests
    done = make("suite", f"PY={sys.executable}", "CHROMIUM=", quick)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("make test: SKIPPED the tests that need chromium") and "apt-get install -y chromium" in last


def test_the_readme_names_every_requirement_of_make_test() -> None:
    text = (ROOT / "README.md").read_text()
    requirements = text[text.index("Requirements:") :].split("\n\n")[0]
    for needed in ("Python 3.11", "C compiler", "make", "Chromium", "PostgreSQL", "SKIP_MISSING=1"):
        assert needed in requirements, needed


@pytest.mark.slow
def test_python_m_recdash_runs_from_the_folder_that_holds_the_clone(tmp_path: Path) -> None:
    """A clone in a folder named recdash, set up with `make install`, then `python -m recdash` from the folder above:
    setuptools' default editable install lost to the clone folder (a namespace package named recdash there)."""
    clone = tmp_path / "recdash"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "requirements.txt", "Makefile"):
        shutil.copy(ROOT / name, clone / name)
    shutil.copytree(ROOT / "recdash", clone / "recdash", ignore=shutil.ignore_patterns("__pycache__"))
    # a fresh venv that sees the installed requirements (make install finds them satisfied: no download, no build)
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True, timeout=120)
    site = clone / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "zz_requirements.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = make("install", cwd=clone)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    python = str(clone / ".venv" / "bin" / "python")
    done = subprocess.run([python, "-m", "recdash", "--help"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "usage: python -m recdash" in done.stdout, done.stderr[-2000:]
    where = subprocess.run([python, "-c", "import recdash; print(recdash.__file__, recdash.__version__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert where.stdout.split() == [str(clone / "recdash" / "__init__.py"), recdash.__version__], where.stderr[-2000:]
