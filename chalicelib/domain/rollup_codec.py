"""A compact, exact binary encoding of hourly Partials (the rollup store's day items and hour pages).

Format: one version byte, then the payload, zlib-compressed when that is smaller
(FORMAT_RAW / FORMAT_ZLIB). Values keep their type: bool, int (any size), float (bit for bit:
the shortest decimal when it is short and round-trips, else the 8 IEEE bytes; -0.0 kept), str.
Timestamps are stored relative to their hour, hours relative to a base, so most are one byte.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

from chalicelib.domain.rollups import HOUR_MS, Partial, SeriesHour, Value

FORMAT_RAW = 1
FORMAT_ZLIB = 2

_NONE, _FALSE, _TRUE, _INT, _DECIMAL, _DOUBLE, _STR = range(7)
_MAX_DECIMAL_DIGITS = 12  # beyond this the 8 IEEE bytes are as short


class CodecError(ValueError):
    """The bytes are not a rollup blob this codec wrote."""


def _varint(out: bytearray, n: int) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _zigzag(out: bytearray, n: int) -> None:
    _varint(out, (n << 1) if n >= 0 else ((-n << 1) - 1))


def _decimal(x: float) -> tuple[int, int] | None:
    """(mantissa, exponent) with float(f"{m}e{e}") == x bit for bit, or None."""
    if x == 0.0 and struct.pack("<d", x) != struct.pack("<d", 0.0):
        return None  # -0.0
    text = repr(x)
    if "inf" in text or "nan" in text:
        return None
    mantissa_text, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa_text.partition(".")
    digits = (whole + frac).lstrip("-") or "0"
    if len(digits.lstrip("0")) > _MAX_DECIMAL_DIGITS:
        return None
    mantissa = int(whole + frac)
    exponent -= len(frac)
    if struct.pack("<d", float(f"{mantissa}e{exponent}")) != struct.pack("<d", x):
        return None
    return mantissa, exponent


def _value(out: bytearray, v: Value | None) -> None:
    if v is None:
        out.append(_NONE)
    elif isinstance(v, bool):
        out.append(_TRUE if v else _FALSE)
    elif isinstance(v, int):
        out.append(_INT)
        _zigzag(out, v)
    elif isinstance(v, float):
        dec = _decimal(v)
        if dec is None:
            out.append(_DOUBLE)
            out += struct.pack("<d", v)
        else:
            out.append(_DECIMAL)
            _zigzag(out, dec[0])
            _zigzag(out, dec[1])
    elif isinstance(v, str):
        raw = v.encode()
        out.append(_STR)
        _varint(out, len(raw))
        out += raw
    else:
        raise CodecError(f"cannot encode {type(v).__name__}")


def _partial(out: bytearray, p: Partial, hour_ms: int) -> None:
    _varint(out, p.count)
    _varint(out, p.numbers)
    _zigzag(out, p.first_ts - hour_ms)
    _value(out, p.first)
    _zigzag(out, p.last_ts - p.first_ts)
    _value(out, p.last)
    if p.numbers:
        _value(out, p.min)
        _value(out, p.max)
        _value(out, p.sum)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise CodecError("truncated rollup blob")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        n = shift = 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) if not n & 1 else -((n + 1) >> 1)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise CodecError("truncated rollup blob")
        self.pos += n
        return chunk

    def value(self) -> Value | None:
        tag = self.byte()
        if tag == _NONE:
            return None
        if tag in (_FALSE, _TRUE):
            return tag == _TRUE
        if tag == _INT:
            return self.zigzag()
        if tag == _DECIMAL:
            mantissa = self.zigzag()
            return float(f"{mantissa}e{self.zigzag()}")
        if tag == _DOUBLE:
            return float(struct.unpack("<d", self.take(8))[0])
        if tag == _STR:
            return self.take(self.varint()).decode()
        raise CodecError(f"unknown value tag {tag}")

    def partial(self, hour_ms: int) -> Partial:
        count, numbers = self.varint(), self.varint()
        first_ts = hour_ms + self.zigzag()
        first = self.value()
        last_ts = first_ts + self.zigzag()
        last = self.value()
        assert first is not None and last is not None
        if not numbers:
            return Partial(count=count, first_ts=first_ts, first=first, last_ts=last_ts, last=last)
        lo, hi, total = self.value(), self.value(), self.value()
        assert not isinstance(lo, str | bool) and not isinstance(hi, str | bool)
        assert isinstance(total, int | float) and not isinstance(total, bool)
        return Partial(count, first_ts, first, last_ts, last, numbers, lo, hi, float(total))


def _series(out: bytearray, series: Mapping[SeriesHour, Partial], base_ms: int) -> None:
    by_key: dict[tuple[str, str], list[tuple[int, Partial]]] = {}
    for (metric, unit, hour), p in series.items():
        by_key.setdefault((metric, unit), []).append((hour, p))
    _varint(out, len(by_key))
    for (metric, unit), hours in sorted(by_key.items()):
        _value(out, metric)
        _value(out, unit)
        _varint(out, len(hours))
        for hour, p in sorted(hours, key=lambda h: h[0]):
            _zigzag(out, (hour - base_ms) // HOUR_MS)
            _partial(out, p, hour)


def _read_series(r: _Reader, base_ms: int) -> dict[SeriesHour, Partial]:
    series: dict[SeriesHour, Partial] = {}
    for _ in range(r.varint()):
        metric, unit = r.value(), r.value()
        assert isinstance(metric, str) and isinstance(unit, str)
        for _ in range(r.varint()):
            hour = base_ms + r.zigzag() * HOUR_MS
            series[(metric, unit, hour)] = r.partial(hour)
    return series


def _seal(payload: bytes) -> bytes:
    packed = zlib.compress(payload, 9)
    if len(packed) < len(payload):
        return bytes([FORMAT_ZLIB]) + packed
    return bytes([FORMAT_RAW]) + payload


def _open(blob: bytes) -> _Reader:
    if not blob:
        raise CodecError("empty rollup blob")
    if blob[0] == FORMAT_RAW:
        return _Reader(blob[1:])
    if blob[0] == FORMAT_ZLIB:
        try:
            return _Reader(zlib.decompress(blob[1:]))
        except zlib.error as e:
            raise CodecError("corrupt rollup blob") from e
    raise CodecError(f"unknown rollup blob format {blob[0]}")


def encode_series(series: Mapping[SeriesHour, Partial], base_ms: int) -> bytes:
    """One device's series-hour Partials (a day item), hours relative to base_ms."""
    out = bytearray()
    _zigzag(out, base_ms // HOUR_MS)
    _series(out, series, base_ms)
    return _seal(bytes(out))


def decode_series(blob: bytes) -> dict[SeriesHour, Partial]:
    """The inverse of encode_series."""
    r = _open(blob)
    base = r.zigzag() * HOUR_MS
    return _read_series(r, base)


def encode_devices(rows: Mapping[str, Mapping[SeriesHour, Partial]], base_ms: int) -> bytes:
    """Several devices' series-hour Partials (an hour page): device -> series-hour -> Partial."""
    out = bytearray()
    _zigzag(out, base_ms // HOUR_MS)
    _varint(out, len(rows))
    for device in sorted(rows):
        _value(out, device)
        _series(out, rows[device], base_ms)
    return _seal(bytes(out))


def decode_devices(blob: bytes) -> dict[str, dict[SeriesHour, Partial]]:
    """The inverse of encode_devices."""
    r = _open(blob)
    base = r.zigzag() * HOUR_MS
    rows: dict[str, dict[SeriesHour, Partial]] = {}
    for _ in range(r.varint()):
        device = r.value()
        assert isinstance(device, str)
        rows[device] = _read_series(r, base)
    return rows
