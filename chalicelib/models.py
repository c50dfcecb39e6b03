"""Every PynamoDB model of the app.

Table names, region and endpoint come from config.Settings at bind time, not at
import time, so one code base serves every stage (and moto in tests).
"""

from __future__ import annotations

import threading
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.connection.table import TableConnection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.config import Settings

DEVICE_KIND = "device"

# PynamoDB builds a model's botocore client on first use, without a lock, in a botocore session
# per thread: a burst of first requests on a threaded server (the local stack) had every thread
# parse the DynamoDB service model at once. One lock makes the first use build it once.
_CONNECTION_LOCK = threading.Lock()
_ready: dict[type[Model], TableConnection] = {}


class AppModel(Model):
    """The base of the app's models: the connection and its client are built once, under a lock."""

    @classmethod
    def _get_connection(cls) -> TableConnection:
        connection = cls._connection
        if connection is not None and _ready.get(cls) is connection and connection.table_name == cls.Meta.table_name:
            return connection
        with _CONNECTION_LOCK:
            connection = super()._get_connection()
            connection.connection.client  # noqa: B018 (the property builds the client)
            _ready[cls] = connection
            return connection


class TokenIndex(GlobalSecondaryIndex["DeviceModel"]):
    """Token hash -> device id. Keys only, so state updates never write to it."""

    class Meta:
        index_name = "token_hash-index"
        projection = KeysOnlyProjection()

    token_hash = UnicodeAttribute(hash_key=True)


class ListIndex(GlobalSecondaryIndex["DeviceModel"]):
    """All devices in id order, for paging the registry without a Scan.

    Projects only the registry fields, so the per-request state update does not
    cost a write on this index.
    """

    class Meta:
        index_name = "kind-device_id-index"
        projection = IncludeProjection(["name", "device_type", "attributes", "disabled", "created_at", "updated_at"])

    kind = UnicodeAttribute(hash_key=True)
    device_id = UnicodeAttribute(range_key=True)


class ActiveIndex(GlobalSecondaryIndex["DeviceModel"]):
    """Devices by the hour they were last active: counting active devices is one Query.

    The key changes once an hour per device, so the index costs one write per device
    per hour, not one per request.
    """

    class Meta:
        index_name = "active_hour-index"
        projection = KeysOnlyProjection()

    active_hour = UnicodeAttribute(hash_key=True)


class DeviceModel(AppModel):
    """One item per device: registry fields, token hash, latest state."""

    class Meta:
        table_name = "devices"
        region = "us-east-1"
        host: str | None = None
        billing_mode = "PAY_PER_REQUEST"

    device_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default=DEVICE_KIND)
    name = UnicodeAttribute()
    device_type = UnicodeAttribute()
    attributes: MapAttribute[str, Any] = MapAttribute(default=dict)
    token_hash = UnicodeAttribute()
    disabled = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    last_seen = NumberAttribute(null=True)
    active_hour = UnicodeAttribute(null=True)  # YYYYMMDDHH#<shard> of last_seen (adapters.devices.active_key)
    # The newest reading time over all of `state`; lets the common update be one
    # conditional write (see adapters.devices.DeviceRepository.record_state).
    state_ts = NumberAttribute(null=True)
    # The live stream's fold mark: received_at of the newest request folded into `state` and
    # last_seen (domain.state); absent until the first fold.
    folded_at = NumberAttribute(null=True)
    # "<metric>~<unit as hex>" -> {"t": ts_ms, "v": value}
    state: MapAttribute[str, Any] = MapAttribute(default=dict)

    token_index = TokenIndex()
    list_index = ListIndex()
    active_index = ActiveIndex()


