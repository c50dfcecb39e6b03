"""Cold start: import time of the app next to a bare import of its frameworks, and the Lambda zip.

Each import is timed in a fresh interpreter (the median of RUNS, the two statements
interleaved so machine noise hits both alike):

- cached: every module's bytecode cached (PYTHONPYCACHEPREFIX, primed by one run), so
  both sides pay only for executing their modules, from the working tree;
- as deployed: from the unzipped Lambda zip, as Lambda runs it: an isolated interpreter
  (-I -S: no site-packages) whose sys.path is the package directory first, then the
  runtime's boto3 and its dependencies (the virtualenv's copies, with their bytecode, as
  the runtime's have theirs), and nothing written (-B: /var/task is read-only). The zip
  ships its own bytecode (infra/package.py), so only what it lacks would be compiled.
  The bare imports run the same way, so Chalice and PynamoDB come from the zip on both
  sides.

The target (at most 1.3x) holds for both.

When the ratio is above the target, `python -X importtime` names the modules only the
app imports and their own (self) time, and a profile of `import app` after the bare
imports shows how much of it goes to building dataclasses and compiling source.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TARGET_RATIO = 1.3
STATEMENTS = {"app": "import app", "bare": "import boto3, chalice, pynamodb.models"}
SOURCES = ("app.py", "chalicelib", "requirements.txt", ".chalice/config.json", "infra/package.py")
# What the Lambda runtime brings besides the standard library (infra.package.RUNTIME_PROVIDED, as modules).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")

PROFILE_SCRIPT = """
import cProfile, json, pstats
import boto3, chalice, pynamodb.models
profile = cProfile.Profile()
profile.enable()
import app
profile.disable()
stats = pstats.Stats(profile).stats
def cumulative(file_part, function):
    hits = [(v[1], v[3]) for (f, _, name), v in stats.items() if file_part in f and name == function]
    return {"calls": sum(h[0] for h in hits), "ms": sum(h[1] for h in hits) * 1000}
print(json.dumps({
    "total_ms": sum(v[2] for v in stats.values()) * 1000,
    "dataclass_decoration": cumulative("dataclasses.py", "_process_class"),
    "source_compilation": cumulative("~", "<built-in method builtins.compile>"),
    "regex_compilation": cumulative("re/__init__.py", "_compile"),
}))
"""


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPYCACHEPREFIX"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


class Interpreter:
    """How a fresh interpreter is started for one measurement: flags, sys.path prefix, environment, cwd."""

    def __init__(self, env: dict[str, str], cwd: Path, flags: tuple[str, ...] = (), path: tuple[str, ...] = ()) -> None:
        self.env, self.cwd, self.flags, self.path = env, cwd, flags, path

    def argv(self, code: str) -> list[str]:
        prelude = f"import sys; sys.path[:0] = {list(self.path)!r}\n" if self.path else ""
        return [sys.executable, *self.flags, "-c", prelude + code]


def lambda_like(task: Path, runtime: Path, stage: str) -> Interpreter:
    """The unzipped package as Lambda imports it (see the module's docstring), with the stage's variables."""
    from infra.stages import stage_environment

    env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1", "LANG": "C.UTF-8"}
    env.update(stage_environment(stage))
    return Interpreter(env, task, ("-I", "-S", "-B"), (str(task), str(runtime)))


def runtime_dir(work: Path) -> Path:
    """boto3 and its dependencies alone in a directory (links to this environment's), like the runtime's."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    runtime = work / "runtime"
    runtime.mkdir(exist_ok=True)
    for name in RUNTIME_MODULES:
        if not (runtime / name).exists():
            (runtime / name).symlink_to(site / name)
    return runtime


def _seconds(statement: str, where: Interpreter) -> tuple[float, float]:
    """(wall, CPU) seconds of `statement` in a fresh interpreter."""
    code = (
        "import time; w = time.perf_counter(); c = time.process_time(); "
        f"{statement}; print(time.perf_counter() - w, time.process_time() - c)"
    )
    done = subprocess.run(where.argv(code), cwd=where.cwd, env=where.env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{statement!r} failed: {done.stderr[-2000:]}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _medians(where: Interpreter, runs: int) -> dict[str, Any]:
    """Medians of both statements, interleaved. The CPU time is the headline: a loaded machine stretches wall
    time (waiting for a core) but not the work an import does, and Lambda gives each sandbox its own CPU share."""
    wall: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    cpu: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(runs):
        for name, statement in STATEMENTS.items():
            w, c = _seconds(statement, where)
            wall[name].append(w)
            cpu[name].append(c)
    mw = {name: statistics.median(values) for name, values in wall.items()}
    mc = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "app_ms": mc["app"] * 1000,
        "bare_ms": mc["bare"] * 1000,
        "ratio": mc["app"] / mc["bare"],
        "meets_target": mc["app"] / mc["bare"] <= TARGET_RATIO,
        "measure": "CPU time (process_time) of the import, median",
        "wall_app_ms": mw["app"] * 1000,
        "wall_bare_ms": mw["bare"] * 1000,
        "wall_ratio": mw["app"] / mw["bare"],
        "samples_wall_ms": {name: [round(v * 1000, 1) for v in values] for name, values in wall.items()},
        "samples_cpu_ms": {name: [round(v * 1000, 1) for v in values] for name, values in cpu.items()},
    }


def _importtime(statement: str, env: dict[str, str]) -> dict[str, tuple[int, int]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], cwd=ROOT, env=env, capture_output=True, text=True
    )
    found = {}
    for line in done.stderr.splitlines():
        match = IMPORTTIME.match(line)
        if match:
            found[match.group(4)] = (int(match.group(1)), int(match.group(2)))
    return found


def _least(statement: str, env: dict[str, str], repeats: int) -> dict[str, tuple[int, int]]:
    """Per module, the least self and cumulative time over `repeats` runs (noise only adds)."""
    runs = [_importtime(statement, env) for _ in range(repeats)]
    return {name: (min(r[name][0] for r in runs), min(r[name][1] for r in runs)) for name in runs[0]}


def slow_imports(env: dict[str, str], top: int = 12, repeats: int = 3) -> dict[str, Any]:
    """Modules only the app imports, by their own import time (python -X importtime, least of `repeats`)."""
    app = _least(STATEMENTS["app"], env, repeats)
    bare = _least(STATEMENTS["bare"], env, repeats)
    only = {name: times for name, times in app.items() if name not in bare}
    by_package: Counter[str] = Counter()
    for name, (self_us, _) in only.items():
        parts = name.split(".")
        by_package[".".join(parts[:2]) if parts[0] == "chalicelib" else parts[0]] += self_us
    profile = subprocess.run(
        [sys.executable, "-c", PROFILE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    profiled = json.loads(profile.stdout)
    profiled["dataclass_share"] = profiled["dataclass_decoration"]["ms"] / profiled["total_ms"]
    return {
        "app_only_modules": len(only),
        "app_only_self_ms": sum(s for s, _ in only.values()) / 1000,
        "top_modules_self_ms": [
            {"module": name, "self_ms": s / 1000, "cumulative_ms": c / 1000}
            for name, (s, c) in sorted(only.items(), key=lambda kv: -kv[1][0])[:top]
        ],
        "by_package_self_ms": [{"package": k, "self_ms": v / 1000} for k, v in by_package.most_common(top)],
        "profile_of_import_app_after_bare": profiled,
    }


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file() and "__pycache__" not in f.parts)])
    return newest


