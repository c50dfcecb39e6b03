"""A device as the pages show it: its status word and its live state (last seen, latest readings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import wiring
from chalicelib.api.telemetry import reading_json
from chalicelib.clock import now_ms
from chalicelib.domain.readings import Reading
from chalicelib.errors import DeviceNotFoundError

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class LiveState:
    """What a page shows of a device's state: last seen, and the latest reading of each series."""

    device_id: str
    last_seen: int | None
    latest: list[Reading]


def live_state(device_id: str) -> LiveState:
    """The device's exact state, as GET /v1/devices/{id}/state answers it: its item merged with the
    chunks the live stream has not folded yet (domain.state). Raises DeviceNotFoundError."""
    state = wiring.device_states().exact(device_id, now_ms())
    return LiveState(device_id, state.last_seen, state.readings())


def device_states(ids: list[str]) -> dict[str, LiveState]:
    """The exact state of each known device of `ids` (unknown ones are left out).

    A GetItem and a Query per device: a page holds at most 100 (the list index does not project state).
    """
    out: dict[str, LiveState] = {}
    for device_id in ids:
        try:
            out[device_id] = live_state(device_id)
        except DeviceNotFoundError:
            continue
    return out


def state_json(state: LiveState) -> dict[str, Any]:
    """A device's live state as the pages' script reads it."""
    return {
        "device_id": state.device_id,
        "last_seen": state.last_seen,
        "latest": [reading_json(r) for r in state.latest],
    }
