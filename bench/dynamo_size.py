"""DynamoDB item sizes and write units, by the rules in the DynamoDB developer guide."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    significant = len(digits) or 1
    return 1 + math.ceil(significant / 2)


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one AttributeValue (low-level wire form)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return _number_size(raw)
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "NS":
        return sum(_number_size(n) for n in raw)
    if kind == "BS":
        return sum(len(b) for b in raw)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """Bytes DynamoDB bills for an item: attribute names plus values."""
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def write_units(item: dict[str, dict[str, Any]]) -> int:
    """Write capacity units of writing an item: one per started KB."""
    return max(1, math.ceil(item_size(item) / 1024))
