"""WAMP transport (``--transport wamp``): devices on WebSocket sessions instead of HTTP posts.

Each device is provisioned over HTTP as usual, then keeps one WAMP session (autobahn on
asyncio, subprotocol ``wamp.2.json``, realm ``iotcloud``, WAMP-Ticket with the device
token as ticket and the device id as authid) through a :class:`WampLink` that reconnects
with backoff whenever the connection drops (API Gateway closes connections idle for
10 minutes and every connection after 2 hours). While it is down the producer keeps
filling the outbox, exactly like an unreachable HTTP server.

A :class:`WampDevice`

* publishes each batch to ``iotcloud.device.<id>.telemetry`` with kwargs
  ``{"records": [{"ts": ms, "values": {...}}, ...]}`` and options ``acknowledge`` and
  ``idempotency_key`` (the batch's key): PUBLISHED means stored; ERROR
  ``iotcloud.error.<code>`` is a rejection counted by ``<code>``, like an HTTP 4xx;
  a lost connection or an unanswered publish is retried with the same key;
* registers ``iotcloud.device.<id>.set_interval``, ``.reboot`` and ``.get_status``;
* after every join, fetches the HTTP commands queued while it was offline
  (``GET /v1/commands``) and answers them with the same procedures.

autobahn's ``PublishOptions`` cannot carry ``idempotency_key`` (it only knows the spec's
options), so telemetry goes out as a :class:`KeyedPublish` message sent by
:meth:`DeviceSession.publish_keyed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlparse

import txaio

txaio.use_asyncio()  # type: ignore[no-untyped-call]

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import message  # noqa: E402
from autobahn.wamp.exception import ApplicationError, TransportLost  # noqa: E402
from autobahn.wamp.request import PublishRequest  # noqa: E402
from autobahn.wamp.serializer import JsonSerializer  # noqa: E402
from autobahn.wamp.types import ComponentConfig  # noqa: E402

from device_sim.fleet import Device, Wake  # noqa: E402
from device_sim.model import Record, Sample  # noqa: E402
from device_sim.payloads import Body, encode, json_items  # noqa: E402
from device_sim.profiles import device_rng  # noqa: E402
from device_sim.report import WAMP_PROCEDURES, WampStats  # noqa: E402
from device_sim.transport import Outcome, SendResult, backoff_delay, classify_status  # noqa: E402

REALM = "iotcloud"
DEVICE_NAMESPACE = "iotcloud.device."
ERROR_PREFIX = "iotcloud.error."
CLOSE_PREFIX = "wamp.close."  # autobahn fails outstanding requests with these when a session ends
INVALID_ARGUMENT = "wamp.error.invalid_argument"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
PROCEDURE_ALREADY_EXISTS = "wamp.error.procedure_already_exists"
PAYLOAD_SIZE_EXCEEDED = "wamp.error.payload_size_exceeded"
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway closes the connection (1009) on a larger frame
MAX_INTERVAL_S = 86_400.0
CONNECT_BASE_DELAY = 0.5  # reconnect backoff: uniform(0, min(cap, base * 2**(n-1)))
CONNECT_CAP_DELAY = 10.0
REGISTER_ATTEMPTS = 8  # procedure_already_exists: the old connection's registration lingers

# The HTTP status of each iotcloud error code (chalicelib/errors.py): an ERROR
# iotcloud.error.<code> is treated like that HTTP answer (4xx: rejected; 503/5xx: retried).
CODE_STATUS: dict[str, int] = {
    "malformed_payload": 400,
    "invalid_parameter": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "device_disabled": 403,
    "device_not_found": 404,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_failed": 422,
    "internal_error": 500,
    "storage_unavailable": 503,
}
WAMP_ERROR_STATUS: dict[str, int] = {
    "wamp.error.invalid_uri": 400,
    "wamp.error.not_authorized": 403,
    PAYLOAD_SIZE_EXCEEDED: 413,
}


# --------------------------------------------------------------------------- URIs and payloads


def device_uri_component(device_id: str) -> str:
    """A device id as one URI component, as the router encodes it ("." would split it)."""
    return device_id.replace("%", "%25").replace(".", "%2E")


def device_prefix(device_id: str) -> str:
    return f"{DEVICE_NAMESPACE}{device_uri_component(device_id)}."


def telemetry_topic(device_id: str) -> str:
    return device_prefix(device_id) + "telemetry"


def procedure_uri(device_id: str, name: str) -> str:
    return device_prefix(device_id) + name


def publish_kwargs(records: Sequence[Record]) -> dict[str, Any]:
    """The kwargs of a telemetry publication: the ``json`` format's items under "records"."""
    return {"records": json_items(records)}


