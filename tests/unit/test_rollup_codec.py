from __future__ import annotations

import struct

import pytest

from chalicelib.domain.rollup_codec import (
    FORMAT_RAW,
    FORMAT_ZLIB,
    CodecError,
    decode_devices,
    decode_series,
    encode_devices,
    encode_series,
)
from chalicelib.domain.rollups import HOUR_MS, Partial, partial_of

DAY0 = 1_795_564_800_000
H = DAY0 + 5 * HOUR_MS


def bits(x: object) -> object:
    return struct.pack("<d", x) if isinstance(x, float) else (type(x), x)


def same(a: Partial, b: Partial) -> bool:
    fields = ("count", "first_ts", "first", "last_ts", "last", "numbers", "min", "max", "sum")
    return all(bits(getattr(a, f)) == bits(getattr(b, f)) for f in fields)


@pytest.mark.parametrize(
    "points",
    [
        [(H + 1, 0.1 + 0.2), (H + 2, 0.1), (H + 3, 1e-300), (H + 4, 1.7976931348623157e308)],
        [(H, -0.0)],
        [(H, -0.0), (H + 1, 0.0)],
        [(H, 10**30), (H + 1, -(10**25)), (H + 2, 3)],
        [(H, "open"), (H + 1, ""), (H + 2, "ünïcødé ✓ " * 50)],
        [(H, True), (H + 1, False), (H + 2, 1), (H + 3, 1.0)],
        [(H + HOUR_MS - 1, 21.53), (H, 3.7 - 1e-5)],
    ],
)
def test_a_partial_round_trips_bit_for_bit(points):
    p = partial_of(points)
    assert p is not None
    assert same(decode_series(encode_series({("m", "u", H): p}, DAY0))[("m", "u", H)], p)
    assert same(decode_devices(encode_devices({"d": {("m", "u", H): p}}, H))["d"][("m", "u", H)], p)


def test_series_of_many_hours_and_devices_round_trip():
    series = {}
    for h in range(24):
        for m in ("temp", "hum", "status"):
            value = "ok" if m == "status" else h * 0.1 + 0.2
            p = partial_of([(DAY0 + h * HOUR_MS + 7, value), (DAY0 + h * HOUR_MS + 9, value)])
            assert p is not None
            series[(m, "" if m == "status" else "Cel", DAY0 + h * HOUR_MS)] = p
    blob = encode_series(series, DAY0)
    assert decode_series(blob) == series
    assert blob[0] == FORMAT_ZLIB  # repetitive: compression pays
    rows = {"dev-1": {k: v for k, v in series.items() if k[2] == H}, "dev-2": {}}
    assert decode_devices(encode_devices(rows, H)) == rows


def test_a_tiny_blob_is_not_compressed():
    p = partial_of([(H, 1)])
    assert p is not None
    assert encode_series({("m", "", H): p}, DAY0)[0] == FORMAT_RAW


@pytest.mark.parametrize("blob", [b"", b"\x07abc", b"\x02not zlib", b"\x01\x05"])
def test_foreign_bytes_are_refused(blob):
    with pytest.raises(CodecError):
        decode_series(blob)
