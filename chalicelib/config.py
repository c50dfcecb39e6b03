"""The one reader of environment variables.

Settings are read lazily, once, into a frozen dataclass. Chalice puts each stage's
`environment_variables` (.chalice/config.json) into the Lambda environment; the
local stack and the tests set the same variables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from chalicelib.domain.readings import Limits

# API Gateway ends a REST integration after 29 s (a 504 the device cannot tell from a loss).
API_GATEWAY_TIMEOUT_S = 29.0
DEFAULT_RETRY_BUDGET_S = 10.0
DYNAMODB_CONNECT_TIMEOUT_S = 1.0
DYNAMODB_READ_TIMEOUT_S = 3.0
ROLLUP_ENGINES = ("lambda", "athena")
# Where the in-Lambda hourly job stops fitting: bench/rollup_engines.py measures its CPU per million
# readings; at this rate an hour's rollup takes about a third of the 900 s Lambda limit (the README
# and docs/PERFORMANCE.md give the figure). Past it, set ROLLUP_ENGINE=athena.
ATHENA_THRESHOLD_READINGS_PER_HOUR = 20_000_000
ATHENA_RESULTS_PREFIX = "athena-results/"


def _sibling(readings_table: str, kind: str) -> str:
    """iotcloud-<stage>-readings -> iotcloud-<stage>-<kind>: a stage's resources share a prefix."""
    prefix = readings_table.removesuffix("-readings")
    return f"{prefix}-{kind}"


# Settings fields that, when not configured, are named after the readings table (_sibling).
_DERIVED_NAMES = {
    "aggregates_table": "aggregates",
    "realtime_table": "realtime",
    "alerts_table": "alerts",
    "call_timeout_queue": "call-timeouts",
}