def kwargs_from_body(body: Body) -> dict[str, Any]:
    """A batch's encoded ``json`` body (fixed at first transmission) as publication kwargs."""
    return {"records": json.loads(body.content)}


class KeyedPublish(message.Publish):  # type: ignore[misc]
    """An acknowledged PUBLISH with kwargs only and the router's ``idempotency_key`` option."""

    __slots__ = ("idempotency_key",)

    def __init__(self, request: int, topic: str, kwargs: dict[str, Any], idempotency_key: str) -> None:
        # args=[]: autobahn would marshal None as `null`, and Arguments|list must be a list.
        super().__init__(request, topic, args=[], kwargs=kwargs, acknowledge=True)  # type: ignore[no-untyped-call]
        self.idempotency_key = idempotency_key

    def marshal_options(self) -> dict[str, Any]:
        options = dict(super().marshal_options())  # type: ignore[no-untyped-call]
        options["idempotency_key"] = self.idempotency_key
        return options


def publish_frame(request: int, topic: str, kwargs: dict[str, Any], key: str) -> list[Any]:
    """The PUBLISH as it goes on the wire (before JSON serialization)."""
    return cast(list[Any], KeyedPublish(request, topic, kwargs, key).marshal())  # type: ignore[no-untyped-call]


def frame_size(frame: Sequence[Any]) -> int:
    return len(json.dumps(list(frame), separators=(",", ":"), ensure_ascii=False).encode())


@dataclass(frozen=True)
class PublishError:
    """What an ERROR (or autobahn's failure of a pending publish) means for the batch."""

    code: str  # iotcloud.error.<code> -> <code>; other URIs whole
    status: int | None  # the equivalent HTTP status, when there is one
    kind: str  # rejected | throttled | server_error | transport
    maybe_stored: bool = False  # the router may have stored the telemetry before refusing

    @property
    def retryable(self) -> bool:
        return self.kind != "rejected"


def classify_publish_error(uri: str) -> PublishError:
    """Classify the error URI a publish failed with.

    ``wamp.close.*`` (the session ended before the answer): a transport failure, retried.
    ``iotcloud.error.<code>``: like the HTTP answer with that code's status (a 4xx is a
    rejection, 503/5xx are retried). ``wamp.error.*``: a rejection; for
    ``payload_size_exceeded`` the router had already stored the telemetry when its EVENT
    turned out too large, so the batch's readings are *uncertain*.
    """
    if uri.startswith(CLOSE_PREFIX):
        return PublishError(uri, None, "transport")
    if uri.startswith(ERROR_PREFIX):
        code = uri[len(ERROR_PREFIX) :] or uri
        status = CODE_STATUS.get(code)
        kind = classify_status(status) if status is not None else "rejected"
        if kind == "timeout":
            kind = "transport"
        return PublishError(code, status, kind)
    return PublishError(uri, WAMP_ERROR_STATUS.get(uri), "rejected", maybe_stored=uri == PAYLOAD_SIZE_EXCEEDED)


# --------------------------------------------------------------------------- the session


class Refused(Exception):
    """The router refused the session (ABORT) or the connection ended before WELCOME."""

    def __init__(self, reason: str, text: str | None) -> None:
        super().__init__(f"{reason}: {text}" if text else reason)
        self.reason = reason


# autobahn warns about every session that ends with a reason other than wamp.close.normal, the
# router's answer to GOODBYE (wamp.close.goodbye_and_out) included; the report counts drops.
logging.getLogger(f"{__name__}.DeviceSession").setLevel(logging.ERROR)


