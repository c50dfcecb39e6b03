"""The composition root: builds the app's collaborators once per process, from config.Settings.

Every factory here only constructs (adapters, jobs, use cases) and is a `@component`, so
`reset()` forgets each one; what a handler does lives in the job or use case it calls.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib import models
from chalicelib.adapters.devices import DeviceRepository
from chalicelib.adapters.metrics import EmfSink, Metrics, MetricsSink, PutMetricDataSink
from chalicelib.adapters.readings import ReadingStore
from chalicelib.adapters.retry import Budget, RetryPolicy, budget_scope
from chalicelib.config import Settings, settings
from chalicelib.domain.auth import Authenticator, TicketCheck, session_key
from chalicelib.domain.state import DeviceStates

# Collaborators that only some handlers use are imported inside their factories, when first
# built, so the API function's cold start (telemetry ingestion) does not pay for alerts, WAMP,
# reports or the jobs; these imports are for the annotations only.
if TYPE_CHECKING:
    from chalicelib.adapters.aggregates import AggregateStore, RollupStore
    from chalicelib.adapters.alerts import AlertStore
    from chalicelib.adapters.archive import S3Archive
    from chalicelib.adapters.call_timeouts import CallTimeoutQueue
    from chalicelib.adapters.connections import Connections
    from chalicelib.adapters.mail import Mailer
    from chalicelib.adapters.realtime import RealtimeStore
    from chalicelib.adapters.reports import ReportStore
    from chalicelib.domain.wamp.router import Router
    from chalicelib.jobs.alerts import AlertJobs
    from chalicelib.jobs.archiver import ArchiveJob
    from chalicelib.jobs.live import LiveStream
    from chalicelib.jobs.realtime import Realtime
    from chalicelib.jobs.rollups import RollupsJob
    from chalicelib.jobs.scaling_report import ScalingReportJob

T = TypeVar("T")
_COMPONENTS: list[functools._lru_cache_wrapper[Any]] = []


def component(factory: Callable[[], T]) -> functools._lru_cache_wrapper[T]:
    """A factory built once per process (functools.cache) and forgotten by reset()."""
    cached = functools.cache(factory)
    _COMPONENTS.append(cached)
    return cached


def components() -> tuple[functools._lru_cache_wrapper[Any], ...]:
    """Every registered factory, in the order they are defined."""
    return tuple(_COMPONENTS)


@component
def bound_settings() -> Settings:
    """Settings, with every model bound to the stage's tables (done once)."""
    current = settings()
    models.bind(current)
    return current


@component
def retry_policy() -> RetryPolicy:
    """How DynamoDB calls are retried, within one time budget per request (adapters.retry)."""
    return RetryPolicy.from_settings(bound_settings())


def request_budget(lambda_context: Any = None) -> AbstractContextManager[Budget]:
    """One retry budget for everything a request does (API and WebSocket middleware)."""
    return budget_scope(retry_policy().start(lambda_context))


@component
def devices() -> DeviceRepository:
    bound_settings()
    return DeviceRepository(retries=retry_policy())


@component
def readings() -> ReadingStore:
    s = bound_settings()
    return ReadingStore(retention_days=s.retention_days, retries=retry_policy())


@component
def device_states() -> DeviceStates:
    """Exact state reads and the live stream's folds, over the device items and the chunk tail."""
    return DeviceStates(devices(), readings(), retention_ms=bound_settings().retention_days * 86_400_000)


@component
def authenticator() -> Authenticator:
    s = bound_settings()
    repository = devices()
    return Authenticator(
        repository.find_by_token_hash,
        s.admin_token_hashes,
        s.auth_cache_ttl_seconds,
        device_lookup=repository.find_credential,
    )


# boto3 clients are thread-safe but building one is not cheap (it parses the service model) and
# boto3's default session must not build two at once: one client per service and endpoint,
# built under a lock.
_CLIENTS_LOCK = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}
# Connections each client keeps for reuse: botocore's default (10) unless warm() says how many
# requests will share a client at once (more would open and discard a connection per call).
_pool_connections: int | None = None


def aws_client(service: str, endpoint_url: str | None = None) -> Any:
    """The boto3 client of a service for the stage's region and endpoint (moto in the local stack).

    `endpoint_url` names another endpoint (the WebSocket API's @connections).
    """
    key = (service, endpoint_url)
    client = _clients.get(key)
    if client is not None:
        return client
    with _CLIENTS_LOCK:
        if key not in _clients:
            import boto3  # in the Lambda runtime; imported lazily to keep cold starts short

            s = bound_settings()
            options: dict[str, Any] = {}
            if _pool_connections is not None:
                from botocore.config import Config

                options["config"] = Config(max_pool_connections=_pool_connections)
            endpoint = endpoint_url or s.aws_endpoint_url
            _clients[key] = boto3.client(service, region_name=s.region, endpoint_url=endpoint, **options)
        return _clients[key]


