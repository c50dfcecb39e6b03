"""The rooms' import rules (README, Architecture): the domain is pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "chalicelib" / "domain"
# What the domain may import from the app: its own modules and these small, AWS-free ones.
DOMAIN_MAY_IMPORT = ("chalicelib.domain", "chalicelib.errors", "chalicelib.clock", "chalicelib.logs")
AWS_LIBRARIES = ("boto3", "botocore", "pynamodb", "chalice", "moto")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "chalicelib":
                names += [f"chalicelib.{alias.name}" for alias in node.names]
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("path", sorted(DOMAIN.rglob("*.py")), ids=lambda p: str(p.relative_to(DOMAIN)))
def test_the_domain_imports_no_aws_library_and_no_outer_room(path: Path) -> None:
    names = _imports(path)
    assert [n for n in names if _within(n, AWS_LIBRARIES)] == []
    outer = [n for n in names if n.startswith("chalicelib") and n != "chalicelib" and not _within(n, DOMAIN_MAY_IMPORT)]
    assert outer == []


def test_the_rule_sees_an_outer_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from chalicelib import wiring\nimport boto3\n")
    assert _imports(module) == ["chalicelib", "chalicelib.wiring", "boto3"]
