"""Builds the app's collaborators once per process, from config.Settings."""

from __future__ import annotations

import functools
import json
import math
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from chalicelib import models
from chalicelib.adapters.devices import DeviceRepository
from chalicelib.adapters.metrics import EmfSink, Metrics, MetricsSink, PutMetricDataSink
from chalicelib.adapters.readings import ReadingStore
from chalicelib.adapters.retry import Budget, RetryPolicy, budget_scope
from chalicelib.clock import now_ms
from chalicelib.config import Settings, settings

if TYPE_CHECKING:
    from chalicelib.adapters.aggregates import AggregateStore
    from chalicelib.adapters.alerts import AlertStore
    from chalicelib.adapters.archive import S3Archive
    from chalicelib.adapters.mail import Mailer
    from chalicelib.adapters.realtime import RealtimeStore
    from chalicelib.adapters.reports import ReportStore
    from chalicelib.domain.wamp.router import Outgoing, Router
    from chalicelib.domain.wamp.store import PendingCall

# Collaborators that only some handlers use are imported when first built, so the API
# function's cold start (telemetry ingestion) does not pay for alerts, WAMP or reports.
from chalicelib.domain.auth import Authenticator, TicketCheck, session_key


@functools.cache
def bound_settings() -> Settings:
    """Settings, with every model bound to the stage's tables (done once)."""
    current = settings()
    models.bind(current)
    return current


@functools.cache
def retry_policy() -> RetryPolicy:
    """How DynamoDB calls are retried, within one time budget per request (adapters.retry)."""
    return RetryPolicy.from_settings(bound_settings())


def request_budget(lambda_context: Any = None) -> AbstractContextManager[Budget]:
    """One retry budget for everything a request does (API and WebSocket middleware)."""
    return budget_scope(retry_policy().start(lambda_context))


@functools.cache
def devices() -> DeviceRepository:
    bound_settings()
    return DeviceRepository(retries=retry_policy())


@functools.cache
def readings() -> ReadingStore:
    s = bound_settings()
    return ReadingStore(retention_days=s.retention_days, retries=retry_policy())


@functools.cache
def authenticator() -> Authenticator:
    s = bound_settings()
    return Authenticator(devices().find_by_token_hash, s.admin_token_hashes, s.auth_cache_ttl_seconds)


# boto3 clients are thread-safe but building one is not cheap (it parses the service model) and
# boto3's default session must not build two at once: one client per service, built under a lock.
_CLIENTS_LOCK = threading.Lock()
_clients: dict[str, Any] = {}
# Connections each client keeps for reuse: botocore's default (10) unless warm() says how many
# requests will share a client at once (more would open and discard a connection per call).
_pool_connections: int | None = None


def aws_client(service: str) -> Any:
    """The boto3 client of a service for the stage's region and endpoint (moto in the local stack)."""
    client = _clients.get(service)
    if client is not None:
        return client
    with _CLIENTS_LOCK:
        if service not in _clients:
            import boto3  # in the Lambda runtime; imported lazily to keep cold starts short

            s = bound_settings()
            options: dict[str, Any] = {}
            if _pool_connections is not None:
                from botocore.config import Config

                options["config"] = Config(max_pool_connections=_pool_connections)
            _clients[service] = boto3.client(service, region_name=s.region, endpoint_url=s.aws_endpoint_url, **options)
        return _clients[service]


@functools.cache
def archive() -> S3Archive:
    from chalicelib.adapters.archive import S3Archive

    return S3Archive(aws_client("s3"), bound_settings().archive_bucket)


@functools.cache
def aggregates() -> AggregateStore:
    from chalicelib.adapters.aggregates import AggregateStore

    bound_settings()
    return AggregateStore(retries=retry_policy())


@functools.cache
def metrics() -> Metrics:
    s = bound_settings()
    sink: MetricsSink | None = None
    if s.metrics_sink == "emf":
        sink = EmfSink()
    elif s.metrics_sink == "cloudwatch":
        sink = PutMetricDataSink(aws_client("cloudwatch"))
    return Metrics(s.stage, sink)


