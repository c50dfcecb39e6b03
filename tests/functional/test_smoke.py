import json


def test_round_trip(api, device):
    r = api.post(device["token"], {"ts": 1764061200000, "values": {"temp": 21.5, "door": "open"}})
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["accepted"] == 2
    got = api.readings(device["id"])
    assert got == [
        {"metric": "door", "unit": "", "ts": 1764061200000, "value": "open"},
        {"metric": "temp", "unit": "", "ts": 1764061200000, "value": 21.5},
    ]
    state = json.loads(api.request("GET", f"/v1/devices/{device['id']}/state", device["token"]).body)
    assert state["last_seen"] is not None
    assert {r["metric"]: r["value"] for r in state["latest"]} == {"temp": 21.5, "door": "open"}
