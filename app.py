"""The Chalice app: registers blueprints and event handlers; each handler is one call into a job."""

from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Cron, DynamoDBEvent, Rate, SQSEvent, WebsocketEvent

from chalicelib import logs, wiring
from chalicelib.api import function_url
from chalicelib.api.alerts import alerts_api
from chalicelib.api.analytics import analytics_api
from chalicelib.api.commands import commands_api
from chalicelib.api.dashboard import dashboard_api
from chalicelib.api.devices import devices_api
from chalicelib.api.openapi import openapi_api
from chalicelib.api.reports import reports_api
from chalicelib.api.telemetry import telemetry_api
from chalicelib.config import call_timeout_queue_name, deploy_value, in_lambda, readings_stream_arn

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


if in_lambda():  # JSON log lines with the request and device ids (the local stack logs as text)
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


@app.lambda_function(name=function_url.FUNCTION_NAME)
def ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The Function URL door (chalicelib/api/function_url.py): device ingestion without API
    # Gateway's per-request charge, through the same routes as the REST API.
    return function_url.handle(app, event, context)


@app.on_dynamodb_record(
    stream_arn=readings_stream_arn(),
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=30,
)
def archive_readings(event: DynamoDBEvent) -> dict[str, Any]:
    return wiring.archive_job().handle(event.to_dict()["Records"])


# Every 5 minutes, on either engine: the in-Lambda job rolls an hour once its grace period has
# passed (at minute 10) and re-rolls late readings within minutes; the Athena engine's state
# machine moves a step (it starts queries and looks at them next tick, never waiting in Lambda).
# One run at a time: the function's reserved concurrency is 1 (.chalice/config.json).
ROLLUPS_SCHEDULE = Cron("0/5", "*", "*", "*", "?", "*")


@app.schedule(ROLLUPS_SCHEDULE, name="rollups", description="hourly rollups, late re-rolls, daily index")
def rollups(event: CloudWatchEvent) -> dict[str, Any]:
    return wiring.rollups_job().run(event.time)


@app.schedule(Rate(1, unit=Rate.HOURS), name="scaling_report", description="hourly scaling report")
def scaling_report(event: CloudWatchEvent) -> dict[str, Any]:
    return wiring.scaling_report_job().run("schedule").summary()


# The stage's scale-up/scale-down alarms (see infra/bootstrap_monitoring.py).
ALARM_PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {"alarmName": [{"prefix": f"iotcloud-{deploy_value('STAGE', 'dev')}-"}]},
}


@app.on_cw_event(ALARM_PATTERN, name="scaling_alarm")
def scaling_alarm(event: CloudWatchEvent) -> dict[str, Any]:
    return wiring.scaling_report_job().run("alarm", event.detail["alarmName"]).summary()


# --- realtime: WAMP over API Gateway WebSocket ------------------------------------------------


@app.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> dict[str, Any]:
    return wiring.realtime().connect(
        event.connection_id, event.to_dict().get("headers"), event.domain_name, event.stage
    )


@app.on_ws_message()
def ws_message(event: WebsocketEvent) -> None:
    wiring.realtime().message(event.connection_id, event.body)


@app.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> None:
    wiring.realtime().disconnect(event.connection_id)


@app.on_sqs_message(queue=call_timeout_queue_name(), batch_size=10)
def call_timeouts(event: SQSEvent) -> None:
    wiring.realtime().call_timeouts(record.body for record in event)


@app.on_dynamodb_record(
    stream_arn=readings_stream_arn(),
    batch_size=100,
    starting_position="LATEST",
    maximum_batching_window_in_seconds=0,
)
def live(event: DynamoDBEvent) -> dict[str, Any]:
    return wiring.live_stream().handle(event.to_dict()["Records"])


@app.schedule(Rate(1, unit=Rate.MINUTES), name="alerts_offline", description="offline alerts, mail retries")
def alerts_offline(event: CloudWatchEvent) -> dict[str, Any]:
    return wiring.alert_jobs().offline().as_dict()
