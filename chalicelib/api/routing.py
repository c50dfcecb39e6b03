"""One declaration per route: who may call it, which bodies it takes, how its errors are answered.

Every route of the JSON API and of the dashboard is declared with `route(...)`, which applies:

- the auth mode (`Auth`): the caller is authenticated and checked before the view runs, and the
  view receives what the mode guarantees (nothing, the device's id, the principal, or the
  dashboard visit);
- the content types: Chalice refuses any body but JSON by default; every route takes any type
  and the parsers say 415 themselves, with the documented error body;
- the error mapping: a domain error becomes its answer (JSON, or the dashboard's HTML page)
  with the status of `errors.HTTP_STATUS`; anything else is a logged 500.

- the query parameters (`query`, `api.params.Param`s): the view reads its request through
  them and the OpenAPI document generates each operation's `parameters` from them;
- the operation (`doc`, an `api.operations.Op`): its path parameters are checked (an id that
  cannot exist is that resource's 404) and its JSON body is validated against its declared
  schema before the view runs (the view receives the object as `body`); the OpenAPI document
  generates the operation from the same declaration.

Keeping the declaration in one call is what lets the OpenAPI document read each route's
auth mode, parameters, body and answers from the same place as the route itself.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice.app import Blueprint, Request, Response

from chalicelib import wiring
from chalicelib.api.operations import Op
from chalicelib.api.params import Query, raw_body
from chalicelib.api.responses import error_response, json_body
from chalicelib.domain.auth import bearer_token
from chalicelib.errors import ForbiddenError, IotCloudError

logger = logging.getLogger("iotcloud.api")

ANY_CONTENT_TYPE = ["*/*"]
JSON_INTERNAL = "an internal error occurred"
PAGE_INTERNAL = "something went wrong; try again"
ADMIN_ONLY = "this needs an admin token"


class Auth(enum.Enum):
    """Who may call a route, and what its view receives first."""

    NONE = "none"  # anyone; the view gets nothing
    ADMIN = "admin"  # the admin token; the view gets nothing
    DEVICE = "device"  # a device's own token; the view gets the device id (str)
    EITHER = "either"  # the admin or a device; the view gets the Principal and checks which device
    SESSION = "session"  # the dashboard's session cookie; the view gets the dashboard Visit


QuerySource = Query | Callable[[], Query]


@dataclass(frozen=True)
class RouteSpec:
    """What a route declares: the place a generated document or validation reads it from."""

    method: str
    path: str
    auth: Auth
    page: bool  # answers as the dashboard's HTML (errors included), else JSON
    view: str  # the view function's name
    # The query parameters, or a function that builds them on first use (for declarations that
    # read the alerts modules, which load with their routes only). None: a dashboard page that
    # declares none (it takes none that it checks).
    query: QuerySource | None = None
    op: Op | None = None  # the operation: what the document says of the route, and what it checks

    def query_params(self) -> Query | None:
        """The declared query parameters (None when the route declares none here)."""
        return self.query() if callable(self.query) else self.query


TokenOf = Callable[[Request, dict[str, str]], str]
ErrorHook = Callable[[IotCloudError], None]


def bearer(request: Request, _params: dict[str, str]) -> str:
    """The request's `Authorization: Bearer` token (the default credential)."""
    return bearer_token(request.headers.get("authorization"))


def _json_error(_request: Request, error: IotCloudError) -> Response:
    return error_response(error)


def _page_error(request: Request, error: IotCloudError) -> Response:
    from chalicelib.web.error_page import error_page  # the dashboard (and Jinja2) load with its first page only

    return error_page(request, error)


def _caller(
    auth: Auth, request: Request, params: dict[str, str], token_of: TokenOf, wrong_kind: str
) -> tuple[Any, ...]:
    if auth is Auth.NONE:
        return ()
    if auth is Auth.SESSION:
        from chalicelib.web.visit import visit

        return (visit(request),)
    principal = wiring.authenticator().authenticate(token_of(request, params))
    if auth is Auth.ADMIN:
        if not principal.is_admin:
            raise ForbiddenError(wrong_kind or ADMIN_ONLY)
        return ()
    if auth is Auth.DEVICE:
        # A caller of the wrong kind (the admin) is refused as such, before any lookup: 403, not 404.
        if principal.device_id is None:
            raise ForbiddenError(wrong_kind or "this is called with a device's own token")
        return (principal.device_id,)
    return (principal,)


def route(
    blueprint: Blueprint,
    path: str,
    method: str,
    *,
    auth: Auth,
    page: bool = False,
    cors: bool = False,
    token: TokenOf = bearer,
    wrong_kind: str = "",
    on_error: ErrorHook | None = None,
    query: QuerySource | None = None,
    doc: Op | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view on `blueprint` for `method path`, behind `auth`.

    `page`: errors answer as the dashboard's HTML page (no session: a redirect to sign-in)
    instead of JSON. `token`: where the credential is (default the bearer header; the
    ThingsBoard path carries it in the URL). `wrong_kind`: the 403 message for an authenticated
    caller of the wrong kind. `on_error`: told of every domain error before it is answered
    (telemetry counts its rejections). `query`: the query parameters the view reads (a JSON
    route that declares none takes none). `doc`: the
    operation; its path parameters are checked and its validated body handed to the view as `body`.
    """
    render = _page_error if page else _json_error
    internal = PAGE_INTERNAL if page else JSON_INTERNAL
    declared = query if query is not None or page else ()

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(**params: str) -> Any:
            request = blueprint.current_request
            try:
                caller = _caller(auth, request, params, token, wrong_kind)
                return view(*caller, **params, **_declared(doc, request, params))
            except IotCloudError as e:
                if on_error is not None:
                    on_error(e)
                if e.status >= 500:
                    logger.warning("request failed: %s", e.message, exc_info=e)
                return render(request, e)
            except Exception:
                logger.exception("unhandled error")
                return render(request, IotCloudError(internal))

        handle.spec = RouteSpec(method, path, auth, page, view.__name__, declared, doc)  # type: ignore[attr-defined]
        options: dict[str, Any] = {"cors": True} if cors else {}  # else the app's default
        blueprint.route(path, methods=[method], content_types=ANY_CONTENT_TYPE, **options)(handle)
        return handle

    return register


def _declared(doc: Op | None, request: Request, params: dict[str, str]) -> dict[str, Any]:
    """Check the declared path parameters; the validated body, if the operation declares one."""
    if doc is None:
        return {}
    for param in doc.path:
        param.check(params[param.name])
    if doc.body is None or not doc.body.validated:
        return {}
    return {"body": doc.body.schema.validate(json_body(raw_body(request)), doc.body.what)}


def spec_of(view: Callable[..., Any]) -> RouteSpec | None:
    """The declaration of a view registered with `route`, or None for one registered otherwise."""
    spec = getattr(view, "spec", None)
    return spec if isinstance(spec, RouteSpec) else None
