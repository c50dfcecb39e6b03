"""Start and stop the local stack: moto in server mode + the app over HTTP.

Everything binds to 127.0.0.1. The app is the same Chalice app that runs in Lambda,
served by Chalice's local server with the stage's environment variables, pointed at
moto through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalice import local
from chalice.app import SQSEventConfig

from chalicelib.domain.tokens import hash_token, new_admin_token
from devstack.events import EventEmulator
from devstack.faults import FaultPlan
from devstack.mailsink import MailSink
from devstack.serving import Admission, ApiHandler, ApiServer, Limits
from devstack.wsgateway.server import WebSocketGateway

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".devstack"
HOST = "127.0.0.1"
# Threads besides the API's requests that call AWS at once: stream, queue, schedule and alarm
# pumps, WebSocket handlers (devstack/events.py, devstack/wsgateway/).
BACKGROUND_THREADS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up within {timeout:.0f} s") from None
            time.sleep(0.1)


@dataclass
class LocalStack:
    """The local stack's processes and coordinates. Use as a context manager."""

    api_port: int = 8000
    moto_port: int = 5000
    stage: str = "dev"
    admin_token: str = field(default_factory=lambda: os.environ.get("IOTCLOUD_ADMIN_TOKEN") or new_admin_token())
    state_dir: Path = STATE_DIR
    quiet_moto: bool = True
    emulate_events: bool = True
    emulator: EventEmulator | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    mail_sink: MailSink | None = None
    function_url_port: int = 0  # the ingest function's Function URL (0: a free port)
    ws_port: int = 0  # the WebSocket API (0: a free port)
    ws_management_port: int = 0  # its @connections API (0: a free port)
    gateway: WebSocketGateway | None = None
    faults: FaultPlan | None = None  # injected faults (devstack/faults.py): make reliability
    limits: Limits = field(default_factory=Limits)  # requests the API runs at once (devstack/serving.py)
    rollup_engine: str = ""  # ROLLUP_ENGINE (empty: the stage's); athena runs its SQL in DuckDB here
    admission: Admission | None = None
    _saved_environ: dict[str, str] | None = None
    _moto: subprocess.Popen[bytes] | None = None
    _server: Any = None
    _server_thread: threading.Thread | None = None
    _door: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def function_url(self) -> str:
        """The ingest function's Function URL: device telemetry without API Gateway."""
        return f"http://{HOST}:{self.function_url_port}"

    @property
    def function_url_invocations(self) -> int:
        """Requests the Function URL has handed to the ingest function so far."""
        return int(self._door.invocations) if self._door is not None else 0

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.ws_port}"

    @property
    def ws_management_url(self) -> str:
        return f"http://{HOST}:{self.ws_management_port}"

    @property
    def moto_url(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    def aws_environment(self) -> dict[str, str]:
        """What makes boto3 and PynamoDB talk to moto instead of AWS."""
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            # botocore >= 1.44.4 would send DynamoDB Streams calls to an account-scoped host.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }

    def start(self) -> LocalStack:
        # The app reads its settings from os.environ; put it back as it was on stop.
        self._saved_environ = dict(os.environ)
        self.mail_sink = MailSink(self.state_dir / "mail").start()
        self._start_moto()
        self._start_app()
        self._write_connection()
        return self

    def _start_moto(self) -> None:
        out = subprocess.DEVNULL if self.quiet_moto else None
        log = [] if self.quiet_moto else ["--log"]
        self._moto = subprocess.Popen(
            [sys.executable, "-m", "devstack.motoserver", HOST, str(self.moto_port), *log], stdout=out, stderr=out
        )
        _wait_http(f"{self.moto_url}/moto-api/")

    def _app_overrides(self) -> dict[str, str]:
        """What this stack's app reads instead of the stage's variables: moto, local WebSockets, the mail sink."""
        return {
            **self.aws_environment(),
            # The local gateway speaks plain http: the app must not derive https://<domain>/<stage>.
            "WEBSOCKET_MANAGEMENT_URL": self.ws_management_url,
            "PUBLIC_WS_URL": self.ws_url,  # the dashboard's pages go live over WAMP
            "ADMIN_TOKEN_HASHES": hash_token(self.admin_token),
            "METRICS_SINK": "cloudwatch",  # moto's CloudWatch, so the reports see the metrics
            # Reports' mail goes to the local SMTP sink, saved as .eml files.
            "SMTP_HOST": HOST,
            "SMTP_PORT": str(self.mail_sink.port if self.mail_sink else 25),
            "SMTP_STARTTLS": "false",
            "SMTP_USERNAME": "",
            "SMTP_PASSWORD": "",
            "MAIL_FROM": os.environ.get("MAIL_FROM", "iotcloud@localhost.localdomain"),
            "REPORT_RECIPIENTS": os.environ.get("REPORT_RECIPIENTS", "ops@localhost.localdomain"),
        } | ({"ROLLUP_ENGINE": self.rollup_engine} if self.rollup_engine else {})

    def _start_app(self) -> None:
        from chalice.cli import factory as chalice_factory

        from chalicelib import wiring
        from infra.bootstrap import bootstrap
        from infra.stages import stage_environment

        self.ws_port = self.ws_port or free_port()
        self.ws_management_port = self.ws_management_port or free_port()
        overrides = self._app_overrides()
        os.environ.update({**stage_environment(self.stage), **overrides})
        wiring.reset()
        settings = wiring.bound_settings()
        self.resources = bootstrap(settings, self.client)
        table = self.client("dynamodb").describe_table(TableName=settings.readings_table)["Table"]
        # What a deployment records for `chalice deploy`: the stream the handlers subscribe to.
        overrides["READINGS_STREAM_ARN"] = table["LatestStreamArn"]
        os.environ.update(overrides)
        factory = chalice_factory.CLIFactory(str(ROOT), environ=os.environ)
        config = factory.create_config_obj(chalice_stage_name=self.stage)
        app = config.chalice_app  # loading the app puts the stage's variables into os.environ
        os.environ.update(overrides)
        # The app module is imported once per process: the names baked into its event sources may
        # be another stage's, so map them to this stack's resources.
        queues = {str(q.queue): settings.call_timeout_queue for q in app.event_sources if isinstance(q, SQSEventConfig)}
        # Every client and connection exists before anything runs a handler: a burst of first
        # requests on many threads would otherwise each build their own (issue 13, item 8).
        # Their pools hold a connection per request running at once, plus the emulator's and
        # the WebSocket gateway's handler threads.
        wiring.warm(concurrency=self.limits.max_active + BACKGROUND_THREADS)
        if settings.rollup_engine == "athena":  # moto's Athena runs no query: DuckDB over the mirrored bucket
            from devstack.athena import use_local_athena

            use_local_athena(self.client("s3"), settings.archive_bucket, self.state_dir)
        self.emulator = EventEmulator(
            app, self.client, region=settings.region, stream_table=settings.readings_table, queues=queues
        )
        if self.faults is not None:  # once the app is loaded, before it serves or pumps anything
            self.faults.start(self.emulator)
        if self.emulate_events:
            self.emulator.start()
        self.gateway = WebSocketGateway(app, HOST, self.ws_port, self.ws_management_port, stage=self.stage).start()
        if not isinstance(app, local.LocalChalice):
            # What chalice.local.create_local_server does, once per process: thread-local requests.
            local.CustomLocalChalice.__bases__ = (local.LocalChalice, app.__class__)
            app.__class__ = local.CustomLocalChalice
        self.admission = Admission(self.limits)
        server = functools.partial(ApiServer, admission=self.admission)
        self._server = local.LocalDevServer(app, config, HOST, self.api_port, handler_cls=ApiHandler, server_cls=server)
        self._server_thread = threading.Thread(target=self._server.server.serve_forever, name="api", daemon=True)
        self._server_thread.start()
        _wait_http(f"{self.api_url}/v1/openapi.json")
        from devstack import function_url

        self.function_url_port = self.function_url_port or free_port()
        self._door, _ = function_url.serve(app, HOST, self.function_url_port, self.admission, self.stage)

    def client(self, service: str) -> Any:
        """The boto3 client of a service, pointed at this stack's moto (one per service: the
        emulator asks every few seconds, and building one parses the service model)."""
        with self._clients_lock:
            if service not in self._clients:
                import boto3

                self._clients[service] = boto3.client(service, region_name="us-east-1", endpoint_url=self.moto_url)
            return self._clients[service]

    def connection(self) -> dict[str, Any]:
        settings_doc: dict[str, Any] = {}
        try:
            from chalicelib import wiring

            s = wiring.bound_settings()
            settings_doc = {
                "devices_table": s.devices_table,
                "readings_table": s.readings_table,
                "archive_bucket": s.archive_bucket,
                "rollup_engine": s.rollup_engine,
            }
        except KeyError:
            pass
        return {
            "api_url": self.api_url,
            "function_url": self.function_url,
            "admin_token": self.admin_token,
            "aws_endpoint_url": self.moto_url,
            "stage": self.stage,
            "mail_dir": str(self.state_dir / "mail"),
            "ws_url": self.ws_url,
            **settings_doc,
        }

    def _write_connection(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "connection.json"
        path.write_text(json.dumps(self.connection(), indent=2) + "\n")
        path.chmod(0o600)

    def stop(self) -> None:
        if self.gateway is not None:  # first, so $disconnect handlers still reach moto
            self.gateway.stop()
            self.gateway = None
        if self.emulator is not None:
            self.emulator.stop()
        if self._door is not None:
            self._door.shutdown()
            self._door.server_close()
            self._door = None
        if self._server is not None:
            self._server.server.shutdown()
            self._server.server.server_close()
            self._server = None
        if self.faults is not None:
            self.faults.stop()
        if self.mail_sink is not None:
            self.mail_sink.stop()
            self.mail_sink = None
        if self._moto is not None:
            self._moto.terminate()
            try:
                self._moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._moto.kill()
            self._moto = None
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
            from chalicelib import wiring

            wiring.reset()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