@component
def archive() -> S3Archive:
    from chalicelib.adapters.archive import S3Archive

    return S3Archive(aws_client("s3"), bound_settings().archive_bucket)


@component
def aggregates() -> AggregateStore:
    from chalicelib.adapters.aggregates import AggregateStore

    bound_settings()
    return AggregateStore(retries=retry_policy())


@component
def rollup_store() -> RollupStore:
    """The hourly rollups (domain.rollups.RollupReader for the aggregation query)."""
    from chalicelib.adapters.aggregates import RollupStore

    bound_settings()
    return RollupStore(retries=retry_policy())


@component
def metrics() -> Metrics:
    s = bound_settings()
    sink: MetricsSink | None = None
    if s.metrics_sink == "emf":
        sink = EmfSink()
    elif s.metrics_sink == "cloudwatch":
        sink = PutMetricDataSink(aws_client("cloudwatch"))
    return Metrics(s.stage, sink)


@component
def reports() -> ReportStore:
    from chalicelib.adapters.reports import ReportStore

    return ReportStore(archive())


# --- jobs: what the event handlers run ---------------------------------------------------------


@component
def archive_job() -> ArchiveJob:
    from chalicelib.jobs.archiver import ArchiveJob

    return ArchiveJob(archive(), metrics(), marks=rollup_store())


@component
def rollups_job() -> RollupsJob:
    from chalicelib.jobs.rollups import RollupsJob

    return RollupsJob(archive(), rollup_store(), aggregates())


@component
def scaling_report_job() -> ScalingReportJob:
    from chalicelib.adapters.mail import mailer_for
    from chalicelib.adapters.scaling import Capacities
    from chalicelib.jobs.scaling_report import ScalingReportJob

    s = bound_settings()
    return ScalingReportJob(
        stage=s.stage,
        scaling_file=s.scaling_file,
        devices=devices(),
        metrics=metrics(),
        cloudwatch=aws_client("cloudwatch"),
        capacities=Capacities(aws_client),
        store=reports(),
        mailer=mailer_for(s, aws_client),
        mail_from=s.mail_from,
        recipients=s.report_recipients,
    )


# --- realtime: the WAMP router over API Gateway WebSocket -------------------------------------


@component
def realtime_store() -> RealtimeStore:
    from chalicelib.adapters.realtime import RealtimeStore

    bound_settings()
    return RealtimeStore()


@component
def call_timeouts() -> CallTimeoutQueue:
    from chalicelib.adapters.call_timeouts import CallTimeoutQueue

    return CallTimeoutQueue(lambda: aws_client("sqs"), bound_settings().call_timeout_queue)


@component
def router() -> Router:
    from chalicelib.domain.wamp.router import Router

    s = bound_settings()
    return Router(
        realtime_store(),
        TicketCheck(authenticator(), session_key(s.session_secret)),
        default_call_timeout_ms=s.wamp_call_timeout_s * 1000,
        schedule_timeout=call_timeouts().schedule,
    )


@component
def connections() -> Connections:
    from chalicelib.adapters.connections import Connections

    def client_for(url: str) -> Any:
        return aws_client("apigatewaymanagementapi", url)

    return Connections(realtime_store(), client_for, bound_settings().websocket_management_url)


@component
def realtime() -> Realtime:
    from chalicelib.jobs.realtime import Realtime

    return Realtime(
        router(), realtime_store(), readings=readings(), devices=devices(), limits=bound_settings().limits,
        connections=connections(), timeouts=call_timeouts(),
    )  # fmt: skip


# --- alerts -----------------------------------------------------------------------------------


@component
def alerts() -> AlertStore:
    from chalicelib.adapters.alerts import AlertStore

    bound_settings()
    return AlertStore()


@component
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


def _publish_alert(topic: str, kwargs: dict[str, Any]) -> None:
    # The router is built only when an alert goes to WAMP subscribers, not for every schedule run.
    realtime().publish(topic, kwargs)


@component
def alert_jobs() -> AlertJobs:
    from chalicelib.jobs.alerts import AlertJobs

    return AlertJobs(
        alerts(), devices(), alert_mailer(), _publish_alert, bound_settings().mail_from,
        exact_last_seen=device_states().last_seen,
    )  # fmt: skip


@component
def live_stream() -> LiveStream:
    from chalicelib.jobs.live import LiveStream

    return LiveStream(alert_jobs(), realtime(), device_states())


# The boto3 clients the app's handlers use (Capacities' autoscaling/dynamodb are the report's).
WARM_SERVICES = ("s3", "cloudwatch", "sqs", "dynamodb", "autoscaling")


def warm(concurrency: int | None = None) -> None:
    """Build every component, client and model connection now.

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
    for factory in components():
        factory()
    call_timeouts().queue_url()
    if s.websocket_management_url:
        connections().client()


def reset() -> None:
    """Forget everything built (tests that change the environment)."""
    global _pool_connections
    settings.cache_clear()
    with _CLIENTS_LOCK:
        _clients.clear()
        _pool_connections = None
    for factory in components():
        factory.cache_clear()