def lambda_zip(stage: str, workdir: Path) -> tuple[Path | None, dict[str, Any]]:
    """The stage's Lambda zip: build/<stage>/deployment.zip if up to date, else packaged into `workdir`."""
    built = ROOT / "build" / stage / "deployment.zip"
    if built.exists() and built.stat().st_mtime >= _newest_source():
        return built, {"source": f"build/{stage}/deployment.zip (newer than the sources)"}
    out = workdir / "package"
    try:
        try:  # `make package`'s builder: it leaves out what the Lambda runtime provides
            infra_package: Any = importlib.import_module("infra.package")
        except ImportError:
            infra_package = None
        if infra_package is not None:
            infra_package.package(stage, out)
            how = f"python -m infra.package --stage {stage} --out <tmp> (what `make package` runs)"
        else:
            env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
            env.pop("AWS_ENDPOINT_URL", None)
            subprocess.run(
                [str(Path(sys.executable).with_name("chalice")), "package", "--stage", stage, str(out)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            how = f"chalice package --stage {stage} <tmp>"
        return out / "deployment.zip", {"source": how}
    except Exception as e:  # offline, or packaging broken: say so, measure what exists
        if built.exists():
            return built, {"source": f"build/{stage}/deployment.zip (older than the sources)", "package_error": str(e)}
        return None, {"source": None, "package_error": str(e)}


def zip_figures(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as z:
        entries = z.infolist()
    packages: Counter[str] = Counter()
    for entry in entries:
        packages[entry.filename.split("/", 1)[0]] += entry.compress_size
    return {
        "zip_bytes": path.stat().st_size,
        "unzipped_bytes": sum(e.file_size for e in entries),
        "files": len(entries),
        "pyc_files": sum(e.filename.endswith(".pyc") for e in entries),
        "biggest_packages": [{"name": k, "compressed_bytes": v} for k, v in packages.most_common(8)],
        "biggest_files": [
            {"name": e.filename, "compressed_bytes": e.compress_size, "bytes": e.file_size}
            for e in sorted(entries, key=lambda e: -e.compress_size)[:8]
        ],
    }


def run(stage: str = "dev", runs: int = RUNS) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs_each": runs,
        "statements": STATEMENTS,
        "target_ratio": TARGET_RATIO,
        "load_average_1m_at_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="iotcloud-bench-") as tmp:
        work = Path(tmp)
        env = _environment(PYTHONPYCACHEPREFIX=str(work / "pycache"))
        cached = Interpreter(env, ROOT)
        for statement in STATEMENTS.values():  # prime the bytecode cache
            _seconds(statement, cached)
        out["cached"] = _medians(cached, runs)
        out["import_ratio"] = out["cached"]["ratio"]
        out["slow_imports"] = slow_imports(env)
        path, source = lambda_zip(stage, work)
        out["zip"] = {"stage": stage, **source}
        if path is not None:
            out["zip"].update(zip_figures(path))
            unzipped = work / "task"
            with zipfile.ZipFile(path) as z:
                z.extractall(unzipped)
            out["as_deployed"] = _medians(lambda_like(unzipped, runtime_dir(work), stage), runs)
    measured = [out[k]["meets_target"] for k in ("cached", "as_deployed") if k in out]
    out["meets_target"] = all(measured) and len(measured) == 2
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