class DeviceSession(ApplicationSession):  # type: ignore[misc]
    """One WAMP session of a device; its link is told when it joins and when it ends."""

    def __init__(self, link: WampLink, welcomed: asyncio.Future[DeviceSession]) -> None:
        super().__init__(ComponentConfig(REALM))  # type: ignore[no-untyped-call]
        self.link = link
        self.welcomed = welcomed  # WELCOME (the session), or Refused
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def onConnect(self) -> None:  # noqa: N802
        self.join(REALM, authmethods=["ticket"], authid=self.link.device_id)

    def onChallenge(self, challenge: Any) -> str:  # noqa: N802
        if getattr(challenge, "method", None) != "ticket":
            raise ApplicationError(  # type: ignore[no-untyped-call]
                "wamp.error.no_auth_method", f"cannot answer {challenge!r}"
            )
        return self.link.token

    def onJoin(self, details: Any) -> None:  # noqa: N802
        if not self.welcomed.done():
            self.welcomed.set_result(self)

    def onLeave(self, details: Any) -> Any:  # noqa: N802
        if not self.welcomed.done():
            self.welcomed.set_exception(Refused(str(details.reason), details.message))
        self.link.session_ended(self)
        return super().onLeave(details)  # fails outstanding requests, then disconnects

    def onDisconnect(self) -> None:  # noqa: N802
        if not self.welcomed.done():
            self.welcomed.set_exception(Refused("transport closed", None))
        self.link.session_ended(self)
        super().onDisconnect()
        if not self.ended.done():
            self.ended.set_result(None)

    def publish_keyed(self, topic: str, kwargs: dict[str, Any], key: str) -> asyncio.Future[Any]:
        """``publish(topic, **kwargs, options=PublishOptions(acknowledge=True))`` plus the
        ``idempotency_key`` option: the future gets the Publication, or fails with
        ApplicationError (ERROR, or the session ending) or TransportLost."""
        if not self._transport:
            raise TransportLost()
        request_id = self._request_id_gen.next()  # type: ignore[no-untyped-call]
        on_reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request = PublishRequest(request_id, on_reply, was_encrypted=False)  # type: ignore[no-untyped-call]
        self._publish_reqs[request_id] = request
        try:
            self._transport.send(KeyedPublish(request_id, topic, kwargs, key))
        except Exception:
            self._publish_reqs.pop(request_id, None)
            raise
        return on_reply


Procedure = Callable[..., Any]


