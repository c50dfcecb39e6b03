"""The telemetry payloads' shapes, as the OpenAPI document shows them, built from the parser's rules.

`domain.parsing` reads telemetry bodies by hand (SenML's base fields and its JSON-as-SenML
guess are no schema); these schemas say of each body what a schema can, from the same limits
and patterns the parser reads (`domain.rules`, `domain.readings.Limits`' defaults,
`domain.timeparse`), so the document is as strict as the parser where it can be and never
stricter for a body the parser stores. What they cannot say (a time's "not in the future",
bn + n as one metric name, one value field per SenML record, UTF-8 bytes rather than
characters) stays the parser's alone.
"""

from __future__ import annotations

import re

from chalicelib.domain.readings import Limits
from chalicelib.domain.rules import (
    MAX_METRIC_CHARS,
    MAX_STRING_BYTES,
    MAX_TIME_CHARS,
    METRIC_PATTERN,
    METRIC_TAIL_CHARACTERS,
    SENML_MUST_UNDERSTAND,
    SENML_VERSIONS,
    UNIT_CHARACTERS,
)
from chalicelib.domain.schema import AnyOf, Anything, Arr, Bool, Int, Member, Named, Num, Obj, OneOf, Str
from chalicelib.domain.timeparse import SECONDS_THRESHOLD

DEFAULT_LIMITS = Limits()  # a stage may change them (config.Settings.limits); the document shows the defaults

# A time: epoch seconds (below SECONDS_THRESHOLD) or milliseconds, from 2000-01-01 (Limits.min_ts_ms)
# on; one millisecond of slack, since a fractional time is rounded to the millisecond.
_EARLIEST_MS = DEFAULT_LIMITS.min_ts_ms - 1
TIME = OneOf(
    options=(
        Num(minimum=_EARLIEST_MS / 1000, below=SECONDS_THRESHOLD, description="epoch seconds"),
        Num(minimum=_EARLIEST_MS, description="epoch milliseconds"),
        Str(max_length=MAX_TIME_CHARS, description="ISO 8601 with a zone"),
    ),
    description="epoch seconds, epoch milliseconds, or ISO 8601 with a zone; from 2000 to now (plus 5 minutes)",
)
VALUE = OneOf(
    options=(
        Num(),
        Str(max_length=MAX_STRING_BYTES, description=f"at most {MAX_STRING_BYTES} UTF-8 bytes"),
        Bool(),
    )
)
METRIC_NAME = Str(pattern=METRIC_PATTERN)
_MAX_METRICS = DEFAULT_LIMITS.max_metrics_per_record

# {"temp": 21.5, ...}: metric -> value, at the receive time or at its own `ts` (not a metric).
PLAIN = Obj(
    members={"ts": Member(TIME)},
    keys=METRIC_NAME,
    values=VALUE,
    max_members=_MAX_METRICS + 1,
    description="metric -> value at receive time (optional ts key)",
)
RECORD = Named(
    "Record",
    Obj(
        members={
            "ts": Member(TIME),
            "values": Member(Obj(keys=METRIC_NAME, values=VALUE, max_members=_MAX_METRICS), required=True),
        }
    ),
)

# A SenML record (RFC 8428): its fields' types; any other field is ignored unless it must be understood.
_NUMBER = Num()
SENML_RECORD = Obj(
    members={
        "bn": Member(Str()),
        "bt": Member(_NUMBER),
        "bu": Member(Str()),
        "bv": Member(_NUMBER),
        "bs": Member(_NUMBER),
        "bver": Member(Int(*SENML_VERSIONS)),
        "n": Member(Str(pattern=re.compile(f"^{METRIC_TAIL_CHARACTERS}$"), max_length=MAX_METRIC_CHARS)),
        "u": Member(Str(pattern=re.compile(f"^(?:{UNIT_CHARACTERS})?$"))),
        "v": Member(_NUMBER),
        "vs": Member(Str(max_length=MAX_STRING_BYTES)),
        "vb": Member(Bool()),
        "vd": Member(Str()),
        "s": Member(_NUMBER),
        "t": Member(_NUMBER),
        "ut": Member(Anything()),
    },
    keys=Str(pattern=re.compile(f"(?<!{SENML_MUST_UNDERSTAND})$")),
    values=Anything(),
    description="bn + n is the metric name; one of v, vs, vb, vd (or s)",
)
SENML_PACK = Named("SenmlPack", Arr(items=SENML_RECORD, max_items=DEFAULT_LIMITS.max_records))

# application/json: one record (plain or {ts, values}), a batch of them, or a SenML pack labelled as JSON.
TELEMETRY_JSON = Named(
    "TelemetryJson",
    AnyOf(
        options=(
            PLAIN,
            RECORD,
            Arr(items=OneOf(options=(PLAIN, RECORD)), max_items=DEFAULT_LIMITS.max_records),
            SENML_PACK,
        )
    ),
)
SENML_XML = Str(description="SenML XML (RFC 8428 section 7)")
