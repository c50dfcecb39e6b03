"""The Chalice app: registers blueprints and event handlers; no logic lives here."""

import json
import logging
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Cron, DynamoDBEvent, Rate, SQSEvent, WebsocketEvent

from chalicelib import logs, wiring
from chalicelib.api.alerts import alerts_api
from chalicelib.api.analytics import analytics_api
from chalicelib.api.commands import commands_api
from chalicelib.api.dashboard import dashboard_api
from chalicelib.api.devices import devices_api
from chalicelib.api.openapi import openapi_api
from chalicelib.api.reports import reports_api
from chalicelib.api.telemetry import telemetry_api
from chalicelib.clock import now_ms
from chalicelib.config import call_timeout_queue_name, deploy_value, readings_stream_arn

logger = logging.getLogger("iotcloud")
app = Chalice(app_name="iotcloud")
app.register_blueprint(devices_api)
app.register_blueprint(telemetry_api)
app.register_blueprint(openapi_api)
app.register_blueprint(analytics_api)
app.register_blueprint(reports_api)
app.register_blueprint(alerts_api)
app.register_blueprint(commands_api)
app.register_blueprint(dashboard_api)
# WebSocket handlers must be registered on the app itself, not on a blueprint.
app.experimental_feature_flags.update(["WEBSOCKETS"])


if logs.in_lambda():  # JSON log lines with the request and device ids (the local stack logs as text)
    logs.install(app.log)


@app.middleware("all")
def flush_metrics(event: Any, get_response: Any) -> Any:
    # Every log line of the invocation carries its request id (Chalice's HTTP requests hold the
    # Lambda context as `lambda_context`, its other events as `context`).
    context = getattr(event, "lambda_context", None) or getattr(event, "context", None)
    logs.bind_request(getattr(context, "aws_request_id", None))
    # Metrics gathered during an invocation leave at its end: EMF in Lambda (no API call).
    try:
        return get_response(event)
    finally:
        wiring.metrics().flush()


@app.middleware("http")
def http_retry_budget(event: Any, get_response: Any) -> Any:
    # One retry budget per request, shared by all its DynamoDB calls (adapters.retry).
    with wiring.request_budget(event.lambda_context):
        return get_response(event)


@app.middleware("websocket")
def websocket_retry_budget(event: Any, get_response: Any) -> Any:
    with wiring.request_budget(event.context):
        return get_response(event)


@app.on_dynamodb_record(
    stream_arn=readings_stream_arn(),
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=30,
)
def archive_readings(event: DynamoDBEvent) -> dict[str, Any]:
    from chalicelib.jobs.archiver import archive_batch  # each job's code loads with its handler

    outcome = archive_batch(event.to_dict()["Records"], wiring.archive())
    metrics = wiring.metrics()
    metrics.add("ArchivedReadings", outcome.readings)
    if outcome.oldest_received_at is not None:
        metrics.add("ArchiveLag", now_ms() - outcome.oldest_received_at, "Milliseconds")
    logger.info("archived %d readings in %d objects (%d bytes)", outcome.readings, outcome.objects, outcome.bytes)
    # Failures raise, so Lambda retries the whole batch; object keys make that harmless.
    return {"batchItemFailures": []}


@app.schedule(Cron(15, 0, "*", "*", "?", "*"), name="rollups", description="daily rollups and inverted index")
def rollups(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.jobs.rollups import days_to_roll_up, roll_up_day

    days = [roll_up_day(day, wiring.archive(), wiring.aggregates()) for day in days_to_roll_up(event.time)]
    return {"days": [vars(d) for d in days]}


@app.schedule(Rate(1, unit=Rate.HOURS), name="scaling_report", description="hourly scaling report")
def scaling_report(event: CloudWatchEvent) -> dict[str, Any]:
    run = wiring.run_scaling_report("schedule")
    return {"report": run.report["id"], "s3": run.keys, "mailed_to": list(run.mailed_to)}


# The stage's scale-up/scale-down alarms (see infra/bootstrap_monitoring.py).
ALARM_PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {"alarmName": [{"prefix": f"iotcloud-{deploy_value('STAGE', 'dev')}-"}]},
}


@app.on_cw_event(ALARM_PATTERN, name="scaling_alarm")
def scaling_alarm(event: CloudWatchEvent) -> dict[str, Any]:
    run = wiring.run_scaling_report("alarm", event.detail["alarmName"])
    return {"report": run.report["id"], "s3": run.keys, "mailed_to": list(run.mailed_to)}


# --- realtime: WAMP over API Gateway WebSocket ------------------------------------------------


@app.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.to_dict().get("headers") or {}).items()}
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    wiring.remember_endpoint(event.domain_name, event.stage)
    answer = wiring.router().on_connect(event.connection_id, offered)
    if not answer.accept:
        return {"statusCode": answer.status}
    return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": answer.subprotocol}}


@app.on_ws_message()
def ws_message(event: WebsocketEvent) -> None:
    from chalicelib.jobs.realtime import handle_frame

    settings = wiring.bound_settings()
    frame = handle_frame(
        event.connection_id,
        event.body,
        router=wiring.router(),
        store=wiring.realtime_store(),
        readings=wiring.readings(),
        devices=wiring.devices(),
        limits=settings.limits,
        now_ms=now_ms(),
    )
    wiring.deliver(frame)


@app.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> None:
    wiring.deliver(wiring.router().on_disconnect(event.connection_id))


@app.on_sqs_message(queue=call_timeout_queue_name(), batch_size=10)
def call_timeouts(event: SQSEvent) -> None:
    for record in event:
        wiring.deliver(wiring.router().on_call_timeout(json.loads(record.body)["call"]))


@app.on_dynamodb_record(
    stream_arn=readings_stream_arn(),
    batch_size=100,
    starting_position="LATEST",
    maximum_batching_window_in_seconds=0,
)
def live(event: DynamoDBEvent) -> dict[str, Any]:
    from chalicelib.jobs.realtime import telemetry_events

    records = event.to_dict()["Records"]
    # Alerts first: if anything below fails, Lambda retries the batch, and evaluation is
    # forward-only per (rule, device), so a retry raises nothing twice.
    summary = wiring.evaluate_alerts(records)
    if summary.raised or summary.cleared or summary.delivery.retried or summary.delivery.given_up:
        logger.info("alerts: %s", summary.as_dict())
    wiring.deliver(telemetry_events(records, wiring.router().publish))
    return {"batchItemFailures": []}


@app.schedule(Rate(1, unit=Rate.MINUTES), name="alerts_offline", description="offline alerts, mail retries")
def alerts_offline(event: CloudWatchEvent) -> dict[str, Any]:
    summary: dict[str, Any] = wiring.run_alerts_offline().as_dict()
    return summary