class WampLink:
    """Keeps one device's WAMP session up: connect, join, register, reconnect with backoff."""

    def __init__(
        self,
        ws_url: str,
        device_id: str,
        token: str,
        *,
        stats: WampStats,
        procedures: Mapping[str, Procedure],
        rng: Any,
        timeout: float,
        on_registered: Callable[[], Awaitable[None]] | None = None,
        base: float = CONNECT_BASE_DELAY,
        cap: float = CONNECT_CAP_DELAY,
    ) -> None:
        self.ws_url = ws_url
        self.device_id = device_id
        self.token = token
        self.stats = stats
        self.procedures = dict(procedures)
        self.rng = rng
        self.timeout = timeout
        self.on_registered = on_registered
        self.base = base
        self.cap = cap
        self.session: DeviceSession | None = None  # the joined session, if any
        self.joins = 0
        self.last_error = ""
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"wamp-{self.device_id}")

    async def close(self, grace: float = 2.0) -> None:
        """Stop reconnecting, leave the session (GOODBYE) and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for helper in list(self._helpers):
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        session = self.session
        if session is None:
            return
        if session.is_attached():
            session.leave()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(session.ended), grace)
        if session.is_connected():
            session.disconnect()
        self.session_ended(session)

    async def _run(self) -> None:
        failures = 0
        while True:
            session = await self._connect_once()
            if session is None:
                failures += 1
                self.stats.connect_failures += 1
                await asyncio.sleep(backoff_delay(failures, None, self.rng, base=self.base, cap=self.cap))
                continue
            failures = 0
            await asyncio.shield(session.ended)
            # Dropped (idle timeout, 2-hour limit, network): reconnect after a short jitter so
            # a fleet cut off at once does not come back in lockstep.
            await asyncio.sleep(self.rng.uniform(0.0, self.base))

    async def _connect_once(self) -> DeviceSession | None:
        """One connection attempt: the joined session, or None (the reason in last_error)."""
        loop = asyncio.get_running_loop()
        welcomed: asyncio.Future[DeviceSession] = loop.create_future()
        factory = WampWebSocketClientFactory(  # type: ignore[no-untyped-call]
            lambda: DeviceSession(self, welcomed),
            url=self.ws_url,
            serializers=[JsonSerializer()],  # type: ignore[no-untyped-call]
        )
        parsed = urlparse(self.ws_url)
        secure = parsed.scheme == "wss"
        host = parsed.hostname or "127.0.0.1"
        port = parsed.port or (443 if secure else 80)
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(self.timeout):
                transport, _ = await loop.create_connection(
                    factory, host, port, ssl=True if secure else None, server_hostname=host if secure else None
                )
                session = await welcomed
        except Exception as exc:  # refused, unreachable, timed out, a handshake autobahn rejects...
            self.last_error = f"{type(exc).__name__}: {exc}"
            if transport is not None:
                transport.close()
            return None
        except BaseException:  # cancelled: the link is closing
            if transport is not None:
                transport.close()
            raise
        self._joined(session)
        return session

    def _joined(self, session: DeviceSession) -> None:
        self.joins += 1
        if self.joins == 1:
            self.stats.connected = 1
        else:
            self.stats.reconnects += 1
        if session.ended.done():  # it joined and ended before this ran: _run reconnects
            return
        self.session = session
        self._ready.set()
        helper = asyncio.create_task(self._register(session))
        self._helpers.add(helper)
        helper.add_done_callback(self._helpers.discard)

    def session_ended(self, session: DeviceSession) -> None:
        if self.session is session:
            self.session = None
            self._ready.clear()

    # ----------------------------------------------------------------- procedures

    def _endpoint(self, name: str) -> Procedure:
        procedure = self.procedures[name]

        def endpoint(*args: Any, **kwargs: Any) -> Any:
            self.stats.count_call(name)
            return procedure(*args, **kwargs)

        return endpoint

    def answer(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run a procedure for a command fetched over HTTP (counted like a WAMP call)."""
        if name not in self.procedures:
            raise ApplicationError(  # type: ignore[no-untyped-call]
                NO_SUCH_PROCEDURE, f"no procedure {name!r} on this device"
            )
        return self._endpoint(name)(*args, **kwargs)

    async def _register(self, session: DeviceSession) -> None:
        """Register every procedure. A registration of the previous connection may outlive it
        until the router processes that connection's $disconnect (procedure_already_exists):
        retried with backoff while this session lasts."""
        for name in self.procedures:
            uri = procedure_uri(self.device_id, name)
            for attempt in range(1, REGISTER_ATTEMPTS + 1):
                if self.session is not session:
                    return
                try:
                    await cast(Awaitable[Any], session.register(self._endpoint(name), uri))
                    break
                except ApplicationError as exc:
                    self.last_error = f"register {name}: {exc.error}"
                    if exc.error != PROCEDURE_ALREADY_EXISTS or attempt == REGISTER_ATTEMPTS:
                        break
                    await asyncio.sleep(backoff_delay(attempt, None, self.rng, base=self.base, cap=self.cap))
                except TransportLost:
                    return
        if self.on_registered is not None and self.session is session:
            try:
                await self.on_registered()
            except Exception as exc:  # a helper must not die unobserved
                self.last_error = f"after registering: {type(exc).__name__}: {exc}"

    # ----------------------------------------------------------------- publishing

    async def wait_session(self, timeout: float) -> DeviceSession | None:
        """The joined session, waiting up to ``timeout`` seconds for one; None if there is none."""
        if self.session is None and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        return self.session

    async def publish(self, session: DeviceSession, topic: str, kwargs: dict[str, Any], key: str) -> None:
        """Publish and wait for PUBLISHED (ApplicationError on ERROR). Unanswered within the
        timeout: the connection is presumed dead and dropped (a reconnect follows)."""
        reply = session.publish_keyed(topic, kwargs, key)
        try:
            await asyncio.wait_for(asyncio.shield(reply), self.timeout)
        except TimeoutError:
            reply.cancel()
            if session.is_connected():
                session.disconnect()
            raise


# --------------------------------------------------------------------------- the device


