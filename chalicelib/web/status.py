"""A device as the pages show it: its status word and its live state (last seen, latest readings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib import wiring
from chalicelib.api.telemetry import reading_json
from chalicelib.errors import DeviceNotFoundError

if TYPE_CHECKING:
    from chalicelib.adapters.devices import DeviceState
    from chalicelib.domain.devices import Device

ONLINE_MS = 5 * 60_000  # a device heard from within 5 minutes is "online"


def status_of(device: Device, last_seen: int | None, alerting: int, now: int) -> str:
    """The device's status word: disabled, alerting, never seen, online or silent."""
    if device.disabled:
        return "disabled"
    if alerting:
        return "alerting"
    if last_seen is None:
        return "never seen"
    return "online" if now - last_seen <= ONLINE_MS else "silent"


def device_states(ids: list[str]) -> dict[str, DeviceState]:
    """The live state of each known device of `ids` (unknown ones are left out)."""
    # One GetItem per device: a page holds at most 100 (the list index does not project state).
    out: dict[str, DeviceState] = {}
    repo = wiring.devices()
    for device_id in ids:
        try:
            out[device_id] = repo.state(device_id)
        except DeviceNotFoundError:
            continue
    return out


def state_json(state: DeviceState) -> dict[str, Any]:
    """A device's live state as the pages' script reads it."""
    return {
        "device_id": state.device_id,
        "last_seen": state.last_seen,
        "latest": [reading_json(r) for r in state.latest],
    }
