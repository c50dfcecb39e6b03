"""Check the dependency locks: complete, hashed, in agreement, and reproducible.

    python -m infra.check_lock              # static checks (tests/deploy/test_locks.py runs them)
    python -m infra.check_lock reproduce    # two fresh clones, `make venv` in each, compared file by file

The human-edited inputs are requirements*.in; `make lock` (uv pip compile) writes the locks
requirements*.txt from them. The static checks:

- every entry of every lock is an exact `name==version` with at least one `--hash`;
- every requirement of an input (following `-r`) is in its lock, at a version it allows;
- a package in two locks has one version in both (the dev lock installs the runtime one);
- each lock is closed and holds nothing extra: walking the inputs' dependencies (the installed
  metadata, markers evaluated for Linux x86_64 and aarch64 on CPython 3.11) gives exactly the
  lock's entries for those platforms;
- every third-party module the code imports is provided by a distribution an input names (not
  only by a transitive one), and every input is imported or listed in NOT_IMPORTED with its use;
- the running virtualenv holds exactly the dev and pip locks (so the walk above reads the
  locked versions' metadata): a venv that drifted from the locks fails here.

`reproduce` builds what a new machine builds: a `git clone` of HEAD, `make venv` (pip with
`--require-hashes`, see the Makefile), twice, then compares `pip freeze --all` and a SHA-256 of
every file each distribution's RECORD lists (its own path written as <venv>; bytecode, which
pip compiles at install time, and RECORD itself, which hashes the scripts' shebang lines, left out;
so is the project's own editable install, which only points at its clone).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# Each human-edited input and the lock `make lock` writes from it, in the order it writes them.
LOCKS: dict[str, str] = {
    "requirements-pip.in": "requirements-pip.txt",
    "requirements.in": "requirements.txt",
    "requirements-dev.in": "requirements-dev.txt",
}
DEV_LOCK = "requirements-dev.txt"
PIP_LOCK = "requirements-pip.txt"
# The machines the locks serve: developers' and CI's Linux boxes, and Lambda (x86_64 or arm64).
MACHINES = ("x86_64", "aarch64")
_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)\s*(?:;(?P<marker>.*))?$")


class LockError(ValueError):
    """A lock file line that is not an exact, hashed pin."""


@dataclass(frozen=True)
class Locked:
    """One package of a lock: exact version, the platforms it is for, the hashes of its files."""

    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]


def target_python() -> str:
    """The Python the locks are for: the floor of pyproject.toml's requires-python (one source)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)", requires.strip())
    if match is None:
        raise ValueError(f"requires-python {requires!r} is not of the form '>=X.Y'")
    return match.group(1)


def current_environment() -> dict[str, str]:
    """Marker variables of this interpreter."""
    return {key: str(value) for key, value in default_environment().items()}


