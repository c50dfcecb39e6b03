"""Fleet profiles: loading, validation and the value generators.

A profile (YAML or JSON) describes device types, how many devices of each, and
per metric a generator with its parameters. See ``device_sim/README.md`` for the
format; ``device_sim/profiles/`` holds examples.

Generators are deterministic: each device owns a ``random.Random`` seeded from the
global seed and the device index, and metric generators draw from it in profile order.
Time-dependent generators (sinusoid, decay) use *simulated* elapsed time
(``step * interval``), never the wall clock, so the same seed gives the same values.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import yaml

from device_sim.model import (
    MAX_METRIC_LEN,
    MAX_METRICS_PER_RECORD,
    MAX_STRING_BYTES,
    METRIC_CHARS_RE,
    Sample,
    Value,
)

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "default"
DEFAULT_DECIMALS = 2
LOCATION_DEFAULT_DECIMALS = 6
METERS_PER_DEGREE = 111_320.0

GENERATOR_KINDS: tuple[str, ...] = (
    "constant",
    "random_walk",
    "sinusoid",
    "decay",
    "counter",
    "boolean",
    "choice",
    "location",
)


class ProfileError(ValueError):
    """A profile file is unreadable or invalid; the message says where and why."""


# --------------------------------------------------------------------------- seeding


def derive_seed(seed: int, index: int, stream: str) -> int:
    """A stable 64-bit seed for (global seed, device index, purpose).

    Uses SHA-256 rather than ``hash()`` so it is identical across processes and
    Python versions (``PYTHONHASHSEED`` does not matter).
    """
    digest = hashlib.sha256(f"{seed}:{index}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def device_rng(seed: int, index: int, stream: str = "values") -> random.Random:
    return random.Random(derive_seed(seed, index, stream))


# --------------------------------------------------------------------------- validation helpers


def _fail(where: str, message: str) -> ProfileError:
    return ProfileError(f"{where}: {message}")


def _check_keys(raw: Mapping[str, Any], where: str, required: Sequence[str], optional: Sequence[str]) -> None:
    allowed = set(required) | set(optional)
    for key in raw:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise _fail(where, f"unknown key {key!r} (expected one of: {expected})")
    for key in required:
        if key not in raw:
            raise _fail(where, f"missing required key {key!r}")


def _number(raw: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    if key not in raw:
        if default is None:
            raise _fail(where, f"missing required key {key!r}")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{where}.{key}", f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise _fail(f"{where}.{key}", "must be finite")
    return float(value)


def _int_or_float(raw: Mapping[str, Any], key: str, where: str, default: float) -> int | float:
    """Like _number but keeps ints as ints (used by counters so they can stay integral)."""
    if key not in raw:
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{where}.{key}", f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise _fail(f"{where}.{key}", "must be finite")
    return value


def _probability(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = _number(raw, key, where, default)
    if not 0.0 <= value <= 1.0:
        raise _fail(f"{where}.{key}", f"must be between 0 and 1, got {value}")
    return value


def _string_value_ok(value: str, where: str) -> None:
    if len(value.encode("utf-8")) > MAX_STRING_BYTES:
        raise _fail(where, f"string longer than {MAX_STRING_BYTES} bytes (UTF-8)")


def _metric_name_ok(name: str, where: str) -> None:
    if not METRIC_CHARS_RE.match(name):
        raise _fail(where, f"invalid metric name {name!r} (must match {METRIC_CHARS_RE.pattern})")
    if len(name) > MAX_METRIC_LEN:
        raise _fail(where, f"metric name longer than {MAX_METRIC_LEN} characters")


# --------------------------------------------------------------------------- generators


def round_value(value: float, decimals: int) -> int | float:
    """Round a numeric output; ``decimals == 0`` gives an int."""
    if decimals <= 0:
        return int(round(value))
    return round(value, decimals)


class Generator(Protocol):
    """A stateful value source for one device and one metric spec."""

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        """Values for sample number ``step`` (0-based) at simulated time ``elapsed_s``."""
        ...


SpecT = TypeVar("SpecT")


@dataclass
class _Seeded(Generic[SpecT]):
    """What a generator drawing from the device's random stream holds: its spec, that stream,
    and the decimals its values are rounded to."""

    spec: SpecT
    rng: random.Random
    decimals: int


@dataclass(frozen=True)
class ConstantSpec:
    value: Value

    def build(self, rng: random.Random, decimals: int) -> Generator:
        value = self.value
        if isinstance(value, float):
            value = round_value(value, decimals)
        return _Constant(value)


@dataclass
class _Constant:
    value: Value

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        return (self.value,)


@dataclass(frozen=True)
class RandomWalkSpec:
    start: float
    min: float
    max: float
    step: float

    def build(self, rng: random.Random, decimals: int) -> Generator:
        return _RandomWalk(self, rng, decimals, self.start)


@dataclass
class _RandomWalk(_Seeded[RandomWalkSpec]):
    current: float

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        if step > 0:
            moved = self.current + self.rng.uniform(-self.spec.step, self.spec.step)
            self.current = min(self.spec.max, max(self.spec.min, moved))
        return (round_value(self.current, self.decimals),)


@dataclass(frozen=True)
class SinusoidSpec:
    period: float
    amplitude: float
    offset: float
    noise: float
    phase: float | None  # radians; None = random per device

    def build(self, rng: random.Random, decimals: int) -> Generator:
        phase = self.phase if self.phase is not None else rng.uniform(0.0, 2 * math.pi)
        return _Sinusoid(self, rng, decimals, phase)


@dataclass
class _Sinusoid(_Seeded[SinusoidSpec]):
    phase: float

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        s = self.spec
        value = s.offset + s.amplitude * math.sin(2 * math.pi * elapsed_s / s.period + self.phase)
        return (_noisy(value, s.noise, self.rng, self.decimals),)


def _noisy(value: float, noise: float, rng: random.Random, decimals: int) -> int | float:
    """`value` plus Gaussian noise of standard deviation `noise` (none when 0), rounded."""
    if noise > 0:
        value += rng.gauss(0.0, noise)
    return round_value(value, decimals)


@dataclass(frozen=True)
class DecaySpec:
    start: float
    rate: float  # per second of simulated time
    floor: float
    noise: float

    def build(self, rng: random.Random, decimals: int) -> Generator:
        return _Decay(self, rng, decimals)


@dataclass
class _Decay(_Seeded[DecaySpec]):
    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        s = self.spec
        value = s.floor + (s.start - s.floor) * math.exp(-s.rate * elapsed_s)
        return (_noisy(value, s.noise, self.rng, self.decimals),)


@dataclass(frozen=True)
class CounterSpec:
    start: int | float
    increment: int | float

    def build(self, rng: random.Random, decimals: int) -> Generator:
        return _Counter(self, decimals)


@dataclass
class _Counter:
    spec: CounterSpec
    decimals: int

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        value = self.spec.start + step * self.spec.increment
        if isinstance(value, int):
            return (value,)
        return (round_value(value, self.decimals),)


@dataclass(frozen=True)
class BooleanSpec:
    flip_probability: float
    start: bool

    def build(self, rng: random.Random, decimals: int) -> Generator:
        return _Boolean(self, rng, self.start)


@dataclass
class _Boolean:
    spec: BooleanSpec
    rng: random.Random
    current: bool

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        if step > 0 and self.rng.random() < self.spec.flip_probability:
            self.current = not self.current
        return (self.current,)


@dataclass(frozen=True)
class ChoiceSpec:
    values: tuple[str, ...]
    weights: tuple[float, ...] | None

    def build(self, rng: random.Random, decimals: int) -> Generator:
        return _Choice(self, rng)


@dataclass
class _Choice:
    spec: ChoiceSpec
    rng: random.Random

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        weights = list(self.spec.weights) if self.spec.weights is not None else None
        return (self.rng.choices(self.spec.values, weights=weights)[0],)


@dataclass(frozen=True)
class LocationSpec:
    lat: float
    lon: float
    radius_m: float
    step_m: float

    def build(self, rng: random.Random, decimals: int) -> Generator:
        return _Location(self, rng, decimals)


@dataclass
class _Location(_Seeded[LocationSpec]):
    """Drifts by up to ``step_m`` per sample, staying within ``radius_m`` of the centre."""

    north_m: float = 0.0
    east_m: float = 0.0

    def next(self, step: int, elapsed_s: float) -> tuple[Value, ...]:
        s = self.spec
        if step > 0:
            bearing = self.rng.uniform(0.0, 2 * math.pi)
            distance = self.rng.uniform(0.0, s.step_m)
            north = self.north_m + distance * math.cos(bearing)
            east = self.east_m + distance * math.sin(bearing)
            norm = math.hypot(north, east)
            if norm > s.radius_m:  # pull back onto the circle
                north, east = north * s.radius_m / norm, east * s.radius_m / norm
            self.north_m, self.east_m = north, east
        lat = s.lat + self.north_m / METERS_PER_DEGREE
        cos_lat = max(math.cos(math.radians(s.lat)), 1e-6)
        lon = s.lon + self.east_m / (METERS_PER_DEGREE * cos_lat)
        return (round_value(lat, self.decimals), round_value(lon, self.decimals))


GeneratorSpec = (
    ConstantSpec | RandomWalkSpec | SinusoidSpec | DecaySpec | CounterSpec | BooleanSpec | ChoiceSpec | LocationSpec
)


@dataclass(frozen=True)
class AnomalySpec:
    """A scripted anomaly: between ``at`` and ``at + duration`` seconds of simulated time after the
    device starts, the metric reports ``value`` (or its generated value plus ``offset``) instead.

    ``devices`` limits it to the first N devices of the type (None: every device of the type).
    The generator still runs underneath, so the values after the anomaly (and every other
    metric) are exactly those of the same profile without it.
    """

    at: float
    duration: float
    value: Value | None = None
    offset: int | float | None = None
    devices: int | None = None

    def active(self, elapsed_s: float, ordinal: int) -> bool:
        """Whether the anomaly applies at ``elapsed_s`` to the device numbered ``ordinal`` in its type."""
        if self.devices is not None and ordinal >= self.devices:
            return False
        return self.at <= elapsed_s < self.at + self.duration

    def apply(self, generated: Value, decimals: int) -> Value:
        if self.value is not None:
            return round_value(self.value, decimals) if isinstance(self.value, float) else self.value
        assert self.offset is not None and isinstance(generated, int | float) and not isinstance(generated, bool)
        shifted = generated + self.offset
        return shifted if isinstance(shifted, int) else round_value(shifted, decimals)


@dataclass(frozen=True)
class MetricSpec:
    """One metric entry of a device type (a location entry yields two metrics)."""

    name: str
    kind: str
    unit: str
    decimals: int
    generator: GeneratorSpec
    anomaly: AnomalySpec | None = None

    def outputs(self) -> list[tuple[str, str]]:
        """(metric name, unit) of each value the generator yields, in order."""
        if self.kind == "location":
            return [(f"{self.name}_lat", "lat"), (f"{self.name}_lon", "lon")]
        return [(self.name, self.unit)]

    def build(self, rng: random.Random) -> Generator:
        return self.generator.build(rng, self.decimals)


_OPTIONAL = ("unit", "decimals")  # keys every generator's metric may have


def _constant(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["value", "generator"], _OPTIONAL)
    value = raw["value"]
    if isinstance(value, str):
        _string_value_ok(value, f"{where}.value")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise _fail(f"{where}.value", "must be finite")
    else:
        raise _fail(f"{where}.value", "must be a number, string or boolean")
    return ConstantSpec(value)


def _random_walk(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator", "start", "min", "max", "step"], _OPTIONAL)
    spec = RandomWalkSpec(
        start=_number(raw, "start", where),
        min=_number(raw, "min", where),
        max=_number(raw, "max", where),
        step=_number(raw, "step", where),
    )
    if not spec.min <= spec.start <= spec.max:
        raise _fail(where, f"need min <= start <= max, got {spec.min}, {spec.start}, {spec.max}")
    if spec.step < 0:
        raise _fail(f"{where}.step", "must be >= 0")
    return spec


def _sinusoid(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator", "period", "amplitude"], [*_OPTIONAL, "offset", "noise", "phase"])
    sinus = SinusoidSpec(
        period=_number(raw, "period", where),
        amplitude=_number(raw, "amplitude", where),
        offset=_number(raw, "offset", where, 0.0),
        noise=_number(raw, "noise", where, 0.0),
        phase=_number(raw, "phase", where) if "phase" in raw else None,
    )
    if sinus.period <= 0:
        raise _fail(f"{where}.period", "must be > 0 (seconds)")
    if sinus.noise < 0:
        raise _fail(f"{where}.noise", "must be >= 0")
    return sinus


def _decay(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator", "start", "rate"], [*_OPTIONAL, "floor", "noise"])
    decay = DecaySpec(
        start=_number(raw, "start", where),
        rate=_number(raw, "rate", where),
        floor=_number(raw, "floor", where, 0.0),
        noise=_number(raw, "noise", where, 0.0),
    )
    if decay.rate < 0:
        raise _fail(f"{where}.rate", "must be >= 0 (per second)")
    if decay.noise < 0:
        raise _fail(f"{where}.noise", "must be >= 0")
    return decay


def _counter(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator"], [*_OPTIONAL, "start", "increment"])
    return CounterSpec(
        start=_int_or_float(raw, "start", where, 0),
        increment=_int_or_float(raw, "increment", where, 1),
    )


def _boolean(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator"], [*_OPTIONAL, "flip_probability", "start"])
    start = raw.get("start", False)
    if not isinstance(start, bool):
        raise _fail(f"{where}.start", "must be true or false")
    return BooleanSpec(_probability(raw, "flip_probability", where, 0.1), start)


def _choice(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator", "values"], [*_OPTIONAL, "weights"])
    values = raw["values"]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _fail(f"{where}.values", "must be a non-empty list of strings")
    for i, v in enumerate(values):
        _string_value_ok(v, f"{where}.values[{i}]")
    weights: tuple[float, ...] | None = None
    if "weights" in raw:
        raw_w = raw["weights"]
        if not isinstance(raw_w, list) or len(raw_w) != len(values):
            raise _fail(f"{where}.weights", "must be a list as long as values")
        checked = [_number({"w": w}, "w", f"{where}.weights") for w in raw_w]
        if any(w < 0 for w in checked) or sum(checked) <= 0:
            raise _fail(f"{where}.weights", "must be >= 0 with a positive sum")
        weights = tuple(checked)
    return ChoiceSpec(tuple(values), weights)


def _location(raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    _check_keys(raw, where, ["generator", "lat", "lon", "radius_m"], ["decimals", "step_m"])
    loc_lat = _number(raw, "lat", where)
    loc_lon = _number(raw, "lon", where)
    radius = _number(raw, "radius_m", where)
    if not -90 <= loc_lat <= 90:
        raise _fail(f"{where}.lat", "must be between -90 and 90")
    if not -180 <= loc_lon <= 180:
        raise _fail(f"{where}.lon", "must be between -180 and 180")
    if radius <= 0:
        raise _fail(f"{where}.radius_m", "must be > 0")
    step_m = _number(raw, "step_m", where, radius / 10)
    if step_m < 0:
        raise _fail(f"{where}.step_m", "must be >= 0")
    return LocationSpec(loc_lat, loc_lon, radius, step_m)


# One parser per generator kind: each checks its keys and values and builds the spec.
_GENERATOR_PARSERS: dict[str, Callable[[Mapping[str, Any], str], GeneratorSpec]] = {
    "constant": _constant,
    "random_walk": _random_walk,
    "sinusoid": _sinusoid,
    "decay": _decay,
    "counter": _counter,
    "boolean": _boolean,
    "choice": _choice,
    "location": _location,
}


def _parse_generator(kind: str, raw: Mapping[str, Any], where: str) -> GeneratorSpec:
    parse = _GENERATOR_PARSERS.get(kind)
    if parse is None:
        kinds = ", ".join(GENERATOR_KINDS)
        raise _fail(f"{where}.generator", f"unknown generator {kind!r} (expected one of: {kinds})")
    return parse(raw, where)


def _output_family(generator: GeneratorSpec) -> str:
    """What a (single-output) generator yields: number, string or boolean."""
    if isinstance(generator, ConstantSpec):
        value = generator.value
        if isinstance(value, bool):
            return "boolean"
        return "string" if isinstance(value, str) else "number"
    if isinstance(generator, BooleanSpec):
        return "boolean"
    return "string" if isinstance(generator, ChoiceSpec) else "number"


def _parse_anomaly(raw: Any, generator: GeneratorSpec, where: str) -> AnomalySpec:
    if isinstance(generator, LocationSpec):
        raise _fail(where, "not supported for location metrics")
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping with at, duration and value or offset")
    _check_keys(raw, where, ["at", "duration"], ["value", "offset", "devices"])
    at = _number(raw, "at", where)
    duration = _number(raw, "duration", where)
    if at < 0:
        raise _fail(f"{where}.at", "must be >= 0 (seconds after the device starts)")
    if duration <= 0:
        raise _fail(f"{where}.duration", "must be > 0 seconds")
    if ("value" in raw) == ("offset" in raw):
        raise _fail(where, "give either 'value' or 'offset'")
    family = _output_family(generator)
    value: Value | None = None
    offset: int | float | None = None
    if "value" in raw:
        value = raw["value"]
        kinds = {"boolean": bool, "string": str}
        ok = (
            isinstance(value, kinds[family])
            if family in kinds
            else isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
        if not ok:
            raise _fail(f"{where}.value", f"must be a {family} like the metric's other values")
        if isinstance(value, str):
            _string_value_ok(value, f"{where}.value")
    else:
        if family != "number":
            raise _fail(f"{where}.offset", "only numeric metrics take an offset")
        offset = _int_or_float(raw, "offset", where, 0)
    devices = raw.get("devices")
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise _fail(f"{where}.devices", "must be an integer >= 1 (the first N devices of the type)")
    return AnomalySpec(at=at, duration=duration, value=value, offset=offset, devices=devices)


def _parse_metric(name: Any, raw: Any, where: str, default_decimals: int) -> MetricSpec:
    if not isinstance(name, str):
        raise _fail(where, f"metric name must be a string, got {name!r}")
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping with at least a 'generator' key")
    kind = raw.get("generator")
    if not isinstance(kind, str):
        raise _fail(where, "missing required key 'generator'")
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise _fail(f"{where}.unit", "must be a string")
    base_decimals = LOCATION_DEFAULT_DECIMALS if kind == "location" else default_decimals
    decimals = raw.get("decimals", base_decimals)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 15:
        raise _fail(f"{where}.decimals", "must be an integer between 0 and 15")
    generator = _parse_generator(kind, {k: v for k, v in raw.items() if k != "anomaly"}, where)
    anomaly = _parse_anomaly(raw["anomaly"], generator, f"{where}.anomaly") if "anomaly" in raw else None
    spec = MetricSpec(name=name, kind=kind, unit=unit, decimals=decimals, generator=generator, anomaly=anomaly)
    for metric, _unit in spec.outputs():
        _metric_name_ok(metric, where)
    return spec


AttributeValue = str | int | float | bool


@dataclass(frozen=True)
class DeviceType:
    name: str
    weight: float
    count: int | None
    interval: float | None
    attributes: dict[str, AttributeValue]
    metrics: tuple[MetricSpec, ...]

    def outputs(self) -> list[tuple[str, str]]:
        return [out for m in self.metrics for out in m.outputs()]


@dataclass(frozen=True)
class Profile:
    name: str
    decimals: int
    device_types: tuple[DeviceType, ...]
    source: str = field(default="<memory>", compare=False)

    def uses_counts(self) -> bool:
        return all(t.count is not None for t in self.device_types)

    def default_devices(self) -> int | None:
        """Fleet size implied by the profile (sum of counts), if every type gives a count."""
        if self.uses_counts():
            return sum(t.count or 0 for t in self.device_types)
        return None


def _parse_device_type(name: Any, raw: Any, where: str, decimals: int) -> DeviceType:
    if not isinstance(name, str) or not name:
        raise _fail(where, f"device type name must be a non-empty string, got {name!r}")
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping")
    _check_keys(raw, where, ["metrics"], ["weight", "count", "interval", "attributes"])
    if "weight" in raw and "count" in raw:
        raise _fail(where, "give either 'weight' or 'count', not both")
    count: int | None = None
    weight = 1.0
    if "count" in raw:
        c = raw["count"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise _fail(f"{where}.count", "must be an integer >= 0")
        count = c
        weight = float(c)
    elif "weight" in raw:
        weight = _number(raw, "weight", where)
        if weight < 0:
            raise _fail(f"{where}.weight", "must be >= 0")
    interval: float | None = None
    if "interval" in raw:
        interval = _number(raw, "interval", where)
        if interval < 0:
            raise _fail(f"{where}.interval", "must be >= 0 seconds")
    attributes_raw = raw.get("attributes", {}) or {}
    if not isinstance(attributes_raw, Mapping):
        raise _fail(f"{where}.attributes", "must be a mapping of string to string/number/bool")
    attributes: dict[str, AttributeValue] = {}
    for key, value in attributes_raw.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise _fail(f"{where}.attributes.{key}", "must map a string to string/number/bool")
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f"{where}.attributes.{key}", "must be finite")
        attributes[key] = value
    metrics_raw = raw["metrics"]
    if not isinstance(metrics_raw, Mapping) or not metrics_raw:
        raise _fail(f"{where}.metrics", "must be a non-empty mapping of metric name to spec")
    metrics = tuple(
        _parse_metric(m_name, m_raw, f"{where}.metrics.{m_name}", decimals) for m_name, m_raw in metrics_raw.items()
    )
    seen: set[str] = set()
    for spec in metrics:
        for metric, _unit in spec.outputs():
            # JSON formats key values by metric name only, so names must be unique per type.
            if metric in seen:
                raise _fail(f"{where}.metrics", f"metric {metric!r} is produced twice")
            seen.add(metric)
    if len(seen) > MAX_METRICS_PER_RECORD:
        raise _fail(f"{where}.metrics", f"at most {MAX_METRICS_PER_RECORD} metrics per type")
    return DeviceType(name, weight, count, interval, attributes, metrics)


def parse_profile(data: Any, source: str = "<memory>") -> Profile:
    """Validate a decoded profile document and build a :class:`Profile`.

    Errors read ``<source>: <path.in.document>: <problem>``.
    """
    try:
        return _parse_document(data, source)
    except ProfileError as exc:
        raise ProfileError(f"{source}: {exc}") from None


def _parse_document(data: Any, source: str) -> Profile:
    if not isinstance(data, Mapping):
        raise ProfileError("top level must be a mapping with a 'device_types' key")
    _check_keys(data, "top level", ["device_types"], ["name", "decimals", "description"])
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise _fail("name", "must be a string")
    decimals = data.get("decimals", DEFAULT_DECIMALS)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 15:
        raise _fail("decimals", "must be an integer between 0 and 15")
    types_raw = data["device_types"]
    if not isinstance(types_raw, Mapping) or not types_raw:
        raise _fail("device_types", "must be a non-empty mapping of type name to spec")
    types = tuple(
        _parse_device_type(t_name, t_raw, f"device_types.{t_name}", decimals) for t_name, t_raw in types_raw.items()
    )
    if sum(t.weight for t in types) <= 0:
        raise _fail("device_types", "weights/counts must have a positive sum")
    return Profile(name=name, decimals=decimals, device_types=types, source=source)


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def resolve_profile_path(name_or_path: str | None) -> Path:
    """A file path, or the name of a shipped profile (``default``, ``factory``, ...)."""
    if name_or_path is None:
        return BUILTIN_DIR / f"{DEFAULT_PROFILE}.yaml"
    path = Path(name_or_path)
    if path.exists():
        return path
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    if builtin.exists():
        return builtin
    names = ", ".join(builtin_profiles())
    raise ProfileError(f"{name_or_path}: no such file, and not a built-in profile ({names})")


def load_profile(name_or_path: str | Path | None = None) -> Profile:
    """Load and validate a profile from a YAML/JSON file or a built-in profile name."""
    path = resolve_profile_path(str(name_or_path) if name_or_path is not None else None)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: not valid YAML/JSON: {exc}") from exc
    return parse_profile(data, str(path))


# --------------------------------------------------------------------------- fleet composition


def allocate_counts(weights: Sequence[float], total: int) -> list[int]:
    """Split ``total`` devices across types proportionally (largest remainder method).

    Ties go to the earlier type, so the split is deterministic.
    """
    if total < 0:
        raise ValueError("total must be >= 0")
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("weights must have a positive sum")
    quotas = [w * total / weight_sum for w in weights]
    counts = [math.floor(q) for q in quotas]
    remaining = total - sum(counts)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:remaining]:
        counts[i] += 1
    return counts


def assign_types(profile: Profile, devices: int) -> list[DeviceType]:
    """The device type of each device index 0..devices-1 (types in contiguous blocks)."""
    counts = allocate_counts([t.weight for t in profile.device_types], devices)
    out: list[DeviceType] = []
    for dtype, n in zip(profile.device_types, counts, strict=True):
        out.extend([dtype] * n)
    return out


def type_ordinals(types: Sequence[DeviceType]) -> list[int]:
    """For each device index, its number within its type (0 for the first device of each type)."""
    seen: dict[str, int] = {}
    out: list[int] = []
    for dtype in types:
        out.append(seen.get(dtype.name, 0))
        seen[dtype.name] = out[-1] + 1
    return out


class SampleSource:
    """All generators of one device; yields the samples of each successive record.

    ``ordinal`` is the device's number within its type (see ``type_ordinals``); it selects
    the devices a scripted anomaly applies to.
    """

    def __init__(self, dtype: DeviceType, rng: random.Random, interval: float, ordinal: int = 0) -> None:
        self.dtype = dtype
        self.interval = interval
        self.ordinal = ordinal
        self.step = 0
        self._gens = [(spec, spec.build(rng)) for spec in dtype.metrics]

    def next_samples(self) -> tuple[Sample, ...]:
        step = self.step
        elapsed = step * self.interval
        samples: list[Sample] = []
        for spec, gen in self._gens:
            values = gen.next(step, elapsed)  # always drawn, so an anomaly shifts no other value
            if spec.anomaly is not None and spec.anomaly.active(elapsed, self.ordinal):
                values = (spec.anomaly.apply(values[0], spec.decimals),)
            for (metric, unit), value in zip(spec.outputs(), values, strict=True):
                samples.append(Sample(metric, unit, value))
        self.step += 1
        return tuple(samples)