class WampDevice(Device):
    """A device publishing over WAMP and answering its procedures (see the module doc)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.wamp = WampStats()
        self.topic = telemetry_topic(self.identity.id)
        self.booted_at = time.monotonic()
        self.resume_at = 0.0  # monotonic time a reboot pause ends
        self.started = False  # the producer has set its schedule
        self.reschedule = asyncio.Event()
        procedures: dict[str, Procedure] = {
            "set_interval": self.proc_set_interval,
            "reboot": self.proc_reboot,
            "get_status": self.proc_get_status,
        }
        assert tuple(procedures) == WAMP_PROCEDURES
        self.link = WampLink(
            self.cfg.ws_url or "",
            self.identity.id,
            self.identity.token,
            stats=self.wamp,
            procedures=procedures,
            rng=device_rng(self.cfg.seed, self.identity.index, "wamp"),
            timeout=self.cfg.timeout,
            on_registered=self.fetch_queued_commands,
        )

    # ----------------------------------------------------------------- producing

    async def run_producer(self) -> None:
        self.started = True
        await super().run_producer()

    async def pause(self, delay: float) -> Wake:
        """Sleep until the next record is due, waking early when the schedule changes."""
        self.reschedule.clear()
        stop = asyncio.ensure_future(self.control.stop_event.wait())
        change = asyncio.ensure_future(self.reschedule.wait())
        try:
            await asyncio.wait({stop, change}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            change.cancel()
        if self.control.stopped:
            return Wake.STOPPED
        if self.reschedule.is_set():
            return Wake.RESCHEDULED
        return Wake.ELAPSED

    def apply_interval(self, seconds: float, now: float) -> None:
        """Records from the next one on come every ``seconds``: the next is due one new
        interval after the previous record (not before now, nor before a reboot pause ends).
        Generators keep their own simulated time step, so the values are unchanged."""
        if self.started:
            k = self.next_step
            if k == 0:
                base_t, base_sim = self.target_time(0), self.sim_offset(0)
            else:
                base_t, base_sim = self.target_time(k - 1) + seconds, self.sim_offset(k - 1) + seconds
            new_t = max(base_t, now, self.resume_at)
            self.sched_t, self.sched_sim, self.sched_step = new_t, base_sim + (new_t - base_t), k
        self.interval = seconds
        self.reschedule.set()

    def apply_reboot(self, now: float) -> None:
        """Stop producing for ``cfg.reboot_pause`` seconds, then continue where it was (the
        schedule shifts by the pause; uptime restarts when it ends)."""
        self.resume_at = now + self.cfg.reboot_pause
        self.booted_at = self.resume_at
        self.wamp.reboots += 1
        if self.started:
            k = self.next_step
            old_t, old_sim = self.target_time(k), self.sim_offset(k)
            new_t = max(old_t, self.resume_at)
            self.sched_t, self.sched_sim, self.sched_step = new_t, old_sim + (new_t - old_t), k
        self.reschedule.set()

    # ----------------------------------------------------------------- procedures

    def proc_set_interval(self, *args: Any, **kwargs: Any) -> float:
        """``set_interval(seconds=S)``: the new record interval, 0 < S <= 86400; returns it."""
        seconds: Any = kwargs.get("seconds", args[0] if args else None)
        number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        if not number or not math.isfinite(seconds) or not 0 < seconds <= MAX_INTERVAL_S:
            raise ApplicationError(  # type: ignore[no-untyped-call]
                INVALID_ARGUMENT, f"seconds: a number, 0 < seconds <= {MAX_INTERVAL_S:g}"
            )
        self.apply_interval(float(seconds), time.monotonic())
        return self.interval

    def proc_reboot(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.apply_reboot(time.monotonic())
        return {"rebooting": True}

    def proc_get_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {
            "device_id": self.identity.id,
            "records_sent": self.records_sent,
            "records_acked": self.records_acked,
            "interval_s": self.interval,
            "uptime_s": round(max(0.0, time.monotonic() - self.booted_at), 3),
            "buffered": self.buffered,
        }

    async def fetch_queued_commands(self) -> None:
        """Answer the HTTP commands queued while no procedure was registered (before the first
        join, or during a reconnect): ``GET /v1/commands``, then ``POST .../result``."""
        auth = {"Authorization": f"Bearer {self.identity.token}"}
        polled = await self.api.request("GET", "/v1/commands", headers=auth, params={"wait": 0})
        commands = polled.data.get("commands") if polled.ok and isinstance(polled.data, dict) else None
        if not isinstance(commands, list):
            return
        prefix = device_prefix(self.identity.id)
        for command in commands:
            if not isinstance(command, dict) or not isinstance(command.get("id"), str):
                continue
            self.wamp.commands_polled += 1
            procedure = str(command.get("procedure", ""))
            name = procedure[len(prefix) :] if procedure.startswith(prefix) else procedure
            args = command.get("args") if isinstance(command.get("args"), list) else []
            kwargs = command.get("kwargs") if isinstance(command.get("kwargs"), dict) else {}
            answer: dict[str, Any]
            try:
                answer = {"result": self.link.answer(name, args or [], kwargs or {})}
            except ApplicationError as exc:
                text = str(exc.args[0]) if exc.args else exc.error
                answer = {"error": {"uri": exc.error, "message": text}}
            path = f"/v1/commands/{quote(command['id'], safe='')}/result"
            await self.api.request("POST", path, headers=auth, json_body=answer)

    # ----------------------------------------------------------------- sending

    def encode_body(self, records: Sequence[Record]) -> Body:
        return encode("json", records)

    def malformed_body(self, records: Sequence[Record], kind: str) -> Body:
        """Over WAMP every malformed kind is an invalid metric name: a truncated or non-finite
        body cannot be expressed in a JSON-serialized WAMP message (the router would end the
        session with a protocol violation, not refuse the batch)."""
        ts = records[0].ts_ms if records else 0
        return encode("json", [Record(ts, (Sample("bad metric!", "", 1),))])

    async def post(self, body: Body, key: str) -> SendResult:
        """Publish one batch (same key on every attempt) with the HTTP transport's retry rules."""
        stats, cfg = self.stats, self.cfg
        kwargs = kwargs_from_body(body)
        size = frame_size(publish_frame(2**53, self.topic, kwargs, key))
        if size > MAX_MESSAGE_BYTES:  # the gateway would close the connection: refuse it here
            text = f"a PUBLISH of {size} bytes exceeds {MAX_MESSAGE_BYTES} (use a smaller --batch)"
            return SendResult(Outcome.REJECTED, 413, "payload_too_large", None, 0, None, None, text)
        deadline = self.drain_deadline if self.production_done else None
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            code: str | None = None
            failure = "transport"
            text = ""
            wait = cfg.timeout if deadline is None else min(cfg.timeout, deadline - time.monotonic())
            session = await self.link.wait_session(wait)
            if session is None:
                text = f"not connected ({self.link.last_error or 'connecting'})"
                stats.transport_errors += 1
            else:
                stats.requests += 1
                started = time.perf_counter()
                try:
                    await self.link.publish(session, self.topic, kwargs, key)
                except ApplicationError as exc:
                    error = classify_publish_error(exc.error)
                    text = str(exc)
                    if error.kind == "transport" or not session.is_attached():
                        # The session ended (ABORT, GOODBYE, lost) before an answer: retry.
                        stats.transport_errors += 1
                    else:
                        self.wamp.count_publish_error(error.code)
                        if not error.retryable:
                            return SendResult(
                                Outcome.REJECTED, error.status, error.code, None, attempt, None, None, text,
                                maybe_stored=error.maybe_stored,
                            )  # fmt: skip
                        failure, status, code = error.kind, error.status, error.code
                        if error.kind == "throttled":
                            stats.throttled += 1
                        else:
                            stats.server_errors += 1
                except (TransportLost, TimeoutError, OSError) as exc:
                    text = f"{type(exc).__name__}: {exc}"
                    stats.transport_errors += 1
                else:
                    latency_ms = (time.perf_counter() - started) * 1000.0
                    stats.latencies_ms.append(latency_ms)
                    self.wamp.published += 1
                    return SendResult(Outcome.OK, None, None, None, attempt, latency_ms, None)
            gave_up = SendResult(Outcome.GAVE_UP, status, code or failure, None, attempt, None, failure, text)
            if attempt > cfg.max_retries:
                return gave_up
            delay = backoff_delay(attempt, None, self.retry_rng, base=self.api.policy.base, cap=self.api.policy.cap)
            if deadline is not None and time.monotonic() + delay > deadline:
                return gave_up
            stats.retries += 1
            await asyncio.sleep(delay)


make_wamp_devices = WampDevice.fleet  # the devices of a run over WAMP (their links not yet started)
