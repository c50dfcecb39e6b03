"""device_sim: retry policy, transport and the whole simulator against an in-process
fake server (httpx.MockTransport; no network)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_sim.config import SimConfig
from device_sim.fakeserver import FakeServer, Scripted, error_response
from device_sim.profiles import load_profile, parse_profile
from device_sim.report import Stats
from device_sim.runner import run_simulation
from device_sim.transport import (
    Api,
    Outcome,
    RetryPolicy,
    backoff_delay,
    classify_status,
    error_code,
    parse_retry_after,
)


class MaxRandom(random.Random):
    """uniform() returns its upper bound, exposing the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


# ----------------------------------------------------------------- backoff_delay


def test_backoff_grows_exponentially_and_is_capped() -> None:
    rng = MaxRandom()
    ceilings = [backoff_delay(n, None, rng) for n in range(1, 10)]
    assert ceilings[:6] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
    assert ceilings[6:] == [10.0, 10.0, 10.0]
    assert backoff_delay(1000, None, rng) == 10.0  # no overflow
    assert backoff_delay(3, None, rng, base=1.0, cap=5.0) == 4.0


def test_backoff_full_jitter_stays_within_zero_and_ceiling() -> None:
    rng = random.Random(42)
    for attempt in range(1, 12):
        ceiling = min(10.0, 0.2 * 2 ** (attempt - 1))
        samples = [backoff_delay(attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # it really spreads over the range
        assert min(samples) < ceiling * 0.2


def test_backoff_is_deterministic_for_a_seeded_rng() -> None:
    a = [backoff_delay(n, None, random.Random(5)) for n in range(1, 6)]
    b = [backoff_delay(n, None, random.Random(5)) for n in range(1, 6)]
    assert a == b


def test_backoff_honours_retry_after() -> None:
    rng = MaxRandom()
    assert backoff_delay(1, 0.0, rng) == 0.0
    assert backoff_delay(1, 7.0, rng) == 7.0  # longer than the exponential ceiling
    assert backoff_delay(9, 2.0, rng) == 2.0  # shorter than the cap
    assert backoff_delay(1, 3600.0, rng) == 60.0  # bounded by max_retry_after
    assert backoff_delay(1, -5.0, rng) == 0.0
    with pytest.raises(ValueError):
        backoff_delay(0, None, rng)


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    now = datetime(2025, 11, 25, 9, 0, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    earlier = (now - timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(earlier, now=now) == 0.0


def test_classify_status_and_error_code() -> None:
    assert classify_status(200) == classify_status(201) == "ok"
    assert classify_status(429) == classify_status(503) == "throttled"
    assert classify_status(500) == classify_status(502) == classify_status(504) == "server_error"
    assert classify_status(408) == "timeout"
    for status in (400, 401, 403, 404, 409, 413, 415, 422):
        assert classify_status(status) == "rejected"
    assert error_code(422, {"error": {"code": "validation_failed"}}) == "validation_failed"
    assert error_code(403, {"message": "Forbidden"}) == "http_403"
    assert error_code(400, None) == "http_400"


# ----------------------------------------------------------------- Api.request


def make_api(
    handler: Callable[[httpx.Request], httpx.Response], max_retries: int = 5
) -> tuple[Api, list[float]]:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    api = Api(
        "http://sim.test/",
        policy=RetryPolicy(max_retries=max_retries),
        rng=random.Random(1),
        transport=httpx.MockTransport(handler),
        sleep=fake_sleep,
    )
    return api, slept


def post(api: Api, stats: Stats, key: str = "k-1") -> Any:
    async def go() -> Any:
        async with api:
            return await api.request(
                "POST",
                "/v1/telemetry",
                headers={"Idempotency-Key": key, "Content-Type": "application/json"},
                content=b"[]",
                stats=stats,
            )

    return asyncio.run(go())


def test_503_with_retry_after_then_200() -> None:
    answers = [
        error_response(503, "storage_unavailable", headers={"Retry-After": "0"}),
        error_response(503, "storage_unavailable", headers={"Retry-After": "2"}),
        httpx.Response(200, json={"accepted": 1, "records": 1, "ignored": 0}),
    ]
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        return answers.pop(0)

    api, slept = make_api(handler)
    stats = Stats()
    result = post(api, stats)
    assert result.outcome is Outcome.OK and result.attempts == 3
    assert result.data == {"accepted": 1, "records": 1, "ignored": 0}
    assert slept == [0.0, 2.0]  # Retry-After honoured exactly
    assert keys == ["k-1", "k-1", "k-1"]  # same Idempotency-Key on every retry
    assert (stats.requests, stats.retries, stats.throttled, stats.server_errors) == (3, 2, 2, 0)
    assert len(stats.latencies_ms) == 1


def test_422_is_final_and_reports_its_code() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return error_response(422, "validation_failed", "ts in the future")

    api, slept = make_api(handler)
    stats = Stats()
    result = post(api, stats)
    assert result.outcome is Outcome.REJECTED
    assert (result.status, result.code, result.message) == (
        422,
        "validation_failed",
        "ts in the future",
    )
    assert calls == 1 and slept == [] and stats.retries == 0


def test_500_is_retried_and_counted_as_server_error() -> None:
    answers = [error_response(500, "internal_error"), httpx.Response(200, json={})]
    api, slept = make_api(lambda r: answers.pop(0))
    stats = Stats()
    result = post(api, stats)
    assert result.ok and stats.server_errors == 1 and stats.throttled == 0
    assert len(slept) == 1 and 0.0 <= slept[0] <= 0.2  # jittered, first ceiling 0.2 s


def test_connection_errors_retry_then_give_up() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api, slept = make_api(handler, max_retries=3)
    stats = Stats()
    result = post(api, stats)
    assert result.outcome is Outcome.GAVE_UP
    assert result.last_failure == "transport" and result.attempts == 4
    assert stats.transport_errors == 4 and stats.retries == 3 and len(slept) == 3
    assert all(0 <= s <= c for s, c in zip(slept, [0.2, 0.4, 0.8], strict=True))


def test_timeouts_are_retried() -> None:
    state = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={})

    api, _ = make_api(handler)
    stats = Stats()
    assert post(api, stats).ok
    assert stats.transport_errors == 1 and stats.retries == 1


def test_retries_exhausted_on_429_reports_code() -> None:
    api, slept = make_api(
        lambda r: error_response(429, "throttled", headers={"Retry-After": "1"}), max_retries=2
    )
    stats = Stats()
    result = post(api, stats)
    assert result.outcome is Outcome.GAVE_UP and result.code == "throttled"
    assert slept == [1.0, 1.0]


# ----------------------------------------------------------------- whole simulator


def small_config(**overrides: Any) -> SimConfig:
    values: dict[str, Any] = {
        "profile": load_profile("default"),
        "url": "http://sim.test",
        "admin_token": "admin-secret",
        "devices": 3,
        "count": 7,
        "interval": 0.0,
        "batch": 3,
        "progress": False,
        "verify": True,
        "retry_base": 0.001,
        "retry_cap": 0.005,
        "verify_rechecks": (),
        "drain_timeout": 2.0,
    }
    values.update(overrides)
    return SimConfig(**values)


def simulate(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    cfg = small_config(**overrides)
    assert cfg.validate() == []
    return asyncio.run(run_simulation(cfg, transport=httpx.MockTransport(server.handle)))


@pytest.mark.parametrize("fmt", ["json", "senml-json", "senml-xml", "thingsboard"])
def test_clean_run_every_format_verifies(fmt: str) -> None:
    server = FakeServer()
    report = simulate(server, fmt=fmt)
    assert report["exit_code"] == 0, report["failures"]
    # 3 devices x 7 records, batches of 3 -> 3 requests per device (3+3+1)
    assert report["records_sent"] == report["records_acked"] == 21
    assert report["requests"] == 9
    assert report["readings_acked"] == report["server_accepted"] == report["readings_sent"]
    v = report["verify"]
    assert v["checked_devices"] == 3
    assert v["readings_expected"] == v["readings_found"] == report["readings_acked"]
    assert v["missing"] == v["duplicated"] == v["unexpected"] == v["value_mismatches"] == 0


def test_thingsboard_puts_the_token_in_the_path() -> None:
    server = FakeServer()
    simulate(server, fmt="thingsboard", devices=1, count=1, verify=False)
    posts = [r for r in server.requests if r.url.path.endswith("/telemetry")]
    assert len(posts) == 1
    token = next(iter(server.tokens))
    assert posts[0].url.path == f"/api/v1/{token}/telemetry"
    assert "Authorization" not in posts[0].headers
    assert posts[0].headers["Idempotency-Key"]


def test_two_503_then_success_is_recovered() -> None:
    server = FakeServer()
    server.script_telemetry(503, 503, retry_after="0")
    report = simulate(server, devices=1)
    assert report["retries"] == 2 and report["throttled"] == 2
    assert report["server_errors"] == 0
    assert report["records_acked"] == 7
    assert report["verify"]["missing"] == 0
    assert report["exit_code"] == 0


def test_retry_reuses_idempotency_key_so_a_stored_timeout_is_not_duplicated() -> None:
    server = FakeServer()
    # The first post is stored but answered 504 (e.g. gateway timeout after the write).
    server.telemetry_script.append(Scripted(504, {"Retry-After": "0"}, store=True))
    report = simulate(server, devices=1, count=3, batch=3)
    assert report["server_errors"] == 1 and report["retries"] == 1
    assert report["unrecovered_server_errors"] == 0
    assert report["verify"]["missing"] == 0 and report["verify"]["duplicated"] == 0
    assert report["exit_code"] == 0


def test_422_is_counted_by_code_not_retried_and_fails_the_run() -> None:
    server = FakeServer()
    server.script_telemetry(422)
    report = simulate(server, devices=1)
    assert report["retries"] == 0
    assert report["rejected_by_code"] == {"validation_failed": 1}
    assert report["rejected_unexpected"] == 1 and report["rejected_expected"] == 0
    assert report["records_rejected"] == 3  # the first batch
    assert report["records_acked"] == 4
    assert report["verify"]["missing"] == 0  # rejected data is not expected back
    assert report["exit_code"] == 1
    assert any("unexpected rejections" in f for f in report["failures"])


def test_verify_finds_a_reading_the_server_dropped() -> None:
    server = FakeServer()
    server.drop_readings = 1
    report = simulate(server, devices=2)
    v = report["verify"]
    assert v["missing"] == 1
    assert v["readings_found"] == v["readings_expected"] - 1
    assert v["examples"][0]["kind"] == "missing"
    assert report["exit_code"] == 1


def test_verify_reports_duplicates_and_follows_cursors() -> None:
    server = FakeServer()
    server.duplicate_readings = 2
    server.page_size = 4  # forces several pages per device
    report = simulate(server, devices=1)
    v = report["verify"]
    assert v["duplicated"] == 2 and v["missing"] == 0
    reads = [r for r in server.requests if r.method == "GET"]
    assert len(reads) > 3
    assert all("cursor" in r.url.params for r in reads[1:])


def test_unreachable_server_buffers_then_delivers() -> None:
    server = FakeServer()
    server.script_telemetry(*([503] * 6), retry_after="0")
    report = simulate(server, devices=1, count=12, batch=3, max_retries=1)
    assert report["gave_up"] >= 2
    assert report["records_acked"] == 12
    assert report["dropped_buffer"] == 0
    assert report["exit_code"] == 0
    assert report["verify"]["missing"] == 0


def test_buffer_limit_drops_oldest_records_when_server_stays_down() -> None:
    server = FakeServer()
    server.script_telemetry(*([503] * 1000), retry_after="0")
    report = simulate(
        server, devices=1, count=20, batch=2, buffer_limit=6, max_retries=0, drain_timeout=0.05
    )
    assert report["records_acked"] == 0
    assert report["dropped_buffer"] == 14  # 20 generated, at most 6 kept
    assert report["records_unsent"] == 6
    assert report["unrecovered_failures"] == 3
    assert report["exit_code"] == 1


def test_unrecovered_5xx_fails_the_run() -> None:
    server = FakeServer()
    server.script_telemetry(*([500] * 1000), retry_after="0")
    report = simulate(server, devices=1, count=2, batch=2, max_retries=1, drain_timeout=0.05)
    assert report["unrecovered_server_errors"] == 1
    assert report["server_errors"] >= 2
    assert report["exit_code"] == 1


def test_injected_faults_are_expected_rejections() -> None:
    server = FakeServer()
    report = simulate(
        server,
        devices=4,
        count=12,
        batch=3,
        duplicate_rate=0.5,
        malformed_rate=0.5,
        burst_rate=0.5,
        seed=3,
    )
    faults = report["faults"]
    assert faults["malformed_sent"] > 0 and faults["duplicates_sent"] > 0
    assert faults["duplicates_acked"] == faults["duplicates_sent"]
    assert faults["malformed_accepted"] == 0
    assert report["rejected_expected"] == faults["malformed_sent"]
    assert set(report["rejected_expected_by_code"]) <= {"malformed_payload", "validation_failed"}
    assert report["rejected_unexpected"] == 0
    assert report["records_acked"] == 48  # the real batches all got through
    assert report["verify"]["missing"] == 0 and report["verify"]["duplicated"] == 0
    assert report["exit_code"] == 0


def test_clock_skew_beyond_limit_is_an_expected_rejection() -> None:
    server = FakeServer()
    report = simulate(server, devices=6, clock_skew=3600.0, skew_rate=1.0, seed=2)
    assert report["faults"]["skewed_devices"] == 6
    assert report["rejected_expected"] > 0
    assert report["rejected_unexpected"] == 0
    assert report["verify"]["missing"] == 0
    assert report["exit_code"] == 0


def test_same_seed_same_values() -> None:
    def stored_values(seed: int) -> list[Any]:
        server = FakeServer()
        simulate(server, devices=2, seed=seed, start_ms=1_700_000_000_000, verify=False)
        out = []

        def name(device_id: str) -> str:  # without the random per-run suffix
            return str(server.devices[device_id]["name"]).rsplit("-", 1)[0]

        for device_id in sorted(server.devices, key=name):
            out.append(sorted(server.readings_of(device_id).items()))
        return out

    assert stored_values(11) == stored_values(11)
    assert stored_values(11) != stored_values(12)


def test_tokens_file_reuses_identities(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    server = FakeServer()
    simulate(server, devices=2, tokens_file=str(tokens), verify=False)
    assert len(server.devices) == 2
    saved = json.loads(tokens.read_text())
    assert [d["index"] for d in saved["devices"]] == [0, 1]
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    report = simulate(server, devices=3, tokens_file=str(tokens))
    assert len(server.devices) == 3  # two reused, one new
    assert report["exit_code"] == 0
    assert len(json.loads(tokens.read_text())["devices"]) == 3


def test_provisioning_sends_the_documented_body() -> None:
    server = FakeServer()
    profile = parse_profile(
        {
            "device_types": {
                "probe": {
                    "attributes": {"site": "x", "n": 2, "on": True},
                    "metrics": {"c": {"generator": "counter"}},
                }
            }
        }
    )
    simulate(server, profile=profile, devices=1, count=1)
    create = next(r for r in server.requests if r.url.path == "/v1/devices")
    assert create.headers["Authorization"] == "Bearer admin-secret"
    body = json.loads(create.content)
    assert body["type"] == "probe"
    assert body["name"].startswith("sim-probe-00000-")
    assert body["attributes"]["site"] == "x" and body["attributes"]["n"] == 2
    posts = [r for r in server.requests if r.url.path == "/v1/telemetry"]
    assert posts[0].headers["Authorization"].startswith("Bearer dev-")
    assert posts[0].headers["Content-Type"] == "application/json"


def test_provisioning_failure_raises() -> None:
    from device_sim.fleet import ProvisionError

    server = FakeServer(admin_token="other")
    with pytest.raises(ProvisionError, match="unauthorized"):
        simulate(server)


# ----------------------------------------------------------------- idempotent provisioning


def working_tokens(server: FakeServer, report: dict[str, Any]) -> None:
    """Every device the server holds was provisioned once and its token is the one in force."""
    assert report["exit_code"] == 0, report["failures"]
    assert report["verify"]["missing"] == 0
    assert sorted(server.tokens.values()) == sorted(server.devices)  # one live token per device


def test_a_create_whose_answer_is_lost_is_not_repeated_and_its_token_is_rotated() -> None:
    server = FakeServer()
    # The first two creates are stored, then the connection drops before the answer.
    server.script_create(Scripted(0, store=True, drop=True), Scripted(0, store=True, drop=True))
    report = simulate(server, devices=4)
    assert len(server.devices) == 4
    working_tokens(server, report)
    rotations = [r for r in server.requests if r.url.path.endswith("/token")]
    assert len(rotations) == 2
    assert report["records_acked"] == 4 * 7


def test_a_lost_rotation_answer_is_retried_and_the_token_confirmed() -> None:
    server = FakeServer()
    server.script_create(Scripted(0, store=True, drop=True))
    server.script_rotate(Scripted(0, store=True, drop=True))  # rotated, answer lost: rotate again
    report = simulate(server, devices=1)
    assert len(server.devices) == 1
    working_tokens(server, report)
    assert len([r for r in server.requests if r.url.path.endswith("/token")]) == 2


def test_provisioning_retries_503_with_retry_after_and_connection_errors() -> None:
    server = FakeServer()
    server.script_create(
        Scripted(503, {"Retry-After": "0"}, code="service_unavailable"),
        Scripted(0, drop=True),  # dropped before the server did anything
        Scripted(429, {"Retry-After": "0"}, code="throttled"),
    )
    report = simulate(server, devices=2)
    assert len(server.devices) == 2
    working_tokens(server, report)
    assert not [r for r in server.requests if r.url.path.endswith("/token")]  # nothing to take over


def test_an_id_someone_else_holds_is_never_taken_over(monkeypatch: pytest.MonkeyPatch) -> None:
    from device_sim import fleet

    monkeypatch.setattr(fleet.secrets, "token_hex", lambda n: "feedbeef")  # every tag the same
    taken = fleet.sim_device_id("sensor", 0, "feedbeef")
    server = FakeServer()
    server.devices[taken] = {"id": taken, "name": "someone else's", "type": "x", "attributes": {}}
    server.tokens["theirs"] = taken
    # The first attempt fails in a way that might have created the device; the retry meets 409,
    # reads the device, sees it is not the one it asked for, and leaves it alone.
    server.script_create(Scripted(503, {"Retry-After": "0"}))
    profile = parse_profile({"device_types": {"sensor": {"metrics": {"c": {"generator": "counter"}}}}})
    with pytest.raises(fleet.ProvisionError, match="409 device_exists"):
        simulate(server, profile=profile, devices=1)
    assert server.tokens == {"theirs": taken}  # their token still works
    assert not [r for r in server.requests if r.url.path.endswith("/token")]
    assert [r.method for r in server.requests].count("GET") == 1


def test_provisioning_gives_up_at_its_deadline() -> None:
    from device_sim.fleet import ProvisionError

    server = FakeServer()
    server.script_create(*[Scripted(0, drop=True)] * 10_000)
    with pytest.raises(ProvisionError, match="transport"):
        simulate(server, devices=1, provision_timeout=0.05)
    assert not server.devices


def test_simulator_metric_names_follow_the_servers_rule() -> None:
    from chalicelib.domain.rules import MAX_METRIC_CHARS, METRIC_CHARACTERS, METRIC_PATTERN
    from device_sim.model import MAX_METRIC_LEN, METRIC_CHARS_RE, METRIC_RE

    assert METRIC_RE.pattern == METRIC_PATTERN.pattern and MAX_METRIC_LEN == MAX_METRIC_CHARS
    assert METRIC_CHARS_RE.pattern == f"^{METRIC_CHARACTERS}$"


def test_simulator_ids_follow_the_servers_device_id_rule() -> None:
    from chalicelib.domain.devices import ID_PATTERN
    from device_sim.fleet import sim_device_id
    from device_sim.model import DEVICE_ID_RE

    assert DEVICE_ID_RE.pattern == ID_PATTERN.pattern
    for type_name in ("freezer", "a/b c:d", "x" * 64, "cold-chain/truck"):
        for index in (0, 17, 123_456):
            device_id = sim_device_id(type_name, index, "0123abcd")
            assert ID_PATTERN.match(device_id), device_id
            assert device_id.endswith(f"-{index:05d}-0123abcd")