class ReadingChunkModel(AppModel):
    """One item per (device, hour bucket, request): see domain.chunks.

    Attribute names are short on purpose: they count toward every item's size,
    and so toward write units.
    """

    class Meta:
        table_name = "readings"
        region = "us-east-1"
        host: str | None = None
        billing_mode = "PAY_PER_REQUEST"
        # The archiver and live handlers diff old and new images (see DESIGN.md).
        stream_view_type = "NEW_AND_OLD_IMAGES"

    device_id = UnicodeAttribute(hash_key=True, attr_name="d")
    sort_key = UnicodeAttribute(range_key=True, attr_name="k")
    data = BinaryAttribute(legacy_encoding=False, attr_name="b")
    reading_count = NumberAttribute(attr_name="n")
    ts_min = NumberAttribute(attr_name="t0")
    ts_max = NumberAttribute(attr_name="t1")
    received_at = NumberAttribute(attr_name="r")
    expires_at = TTLAttribute(attr_name="x")


class AggregateModel(AppModel):
    """Outputs of the rollup job that the API serves (layout: adapters.aggregates.RollupStore).

    Rollup day items: partition `rollday#<device>`, sort `YYYY-MM-DD`, blob of hourly Partials.
    Hour pages: partition `rollpage#<day>#<shard>`, sort `HH[#k]`; manifest `rollpage#<day>`.
    Inverted index: partition `word#<word>`, sort `<device>#<metric>#<day>`.
    """

    class Meta:
        table_name = "aggregates"
        region = "us-east-1"
        host: str | None = None
        billing_mode = "PAY_PER_REQUEST"

    partition = UnicodeAttribute(hash_key=True, attr_name="p")
    sort_key = UnicodeAttribute(range_key=True, attr_name="s")
    row = UnicodeAttribute(null=True, attr_name="j")  # a small JSON row (index posting, manifest, ...)
    blob = BinaryAttribute(null=True, legacy_encoding=False, attr_name="b")  # rollup_codec bytes
    expires_at = TTLAttribute(null=True, attr_name="x")  # hour pages once their day is compacted


class AlertLookupIndex(GlobalSecondaryIndex["AlertModel"]):
    """Rules by scope (`rules#device#<id>`, `rules#type#<t>`, `rules#all`) and alerts by device."""

    class Meta:
        index_name = "a1-b1-index"
        projection = AllProjection()

    lookup = UnicodeAttribute(hash_key=True, attr_name="a1")
    lookup_sort = UnicodeAttribute(range_key=True, attr_name="b1")


class AlertStateIndex(GlobalSecondaryIndex["AlertModel"]):
    """Alerts by state (`alerts#state#<state>`), most severe then newest first."""

    class Meta:
        index_name = "a2-b2-index"
        projection = AllProjection()

    by_state = UnicodeAttribute(hash_key=True, attr_name="a2")
    by_state_sort = UnicodeAttribute(range_key=True, attr_name="b2")


class AlertSeverityIndex(GlobalSecondaryIndex["AlertModel"]):
    """Alerts by severity (`alerts#severity#<severity>`), newest first."""

    class Meta:
        index_name = "a3-b3-index"
        projection = AllProjection()

    by_severity = UnicodeAttribute(hash_key=True, attr_name="a3")
    by_severity_sort = UnicodeAttribute(range_key=True, attr_name="b3")


