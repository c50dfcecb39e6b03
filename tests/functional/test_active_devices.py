from chalicelib import wiring
from chalicelib.adapters.devices import ACTIVE_SHARDS, active_key
from chalicelib.domain.chunks import hour_bucket
from tests.functional.stream_kit import Stream

T0 = 1764061200000


def test_active_devices_are_counted_across_the_index_shards(api):
    stream = Stream()
    devices = [api.create_device(f"d{n}") for n in range(40)]
    for device in devices:
        assert api.post(device["token"], {"temp": 1}).status_code == 200
    hour = hour_bucket(max(c.received_at for d in devices for c in wiring.readings().iter_all(d["id"])))
    assert wiring.devices().count_active(hour) == 0  # the request path writes only the readings
    api.client.lambda_.invoke("live", {"Records": stream.read()})  # the stream folds them

    assert wiring.devices().count_active(hour) == 40
    assert len({active_key(d["id"], T0) for d in devices}) > 1  # spread over shards
    assert all(active_key(d["id"], T0).startswith("2025112509#") for d in devices)
    assert all(0 <= int(active_key(d["id"], T0).split("#")[1]) < ACTIVE_SHARDS for d in devices)
