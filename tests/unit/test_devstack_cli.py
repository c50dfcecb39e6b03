"""The devstack command line: --help lists every subcommand, --version, the installed console scripts."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import devstack.__main__ as cli

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def _implemented_commands() -> set[str]:
    # Every cmd_<name> function is a subcommand: one the parser does not register is unreachable.
    return {name.removeprefix("cmd_").replace("_", "-") for name in vars(cli) if name.startswith("cmd_")}


def test_help_lists_every_subcommand_with_its_help_line() -> None:
    result = _run(sys.executable, "-m", "devstack", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m devstack ")
    listed = dict(re.findall(r"^ {4}([a-z][a-z-]*) +(\S.*)$", result.stdout, re.MULTILINE))
    assert set(listed) == _implemented_commands()
    assert {"up", "run-job", "query", "demo"} <= set(listed)


def test_version_is_the_projects() -> None:
    result = _run(sys.executable, "-m", "devstack", "--version")
    assert (result.returncode, result.stdout) == (0, f"devstack {VERSION}\n")
    assert cli.project_version() == VERSION


def test_an_unknown_subcommand_is_refused() -> None:
    result = _run(sys.executable, "-m", "devstack", "serve")
    assert result.returncode == 2
    assert "invalid choice: 'serve'" in result.stderr


@pytest.mark.parametrize(("script", "first_line"), [("devstack", "usage: devstack "), ("device_sim", "usage: ")])
def test_the_console_scripts_are_installed(script: str, first_line: str) -> None:
    # `make venv` installs the project editable (pyproject.toml's [project.scripts]) beside the locks.
    path = Path(sys.executable).with_name(script)
    assert path.is_file(), f"{path} is missing: run make venv"
    result = _run(str(path), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(first_line)
    version = _run(str(path), "--version")
    assert version.returncode == 0 and version.stdout.startswith(script), version
