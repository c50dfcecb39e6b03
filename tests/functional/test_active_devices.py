from chalicelib import wiring
from chalicelib.adapters.devices import ACTIVE_SHARDS, active_key
from chalicelib.domain.chunks import hour_bucket

T0 = 1764061200000


def test_active_devices_are_counted_across_the_index_shards(api):
    devices = [api.create_device(f"d{n}") for n in range(40)]
    for device in devices:
        assert api.post(device["token"], {"temp": 1}).status_code == 200
    from chalicelib.clock import now_ms

    assert wiring.devices().count_active(hour_bucket(now_ms())) == 40
    assert len({active_key(d["id"], T0) for d in devices}) > 1  # spread over shards
    assert all(active_key(d["id"], T0).startswith("2025112509#") for d in devices)
    assert all(0 <= int(active_key(d["id"], T0).split("#")[1]) < ACTIVE_SHARDS for d in devices)
