"""Build a stage's CloudFormation (SAM) template and Lambda zip: `make package STAGE=prod`.

    python -m infra.package --stage prod            # -> build/prod/sam.json, build/prod/deployment.zip

1. Refuse to build unless this Python is the functions' runtime (LAMBDA_RUNTIME): Chalice
   names the runtime after the Python that runs it, and the zip's wheels and bytecode are
   this Python's.
2. Stage the sources Chalice packages in build/<stage>/src: app.py, chalicelib/,
   vendor/ (if any), .chalice/config.json and the stage's policy, and a requirements.txt
   for Lambda: the runtime lock (requirements.txt, every package pinned with hashes) less
   what the Lambda Python runtime already has (boto3, botocore and their dependencies;
   docs/DEPLOY.md says why they are not bundled).
3. Write the merge template (infra.resources) to build/<stage>/resources.json.
4. Run `chalice package --stage <stage> --merge-template resources.json build/<stage>`
   with PIP_NO_DEPS=1, so pip adds back none of what step 2 left out.
5. Rewrite the zip with compiled bytecode (`__pycache__/*.cpython-311.pyc`, unchecked-hash
   so they do not depend on mtimes; /var/task is read-only, so Lambda could never cache
   them itself), entries in name order with a fixed timestamp: the same sources and lock
   give the same zip, byte for byte.
6. Check and report the zip: its size (target < 10 MB), no runtime-provided package in
   it, compiled extensions only for the functions' architecture (arm64), a .pyc for every
   module, and every function's Runtime in the template.

Needs PyPI (pip downloads the wheels) and no AWS account or credentials.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# The Lambda runtime of every function of every stage. Moving to another one: docs/DEPLOY.md.
LAMBDA_RUNTIME = "python3.11"
# What the Lambda Python runtime provides: boto3 and everything it depends on.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})
TARGET_ZIP_BYTES = 10 * 1024 * 1024
APP_SOURCES = ("app.py", "chalicelib", "vendor")
# Where Lambda unpacks the zip: the path compiled into the bytecode (tracebacks show the real one anyway).
TASK_ROOT = "/var/task"
# Zip entries get this timestamp (the earliest a zip can hold), so the zip depends on contents only.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--: what Lambda needs to read it


class RuntimeMismatch(Exception):
    """This Python is not the functions' runtime: a zip built here would not match it."""


def runtime_version(runtime: str = LAMBDA_RUNTIME) -> tuple[int, int]:
    """`python3.11` -> (3, 11)."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    if not match:
        raise ValueError(f"not a Python Lambda runtime: {runtime!r}")
    return int(match.group(1)), int(match.group(2))


def check_builder(version: tuple[int, ...] = tuple(sys.version_info[:2]), runtime: str = LAMBDA_RUNTIME) -> None:
    """Refuse a builder Python other than the runtime's: wheels, bytecode and Chalice's Runtime follow it."""
    wanted = runtime_version(runtime)
    if tuple(version[:2]) != wanted:
        have, need = ".".join(map(str, version[:2])), ".".join(map(str, wanted))
        raise RuntimeMismatch(
            f"error: the Lambda runtime is {runtime} (infra/package.py LAMBDA_RUNTIME) but this is Python {have}: "
            f"build the package with Python {need} (a virtualenv made with python{need}), "
            "or move the project to another runtime as docs/DEPLOY.md describes"
        )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _marker_environment(architecture: str, runtime: str = LAMBDA_RUNTIME) -> dict[str, str]:
    major, minor = runtime_version(runtime)
    return {
        "python_version": f"{major}.{minor}",
        "python_full_version": f"{major}.{minor}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "aarch64" if architecture == "arm64" else "x86_64",
        "extra": "",
    }


def _applies(marker: Marker | None, environment: dict[str, str], extras: set[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""}))


def _logical_lines(text: str) -> list[str]:
    """Requirement lines with continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def is_lock(requirements: Path) -> bool:
    """A lock pins every package with hashes (`make lock`); a plain file pins the top level only."""
    return "--hash=" in requirements.read_text()


def locked_requirements(lock: Path, architecture: str = "arm64") -> list[str]:
    """The lock's packages for Lambda, with their hashes, less what the runtime has (one line each)."""
    environment = _marker_environment(architecture)
    out: list[str] = []
    for line in _logical_lines(lock.read_text()):
        if line.startswith("-"):
            continue  # options (--index-url ...) are pip's business, not a package
        spec, *options = line.split(" --")
        requirement = Requirement(spec)
        pins = [s for s in requirement.specifier if s.operator == "=="]
        if len(pins) != 1 or len(requirement.specifier) != 1:
            raise ValueError(f"{lock.name}: {requirement.name} is not pinned to one version ({spec.strip()})")
        if canonical(requirement.name) in RUNTIME_PROVIDED or not _applies(requirement.marker, environment, set()):
            continue
        hashes = [f"--{o.strip()}" for o in options if o.startswith("hash=")]
        if not hashes:
            raise ValueError(f"{lock.name}: {requirement.name} has no --hash")
        out.append(" ".join([f"{canonical(requirement.name)}=={pins[0].version}", *hashes]))
    return sorted(out)