@functools.cache
def reports() -> ReportStore:
    from chalicelib.adapters.reports import ReportStore

    return ReportStore(archive())


def run_scaling_report(trigger: str, alarm_name: str | None = None) -> Any:
    """The scaling report job, wired to this stage's clients (see jobs.scaling_report)."""
    from chalicelib.adapters.mail import mailer_for
    from chalicelib.adapters.scaling import Capacities
    from chalicelib.domain.chunks import HOUR_MS, hour_bucket
    from chalicelib.jobs.scaling_report import run_scaling_report as run
    from chalicelib.scaling import load_targets_config

    s = bound_settings()
    now = now_ms()
    # Active devices: those whose last request fell in the last complete hour or this one.
    recorder = metrics()
    active = devices().count_active(hour_bucket(now - HOUR_MS)) + devices().count_active(hour_bucket(now))
    recorder.add("ActiveDevices", active)
    recorder.drain()  # the local stack's PutMetricData queue: the report reads what it holds
    return run(
        stage=s.stage,
        config=load_targets_config(s.stage, s.scaling_file),
        now_ms=now,
        cloudwatch=aws_client("cloudwatch"),
        capacities=Capacities(aws_client),
        store=reports(),
        mailer=mailer_for(s, aws_client),
        mail_from=s.mail_from,
        recipients=s.report_recipients,
        trigger=trigger,
        alarm_name=alarm_name,
    )


# --- realtime: the WAMP router over API Gateway WebSocket -------------------------------------


@functools.cache
def realtime_store() -> RealtimeStore:
    from chalicelib.adapters.realtime import RealtimeStore

    bound_settings()
    return RealtimeStore()


@functools.cache
def router() -> Router:
    from chalicelib.domain.wamp.router import Router

    s = bound_settings()
    return Router(
        realtime_store(),
        TicketCheck(authenticator(), session_key(s.session_secret)),
        default_call_timeout_ms=s.wamp_call_timeout_s * 1000,
        schedule_timeout=_schedule_timeout,
    )


@functools.cache
def _timeout_queue_url() -> str:
    return str(aws_client("sqs").get_queue_url(QueueName=bound_settings().call_timeout_queue)["QueueUrl"])


def _schedule_timeout(call: PendingCall) -> None:
    """A delayed SQS message wakes the router when a call's deadline passes (at most 15 min)."""
    delay = max(0, min(900, math.ceil((call.deadline_ms - now_ms()) / 1000)))
    aws_client("sqs").send_message(
        QueueUrl=_timeout_queue_url(), MessageBody=json.dumps({"call": call.key}), DelaySeconds=delay
    )


def remember_endpoint(domain_name: str, stage: str) -> None:
    """Record the WebSocket API's @connections endpoint for sends outside its handlers."""
    if bound_settings().websocket_management_url:
        return
    url = f"https://{domain_name}/{stage}"
    if _management_endpoint.cache_info().currsize and _management_endpoint() == url:
        return
    realtime_store().remember_endpoint(url)
    _management_endpoint.cache_clear()


@functools.cache
def _management_endpoint() -> str:
    url = bound_settings().websocket_management_url or realtime_store().endpoint()
    if not url:
        raise RuntimeError("no WebSocket connection has been made yet: the @connections endpoint is unknown")
    return url


@functools.cache
def _management_client() -> Any:
    import boto3

    s = bound_settings()
    return boto3.client("apigatewaymanagementapi", region_name=s.region, endpoint_url=_management_endpoint())


def deliver(outgoing: list[Outgoing]) -> None:
    """Post the router's messages; a connection found gone is disconnected from the router."""
    from chalicelib.adapters.connections import ConnectionSender

    sender = ConnectionSender(_management_client)
    gone: list[str] = []
    for out in outgoing:
        if out.connection_id in gone:
            continue
        if not sender.send(out.connection_id, out.text):
            gone.append(out.connection_id)
        elif out.close:
            sender.close(out.connection_id)
    for connection_id in gone:
        deliver(router().on_disconnect(connection_id))


