"""The device registry's rules: what a device is and what may change."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.domain.rules import MAX_ID_CHARS
from chalicelib.domain.schema import Bool, Member, Num, Obj, OneOf, Str

ID_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9\-_.:]{{0,{MAX_ID_CHARS - 1}}}$")
TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_.:/]{0,63}$")
MAX_NAME = 128
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 256
MAX_ATTRIBUTE_KEY = 64
MAX_NUMBER = 1e38  # DynamoDB numbers: 38 digits
MIN_MAGNITUDE = 1e-130  # and no smaller non-zero magnitude
DEFAULT_TYPE = "generic"


@dataclass(frozen=True)
class Device:
    """A registered device as the API shows it (never its token)."""

    device_id: str
    name: str
    device_type: str
    attributes: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    created_at: int = 0
    updated_at: int = 0
    last_seen: int | None = None

    def as_dict(self, with_last_seen: bool = True) -> dict[str, Any]:
        """The API's view; lists leave out last_seen (their index does not carry it)."""
        out = {
            "id": self.device_id,
            "name": self.name,
            "type": self.device_type,
            "attributes": self.attributes,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if with_last_seen:
            out["last_seen"] = self.last_seen
        return out


@dataclass(frozen=True)
class DeviceChanges:
    """Validated fields of a create or patch request (None: not given)."""

    device_id: str | None = None
    name: str | None = None
    device_type: str | None = None
    attributes: dict[str, Any] | None = None
    disabled: bool | None = None


def new_device_id() -> str:
    return "dev-" + uuid.uuid4().hex[:20]


@dataclass(frozen=True)
class StorableNumber(Num):
    """A number DynamoDB stores: at most 38 digits, and none too small but zero (its magnitude: 1e-130 up)."""

    def _accepts(self, value: object) -> bool:
        return super()._accepts(value) and (value == 0 or abs(value) >= MIN_MAGNITUDE)  # type: ignore[arg-type]


ATTRIBUTES = Obj(
    keys=Str(min_length=1, max_length=MAX_ATTRIBUTE_KEY),
    values=OneOf(
        options=(
            Str(max_length=MAX_ATTRIBUTE_VALUE),
            StorableNumber(above=-MAX_NUMBER, below=MAX_NUMBER, description="non-zero magnitude at least 1e-130"),
            Bool(),
        )
    ),
    max_members=MAX_ATTRIBUTES,
)
_ATTRIBUTES = Member(
    ATTRIBUTES,
    f"attributes: at most {MAX_ATTRIBUTES}, keys of 1-{MAX_ATTRIBUTE_KEY} chars, values strings"
    f" (<= {MAX_ATTRIBUTE_VALUE}), numbers (at most 38 digits, magnitude 1e-130 to 1e38) or booleans",
)
_NAME = Str(min_length=1, max_length=MAX_NAME, pattern=re.compile(r"\S"))
_TYPE = Str(pattern=TYPE_PATTERN)
_NAME_PROBLEM = f"name: a non-empty string of at most {MAX_NAME} chars"
_TYPE_PROBLEM = "type: 1-64 of A-Z a-z 0-9 - _ . : /"
DEVICE_CREATE = Obj(
    members={
        "id": Member(
            Str(
                pattern=ID_PATTERN,
                description="chosen by the client (default: the server picks one); makes the create retryable",
            ),
            "id: 1-64 of A-Z a-z 0-9 - _ . :, starting alphanumeric",
        ),
        "name": Member(_NAME, _NAME_PROBLEM, required=True),
        "type": Member(replace(_TYPE, default=DEFAULT_TYPE), _TYPE_PROBLEM),
        "attributes": _ATTRIBUTES,
    },
    null_is_absent=True,
)
DEVICE_PATCH = Obj(
    members={
        "name": Member(_NAME, _NAME_PROBLEM),
        "type": Member(_TYPE, _TYPE_PROBLEM),
        "attributes": _ATTRIBUTES,
        "disabled": Member(Bool(), "disabled: true or false"),
    },
    null_is_absent=True,
)


def changes_of(body: Mapping[str, Any], *, creating: bool) -> DeviceChanges:
    """The changes a body asks for, once DEVICE_CREATE (creating) or DEVICE_PATCH accepted it (the route validates)."""
    name = body.get("name")
    return DeviceChanges(
        device_id=body.get("id"),
        name=name.strip() if isinstance(name, str) else None,
        device_type=body.get("type", DEFAULT_TYPE if creating else None),
        attributes=body.get("attributes", {} if creating else None),
        disabled=body.get("disabled"),
    )
