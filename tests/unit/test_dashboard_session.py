"""Dashboard sessions: signed, expiring cookies; CSRF tokens bound to a session; WAMP tickets."""

from __future__ import annotations

import pytest

from chalicelib.domain import auth
from chalicelib.domain.auth import Authenticator, TicketCheck
from chalicelib.domain.tokens import hash_token
from chalicelib.domain.wamp.store import Identity
from chalicelib.errors import UnauthorizedError
from chalicelib.web import session as sessions
from chalicelib.web.formatting import ago, show_value
from chalicelib.web.forms import safe_next

SECRET = b"k" * 32
NOW = 1_764_061_200_000


def test_a_session_cookie_reads_back_until_it_expires() -> None:
    session, value = sessions.new_session(SECRET, NOW, 3600)
    read = sessions.read_session(SECRET, value)
    assert read == session
    assert not read.expired(NOW + 3600_000 - 1)
    assert read.expired(NOW + 3600_000)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v.replace("v1.", "v2.", 1),
        lambda v: v.split(".", 2)[0] + ".9999999999999." + v.split(".", 2)[2],  # a later expiry
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),
        lambda v: v + ".x",
        lambda v: "",
        lambda v: "x" * 300,
    ],
)
def test_a_tampered_cookie_is_no_session(tamper) -> None:
    _, value = sessions.new_session(SECRET, NOW, 3600)
    assert sessions.read_session(SECRET, tamper(value)) is None


def test_another_secret_reads_no_session() -> None:
    _, value = sessions.new_session(SECRET, NOW, 3600)
    assert sessions.read_session(b"o" * 32, value) is None


def test_csrf_tokens_belong_to_their_session() -> None:
    one, _ = sessions.new_session(SECRET, NOW, 3600)
    two, _ = sessions.new_session(SECRET, NOW, 3600)
    token = sessions.csrf_token(SECRET, one)
    assert sessions.csrf_ok(SECRET, one, token)
    assert not sessions.csrf_ok(SECRET, two, token)
    assert not sessions.csrf_ok(SECRET, one, None)
    assert not sessions.csrf_ok(SECRET, one, "")


def test_the_sign_in_form_token_belongs_to_its_nonce() -> None:
    token = sessions.signin_token(SECRET, "nonce")
    assert sessions.signin_ok(SECRET, "nonce", token)
    assert not sessions.signin_ok(SECRET, "other", token)
    assert not sessions.signin_ok(SECRET, None, token)


def test_a_ticket_lasts_a_minute_and_never_outlives_its_session() -> None:
    session, cookie = sessions.new_session(SECRET, NOW, 3600)
    ticket, expires = sessions.new_ticket(SECRET, session, NOW)
    assert expires == NOW + auth.TICKET_TTL_MS
    assert auth.ticket_ok(SECRET, ticket, NOW + 59_999)
    assert not auth.ticket_ok(SECRET, ticket, NOW + 60_000)
    short, _ = sessions.new_session(SECRET, NOW, 10)
    assert sessions.new_ticket(SECRET, short, NOW)[1] == NOW + 10_000
    # Values made for one use never pass for another.
    assert not auth.ticket_ok(SECRET, auth.TICKET_PREFIX + cookie, NOW)
    assert sessions.read_session(SECRET, ticket.removeprefix(auth.TICKET_PREFIX)) is None


def test_the_router_hook_refuses_what_is_not_a_valid_ticket() -> None:
    """The router's ticket check (what wiring gives the Router): a page's ticket is the dashboard's admin view."""
    admin_token = "iota_admin-token"
    check = TicketCheck(Authenticator(lambda _: None, frozenset({hash_token(admin_token)})), SECRET, clock=lambda: NOW)
    session, _ = sessions.new_session(SECRET, NOW, 3600)
    ticket, _ = sessions.new_ticket(SECRET, session, NOW - 1000)
    assert auth.is_dashboard_ticket(ticket)
    assert check(ticket) == Identity(role="admin", device_id=None, authid=auth.DASHBOARD_AUTHID)
    with pytest.raises(UnauthorizedError):
        check(ticket[:-1] + ("A" if ticket[-1] != "A" else "B"))
    with pytest.raises(UnauthorizedError):  # signed with another stage's secret
        check(sessions.new_ticket(b"o" * 32, session, NOW - 1000)[0])
    with pytest.raises(UnauthorizedError):  # expired
        TicketCheck(Authenticator(lambda _: None, frozenset()), SECRET, clock=lambda: NOW + 60_000)(ticket)
    assert not auth.is_dashboard_ticket(admin_token)
    assert check(admin_token) == Identity(role="admin", device_id=None, authid="admin")


def test_a_configured_secret_is_stable_and_an_unset_one_is_random_per_process() -> None:
    assert auth.session_key("configured") == auth.session_key("configured")
    assert auth.session_key("configured") != auth.session_key("other")
    assert len(auth.session_key("")) == 32


class _Visit:
    base = "/api"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/dashboard/alerts?state=active", "/api/dashboard/alerts?state=active"),
        ("/api/dashboard", "/api/dashboard"),
        ("https://evil.example/api/dashboard", "/api/dashboard"),
        ("//evil.example/api/dashboard", "/api/dashboard"),
        ("/api/dashboardx", "/api/dashboard"),
        ("/api/dashboard/..//evil", "/api/dashboard"),
        ("/v1/devices", "/api/dashboard"),
        (None, "/api/dashboard"),
    ],
)
def test_forms_only_go_back_into_the_dashboard(target, expected) -> None:
    assert safe_next(_Visit(), target) == expected  # type: ignore[arg-type]


def test_values_and_times_read_the_same_on_the_server_and_in_the_page() -> None:
    assert [show_value(v) for v in (21.5, 21.0, 3, True, False, "open")] == ["21.5", "21", "3", "true", "false", "open"]
    assert ago(NOW - 5_000, NOW) == "5 s ago"
    assert ago(NOW - 125_000, NOW) == "2 min ago"
    assert ago(NOW - 3 * 3600_000, NOW) == "3 h ago"
    assert ago(None, NOW) == "never"


class _Request:
    def __init__(self, context_path: str, route: str, uri_params: dict[str, str]) -> None:
        self.context = {"path": context_path}
        self.path = route
        self.uri_params = uri_params


@pytest.mark.parametrize(
    ("context_path", "base"),
    [
        ("/api/dashboard/devices/fz-1", "/api"),  # API Gateway's own domain: the stage first
        ("/dashboard/devices/fz-1", ""),  # chalice local, or a custom domain at its root
        ("/iot/dashboard/devices/fz-1", "/iot"),  # a custom domain's base path
    ],
)
def test_pages_know_where_they_are_mounted(context_path: str, base: str) -> None:
    from chalicelib.web.visit import base_path

    request = _Request(context_path, "/dashboard/devices/{device_id}", {"device_id": "fz-1"})
    assert base_path(request) == base  # type: ignore[arg-type]


def test_cookies_are_secure_behind_https_and_scoped_to_the_dashboard() -> None:
    from chalicelib.web.render import cookie
    from chalicelib.web.visit import Visit

    over_https = Visit(None, "/api", None, NOW, True)  # type: ignore[arg-type]
    assert cookie("iotcloud_session", "v", over_https, 60) == (
        "iotcloud_session=v; Path=/api/dashboard; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
    )
    local = Visit(None, "", None, NOW, False)  # type: ignore[arg-type]
    assert "Secure" not in cookie("iotcloud_session", "v", local, 60)