# --- alerts -----------------------------------------------------------------------------------


@functools.cache
def alerts() -> AlertStore:
    from chalicelib.adapters.alerts import AlertStore

    bound_settings()
    return AlertStore()


@functools.cache
def alert_mailer() -> Mailer | None:
    """Mail for alerts: one attempt per delivery, short timeout (the outbox retries, with backoff)."""
    from chalicelib.adapters.mail import SesMailer, SmtpMailer

    s = bound_settings()
    if s.smtp_host:
        return SmtpMailer(
            s.smtp_host, s.smtp_port, s.smtp_starttls, s.smtp_username, s.smtp_password, timeout=5, max_attempts=1
        )
    if s.mail_from:
        return SesMailer(aws_client("ses"), max_attempts=1)
    return None


def publish_alert(topic: str, kwargs: dict[str, Any]) -> None:
    """Alert events to the topic's WAMP subscribers. A failure raises: the outbox retries it."""
    deliver(router().publish(topic, [], kwargs))


def evaluate_alerts(records: list[dict[str, Any]]) -> Any:
    """The live handler's alert evaluation of one readings-stream batch (see jobs.alerts)."""
    from chalicelib.jobs.alerts import evaluate_stream_batch

    s = bound_settings()
    return evaluate_stream_batch(
        records, store=alerts(), devices=devices(), mailer=alert_mailer(), publish=publish_alert,
        mail_from=s.mail_from, now_ms=now_ms(),
    )  # fmt: skip


def run_alerts_offline() -> Any:
    """The offline-rules schedule: silent devices, and notifications still to deliver."""
    from chalicelib.jobs.alerts import run_offline_check

    s = bound_settings()
    return run_offline_check(
        now_ms(), store=alerts(), devices=devices(), mailer=alert_mailer(), publish=publish_alert, mail_from=s.mail_from
    )


# The boto3 clients the app's handlers use (Capacities' autoscaling/dynamodb are the report's).
WARM_SERVICES = ("s3", "cloudwatch", "sqs", "dynamodb", "autoscaling")


def warm(concurrency: int | None = None) -> None:
    """Build every collaborator, client and model connection now, with a cheap call on each table.

    For a server that runs requests on many threads (the local stack), before it accepts any:
    the first requests then share what is built instead of each building its own, and every
    connection pool holds `concurrency` connections (the requests that run at once). Lambda does
    not call it: a container serves one request at a time and a cold start builds only what it uses.
    """
    global _pool_connections
    s = bound_settings()
    with _CLIENTS_LOCK:
        _clients.clear()
        _pool_connections = concurrency
    for model in models.ALL_MODELS:
        if concurrency is not None:
            model.Meta.max_pool_connections = concurrency
            model._connection = None  # rebuilt with the pool size on the next call
        # Builds the connection and its client (AppModel) with no call: the stage policies grant no
        # DescribeTable, and the IAM coverage test holds the local stack to them.
        model._get_connection()
    for service in WARM_SERVICES:
        aws_client(service)
    for factory in (devices, readings, authenticator, archive, aggregates, metrics, reports, realtime_store, router,
                    alerts, alert_mailer, _timeout_queue_url):  # fmt: skip
        factory()
    if s.websocket_management_url:
        _management_client()


def reset() -> None:
    """Forget everything built (tests that change the environment)."""
    global _pool_connections
    settings.cache_clear()
    with _CLIENTS_LOCK:
        _clients.clear()
        _pool_connections = None
    factories: tuple[Any, ...] = (
        bound_settings, retry_policy, devices, readings, authenticator, archive, aggregates, metrics, reports,
        realtime_store, router, _timeout_queue_url, _management_endpoint, _management_client, alerts, alert_mailer,
    )  # fmt: skip
    for factory in factories:
        factory.cache_clear()