@dataclass(frozen=True)
class Settings:
    stage: str
    devices_table: str
    readings_table: str
    archive_bucket: str
    aggregates_table: str = ""
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    admin_token_hashes: frozenset[str] = frozenset()
    auth_cache_ttl_seconds: float = 5.0
    retention_days: int = 30
    write_max_attempts: int = 6  # per DynamoDB call, within the retry budget below
    # One retry budget per request: every DynamoDB call an API request (or a WebSocket
    # message) makes, with its retries, shares this many seconds (adapters.retry). Below
    # API Gateway's 29 s integration timeout, so the device gets the 503, not a 504.
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S
    # Per DynamoDB attempt: a hung connection or answer fails after these (PynamoDB's
    # defaults are 15 s and 30 s), so one call cannot eat the budget.
    dynamodb_connect_timeout_s: float = DYNAMODB_CONNECT_TIMEOUT_S
    dynamodb_read_timeout_s: float = DYNAMODB_READ_TIMEOUT_S
    limits: Limits = field(default_factory=Limits)
    # Scaling reports: who gets them and how mail leaves (SES unless SMTP_HOST is set).
    mail_from: str = ""
    report_recipients: tuple[str, ...] = ()
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = ""
    scaling_file: str = ""
    metrics_sink: str = "emf"  # emf (Lambda) | cloudwatch (PutMetricData: the local stack) | off
    # Realtime (WAMP over API Gateway WebSocket) and alerts.
    realtime_table: str = ""
    alerts_table: str = ""
    call_timeout_queue: str = ""
    websocket_management_url: str = ""  # empty: derived from each event (https://<domain>/<stage>)
    wamp_call_timeout_s: int = 30
    # The dashboard (chalicelib/web): its session cookies and WAMP tickets are signed with
    # session_secret (empty: a random secret per process, so sessions end with the process).
    session_secret: str = ""
    session_ttl_s: int = 8 * 3600
    public_ws_url: str = ""  # the WAMP WebSocket URL browsers use (empty: pages poll instead)
    # The hourly rollup's engine (ROLLUP_ENGINES): map/reduce inside the job's Lambda, or SQL on
    # Athena for fleets past ATHENA_THRESHOLD_READINGS_PER_HOUR. Athena's names: its workgroup (empty:
    # iotcloud-<stage>), the Glue database of the tables (iotcloud_<stage>), where results go (empty:
    # s3://<archive bucket>/athena-results/).
    rollup_engine: str = "lambda"
    athena_workgroup: str = ""
    athena_database: str = ""
    athena_output: str = ""

    def __post_init__(self) -> None:
        # The one rule for a stage's derived names, however Settings is built (from_env or directly).
        for name, kind in _DERIVED_NAMES.items():
            if not getattr(self, name):
                object.__setattr__(self, name, _sibling(self.readings_table, kind))
        if self.rollup_engine not in ROLLUP_ENGINES:
            raise ValueError(f"ROLLUP_ENGINE={self.rollup_engine!r}: must be one of {', '.join(ROLLUP_ENGINES)}")
        if not self.athena_workgroup:  # the stage's own (infra.bootstrap makes it)
            object.__setattr__(self, "athena_workgroup", f"iotcloud-{self.stage}")
        if not self.athena_database:  # Glue names take no hyphens
            object.__setattr__(self, "athena_database", f"iotcloud_{self.stage}".replace("-", "_"))
        if not self.athena_output and self.archive_bucket:
            object.__setattr__(self, "athena_output", f"s3://{self.archive_bucket}/{ATHENA_RESULTS_PREFIX}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return default if raw in (None, "") else int(raw)  # type: ignore[arg-type]


def _retry_budget(env: Mapping[str, str]) -> float:
    raw = env.get("RETRY_BUDGET_SECONDS") or str(DEFAULT_RETRY_BUDGET_S)
    budget = float(raw)
    # An attempt starts only if its worst case (both timeouts) fits in what is left.
    one_attempt = DYNAMODB_CONNECT_TIMEOUT_S + DYNAMODB_READ_TIMEOUT_S
    if not one_attempt <= budget < API_GATEWAY_TIMEOUT_S:
        raise ValueError(
            f"RETRY_BUDGET_SECONDS={raw}: must be at least one DynamoDB attempt's worst case "
            f"({one_attempt:g} s) and below API Gateway's {API_GATEWAY_TIMEOUT_S:g} s"
        )
    return budget


def from_env(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping (explicit beats implicit in tests)."""
    hashes = frozenset(h.strip().lower() for h in env.get("ADMIN_TOKEN_HASHES", "").split(",") if h.strip())
    defaults = Limits()
    return Settings(
        stage=env.get("STAGE", "dev"),
        devices_table=env["DEVICES_TABLE"],
        readings_table=env["READINGS_TABLE"],
        archive_bucket=env.get("ARCHIVE_BUCKET", ""),
        aggregates_table=env.get("AGGREGATES_TABLE", ""),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        admin_token_hashes=hashes,
        auth_cache_ttl_seconds=float(env.get("AUTH_CACHE_TTL_SECONDS", "5")),
        retention_days=_int(env, "RETENTION_DAYS", 30),
        write_max_attempts=_int(env, "WRITE_MAX_ATTEMPTS", 6),
        retry_budget_s=_retry_budget(env),
        mail_from=env.get("MAIL_FROM", ""),
        report_recipients=tuple(r.strip() for r in env.get("REPORT_RECIPIENTS", "").split(",") if r.strip()),
        smtp_host=env.get("SMTP_HOST", ""),
        smtp_port=_int(env, "SMTP_PORT", 587),
        smtp_starttls=env.get("SMTP_STARTTLS", "true").lower() not in ("0", "false", "no"),
        smtp_username=env.get("SMTP_USERNAME", ""),
        smtp_password=env.get("SMTP_PASSWORD", ""),
        scaling_file=env.get("SCALING_FILE", ""),
        metrics_sink=env.get("METRICS_SINK", "emf"),
        realtime_table=env.get("REALTIME_TABLE", ""),
        alerts_table=env.get("ALERTS_TABLE", ""),
        call_timeout_queue=env.get("CALL_TIMEOUT_QUEUE", ""),
        websocket_management_url=env.get("WEBSOCKET_MANAGEMENT_URL", ""),
        wamp_call_timeout_s=_int(env, "WAMP_CALL_TIMEOUT_SECONDS", 30),
        session_secret=env.get("SESSION_SECRET", ""),
        session_ttl_s=_int(env, "SESSION_TTL_SECONDS", 8 * 3600),
        public_ws_url=env.get("PUBLIC_WS_URL", ""),
        rollup_engine=env.get("ROLLUP_ENGINE", "") or "lambda",
        athena_workgroup=env.get("ATHENA_WORKGROUP", ""),
        athena_database=env.get("ATHENA_DATABASE", ""),
        athena_output=env.get("ATHENA_OUTPUT", ""),
        limits=Limits(
            max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes),
            max_records=_int(env, "MAX_RECORDS", defaults.max_records),
            max_metrics_per_record=_int(env, "MAX_METRICS_PER_RECORD", defaults.max_metrics_per_record),
        ),
    )


@functools.cache
def settings() -> Settings:
    """The process's settings, read from os.environ on first use."""
    return from_env(os.environ)


def in_lambda() -> bool:
    """Whether this process is a Lambda function (the runtime sets the function's name)."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def deploy_value(name: str, default: str) -> str:
    """A value Chalice needs when it loads app.py (at deploy time), such as a stream ARN.

    Read from the stage's environment: `chalice deploy` and the local stack set it.
    """
    return os.environ.get(name) or default


def readings_stream_arn() -> str:
    """The readings table's stream, for the archiver's event source mapping."""
    table = os.environ.get("READINGS_TABLE", "iotcloud-dev-readings")
    placeholder = f"arn:aws:dynamodb:us-east-1:000000000000:table/{table}/stream/unset"
    return deploy_value("READINGS_STREAM_ARN", placeholder)


def call_timeout_queue_name() -> str:
    """The SQS queue whose delayed messages wake the WAMP router at call deadlines."""
    table = os.environ.get("READINGS_TABLE", "iotcloud-dev-readings")
    return deploy_value("CALL_TIMEOUT_QUEUE", _sibling(table, "call-timeouts"))
