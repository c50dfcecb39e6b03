"""The dependency locks (infra/check_lock.py): the repository's own, and the checker on broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from infra import check_lock
from infra.check_lock import Locked, LockError, read_inputs, read_lock
from tests.deploy.conftest import ROOT

HASH_A = "--hash=sha256:" + "a" * 64
HASH_B = "--hash=sha256:" + "b" * 64


def test_the_repository_locks_are_complete_hashed_and_agree() -> None:
    assert check_lock.static_problems() == []


def test_every_lock_covers_linux_aarch64_wheels_of_compiled_packages() -> None:
    # Lambda arm64 and aarch64 machines: uv locks the hashes of every file of a release, so a
    # package with a C extension carries several wheel hashes (one per platform), not just ours.
    runtime = read_lock(ROOT / "requirements.txt")
    dev = read_lock(ROOT / "requirements-dev.txt")
    for locked in (runtime["markupsafe"], dev["websockets"], dev["pydantic-core"], dev["cryptography"]):
        assert len(locked.hashes) >= 4, locked


def test_the_dev_lock_holds_the_runtime_lock() -> None:
    runtime = read_lock(ROOT / "requirements.txt")
    dev = read_lock(ROOT / "requirements-dev.txt")
    assert {k: v.version for k, v in runtime.items()} == {k: dev[k].version for k in runtime}


def test_read_lock_joins_continuations_and_reads_markers(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# header\n"
        f"Foo_Bar==1.2.3 \\\n    {HASH_A} \\\n    {HASH_B}\n    # via -r x.in\n"
        f"colorama==0.4.6 ; sys_platform == 'win32' \\\n    {HASH_A}\n"
    )
    entries = read_lock(lock)
    assert entries["foo-bar"].version == "1.2.3"
    assert len(entries["foo-bar"].hashes) == 2
    colorama = entries["colorama"]
    assert colorama.marker is not None
    assert not check_lock.applies(colorama.marker, check_lock.environment("aarch64", "3.11"))


@pytest.mark.parametrize(
    "line",
    ["jinja2==3.1.6\n", "jinja2>=3.1 \\\n    " + HASH_A + "\n", "jinja2==3.1.6 --no-binary :all: " + HASH_A + "\n"],
    ids=["no hash", "not exact", "other option"],
)
def test_read_lock_refuses_an_entry_that_is_not_an_exact_hashed_pin(tmp_path: Path, line: str) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(line)
    with pytest.raises(LockError):
        read_lock(lock)


def test_read_inputs_follows_includes(tmp_path: Path) -> None:
    (tmp_path / "base.in").write_text("# runtime\njinja2~=3.1  # templates\n")
    (tmp_path / "dev.in").write_text("-r base.in\n-c base.txt\npytest~=9.2\n")
    assert [str(r) for r in read_inputs(tmp_path / "dev.in")] == ["jinja2~=3.1", "pytest~=9.2"]


def _lock(**versions: str) -> dict[str, Locked]:
    return {name: Locked(name, version, None, ("sha256:" + "a" * 64,)) for name, version in versions.items()}


def test_an_input_outside_its_lock_is_reported() -> None:
    inputs = [Requirement("jinja2~=3.1"), Requirement("rich")]
    problems = check_lock.input_problems("x.in", inputs, _lock(jinja2="2.11"))
    assert problems == [
        "x.in: jinja2~=3.1 but the lock has 2.11 (run make lock)",
        "x.in: rich is not in the lock (run make lock)",
    ]


def test_locks_that_disagree_are_reported() -> None:
    problems = check_lock.agreement_problems({"a.txt": _lock(six="1.17.0"), "b.txt": _lock(six="1.16.0", rich="1")})
    assert problems == ["six is 1.17.0 in a.txt but 1.16.0 in b.txt"]


def test_the_closure_finds_a_missing_dependency_and_an_extra_one() -> None:
    metadata = {
        "jinja2": [Requirement("markupsafe>=2.0"), Requirement("babel>=2.7; extra == 'i18n'")],
        "markupsafe": [],
        "pywin": [],
        "stale": [],
        "arm-only": [],
    }
    inputs = [Requirement("jinja2"), Requirement("arm-only; platform_machine == 'aarch64'")]
    # markupsafe is missing; stale is needed by nothing; babel is only for an extra not asked for.
    lock = _lock(jinja2="3.1.6", stale="1", **{"arm-only": "1"})
    lock["pywin"] = Locked("pywin", "1", Marker("sys_platform == 'win32'"), ("sha256:x",))
    problems = check_lock.closure_problems("r.in", inputs, lock, "3.11", requires=metadata.__getitem__)
    assert problems == [
        "r.in (x86_64): needs markupsafe, which the lock lacks",
        "r.in (x86_64): holds arm-only, which no input needs",
        "r.in (x86_64): holds stale, which no input needs",
        "r.in (aarch64): needs markupsafe, which the lock lacks",
        "r.in (aarch64): holds stale, which no input needs",
    ]


def test_a_venv_that_drifted_from_the_locks_is_reported() -> None:
    expected = _lock(websockets="17.4", rich="15.0.0")
    installed = {"websockets": "15.0.1", "hypothesis": "6.0", "iotcloud": "0.1.0"}
    assert check_lock.venv_problems(expected, installed, project="iotcloud") == [
        "installed hypothesis==6.0 is in no lock",
        "installed websockets==15.0.1 but the lock has 17.4",
        "locked rich==15.0.0 is not installed",
    ]


def test_the_venv_digest_sees_one_changed_byte_and_not_the_venv_path(tmp_path: Path) -> None:
    def make(venv: Path, payload: bytes) -> dict[str, str]:
        site = venv / "lib" / "python3.11" / "site-packages"
        (site / "pkg" / "__pycache__").mkdir(parents=True)
        (venv / "bin").mkdir()
        (site / "pkg" / "__init__.py").write_bytes(payload)
        (site / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(str(venv).encode())
        (venv / "bin" / "tool").write_text(f"#!{venv.resolve()}/bin/python\n")
        info = site / "pkg-1.0.dist-info"
        info.mkdir()
        (info / "RECORD").write_text(
            "pkg/__init__.py,,\npkg/__pycache__/__init__.cpython-311.pyc,,\n../../../bin/tool,,\n"
            "pkg-1.0.dist-info/RECORD,,\n"
        )
        return check_lock.venv_digest(venv)

    one = make(tmp_path / "one", b"x = 1\n")
    project = tmp_path / "one" / "lib" / "python3.11" / "site-packages" / "iotcloud-0.1.0.dist-info"
    project.mkdir()
    (project / "RECORD").write_text("__editable__.iotcloud-0.1.0.pth,,\n")
    (project.parent / "__editable__.iotcloud-0.1.0.pth").write_text(str(tmp_path))
    assert check_lock.venv_digest(tmp_path / "one", skip="iotcloud") == one
    assert sorted(one) == ["<venv>/bin/tool", "<venv>/lib/python3.11/site-packages/pkg/__init__.py"]
    assert make(tmp_path / "two", b"x = 1\n") == one
    assert make(tmp_path / "three", b"x = 2\n") != one


def test_imports_and_inputs_are_matched_both_ways(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from __future__ import annotations\nimport json, yaml\nfrom . import sibling\n"
        "def f():\n    import txaio.aio\n    from packaging.version import Version\n    from mine import x\n"
    )
    imported = check_lock.imported_modules([source])
    assert imported == {"__future__", "json", "yaml", "txaio", "packaging", "mine"}
    providers = {"yaml": ["pyyaml"], "txaio": ["txaio"], "packaging": ["packaging"]}
    inputs = {"pyyaml", "txaio", "hypothesis", "ruff"} | set(check_lock.NOT_IMPORTED) - {"uv"}
    assert check_lock.import_problems(imported | {"nowhere"}, {"mine"}, inputs, providers) == [
        "the code imports nowhere, which no installed distribution provides",
        "the code imports packaging (packaging), which no requirements*.in names",
        "hypothesis is an input that nothing imports (add it to NOT_IMPORTED with its use, or drop it)",
        "NOT_IMPORTED names uv, which is no input",
    ]