def installed_requirements(requirements: Path, architecture: str = "arm64") -> list[str]:
    """A plain (unlocked) requirements file: its packages and their dependencies, pinned at the versions
    installed here, less what the runtime has. Only until the lock lands; `make lock` writes the lock."""
    environment = _marker_environment(architecture)
    pending = [Requirement(line) for line in _logical_lines(requirements.read_text()) if not line.startswith("-")]
    pinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        key = (name, frozenset(requirement.extras))
        if name in RUNTIME_PROVIDED or key in seen:
            continue
        seen.add(key)
        distribution = metadata.distribution(requirement.name)
        pinned[name] = f"{name}=={distribution.version}"
        for spec in distribution.requires or []:
            dependency = Requirement(spec)
            if _applies(dependency.marker, environment, set(requirement.extras)):
                pending.append(dependency)
    return sorted(pinned.values())


def lambda_requirements(requirements: Path, architecture: str = "arm64") -> list[str]:
    """What the zip holds, from the runtime lock (or, before the lock, from what is installed)."""
    if is_lock(requirements):
        return locked_requirements(requirements, architecture)
    return installed_requirements(requirements, architecture)


def stage_sources(stage: str, src: Path) -> None:
    """Copy what Chalice packages into `src`, keeping src/.chalice/deployments (Chalice's cache)."""
    src.mkdir(parents=True, exist_ok=True)
    for name in APP_SOURCES:
        target = src / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif origin.exists():
            shutil.copy2(origin, target)
    chalice_dir = src / ".chalice"
    chalice_dir.mkdir(exist_ok=True)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    shutil.copy2(ROOT / ".chalice" / "config.json", chalice_dir / "config.json")
    policy = config["stages"][stage].get("iam_policy_file")
    if policy:
        shutil.copy2(ROOT / ".chalice" / policy, chalice_dir / policy)
    lines = lambda_requirements(ROOT / "requirements.txt", architecture_of(stage))
    header = "# Generated by infra/package.py from the runtime lock (requirements.txt): boto3, botocore and their\n"
    header += "# dependencies come with the Lambda runtime and are left out.\n"
    (src / "requirements.txt").write_text(header + "\n".join(lines) + "\n")


def compile_zip(path: Path) -> dict[str, Any]:
    """Add bytecode for this Python to the zip and rewrite it reproducibly (see the module's step 5)."""
    with tempfile.TemporaryDirectory(prefix="iotcloud-zip-") as tmp:
        tree = Path(tmp) / "task"
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            # Whatever bytecode came in (none from Chalice today) is rebuilt, not trusted.
            kept = [n for n in names if "__pycache__/" not in n and not n.endswith((".pyc", ".pyo"))]
            for name in kept:
                z.extract(name, tree)
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # set constants are marshalled in hash order
        env.pop("PYTHONPYCACHEPREFIX", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        done = subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-d", TASK_ROOT, "--invalidation-mode", "unchecked-hash"]
            + ["-j", "1", str(tree)],
            env=env,
            capture_output=True,
            text=True,
        )
        files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
        unpacked = path.with_suffix(".tmp")
        with zipfile.ZipFile(unpacked, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for name in files:
                info = zipfile.ZipInfo(name, ZIP_EPOCH)
                info.external_attr = FILE_MODE << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, whatever the build machine
                z.writestr(info, (tree / name).read_bytes(), compresslevel=9)
        unpacked.replace(path)
    # compileall fails on files that are not valid Python for this version (none expected): report them.
    failed = re.findall(r"\*\*\* Error compiling '([^']+)'", done.stdout + done.stderr)
    return {"compile_returncode": done.returncode, "compile_failed": failed}


MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}


def missing_bytecode(names: list[str], cache_tag: str) -> list[str]:
    """Modules of the zip without a `__pycache__/<module>.<cache_tag>.pyc` beside them."""
    present = set(names)
    missing = []
    for name in names:
        if name.endswith(".py"):
            folder, _, module = name.rpartition("/")
            pyc = f"{folder + '/' if folder else ''}__pycache__/{module[:-3]}.{cache_tag}.pyc"
            if pyc not in present:
                missing.append(name)
    return missing


