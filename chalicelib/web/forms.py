"""The dashboard's forms: reading one, its CSRF check, where it may send the browser next, its limits."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from chalicelib.api.params import raw_body
from chalicelib.domain import commands
from chalicelib.domain.rules import MAX_ID_CHARS
from chalicelib.errors import CsrfError, InvalidParameterError
from chalicelib.web import session as sessions

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.web.visit import Visit

MAX_FORM_BYTES = 16 * 1024
MAX_QUERY_CHARS = 100  # a fleet search
# The rules the pages' forms repeat for the browser (maxlength, max): read from the one source.
FORM_RULES = {
    "max_id_chars": MAX_ID_CHARS,
    "max_query_chars": MAX_QUERY_CHARS,
    "command_timeout_default_s": commands.DEFAULT_TIMEOUT_S,
    "command_timeout_max_s": commands.MAX_TIMEOUT_S,
}


def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each)."""
    body = raw_body(request)
    if len(body) > MAX_FORM_BYTES:
        raise InvalidParameterError("the form is too large")
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidParameterError("the form could not be read") from e
    return {k: v[0] for k, v in fields.items()}


def require_csrf(v: Visit, token: str | None) -> None:
    """CsrfError unless `token` is this session's CSRF token."""
    if v.session is None or not sessions.csrf_ok(sessions.secret(), v.session, token):
        raise CsrfError("the form is out of date or did not come from this dashboard: reload the page and try again")


def safe_next(v: Visit, target: str | None) -> str:
    """Where to go after a form: only back into this dashboard."""
    home = v.base + "/dashboard"
    if target and target.startswith(home) and "//" not in target and "\\" not in target and ".." not in target:
        rest = target[len(home) :]
        if rest == "" or rest[0] in "/?#":
            return target
    return home
