"""device_sim: the command line (runs against the in-process fake server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_sim.cli import build_parser, main


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTCLOUD_URL", raising=False)
    args = build_parser().parse_args([])
    assert args.url == "http://127.0.0.1:8000"
    assert (args.devices, args.duration, args.interval, args.batch) == (None, 30.0, None, 10)
    assert (args.fmt, args.seed, args.concurrency, args.tokens_file) == ("json", 1, 64, None)


def test_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTCLOUD_URL", "https://abc.execute-api.eu-west-1.amazonaws.com/api")
    assert build_parser().parse_args([]).url.startswith("https://abc.")


def test_help_never_prints_the_admin_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOTCLOUD_ADMIN_TOKEN", "super-secret-token")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "super-secret-token" not in capsys.readouterr().out


def test_fake_server_run_writes_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code = main(
        [
            "--fake-server", "--devices", "3", "--count", "4", "--interval", "0",
            "--batch", "2", "--format", "senml-json", "--verify", "--no-progress",
            "--malformed-rate", "0.5", "--duplicate-rate", "0.5",
            "--report", str(report),
        ]
    )  # fmt: skip
    assert code == 0
    data = json.loads(report.read_text())
    assert data["devices"] == 3 and data["format"] == "senml-json"
    assert data["records_acked"] == 12
    assert data["verify"]["missing"] == 0
    assert data["exit_code"] == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--batch", "0"],
        ["--duplicate-rate", "2"],
        ["--url", "ftp://x"],
        ["--profile", "no-such-profile"],
        ["--batch", "20", "--buffer-limit", "10"],
    ],
)
def test_bad_options_exit_2(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTCLOUD_ADMIN_TOKEN", "t")
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2


def test_missing_admin_token_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTCLOUD_ADMIN_TOKEN", raising=False)
    assert main(["--no-progress", "--count", "1"]) == 2