def environment(machine: str, python: str) -> dict[str, str]:
    """Marker variables of CPython `python` on Linux `machine`."""
    return {
        **current_environment(),
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def applies(marker: Marker | None, env: Mapping[str, str], extras: Iterable[str] = ()) -> bool:
    """Whether a requirement with `marker` is installed in `env` (with the given extras requested)."""
    if marker is None:
        return True
    return any(marker.evaluate({**env, "extra": extra}) for extra in (tuple(extras) or ("",)))


def _logical_lines(text: str) -> list[str]:
    """The lines of a requirements file, continuation lines joined and comments removed."""
    joined = re.sub(r"\\\n", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            lines.append(line)
    return lines


def read_lock(path: Path) -> dict[str, Locked]:
    """A lock file's entries by canonical name; LockError if one is not `name==version` with hashes."""
    entries: dict[str, Locked] = {}
    for line in _logical_lines(path.read_text()):
        requirement, *options = re.split(r"\s+(?=--)", line)
        hashes = tuple(option.removeprefix("--hash=") for option in options if option.startswith("--hash="))
        match = _ENTRY.match(requirement.strip())
        if match is None:
            raise LockError(f"{path.name}: {requirement!r} is not an exact pin (name==version)")
        if not hashes or len(hashes) != len(options):
            raise LockError(f"{path.name}: {match['name']} has no hash (or an option other than --hash)")
        name = canonicalize_name(match["name"])
        marker = Marker(match["marker"]) if match["marker"] else None
        entries[name] = Locked(name, match["version"], marker, hashes)
    return entries


def read_inputs(path: Path) -> list[Requirement]:
    """The requirements of an input file and of the files it includes with `-r` (`-c` only constrains)."""
    requirements: list[Requirement] = []
    for line in _logical_lines(path.read_text()):
        if line.startswith("-r"):
            requirements += read_inputs(path.parent / line.removeprefix("-r").strip())
        elif not line.startswith("-"):
            requirements.append(Requirement(line))
    return requirements


def input_problems(name: str, requirements: list[Requirement], lock: Mapping[str, Locked]) -> list[str]:
    """Inputs missing from their lock, or locked at a version their specifier excludes."""
    problems = []
    for requirement in requirements:
        key = canonicalize_name(requirement.name)
        if key not in lock:
            problems.append(f"{name}: {requirement} is not in the lock (run make lock)")
        elif not requirement.specifier.contains(lock[key].version, prereleases=True):
            problems.append(f"{name}: {requirement} but the lock has {lock[key].version} (run make lock)")
    return problems


def agreement_problems(locks: Mapping[str, Mapping[str, Locked]]) -> list[str]:
    """Packages locked at different versions in two locks."""
    problems = []
    names = list(locks)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            for key in sorted(set(locks[first]) & set(locks[second])):
                a, b = locks[first][key].version, locks[second][key].version
                if a != b:
                    problems.append(f"{key} is {a} in {first} but {b} in {second}")
    return problems


def _requires(name: str) -> list[Requirement]:
    return [Requirement(spec) for spec in metadata.distribution(name).requires or []]


def closure_problems(
    name: str,
    requirements: list[Requirement],
    lock: Mapping[str, Locked],
    python: str,
    requires: Callable[[str], list[Requirement]] = _requires,
) -> list[str]:
    """A lock that lacks a dependency of its inputs, or holds a package none of them needs.

    `requires(name)` gives a package's requirements (default: the installed metadata).
    """
    problems = []
    for machine in MACHINES:
        env = environment(machine, python)
        needed: set[str] = set()  # canonical names
        pending = [r for r in requirements if applies(r.marker, env)]
        seen: set[tuple[str, frozenset[str]]] = set()
        while pending:
            requirement = pending.pop()
            key = canonicalize_name(requirement.name)
            extras = frozenset(requirement.extras)
            if (key, extras) in seen:
                continue
            seen.add((key, extras))
            needed.add(key)
            if key not in lock:
                continue  # reported below
            pending += [d for d in requires(key) if applies(d.marker, env, extras)]
        locked = {key for key, entry in lock.items() if applies(entry.marker, env)}
        problems += [f"{name} ({machine}): needs {key}, which the lock lacks" for key in sorted(needed - locked)]
        problems += [f"{name} ({machine}): holds {key}, which no input needs" for key in sorted(locked - needed)]
    return problems


def venv_problems(expected: Mapping[str, Locked], installed: Mapping[str, str], project: str) -> list[str]:
    """Differences between what is installed and what the locks hold for this machine."""
    env = current_environment()
    problems = []
    for key, version in sorted(installed.items()):
        if key == project:
            continue  # `pip install -e .` of this project
        if key not in expected:
            problems.append(f"installed {key}=={version} is in no lock")
        elif expected[key].version != version:
            problems.append(f"installed {key}=={version} but the lock has {expected[key].version}")
    for key, entry in sorted(expected.items()):
        if applies(entry.marker, env) and key not in installed:
            problems.append(f"locked {key}=={entry.version} is not installed")
    return problems


def installed_distributions() -> dict[str, str]:
    """Canonical name -> version of every distribution this interpreter sees."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}


# Inputs the code does not import, with what uses them instead.
NOT_IMPORTED = {
    "pip": "the installer (requirements-pip.in)",
    "setuptools": "builds the editable install (requirements-pip.in)",
    "uv": "make lock",
    "ruff": "make lint",
    "mypy": "make typecheck",
    "types-pyyaml": "mypy's stubs for yaml",
    "cfn-lint": "a command: tests/deploy/test_package.py, make cfn-lint",
    "schemathesis": "a command: reliability/fuzz.py",
    "pytest-timeout": "a pytest plugin (pyproject.toml's timeout)",
}
# The trees whose imports the inputs must name.
SOURCES = ("app.py", "chalicelib", "devstack", "device_sim", "bench", "infra", "reliability", "tests")


def imported_modules(paths: Iterable[Path]) -> set[str]:
    """Top-level names of the absolute imports in these Python files."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def import_problems(
    imported: set[str], own: set[str], inputs: set[str], providers: Mapping[str, list[str]]
) -> list[str]:
    """Imports no input names (they arrive only transitively, or not at all), and inputs nothing uses.

    `providers` maps a top-level module to the distributions that provide it (canonical names).
    """
    problems = []
    used: set[str] = set()
    for module in sorted(imported - own - set(sys.stdlib_module_names) - {"__future__"}):
        distributions = set(providers.get(module, ()))
        if not distributions:
            problems.append(f"the code imports {module}, which no installed distribution provides")
        elif not distributions & inputs:
            names = ", ".join(sorted(distributions))
            problems.append(f"the code imports {module} ({names}), which no requirements*.in names")
        used |= distributions
    for name in sorted(inputs - used - set(NOT_IMPORTED)):
        problems.append(f"{name} is an input that nothing imports (add it to NOT_IMPORTED with its use, or drop it)")
    problems += [f"NOT_IMPORTED names {name}, which is no input" for name in sorted(set(NOT_IMPORTED) - inputs)]
    return problems


def code_import_problems(root: Path = ROOT) -> list[str]:
    """import_problems() for this repository: its sources against its inputs and the installed metadata."""
    files = [root / name for name in SOURCES if name.endswith(".py")]
    files += [path for name in SOURCES if not name.endswith(".py") for path in (root / name).rglob("*.py")]
    own = {name.removesuffix(".py") for name in SOURCES}
    inputs: set[str] = {canonicalize_name(r.name) for name in LOCKS for r in read_inputs(root / name)}
    providers: dict[str, list[str]] = {
        module: [canonicalize_name(d) for d in distributions]
        for module, distributions in metadata.packages_distributions().items()
    }
    return import_problems(imported_modules(files), own, inputs, providers)


def static_problems(root: Path = ROOT) -> list[str]:
    """Every problem the static checks find in the repository's inputs and locks (none: [])."""
    problems: list[str] = []
    locks: dict[str, dict[str, Locked]] = {}
    for lock_name in LOCKS.values():
        try:
            locks[lock_name] = read_lock(root / lock_name)
        except LockError as error:
            problems.append(str(error))
    if problems:
        return problems
    python = target_python()
    makefile = (root / "Makefile").read_text()
    if not re.search(rf"^LOCK_PYTHON\s*:?=\s*{re.escape(python)}\s*$", makefile, re.MULTILINE):
        problems.append(f"the Makefile's LOCK_PYTHON is not {python} (pyproject.toml's requires-python)")
    expected = {**locks[PIP_LOCK], **locks[DEV_LOCK]}
    drift = venv_problems(expected, installed_distributions(), project_name(root))
    problems += agreement_problems(locks)
    for input_name, lock_name in LOCKS.items():
        problems += input_problems(input_name, read_inputs(root / input_name), locks[lock_name])
    if drift:
        # The closure walk reads installed metadata: meaningless in a venv that is not the lock's.
        return problems + [f"this venv ({sys.prefix}) differs from the locks: {p}" for p in drift]
    for input_name, lock_name in LOCKS.items():
        problems += closure_problems(input_name, read_inputs(root / input_name), locks[lock_name], python)
    return problems + code_import_problems(root)


# --- reproduce: two fresh installs compared -------------------------------------------------------


def project_name(root: Path = ROOT) -> str:
    """This project's distribution name (pyproject.toml), canonical."""
    return canonicalize_name(tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"])


def venv_digest(venv: Path, skip: str = "") -> dict[str, str]:
    """SHA-256 of every file the venv's distributions' RECORDs list, by path (the venv path normalised).

    `skip` names a distribution left out: the project's own editable install, which points at its checkout.
    """
    site_packages = next(venv.glob("lib/python*/site-packages"))
    marker = str(venv.resolve()).encode()
    digests: dict[str, str] = {}
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        if skip and canonicalize_name(record.parent.name.split("-", 1)[0]) == skip:
            continue
        for line in record.read_text().splitlines():
            relative = line.rsplit(",", 2)[0]
            if not relative or "__pycache__/" in relative or relative.endswith((".pyc", "/RECORD")):
                continue
            path = (site_packages / relative).resolve()
            shown = str(path).replace(str(venv.resolve()), "<venv>")
            digests[shown] = hashlib.sha256(path.read_bytes().replace(marker, b"<venv>")).hexdigest()
    return digests


def _freeze(venv: Path, skip: str) -> str:
    """`pip freeze --all` less the editable project (its lines name the checkout's path)."""
    lines = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    return "".join(f"{line}\n" for line in lines if canonicalize_name(line.split("==")[0]) != skip)


def reproduce(work: Path) -> bool:
    """Clone HEAD twice, `make venv` in each clone, compare; print the figures; True when identical."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    print(f"locks of commit {commit.stdout.strip()} (committed files only)")
    results = []
    for run in (1, 2):
        clone = work / f"clone-{run}"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        subprocess.run(["make", "-C", str(clone), "venv"], check=True, stdout=subprocess.DEVNULL)
        venv = clone / ".venv"
        results.append((_freeze(venv, project_name()), venv_digest(venv, project_name())))
    (freeze_1, files_1), (freeze_2, files_2) = results
    total = [hashlib.sha256(repr(sorted(f.items())).encode()).hexdigest() for f in (files_1, files_2)]
    print(f"pip freeze --all: {len(freeze_1.splitlines())} distributions, identical: {freeze_1 == freeze_2}")
    print(f"files: {len(files_1)} and {len(files_2)}; digest {total[0][:16]} and {total[1][:16]}")
    differing = sorted(k for k in set(files_1) | set(files_2) if files_1.get(k) != files_2.get(k))
    for path in differing[:20]:
        print(f"  differs: {path}")
    return freeze_1 == freeze_2 and not differing


def main(argv: list[str] | None = None) -> int:
    """Static checks (default) or `reproduce`; exit status 1 on any problem."""
    parser = argparse.ArgumentParser(prog="python -m infra.check_lock", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["static", "reproduce"], default="static")
    parser.add_argument("--keep", type=Path, help="reproduce: build in this directory and keep it")
    args = parser.parse_args(argv)
    if args.command == "reproduce":
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            return 0 if reproduce(args.keep) else 1
        with tempfile.TemporaryDirectory(prefix="lock-check-") as work:
            return 0 if reproduce(Path(work)) else 1
    problems = static_problems()
    for problem in problems:
        print(problem)
    print(f"{len(LOCKS)} locks checked: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
