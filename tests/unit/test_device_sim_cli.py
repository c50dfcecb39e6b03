"""device_sim: the command line (runs against the in-process fake server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_sim.cli import build_parser, main, resolve_ingest_url


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTCLOUD_URL", raising=False)
    args = build_parser().parse_args([])
    assert args.url == "http://127.0.0.1:8000"
    assert (args.devices, args.duration, args.interval, args.batch) == (None, 30.0, None, 10)
    assert (args.fmt, args.seed, args.concurrency, args.tokens_file) == ("json", 1, 64, None)


def test_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTCLOUD_URL", "https://abc.execute-api.eu-west-1.amazonaws.com/api")
    assert build_parser().parse_args([]).url.startswith("https://abc.")


def test_help_never_prints_the_admin_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
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


def test_ingest_url_precedence(tmp_path: Path) -> None:
    conn = tmp_path / "connection.json"
    conn.write_text(json.dumps({"api_url": "http://127.0.0.1:9000", "function_url": "http://127.0.0.1:9002"}))
    api = "http://127.0.0.1:9000"
    assert resolve_ingest_url("https://x.lambda-url.eu-west-1.on.aws/", "api", api, [conn]) == (
        "https://x.lambda-url.eu-west-1.on.aws"
    )
    assert resolve_ingest_url(None, "function-url", api + "/", [conn]) == "http://127.0.0.1:9002"
    assert resolve_ingest_url(None, "api", api, [conn]) is None  # telemetry goes to --url
    # Another stack's file is never used.
    assert resolve_ingest_url(None, "function-url", "http://127.0.0.1:8000", [conn]) is None


def test_the_function_url_door_without_a_known_url_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IOTCLOUD_ADMIN_TOKEN", "t")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("device_sim.cli.connection_files", lambda: [tmp_path / "absent.json"])
    assert main(["--no-progress", "--count", "1", "--door", "function-url"]) == 2
    assert main(["--no-progress", "--count", "1", "--ingest-url", "ftp://x"]) == 2


def test_the_report_names_where_telemetry_went(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    argv = ["--fake-server", "--devices", "1", "--count", "2", "--interval", "0", "--no-progress"]
    assert main([*argv, "--ingest-url", "http://door.invalid", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["ingest_url"] == "http://door.invalid"