def zip_report(path: Path, architecture: str = "arm64", runtime: str = LAMBDA_RUNTIME) -> dict[str, Any]:
    """Sizes, the largest top-level entries, and what should not be there."""
    with zipfile.ZipFile(path) as z:
        entries = z.infolist()
    names = [e.filename for e in entries]
    compiled = sorted(n for n in names if n.endswith((".so", ".pyd", ".dylib")))
    tops: Counter[str] = Counter()
    for entry in entries:
        tops[entry.filename.split("/", 1)[0]] += entry.compress_size
    major, minor = runtime_version(runtime)
    cache_tag = f"cpython-{major}{minor}"
    return {
        "zip_bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "unzipped_bytes": sum(e.file_size for e in entries),
        "files": len(entries),
        "runtime": runtime,
        "pyc_files": sum(n.endswith(f".{cache_tag}.pyc") for n in names),
        "without_bytecode": missing_bytecode(names, cache_tag),
        "foreign_bytecode": [n for n in names if n.endswith(".pyc") and f".{cache_tag}." not in n],
        "largest": tops.most_common(8),
        "runtime_provided": sorted(
            {canonical(e.filename.split("/", 1)[0]).split("-")[0] for e in entries}
            & {"boto3", "botocore", "s3transfer"}
        ),
        "compiled": compiled,
        # Chalice fetches manylinux wheels for the functions' architecture; anything else would not load.
        "foreign": [name for name in compiled if MACHINE[architecture] not in name],
    }


def function_runtimes(sam: dict[str, Any]) -> dict[str, str | None]:
    """Each function of the template and its Runtime."""
    return {
        logical: resource.get("Properties", {}).get("Runtime")
        for logical, resource in sam["Resources"].items()
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function")
    }


def package(stage: str, out: Path, chalice: str | None = None) -> dict[str, Any]:
    """Stage, generate the merge template, run `chalice package`, add bytecode; returns the zip report."""
    check_builder()
    src = out / "src"
    stage_sources(stage, src)
    resources = out / "resources.json"
    # A process of its own: app.py is imported with the stage's environment (as Chalice does).
    subprocess.run(
        [sys.executable, "-m", "infra.resources", "--stage", stage, "--out", str(resources)],
        cwd=ROOT,
        check=True,
    )
    for stale in ("sam.json", "deployment.zip"):
        (out / stale).unlink(missing_ok=True)
    env = {
        **os.environ,
        "PIP_NO_DEPS": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    chalice_bin = chalice or str(Path(sys.executable).with_name("chalice"))
    command = [chalice_bin, "--project-dir", str(src), "package", "--stage", stage]
    command += ["--merge-template", str(resources), str(out)]
    subprocess.run(command, cwd=src, env=env, check=True)
    compiled = compile_zip(out / "deployment.zip")
    report = zip_report(out / "deployment.zip", architecture_of(stage))
    report.update(compiled)
    report["function_runtimes"] = function_runtimes(json.loads((out / "sam.json").read_text()))
    return report


def architecture_of(stage: str) -> str:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return str(config["stages"][stage].get("lambda_architecture") or config.get("lambda_architecture", "x86_64"))


def problems_of(report: dict[str, Any]) -> list[str]:
    """What makes the package unfit to deploy."""
    problems = []
    if report["zip_bytes"] >= TARGET_ZIP_BYTES:
        problems.append("the zip is 10 MB or more")
    if report["runtime_provided"]:
        problems.append(f"the zip holds what the runtime provides: {report['runtime_provided']}")
    if report["foreign"]:
        problems.append(f"the zip holds code compiled for another architecture: {report['foreign'][:5]}")
    if report.get("compile_failed") or report["without_bytecode"] or report["foreign_bytecode"]:
        missing = report.get("compile_failed") or report["without_bytecode"] or report["foreign_bytecode"]
        problems.append(f"the zip's bytecode is incomplete or for another Python: {missing[:5]}")
    wrong = {k: v for k, v in report.get("function_runtimes", {}).items() if v != report["runtime"]}
    if wrong:
        problems.append(f"functions whose Runtime is not {report['runtime']}: {wrong}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", type=Path, help="default: build/<stage>")
    args = parser.parse_args(argv)
    out = (args.out or ROOT / "build" / args.stage).resolve()
    try:
        report = package(args.stage, out)
    except RuntimeMismatch as e:
        print(e, file=sys.stderr)
        return 2
    mb = 1024 * 1024
    print(f"template: {out / 'sam.json'} ({len(report['function_runtimes'])} functions, runtime {report['runtime']})")
    print(
        f"lambda zip: {out / 'deployment.zip'}: {report['zip_bytes'] / mb:.2f} MB "
        f"({report['unzipped_bytes'] / mb:.2f} MB unzipped, {report['files']} files, "
        f"{report['pyc_files']} .pyc; target < 10 MB)"
    )
    print(f"sha256: {report['sha256']}")
    print("largest: " + ", ".join(f"{name} {size / mb:.2f} MB" for name, size in report["largest"]))
    problems = problems_of(report)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
