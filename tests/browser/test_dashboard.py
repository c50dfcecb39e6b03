"""The dashboard in a real browser: Playwright driving Debian's Chromium (headless) against the
local stack. Seeds a fleet, readings and an alert through the HTTP API, then does what an
operator does: sign in, look at the fleet, open a device, watch a reading arrive, acknowledge
an alert, read a scaling report, sign out. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from chalicelib.web import session as sessions
from devstack.stack import LocalStack, free_port
from tests.e2e import wamp_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The machine's network is closed: keep Chromium from retrying connections to the outside.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION_SECRET = "browser-tests-session-secret-0123456789"
MIN = 60_000
HOUR = 60 * MIN
LIVE_WITHIN_S = 8  # "within a few seconds": polling runs every 3 s


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Fleet:
    """What the tests seeded through the API."""

    def __init__(self, stack: LocalStack, http: httpx.Client) -> None:
        self.stack = stack
        self.http = http
        self.admin = {"Authorization": f"Bearer {stack.admin_token}"}
        self.tokens: dict[str, str] = {}
        self.alert_id = ""
        self.report_id = ""

    def register(self, device_id: str, name: str, kind: str, **attributes: Any) -> None:
        body = {"id": device_id, "name": name, "type": kind, "attributes": attributes}
        answer = self.http.post("/v1/devices", json=body, headers=self.admin)
        assert answer.status_code == 201, answer.text
        self.tokens[device_id] = answer.json()["token"]

    def post(self, device_id: str, body: Any) -> None:
        auth = {"Authorization": f"Bearer {self.tokens[device_id]}"}
        answer = self.http.post("/v1/telemetry", json=body, headers=auth)
        assert answer.status_code == 200, answer.text

    def readings(self, device_id: str, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self.http.get(f"/v1/devices/{device_id}/telemetry", params=query, headers=self.admin)
            assert page.status_code == 200, page.text
            out += page.json()["readings"]
            cursor = page.json()["next_cursor"]
            if not cursor:
                return out

    def alert(self, alert_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/v1/alerts/{alert_id}", headers=self.admin)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    ws_port = free_port()
    with pytest.MonkeyPatch.context() as env:
        # A fixed secret, so a test can make an expired session; the stack's WAMP URL for the pages.
        env.setenv("SESSION_SECRET", SESSION_SECRET)
        env.setenv("PUBLIC_WS_URL", f"ws://127.0.0.1:{ws_port}")
        with LocalStack(
            api_port=free_port(), moto_port=free_port(), ws_port=ws_port, state_dir=tmp_path_factory.mktemp("dash")
        ) as running:
            yield running


@pytest.fixture(scope="module")
def fleet(stack: LocalStack) -> Iterator[Fleet]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        seeded = Fleet(stack, http)
        seeded.register("fz-1", "Freezer 1", "freezer", site="kitchen")
        seeded.register("fz-2", "Freezer 2", "freezer", site="cellar")
        seeded.register("door-3", "Back door", "door")
        seeded.register("th-4", "Office thermometer", "thermometer")
        seeded.register("th-5", "Lab thermometer", "thermometer")
        rule = {
            "name": "freezer too warm",
            "scope": {"type": "freezer"},
            "metric": "temp",
            "condition": {"op": ">", "value": -10},
            "severity": "critical",
        }
        assert http.post("/v1/rules", json=rule, headers=seeded.admin).status_code == 201
        now = now_ms()
        # Seven hours of a reading every 5 minutes, so the 6 h window leaves some out.
        history = [
            {
                "ts": now - 7 * HOUR + i * 5 * MIN,
                "values": {
                    "temp": round(-18 + 1.5 * math.sin(i / 9), 2),
                    "humidity": round(42 + 4 * math.sin(i / 14 + 1), 1),
                    "door": "closed" if i % 20 else "open",
                },
            }
            for i in range(84)
        ]
        seeded.post("fz-1", history)
        seeded.post("fz-2", [{"ts": now - 30 * MIN + i * MIN, "values": {"temp": -19.5 + i / 10}} for i in range(20)])
        seeded.post("door-3", {"ts": now - 20 * MIN, "values": {"open": False, "battery": 3.1}})
        seeded.post("th-4", {"ts": now - 3 * MIN, "values": {"temp": 21.5, "humidity": 38}})
        # ...and one too warm for the rule: an alert (the stream handlers run in the background).
        seeded.post("fz-1", {"ts": now - MIN, "values": {"temp": -6.5}})
        assert stack.emulator is not None
        stack.emulator.drain()
        alerts = http.get("/v1/alerts", params={"device": "fz-1"}, headers=seeded.admin).json()["alerts"]
        assert len(alerts) == 1, alerts
        seeded.alert_id = alerts[0]["id"]
        seeded.report_id = stack.emulator.run_job("scaling_report")["report"]
        yield seeded


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console(list[str]):
    """Errors the page logged or threw: there should be none but the answers a test asked for."""

    def __init__(self, expected_statuses: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.expected = expected_statuses

    def watch(self, page: Page) -> Page:
        page.on("console", self._message)
        page.on("pageerror", lambda e: self.append(f"page error: {e}"))
        return page

    def _message(self, message: Any) -> None:
        if message.type != "error":
            return
        text = f"{message.text} ({message.location.get('url')})"
        if not any(expected in text for expected in self.expected):
            self.append(text)


@pytest.fixture
def context(browser: Browser, stack: LocalStack) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=stack.api_url, viewport={"width": 1280, "height": 860})
    yield ctx
    ctx.close()


def shot(page: Page, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, stack: LocalStack, path: str = "/dashboard") -> None:
    page.goto(path)
    expect(page).to_have_url(f"{stack.api_url}/dashboard/sign-in?next={path.replace('/', '%2F')}")
    page.get_by_label("Admin token").fill(stack.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.api_url}{path}")


def test_sign_in_fleet_device_live_reading_alert_report_sign_out(
    context: BrowserContext, stack: LocalStack, fleet: Fleet
) -> None:
    # The one error answer asked for: signing in with a device token (403, a page saying why).
    console = Console(expected_statuses=("status of 403 (Forbidden) (" + stack.api_url + "/dashboard/sign-in)",))
    page = console.watch(context.new_page())

    _walk_sign_in(page, context, stack, fleet)
    _walk_fleet(page)
    temp, start = _walk_device(page, stack, fleet)
    _walk_live(page, fleet, temp, start)
    _walk_alerts(page, fleet)
    _walk_reports(page, fleet)
    _walk_sign_out(page, context, stack)
    assert console == [], console


def _walk_sign_in(page: Page, context: BrowserContext, stack: LocalStack, fleet: Fleet) -> None:
    """The walk-through, signing in."""
    # Sign in: a device token is refused with a readable message, the admin token lets us in.
    page.goto("/dashboard")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "01-sign-in")
    page.get_by_label("Admin token").fill(fleet.tokens["fz-2"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-message")).to_contain_text("device token")
    page.get_by_label("Admin token").fill(stack.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.api_url}/dashboard")
    cookie = next(c for c in context.cookies() if c["name"] == sessions.SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and stack.admin_token not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # nothing the page's script could read


def _walk_fleet(page: Page) -> None:
    """The walk-through, the fleet page."""
    # The fleet: every seeded device with its status, last seen and latest values.
    rows = page.locator("#fleet tbody tr[data-device]")
    expect(rows).to_have_count(5)
    freezer = page.locator('tr[data-device="fz-1"]')
    expect(freezer.locator('[data-field="status"]')).to_have_text("alerting 1 alert")
    expect(freezer.locator('[data-field="latest"]')).to_contain_text("temp -6.5")
    expect(page.locator('tr[data-device="door-3"] [data-field="latest"]')).to_contain_text("open false")
    expect(page.locator('tr[data-device="th-5"] [data-field="status"]')).to_have_text("never seen")
    expect(page.get_by_role("link", name="1 active alert")).to_be_visible()
    shot(page, "02-fleet")
    # Search and paging are plain links and forms.
    page.get_by_label("Search devices").fill("freezer")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(2)
    page.goto("/dashboard?limit=2")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-device", "fz-2")
    page.goto("/dashboard")


def _walk_device(page: Page, stack: LocalStack, fleet: Fleet) -> tuple[Locator, int]:
    """The walk-through, a device page: its charts and the window (the temp chart and its window start back)."""
    # A device: one chart per numeric metric, with as many points as the API returns for the window.
    page.get_by_role("link", name="Freezer 1").click()
    expect(page).to_have_url(f"{stack.api_url}/dashboard/devices/fz-1")
    charts = page.locator("#charts")
    expect(charts).to_have_attribute("data-state", "ready", timeout=15_000)
    start, end = int(charts.get_attribute("data-from") or 0), int(charts.get_attribute("data-to") or 0)
    assert end - start == 6 * HOUR  # the default window
    temp = page.locator('figure.chart[data-metric="temp"]')
    humidity = page.locator('figure.chart[data-metric="humidity"]')
    temp_points = len(fleet.readings("fz-1", metric="temp", **{"from": start, "to": end}))
    humidity_points = len(fleet.readings("fz-1", metric="humidity", **{"from": start, "to": end}))
    assert 70 <= temp_points < 86 and 70 <= humidity_points < 85  # the window cut the first hour off
    expect(temp).to_have_attribute("data-points", str(temp_points))
    expect(humidity).to_have_attribute("data-points", str(humidity_points))
    expect(page.locator('figure.chart[data-metric="door"]')).to_have_count(0)  # text: in the table only
    expect(temp.locator("canvas").first).to_be_visible()
    expect(page.locator('#latest tr[data-metric="door"] td.value')).to_have_text("closed")
    expect(page.locator(".alerts tbody tr")).to_have_count(1)
    shot(page, "03-device", full_page=True)
    # Another window is a link away, and its chart matches the API too.
    page.get_by_role("link", name="last 1h").click()
    expect(charts).to_have_attribute("data-state", "ready", timeout=15_000)
    start, end = int(charts.get_attribute("data-from") or 0), int(charts.get_attribute("data-to") or 0)
    in_window = fleet.readings("fz-1", metric="temp", **{"from": start, "to": end})
    expect(temp).to_have_attribute("data-points", str(len(in_window)))
    return temp, start


def _walk_live(page: Page, fleet: Fleet, temp: Locator, start: int) -> None:
    """The walk-through, live updates on the device page and a command sent from it."""
    # A reading posted through the API shows up on the open page within seconds, as a WAMP event.
    expect(page.locator("[data-live-status]")).to_have_attribute("data-mode", "wamp", timeout=15_000)
    posted_at = time.monotonic()
    fleet.post("fz-1", {"ts": now_ms(), "values": {"temp": -4.75}})
    expect(page.locator('#latest tr[data-metric="temp"] td.value')).to_have_text("-4.75", timeout=LIVE_WITHIN_S * 1000)
    arrived_s = time.monotonic() - posted_at
    print(f"\nlive reading on the page after {arrived_s:.1f} s ({page.evaluate('document.body.dataset.live')})")
    expect(temp).to_contain_text("last -4.75")
    expect(temp).to_have_attribute("data-points", str(len(fleet.readings("fz-1", metric="temp", **{"from": start}))))
    shot(page, "04-device-live")
    # A command: queued for the device (no simulator is connected), its status on the page.
    page.get_by_label("Procedure").fill("get_status")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#command-status")).to_contain_text("queued")


def _walk_alerts(page: Page, fleet: Fleet) -> None:
    """The walk-through, the alerts page."""
    # Alerts: filter, then acknowledge with the keyboard.
    page.get_by_role("link", name="Alerts", exact=True).click()
    row = page.locator(f'tr[data-alert="{fleet.alert_id}"]')
    expect(row).to_contain_text("freezer too warm")
    expect(row).to_contain_text("critical")
    page.get_by_label("Severity").select_option("minor")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#alerts")).to_have_count(0)
    page.get_by_label("Severity").select_option("critical")
    page.get_by_role("button", name="Filter").click()
    expect(row).to_be_visible()
    shot(page, "05-alerts")
    ack = row.get_by_role("button", name="Acknowledge")
    for _ in range(40):
        page.keyboard.press("Tab")
        if ack.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the Acknowledge button is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(row.locator('[data-field="ack"]')).to_contain_text("acknowledged")
    assert fleet.alert(fleet.alert_id)["acknowledged"] is True
    assert "severity=critical" in page.url  # back to the same filtered list
    shot(page, "06-alert-acknowledged")


def _walk_reports(page: Page, fleet: Fleet) -> None:
    """The walk-through, the scaling reports."""
    # Scaling reports: the list, and one report with its chart.
    page.get_by_role("link", name="Reports").click()
    report_link = page.locator(f'tr[data-report="{fleet.report_id}"] a')
    expect(report_link).to_be_visible()
    shot(page, "07-reports")
    report_link.click()
    expect(page.get_by_role("heading", name=f"Scaling report {fleet.report_id}")).to_be_visible()
    chart = page.locator("#report-chart")
    expect(chart).to_be_visible()
    page.wait_for_function("document.getElementById('report-chart').naturalWidth > 0")
    shot(page, "08-report")


def _walk_sign_out(page: Page, context: BrowserContext, stack: LocalStack) -> None:
    """The walk-through, signing out."""
    # Sign out: back to sign-in, and the pages need signing in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == sessions.SESSION_COOKIE]
    page.goto("/dashboard/alerts")
    expect(page).to_have_url(f"{stack.api_url}/dashboard/sign-in?next=%2Fdashboard%2Falerts")
    shot(page, "09-signed-out")


def test_an_expired_session_goes_back_to_sign_in_and_then_to_the_page(
    context: BrowserContext, stack: LocalStack, fleet: Fleet
) -> None:
    page = context.new_page()
    cookie = {"name": sessions.SESSION_COOKIE, "domain": "127.0.0.1", "path": "/dashboard", "httpOnly": True}
    # A session with seconds left: the open page goes to sign-in when it runs out.
    _, short = sessions.new_session(sessions.secret(), now_ms(), 3)
    context.add_cookies([{**cookie, "value": short}])  # type: ignore[list-item]
    page.goto("/dashboard/devices/fz-2")
    expect(page.locator("#charts")).to_have_attribute("data-state", "ready", timeout=15_000)
    back = f"{stack.api_url}/dashboard/sign-in?expired=1&next=%2Fdashboard%2Fdevices%2Ffz-2"
    expect(page).to_have_url(back, timeout=10_000)
    expect(page.locator("#sign-in-message")).to_have_text("Your session has expired. Sign in again.")
    shot(page, "10-session-expired")
    # A page load with an expired session lands there too; signing in returns to the page.
    _, expired = sessions.new_session(sessions.secret(), now_ms() - 10 * HOUR, 3600)
    context.add_cookies([{**cookie, "value": expired}])  # type: ignore[list-item]
    page.goto("/dashboard/alerts?state=active")
    expect(page).to_have_url(f"{stack.api_url}/dashboard/sign-in?next=%2Fdashboard%2Falerts%3Fstate%3Dactive&expired=1")
    page.get_by_label("Admin token").fill(stack.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.api_url}/dashboard/alerts?state=active")
    # The script's JSON answers 401 to an expired session (and the page then goes to sign-in).
    context.add_cookies([{**cookie, "value": expired}])  # type: ignore[list-item]
    answer = page.request.get("/dashboard/data/states?ids=fz-2")
    assert answer.status == 401 and "expired" in answer.json()["error"]["message"]


def test_errors_are_readable_pages(context: BrowserContext, stack: LocalStack, fleet: Fleet) -> None:
    page = context.new_page()
    sign_in(page, stack)
    answer = page.goto("/dashboard/devices/no-such-device")
    assert answer is not None and answer.status == 404
    expect(page.locator("#error-message")).to_have_text("No device 'no-such-device'.")
    answer = page.goto("/dashboard/alerts?severity=fatal")
    assert answer is not None and answer.status == 400
    expect(page.locator("#error-message")).to_have_text("Severity must be one of critical, major, minor, warning.")
    shot(page, "11-error")
    # A form from elsewhere (no CSRF token) is refused, and nothing changes.
    answer = page.request.post(f"/dashboard/alerts/{fleet.alert_id}/ack", form={"next": "/dashboard"})
    assert answer.status == 403 and "did not come from this dashboard" in answer.text()


def test_lists_render_without_javascript(browser: Browser, stack: LocalStack, fleet: Fleet) -> None:
    ctx = browser.new_context(
        base_url=stack.api_url, java_script_enabled=False, viewport={"width": 1280, "height": 800}
    )
    try:
        page = ctx.new_page()
        sign_in(page, stack)
        expect(page.locator("#fleet tbody tr[data-device]")).to_have_count(5)
        expect(page.locator('tr[data-device="th-4"] [data-field="latest"]')).to_contain_text("temp 21.5")
        page.goto("/dashboard/devices/fz-1")
        expect(page.locator("#latest tbody tr")).to_have_count(3)
        expect(page.locator(".alerts tbody tr")).to_have_count(1)
        page.goto("/dashboard/alerts")
        expect(page.locator(f'tr[data-alert="{fleet.alert_id}"]')).to_be_visible()
        page.goto("/dashboard/reports")
        expect(page.locator(f'tr[data-report="{fleet.report_id}"]')).to_be_visible()
        shot(page, "12-reports-without-javascript")
    finally:
        ctx.close()


def test_pages_fit_a_phone(browser: Browser, stack: LocalStack, fleet: Fleet) -> None:
    ctx = browser.new_context(
        base_url=stack.api_url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        page = ctx.new_page()
        sign_in(page, stack)
        overflow = "document.documentElement.scrollWidth - window.innerWidth"
        assert page.evaluate(overflow) <= 0
        shot(page, "13-phone-fleet", full_page=True)
        page.goto("/dashboard/devices/fz-1")
        expect(page.locator("#charts")).to_have_attribute("data-state", "ready", timeout=15_000)
        assert page.evaluate(overflow) <= 0
        canvas_width = page.locator('figure.chart[data-metric="temp"] canvas').first.bounding_box()
        assert canvas_width is not None and canvas_width["x"] + canvas_width["width"] <= 390
        shot(page, "14-phone-device")
        page.goto("/dashboard/alerts")
        assert page.evaluate(overflow) <= 0
    finally:
        ctx.close()


def test_the_keyboard_reaches_everything_from_the_top(context: BrowserContext, stack: LocalStack, fleet: Fleet) -> None:
    page = context.new_page()
    sign_in(page, stack)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Office thermometer":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack.api_url}/dashboard/devices/th-4")


def _join_with_the_pages_ticket(page: Page) -> dict[str, str | None]:
    """Ask the stack under test for a ticket as a signed-in page does (POST with the page's CSRF
    token), join its WAMP router with it, and return the session's authid and authrole.

    Everything goes over HTTP and the WebSocket, so a router that refuses dashboard tickets fails
    here with its ABORT reason (wamp_client.Refused) instead of a page that quietly polls."""
    csrf = page.locator("body").get_attribute("data-csrf")
    assert csrf, "the page carries no CSRF token"
    answer = page.request.post("/dashboard/data/ticket", headers={"X-CSRF-Token": csrf})
    assert answer.status == 200, answer.text()
    doc = answer.json()

    async def join() -> dict[str, str | None]:
        session = await wamp_client.connect(doc["url"], doc["ticket"])
        try:
            return {"authid": session.authid, "authrole": session.authrole}
        finally:
            await wamp_client.close(session)

    # Its own thread: asyncio.run must not share the thread of Playwright's sync API.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, join()).result(timeout=30)


def test_pages_update_from_wamp_events(context: BrowserContext, stack: LocalStack, fleet: Fleet) -> None:
    console = Console()
    page = console.watch(context.new_page())
    sign_in(page, stack, "/dashboard/devices/th-4")
    # The stack's router takes the page's ticket: an admin view named "dashboard".
    assert _join_with_the_pages_ticket(page) == {"authid": "dashboard", "authrole": "admin"}
    expect(page.locator("[data-live-status]")).to_have_attribute("data-mode", "wamp", timeout=15_000)
    expect(page.locator("#charts")).to_have_attribute("data-state", "ready", timeout=15_000)
    # Live, the page polls every 30 s only: a reading within a few seconds came as a WAMP event.
    fleet.post("th-4", {"ts": now_ms(), "values": {"temp": 22.25}})
    expect(page.locator('#latest tr[data-metric="temp"] td.value')).to_have_text("22.25", timeout=LIVE_WITHIN_S * 1000)
    expect(page.locator('figure.chart[data-metric="temp"]')).to_have_attribute("data-points", "2")
    # The fleet overview too.
    page.goto("/dashboard")
    expect(page.locator("[data-live-status]")).to_have_attribute("data-mode", "wamp", timeout=15_000)
    fleet.post("th-5", {"ts": now_ms(), "values": {"temp": 19.0}})
    row = page.locator('tr[data-device="th-5"]')
    expect(row.locator('[data-field="latest"]')).to_contain_text("temp 19", timeout=LIVE_WITHIN_S * 1000)
    expect(row.locator('[data-field="status"]')).to_have_text("online")
    shot(page, "15-fleet-live")
    assert console == [], console


def test_long_windows_draw_averages_of_at_most_the_charts_points(
    context: BrowserContext, stack: LocalStack, fleet: Fleet
) -> None:
    # Two days of a record a minute: the 1 h window holds 60 readings (raw), the 24 h window 1,440
    # (2-minute averages), the 30-day window hourly averages; never more than 1,000 points a chart.
    console = Console()
    now = now_ms()
    fleet.register("mt-6", "Busy meter", "meter")
    records = [
        {"ts": now - 48 * HOUR + i * MIN, "values": {"power": round(100 + 20 * math.sin(i / 60), 2), "on": i % 90 < 45}}
        for i in range(48 * 60)
    ]
    for i in range(0, len(records), 100):
        fleet.post("mt-6", records[i : i + 100])
    page = console.watch(context.new_page())
    sign_in(page, stack, "/dashboard/devices/mt-6")
    charts = page.locator("#charts")
    power = page.locator('figure.chart[data-metric="power"]')
    expect(charts).to_have_attribute("data-state", "ready", timeout=15_000)
    page.get_by_role("link", name="last 30d").click()
    expect(charts).to_have_attribute("data-window", "30d")
    expect(charts).to_have_attribute("data-state", "ready", timeout=15_000)
    expect(charts).to_have_attribute("data-kind", "aggregate")
    expect(power).to_have_attribute("data-kind", "aggregate")
    expect(power.locator("[data-chart-kind]")).to_have_text("hourly averages")
    assert 48 <= int(power.get_attribute("data-points") or 0) <= 50
    expect(page.locator('figure.chart[data-metric="on"] [data-chart-kind]')).to_have_text("hourly last values")
    expect(power.locator("canvas").first).to_be_visible()
    shot(page, "16-device-30d-averages", full_page=True)

    page.get_by_role("link", name="last 24h").click()
    expect(charts).to_have_attribute("data-state", "ready", timeout=15_000)
    expect(power.locator("[data-chart-kind]")).to_have_text("2-minute averages")
    points = int(power.get_attribute("data-points") or 0)
    assert 700 <= points <= 1000, points
    # A live reading lands in the last bucket (its buckets are fetched again): the caption's last value.
    expect(page.locator("[data-live-status]")).to_have_attribute("data-mode", "wamp", timeout=15_000)
    fleet.post("mt-6", {"ts": now_ms(), "values": {"power": 333.25}})
    expect(power).to_contain_text("last 333.25", timeout=LIVE_WITHIN_S * 1000)
    assert points <= int(power.get_attribute("data-points") or 0) <= points + 2

    page.get_by_role("link", name="last 1h").click()
    expect(charts).to_have_attribute("data-state", "ready", timeout=15_000)
    expect(charts).to_have_attribute("data-kind", "raw")
    expect(power.locator("[data-chart-kind]")).to_have_text("raw")
    start, end = int(charts.get_attribute("data-from") or 0), int(charts.get_attribute("data-to") or 0)
    raw = fleet.readings("mt-6", metric="power", **{"from": start, "to": end})
    assert 55 <= len(raw) <= 62
    expect(power).to_have_attribute("data-points", str(len(raw)))

    # The fleet: a sparkline of each device's first numeric metric, hourly averages of the last 24 h.
    page.goto("/dashboard")
    spark = page.locator('tr[data-device="mt-6"] [data-field="spark"]')
    expect(spark.locator("svg.spark polyline")).to_have_count(1, timeout=15_000)
    expect(spark).to_have_attribute("data-metric", "power")
    assert 23 <= int(spark.get_attribute("data-points") or 0) <= 24
    expect(page.locator('tr[data-device="fz-1"] [data-field="spark"]')).to_have_attribute("data-metric", "humidity")
    shot(page, "17-fleet-sparklines")
    assert console == [], console