class AlertModel(AppModel):
    """Everything alert-related, one table (see adapters.alerts for the item kinds and keys).

    Rules `rules`/<rule id>; rule state `state#<device>`/<rule id>; alerts `alerts`/<alert id>;
    notification outbox `outbox`/<notification id> (`outbox#failed` once given up). The three
    GSIs are sparse: only items carrying their keys are indexed.
    """

    class Meta:
        table_name = "alerts"
        region = "us-east-1"
        host: str | None = None
        billing_mode = "PAY_PER_REQUEST"

    partition = UnicodeAttribute(hash_key=True, attr_name="p")
    sort_key = UnicodeAttribute(range_key=True, attr_name="s")
    doc = UnicodeAttribute(null=True, attr_name="j")  # the rule, state, alert or notification, as JSON
    version = NumberAttribute(null=True, attr_name="v")  # rules and states: optimistic concurrency
    lookup = UnicodeAttribute(null=True, attr_name="a1")
    lookup_sort = UnicodeAttribute(null=True, attr_name="b1")
    by_state = UnicodeAttribute(null=True, attr_name="a2")
    by_state_sort = UnicodeAttribute(null=True, attr_name="b2")
    by_severity = UnicodeAttribute(null=True, attr_name="a3")
    by_severity_sort = UnicodeAttribute(null=True, attr_name="b3")
    # Alerts: what changes after the raise lives outside `doc`, so clear and ack never overwrite each other.
    alert_state = UnicodeAttribute(null=True, attr_name="st")
    severity = UnicodeAttribute(null=True, attr_name="sv")
    cleared_at = NumberAttribute(null=True, attr_name="ct")
    cleared_by = UnicodeAttribute(null=True, attr_name="cb")  # JSON list of readings
    acknowledged = BooleanAttribute(null=True, attr_name="ak")
    acknowledged_at = NumberAttribute(null=True, attr_name="at")
    # Outbox: delivery attempts, when the next is due, who holds it until when, why the last failed.
    attempts = NumberAttribute(null=True, attr_name="n")
    due_at = NumberAttribute(null=True, attr_name="du")
    lease_until = NumberAttribute(null=True, attr_name="ls")
    last_error = UnicodeAttribute(null=True, attr_name="er")

    lookup_index = AlertLookupIndex()
    state_index = AlertStateIndex()
    severity_index = AlertSeverityIndex()


class RealtimeModel(AppModel):
    """The WAMP router's state (see adapters.realtime for the key design), one small item per fact.

    Short attribute names on purpose, as in ReadingChunkModel: they count toward every item's size.
    """

    class Meta:
        table_name = "realtime"
        region = "us-east-1"
        host: str | None = None
        billing_mode = "PAY_PER_REQUEST"

    partition = UnicodeAttribute(hash_key=True, attr_name="p")
    sort_key = UnicodeAttribute(range_key=True, attr_name="s")
    body = UnicodeAttribute(null=True, attr_name="j")  # the item's facts, as JSON
    expires_at = TTLAttribute(null=True, attr_name="x")
    counter = NumberAttribute(null=True, attr_name="n")  # sessions: last router-to-client request id
    owner = UnicodeAttribute(null=True, attr_name="o")  # registrations: the callee's connection id
    status = UnicodeAttribute(null=True, attr_name="st")  # commands
    outcome = UnicodeAttribute(null=True, attr_name="r")  # commands: {"result": ...} or {"error": ...}, as JSON
    updated_at = NumberAttribute(null=True, attr_name="u")  # commands, ms


ALL_MODELS: tuple[type[Model], ...] = (DeviceModel, ReadingChunkModel, AggregateModel, AlertModel, RealtimeModel)
# Tables whose every call goes through the app's retry (adapters.retry): botocore makes one
# attempt per call there, so the two loops never multiply. The others keep botocore's
# standard retries (PynamoDB's default, 3): their adapters do not retry throttling.
APP_RETRIED: tuple[type[Model], ...] = (DeviceModel, ReadingChunkModel, AggregateModel)


def bind(settings: Settings) -> None:
    """Point every model at the stage's tables, region and endpoint, with its client's retries and timeouts."""
    names: dict[type[Model], str] = {
        DeviceModel: settings.devices_table,
        ReadingChunkModel: settings.readings_table,
        AggregateModel: settings.aggregates_table,
        RealtimeModel: settings.realtime_table,
        AlertModel: settings.alerts_table,
    }
    for model, table in names.items():
        model.Meta.table_name = table
        model.Meta.region = settings.region
        model.Meta.host = settings.aws_endpoint_url
        # Declared int by PynamoDB; botocore takes any number of seconds.
        model.Meta.connect_timeout_seconds = settings.dynamodb_connect_timeout_s  # type: ignore[assignment]
        model.Meta.read_timeout_seconds = settings.dynamodb_read_timeout_s  # type: ignore[assignment]
        if model in APP_RETRIED:
            model.Meta.max_retry_attempts = 0
        # PynamoDB caches a connection per model, holding the old table name and host.
        model._connection = None
