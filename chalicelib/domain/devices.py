"""The device registry's rules: what a device is and what may change."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.rules import MAX_ID_CHARS, json_object, unknown_fields
from chalicelib.errors import Problem, ValidationError

ID_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9\-_.:]{{0,{MAX_ID_CHARS - 1}}}$")
TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_.:/]{0,63}$")
MAX_NAME = 128
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 256


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


def _check_attributes(value: object, problems: list[Problem]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        problems.append(Problem("invalid_field", "attributes must be an object of scalars", field="attributes"))
        return None
    if len(value) > MAX_ATTRIBUTES:
        problems.append(Problem("invalid_field", f"at most {MAX_ATTRIBUTES} attributes", field="attributes"))
    for key, item in value.items():
        ok_key = isinstance(key, str) and 0 < len(key) <= 64
        ok_value = (
            isinstance(item, bool)
            or (isinstance(item, int) and abs(item) < 10**38)  # DynamoDB numbers: 38 digits
            or (isinstance(item, float) and (item == 0 or 1e-130 <= abs(item) < 1e126))  # and this magnitude
            or (isinstance(item, str) and len(item) <= MAX_ATTRIBUTE_VALUE)
        )
        if not (ok_key and ok_value):
            problems.append(
                Problem(
                    "invalid_field",
                    f"attribute {key!r}: keys are 1-64 chars, values strings (<= {MAX_ATTRIBUTE_VALUE}),"
                    " numbers (at most 38 digits, magnitude 1e-130 to 1e126) or booleans",
                    field="attributes",
                )
            )
    return value


def validate_changes(body: object, *, creating: bool) -> DeviceChanges:
    """Validate a POST (creating=True) or PATCH body of /v1/devices; raise ValidationError."""
    body = json_object(body)
    allowed = {"id", "name", "type", "attributes"} if creating else {"name", "type", "attributes", "disabled"}
    problems = unknown_fields(body, allowed)
    device_id = body.get("id")
    if device_id is not None and not (isinstance(device_id, str) and ID_PATTERN.match(device_id)):
        problems.append(Problem("invalid_field", "id: 1-64 of A-Z a-z 0-9 - _ . :, starting alphanumeric", field="id"))
    name = body.get("name")
    if (creating or name is not None) and not (isinstance(name, str) and 0 < len(name.strip()) <= MAX_NAME):
        problems.append(Problem("invalid_field", f"name: a non-empty string of at most {MAX_NAME} chars", field="name"))
    device_type = body.get("type", "generic" if creating else None)
    if device_type is not None and not (isinstance(device_type, str) and TYPE_PATTERN.match(device_type)):
        problems.append(Problem("invalid_field", "type: 1-64 of A-Z a-z 0-9 - _ . : /", field="type"))
    attributes = body.get("attributes", {} if creating else None)
    if attributes is not None:
        attributes = _check_attributes(attributes, problems)
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        problems.append(Problem("invalid_field", "disabled: true or false", field="disabled"))
    if problems:
        raise ValidationError(f"{len(problems)} problems in the device", problems)
    return DeviceChanges(
        device_id=device_id,
        name=name.strip() if isinstance(name, str) else None,
        device_type=device_type,
        attributes=attributes,
        disabled=disabled,
    )
