"""Bad telemetry is refused as a whole, with the documented error, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.corpus import BAD_INPUTS, BadInput
from tests.functional.helpers import T0, error_of, state_of


def assert_nothing_stored(api: Any, device: dict[str, Any]) -> None:
    assert api.readings(device["id"]) == []
    state = state_of(api, device["id"])
    assert state["latest"] == []
    assert state["last_seen"] is None


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_is_stored(api, device, case: BadInput):
    answer = api.post(device["token"], raw=case.body, content_type=case.content_type)
    assert answer.status_code == case.status, answer.body[:500]
    error = error_of(answer)
    assert error["code"] == case.code
    if case.detail_code is not None:
        assert case.detail_code in [d["code"] for d in error["details"]], error
    assert_nothing_stored(api, device)


@pytest.mark.parametrize("case", [c for c in BAD_INPUTS if c.status == 422][:5], ids=lambda c: c.id)
def test_bad_input_is_refused_on_the_thingsboard_path_too(api, device, case: BadInput):
    path = f"/api/v1/{device['token']}/telemetry"
    answer = api.request("POST", path, None, raw=case.body, content_type=case.content_type)
    assert answer.status_code == case.status
    assert error_of(answer)["code"] == case.code
    assert_nothing_stored(api, device)


def test_every_problem_is_listed_with_its_index_and_metric(api, device):
    body = [
        {"ts": T0, "values": {"ok": 1, "bad name": 2}},
        {"ts": T0, "values": {"temp": None}},
        {"ts": T0, "values": {"fine": 3}},
        {"ts": T0, "values": {"label": "x" * 2000, "list": [1]}},
    ]
    answer = api.post(device["token"], body)
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "validation_failed"
    found = sorted((d["index"], d["metric"], d["code"]) for d in error["details"])
    assert found == [
        (0, "bad name", "invalid_metric_name"),
        (1, "temp", "invalid_value"),
        (3, "label", "value_too_long"),
        (3, "list", "invalid_value"),
    ]
    assert_nothing_stored(api, device)


def test_every_problem_of_a_senml_pack_is_listed(api, device):
    pack = [
        {"bn": "dev/", "bt": T0 / 1000, "n": "temp", "v": 1},
        {"n": "temp", "v": "warm"},
        {"n": "hum", "u": "per cent", "v": 2},
        {"n": "open", "vb": "yes"},
    ]
    answer = api.post(device["token"], pack, content_type="application/senml+json")
    assert answer.status_code == 422
    found = sorted((d["index"], d["metric"], d["code"]) for d in error_of(answer)["details"])
    assert found == [(1, "dev/temp", "invalid_value"), (2, "dev/hum", "invalid_unit"), (3, "dev/open", "invalid_value")]
    assert_nothing_stored(api, device)


def test_a_good_request_after_a_bad_one_is_stored(api, device):
    assert api.post(device["token"], raw=b'{"temp": NaN}').status_code == 422
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert api.readings(device["id"]) == [{"metric": "temp", "unit": "", "ts": T0, "value": 1}]


def test_bad_idempotency_key_is_refused(api, device):
    answer = api.post(device["token"], {"temp": 1}, headers={"Idempotency-Key": "has space"})
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "invalid_parameter"
    assert_nothing_stored(api, device)


def test_problem_details_are_capped_but_counted(api, device):
    body = {"ts": T0, "values": {f"-m{i}": i for i in range(100)}}
    body2 = {"ts": T0, "values": {f"-n{i}": i for i in range(100)}}
    answer = api.post(device["token"], [body, body2])
    assert answer.status_code == 422
    error = error_of(answer)
    assert len(error["details"]) == 100
    assert "200" in error["message"]
    assert json.loads(answer.body)["error"]["code"] == "validation_failed"
