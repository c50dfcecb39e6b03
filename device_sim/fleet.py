"""Devices: provisioning, the per-device produce/buffer/send loops and fault injection.

Each device runs two tasks. The *producer* generates one record every ``interval``
seconds (after a random start offset within one interval), seals every ``batch``
records into a :class:`Batch` and appends it to the device's outbox. The *sender*
posts batches from the outbox, oldest first. While the server is unreachable the
sender keeps retrying and the producer keeps filling the outbox, bounded by
``buffer_limit`` records: beyond it the oldest records not currently in flight are
dropped (``dropped_buffer``).
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import re
import secrets
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from device_sim.config import SKEW_TOLERANCE_MS, SimConfig
from device_sim.model import (
    DEVICE_ID_CHARS,
    MAX_DEVICE_ID_LEN,
    MAX_FUTURE_MS,
    MIN_TS_MS,
    Identity,
    Record,
    Value,
    stored_identity,
)
from device_sim.payloads import Body, encode, malformed, pick_malformed_kind, reading_count
from device_sim.profiles import DeviceType, SampleSource, derive_seed, device_rng, type_ordinals
from device_sim.report import Stats
from device_sim.transport import Api, Outcome, SendResult, backoff_delay

MALFORMED_EXPECTED_STATUSES = frozenset({400, 413, 415, 422})
SKEW_EXPECTED_STATUSES = frozenset({400, 422})
BURST_MIN, BURST_MAX = 2, 5


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------- provisioning


class ProvisionError(RuntimeError):
    pass


@dataclass(frozen=True)
class DeviceIdentity:
    index: int
    id: str
    name: str
    type: str
    token: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_tokens_file(path: str | Path) -> list[DeviceIdentity]:
    """Identities saved by an earlier run; an absent file gives an empty list."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        rows = data["devices"] if isinstance(data, dict) else data
        return [
            DeviceIdentity(i, str(r["id"]), str(r.get("name", "")), str(r.get("type", "")), str(r["token"]))
            for i, r in enumerate(rows)
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProvisionError(f"{p}: not a valid tokens file: {exc}") from exc


def save_tokens_file(path: str | Path, url: str, identities: Sequence[DeviceIdentity]) -> None:
    """Write identities (with secret tokens) atomically, readable by the owner only."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    data = {"url": url, "devices": [i.as_dict() for i in identities]}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, p)


# Ids the simulator chooses use the server's id alphabet only (model.DEVICE_ID_CHARS).
ID_UNSAFE = re.compile(rf"[^{DEVICE_ID_CHARS}]")
ID_TAG_BYTES = 4  # 8 hex digits of randomness per run: another run's ids never collide
ID_ATTEMPTS = 3  # fresh tags tried when an id turns out to be someone else's
TOKEN_CHECKS = 3  # rotations tried until the token is confirmed to work


def sim_device_id(type_name: str, index: int, tag: str) -> str:
    """The id the simulator chooses for a device: ``sim-<type>-<index>-<tag>``, at most 64
    characters of the server's id alphabet (the type is shortened and cleaned to fit)."""
    suffix = f"-{index:05d}-{tag}"
    room = MAX_DEVICE_ID_LEN - len("sim-") - len(suffix)
    return f"sim-{ID_UNSAFE.sub('-', type_name)[: max(room, 0)]}{suffix}"


def _failure(result: SendResult) -> str:
    return " ".join(str(x) for x in (result.status, result.code, result.message) if x)


async def _admin_request(
    api: Api, admin_token: str, method: str, path: str, deadline: float, body: Any = None
) -> SendResult:
    """An admin request retried like every other (``Api.request``: backoff with jitter,
    Retry-After) for as long as the provisioning deadline allows, not a fixed count."""
    return await api.request(
        method,
        path,
        headers={"Authorization": f"Bearer {admin_token}"},
        json_body=body,
        deadline=deadline,
        max_retries=sys.maxsize,
    )


async def _take_over(api: Api, admin_token: str, device_id: str, body: dict[str, Any], deadline: float) -> str | None:
    """A device our own earlier attempt created (its answer was lost): confirm it is the one we
    asked for, then rotate its token, since the first token was shown once and never arrived.
    None if the device is not ours."""
    path = f"/v1/devices/{quote(device_id, safe='')}"
    found = await _admin_request(api, admin_token, "GET", path, deadline)
    if not found.ok:
        raise ProvisionError(f"GET {path}: {_failure(found)}")
    data = found.data if isinstance(found.data, dict) else {}
    if any(data.get(k) != body[k] for k in ("name", "type", "attributes")):
        return None
    last = ""
    for _ in range(TOKEN_CHECKS):
        rotated = await _admin_request(api, admin_token, "POST", f"{path}/token", deadline)
        token = rotated.data.get("token") if rotated.ok and isinstance(rotated.data, dict) else None
        if not isinstance(token, str) or not token:
            raise ProvisionError(f"POST {path}/token: {_failure(rotated) or 'no token in the answer'}")
        # A retried rotation whose first attempt the server finished last would leave another
        # token in force: confirm this one with a read the device itself may make.
        check = await api.request(
            "GET",
            f"{path}/telemetry",
            headers={"Authorization": f"Bearer {token}"},
            params={"limit": 1},
            deadline=deadline,
            max_retries=sys.maxsize,
        )
        if check.ok:
            return token
        last = _failure(check)
        if check.status != 401:
            break
    raise ProvisionError(f"{device_id}: the rotated token does not work: {last}")


async def provision_device(
    api: Api, admin_token: str, index: int, dtype: DeviceType, run_tag: str, deadline: float
) -> DeviceIdentity:
    """Create one device under an id the simulator chooses, so that a retry cannot create a
    second one: retries go on through transport errors, 5xx, 429 and 503 (with Retry-After)
    until ``deadline`` (``api.clock()`` time). When a retry meets 409 ``device_exists`` after
    an attempt whose answer was lost, that attempt created the device: the simulator checks it
    is the device it asked for and rotates its token (the first token was shown once and lost)."""
    attributes: dict[str, Any] = {**dtype.attributes, "simulator": "device_sim"}
    last = ""
    for attempt in range(ID_ATTEMPTS):
        tag = run_tag if attempt == 0 else secrets.token_hex(ID_TAG_BYTES)
        device_id = sim_device_id(dtype.name, index, tag)
        body = {"id": device_id, "name": device_id, "type": dtype.name, "attributes": attributes}
        result = await _admin_request(api, admin_token, "POST", "/v1/devices", deadline, body)
        if result.ok:
            data = result.data
            if not isinstance(data, dict) or data.get("id") != device_id or not data.get("token"):
                raise ProvisionError(f"POST /v1/devices: answer lacks 'id'/'token': {data!r}")
            return DeviceIdentity(index, device_id, device_id, dtype.name, str(data["token"]))
        last = _failure(result)
        if result.outcome is not Outcome.REJECTED or result.status != 409:
            break
        if result.attempts > 1:  # an earlier attempt failed in a way that may have created it
            token = await _take_over(api, admin_token, device_id, body, deadline)
            if token is not None:
                return DeviceIdentity(index, device_id, device_id, dtype.name, token)
        # The id is someone else's: draw another tag.
    raise ProvisionError(f"cannot provision device {index} ({dtype.name}): {last}")


async def provision_fleet(api: Api, cfg: SimConfig, types: Sequence[DeviceType]) -> tuple[list[DeviceIdentity], int]:
    """Identities for every device (reused from --tokens-file, the rest created).

    Returns (identities, number reused).
    """
    reused: list[DeviceIdentity] = []
    if cfg.tokens_file:
        reused = load_tokens_file(cfg.tokens_file)[: len(types)]
    missing = range(len(reused), len(types))
    if missing and not cfg.admin_token:
        raise ProvisionError("an admin token is needed to provision devices (--admin-token)")
    run_tag = secrets.token_hex(ID_TAG_BYTES)
    deadline = api.clock() + cfg.provision_timeout
    created = await asyncio.gather(
        *(provision_device(api, cfg.admin_token, i, types[i], run_tag, deadline) for i in missing)
    )
    identities = [*reused, *created]
    if cfg.tokens_file and created:
        save_tokens_file(cfg.tokens_file, cfg.url, identities)
    return identities, len(reused)


# --------------------------------------------------------------------------- devices


class Wake(enum.Enum):
    """Why a producer's pause ended."""

    ELAPSED = "elapsed"
    STOPPED = "stopped"  # the run was stopped (Ctrl-C)
    RESCHEDULED = "rescheduled"  # the schedule changed meanwhile (set_interval, reboot)


class RunControl:
    """Shared timing of a run: start, planned end, and an early stop (Ctrl-C)."""

    def __init__(self, start: float, end: float | None) -> None:
        self.start = start
        self.end = end
        self.stop_event = asyncio.Event()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def stop(self) -> None:
        self.stop_event.set()

    async def sleep_or_stop(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if stopped meanwhile."""
        try:
            await asyncio.wait_for(self.stop_event.wait(), timeout=delay)
        except TimeoutError:
            return False
        return True


@dataclass(eq=False)
class Batch:
    seq: int
    records: list[Record]
    key: str
    malformed_kind: str | None = None  # inject a malformed request before the first send
    duplicate: bool = False  # re-send once acked
    body: Body | None = None  # fixed at first transmission; reused by retries/duplicates
    counted: bool = False  # records_sent counted
    in_flight: bool = False
    maybe_stored: bool = False  # an attempt failed in a way the server may have stored it
    last_failure: str | None = None


def new_key() -> str:
    return str(uuid.uuid4())


@dataclass(eq=False)  # eq=False: a device is itself, hashed by identity
class Device:
    identity: DeviceIdentity
    dtype: DeviceType
    cfg: SimConfig
    api: Api
    stats: Stats
    control: RunControl
    ordinal: int = 0

    def __post_init__(self) -> None:
        index = self.identity.index
        interval = self.cfg.interval if self.cfg.interval is not None else self.dtype.interval
        self.interval = interval if interval is not None else 1.0
        self.source = SampleSource(self.dtype, device_rng(self.cfg.seed, index, "values"), self.interval, self.ordinal)
        self.fault_rng = device_rng(self.cfg.seed, index, "faults")
        self.timing_rng = device_rng(self.cfg.seed, index, "timing")
        self.retry_rng = device_rng(self.cfg.seed, index, "retry")
        self.skew_ms = 0
        if self.cfg.clock_skew > 0 and self.fault_rng.random() < self.cfg.skew_rate:
            self.skew_ms = round(self.fault_rng.uniform(-self.cfg.clock_skew, self.cfg.clock_skew) * 1000)
            self.stats.skewed_devices += 1
        self.outbox: deque[Batch] = deque()
        self.pending: list[Record] = []
        self.buffered = 0  # records in pending + outbox
        self.seq = 0
        self.last_ts: int | None = None
        self.first_ts: int | None = None
        self.burst_target = 0
        self.production_done = False
        self.drain_deadline: float | None = None
        self.wake = asyncio.Event()
        self.track = self.cfg.verify
        self.acked: dict[Identity, Value] = {}
        self.uncertain: set[Identity] = set()
        self.records_sent = 0  # this device's share of stats.records_sent / records_acked
        self.records_acked = 0
        # The production schedule: record ``step`` is due at monotonic time
        # ``sched_t + (step - sched_step) * interval`` and, with --start-ms, is stamped
        # ``start_ms + (sched_sim + (step - sched_step) * interval) s``. Set when the producer
        # starts; a subclass may rebase it (see wamp.WampDevice: set_interval, reboot).
        self.sched_t = 0.0
        self.sched_sim = 0.0
        self.sched_step = 0
        self.next_step = 0  # the step the producer makes next

    @classmethod
    def fleet(
        cls,
        identities: Sequence[DeviceIdentity],
        types: Sequence[DeviceType],
        cfg: SimConfig,
        api: Api,
        stats: Stats,
        control: RunControl,
    ) -> list[Self]:
        """One device of this class per identity, with its type and its ordinal among the devices
        of that type (a scripted anomaly may apply to the first N devices of a type)."""
        ordinals = type_ordinals(types)
        return [cls(ident, types[ident.index], cfg, api, stats, control, ordinals[ident.index]) for ident in identities]

    # ----------------------------------------------------------------- producing

    def target_time(self, step: int) -> float:
        """When record ``step`` is due (time.monotonic())."""
        return self.sched_t + (step - self.sched_step) * self.interval

    def sim_offset(self, step: int) -> float:
        """Seconds after --start-ms that record ``step`` is stamped with."""
        return self.sched_sim + (step - self.sched_step) * self.interval

    def make_record(self, step: int) -> Record:
        start_ms = self.cfg.start_ms
        ts = now_ms() if start_ms is None else start_ms + round(self.sim_offset(step) * 1000)
        ts += self.skew_ms
        if self.last_ts is not None and ts <= self.last_ts:
            ts = self.last_ts + 1  # one reading per metric and ms: keep identities distinct
        self.last_ts = ts
        if self.first_ts is None:
            self.first_ts = ts
        return Record(ts, self.source.next_samples())

    def add_record(self, record: Record) -> None:
        self.stats.records_generated += 1
        self.pending.append(record)
        self.buffered += 1
        if len(self.pending) >= self.cfg.batch:
            self.seal()
        self.enforce_buffer_limit()

    def seal(self) -> None:
        if not self.pending:
            return
        rng = self.fault_rng
        batch = Batch(self.seq, self.pending, new_key())
        self.seq += 1
        self.pending = []
        if self.cfg.malformed_rate and rng.random() < self.cfg.malformed_rate:
            batch.malformed_kind = pick_malformed_kind(rng)
        if self.cfg.duplicate_rate and rng.random() < self.cfg.duplicate_rate:
            batch.duplicate = True
        if (
            self.cfg.burst_rate
            and not self.burst_target
            and not self.production_done
            and rng.random() < self.cfg.burst_rate
        ):
            self.burst_target = rng.randint(BURST_MIN, BURST_MAX)
        self.outbox.append(batch)
        self.wake.set()

    def enforce_buffer_limit(self) -> None:
        while self.buffered > self.cfg.buffer_limit:
            if not self.drop_oldest():
                return

    def drop_oldest(self) -> bool:
        """Drop the oldest buffered record that is not in flight; False if none."""
        for batch in self.outbox:
            if batch.in_flight or not batch.records:
                continue
            record = batch.records.pop(0)
            if batch.maybe_stored:
                self.mark_uncertain([record])
            if batch.body is not None:  # the body changes, so it needs a new key
                batch.body = None
                batch.key = new_key()
            if not batch.records:
                self.outbox.remove(batch)
            self.buffered -= 1
            self.stats.dropped_buffer += 1
            return True
        if self.pending:
            self.pending.pop(0)
            self.buffered -= 1
            self.stats.dropped_buffer += 1
            return True
        return False

    async def run_producer(self) -> None:
        cfg, control = self.cfg, self.control
        jitter = self.timing_rng.uniform(0.0, self.interval) if self.interval > 0 else 0.0
        self.sched_t, self.sched_sim, self.sched_step = control.start + jitter, jitter, 0
        step = 0
        try:
            while not control.stopped:
                if cfg.count is not None and step >= cfg.count:
                    break
                target = self.target_time(step)
                if cfg.count is None and control.end is not None and target >= control.end:
                    break
                delay = target - time.monotonic()
                if delay > 0:
                    woke = await self.pause(delay)
                    if woke is Wake.STOPPED:
                        break
                    if woke is Wake.RESCHEDULED:
                        continue  # the schedule changed: recompute the target
                elif step % 64 == 0:
                    await asyncio.sleep(0)  # let the senders run when catching up
                self.add_record(self.make_record(step))
                step += 1
                self.next_step = step
        finally:
            self.seal()  # flush the partial batch
            self.production_done = True
            self.drain_deadline = time.monotonic() + cfg.drain_timeout
            self.wake.set()

    async def pause(self, delay: float) -> Wake:
        """Sleep until the next record is due; a subclass may also wake on a schedule change."""
        return Wake.STOPPED if await self.control.sleep_or_stop(delay) else Wake.ELAPSED

    # ----------------------------------------------------------------- sending

    async def _wait(self) -> None:
        self.wake.clear()
        await self.wake.wait()

    def _past_drain_deadline(self) -> bool:
        return self.drain_deadline is not None and time.monotonic() >= self.drain_deadline

    async def run_sender(self) -> None:
        outage = 0
        while True:
            if not self.outbox:
                if self.production_done:
                    return
                await self._wait()
                continue
            holding = self.burst_target and not self.production_done
            if holding and len(self.outbox) < self.burst_target:
                await self._wait()
                continue
            n = 1
            if self.burst_target:
                n, self.burst_target = self.burst_target, 0
            batches = list(self.outbox)[:n]
            if len(batches) > 1:
                self.stats.bursts += 1
            delivered = await asyncio.gather(*(self.deliver(b) for b in batches))
            if all(delivered):
                outage = 0
                continue
            # The server could not be reached: keep the data buffered and try again later.
            if self.production_done and self._past_drain_deadline():
                return
            outage += 1
            pause = backoff_delay(
                self.cfg.max_retries + outage,
                None,
                self.retry_rng,
                base=self.api.policy.base,
                cap=self.api.policy.cap,
            )
            if self.drain_deadline is not None:
                pause = min(pause, max(0.0, self.drain_deadline - time.monotonic()))
            await self.api.sleep(pause)

    def expect_rejection(self, batch: Batch) -> bool:
        """Would the server refuse this batch for its timestamps (clock skew, --start-ms)?"""
        current = now_ms()
        newest = max(r.ts_ms for r in batch.records)
        oldest = min(r.ts_ms for r in batch.records)
        too_new = newest > current + MAX_FUTURE_MS - SKEW_TOLERANCE_MS
        return too_new or oldest < MIN_TS_MS

    def encode_body(self, records: Sequence[Record]) -> Body:
        """A batch's body, encoded once at its first transmission."""
        return encode(self.cfg.fmt, records)

    def malformed_body(self, records: Sequence[Record], kind: str) -> Body:
        return malformed(self.cfg.fmt, records, kind)

    async def post(self, body: Body, key: str) -> SendResult:
        headers = {"Content-Type": body.content_type, "Idempotency-Key": key}
        if self.cfg.fmt == "thingsboard":
            path = f"/api/v1/{quote(self.identity.token, safe='')}/telemetry"
        else:
            path = "/v1/telemetry"
            headers["Authorization"] = f"Bearer {self.identity.token}"
        deadline = self.drain_deadline if self.production_done else None
        return await self.api.request(
            "POST",
            path,
            headers=headers,
            content=body.content,
            stats=self.stats,
            deadline=deadline,
            ingest=True,
        )

    async def deliver(self, batch: Batch) -> bool:
        """Send one batch (with its retries). True when it is settled (acked or
        rejected); False when the server could not be reached (it stays buffered)."""
        stats = self.stats
        batch.in_flight = True
        try:
            if batch.body is None:
                batch.body = self.encode_body(batch.records)
            records = len(batch.records)
            readings = reading_count(batch.records)
            if not batch.counted:
                batch.counted = True
                stats.records_sent += records
                stats.readings_sent += readings
                self.records_sent += records
            if batch.malformed_kind is not None:
                kind, batch.malformed_kind = batch.malformed_kind, None
                await self.send_malformed(batch, kind)
            expected_reject = self.expect_rejection(batch)
            result = await self.post(batch.body, batch.key)
            if result.outcome is Outcome.GAVE_UP:
                batch.maybe_stored = True
                batch.last_failure = result.last_failure
                stats.gave_up += 1
                return False
            self.outbox.remove(batch)
            self.buffered -= records
            if result.outcome is Outcome.OK:
                stats.records_acked += records
                stats.readings_acked += readings
                self.records_acked += records
                accepted = result.data.get("accepted") if isinstance(result.data, dict) else None
                if isinstance(accepted, int) and not isinstance(accepted, bool):
                    stats.server_accepted += accepted
                if self.track:
                    for record in batch.records:
                        for sample in record.samples:
                            ident = stored_identity(sample, record.ts_ms, self.cfg.fmt)
                            self.acked[ident] = sample.value
                if batch.duplicate:
                    await self.send_duplicate(batch)
                return True
            # Rejected: final.
            stats.records_rejected += records
            stats.readings_rejected += readings
            expected = expected_reject and result.status in SKEW_EXPECTED_STATUSES
            stats.count_rejection(result.code or f"http_{result.status}", expected)
            if batch.maybe_stored or result.maybe_stored:
                self.mark_uncertain(batch.records)
            return True
        finally:
            batch.in_flight = False

    async def send_malformed(self, batch: Batch, kind: str) -> None:
        """A deliberately invalid body under its own Idempotency-Key; the real batch
        is sent right after, so no data is lost."""
        self.stats.malformed_sent += 1
        result = await self.post(self.malformed_body(batch.records, kind), new_key())
        if result.outcome is Outcome.OK:
            self.stats.malformed_accepted += 1
        elif result.outcome is Outcome.REJECTED:
            expected = result.status in MALFORMED_EXPECTED_STATUSES
            self.stats.count_rejection(result.code or f"http_{result.status}", expected)

    async def send_duplicate(self, batch: Batch) -> None:
        """Re-send an acked batch: same Idempotency-Key, same bytes."""
        assert batch.body is not None
        self.stats.duplicates_sent += 1
        result = await self.post(batch.body, batch.key)
        if result.outcome is Outcome.OK:
            self.stats.duplicates_acked += 1
        elif result.outcome is Outcome.REJECTED:
            self.stats.count_rejection(result.code or f"http_{result.status}", False)

    def mark_uncertain(self, records: Sequence[Record]) -> None:
        if not self.track:
            return
        for record in records:
            for sample in record.samples:
                self.uncertain.add(stored_identity(sample, record.ts_ms, self.cfg.fmt))

    def finish(self) -> None:
        """Account for whatever could not be delivered before the run ended."""
        self.seal()
        for batch in self.outbox:
            self.stats.unrecovered_failures += 1
            if batch.last_failure == "server_error":
                self.stats.unrecovered_server_errors += 1
            self.stats.records_unsent += len(batch.records)
            self.stats.readings_unsent += reading_count(batch.records)
            if batch.maybe_stored:
                self.mark_uncertain(batch.records)
        self.outbox.clear()
        self.buffered = 0


make_devices = Device.fleet  # the HTTP devices of a run (device_sim.wamp.make_wamp_devices: over WAMP)


async def run_devices(devices: Sequence[Device]) -> None:
    """Run every device's producer and sender to completion, then settle leftovers."""
    tasks = [d.run_producer() for d in devices] + [d.run_sender() for d in devices]
    await asyncio.gather(*tasks)
    for d in devices:
        d.finish()


def run_seed(seed: int) -> int:
    """The backoff RNG seed shared by non-device requests (provisioning, verify)."""
    return derive_seed(seed, -1, "api")
