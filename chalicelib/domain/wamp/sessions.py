"""WAMP sessions: HELLO, the ticket challenge, WELCOME, and ending a session by ABORT, GOODBYE
or the transport closing (BP "Sessions", "Protocol errors"; AP "Ticket-based Authentication")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.wamp.codec import Incoming, Outgoing, ProtocolViolation
from chalicelib.domain.wamp.dealer import Dealer
from chalicelib.domain.wamp.protocol import (
    AGENT,
    AUTHENTICATION_FAILED,
    AUTHORIZATION_FAILED,
    AUTHPROVIDER,
    NO_AUTH_METHOD,
    NO_SUCH_REALM,
    NOT_AUTHORIZED,
    REALM,
    Code,
)
from chalicelib.domain.wamp.store import CHALLENGING, ESTABLISHED, Identity, RouterRole, RouterStore, Session
from chalicelib.errors import ForbiddenError, StorageUnavailableError, UnauthorizedError

TicketVerifier = Callable[[str], Identity]  # raises UnauthorizedError / DeviceDisabledError

# HELLO must announce one of these (BP "Client: Role and Feature Announcement").
_CLIENT_ROLES = frozenset({"publisher", "subscriber", "caller", "callee"})


class Sessions(RouterRole):
    """Opens and ends sessions over the store; every method returns the messages to post.

    `roles` is what WELCOME announces of the router (its broker's and dealer's features); a
    session's end goes to the dealer, which answers the calls it leaves pending.
    """

    def __init__(
        self,
        store: RouterStore,
        verify_ticket: TicketVerifier,
        new_id: Callable[[], int],
        *,
        roles: dict[str, Any],
        dealer: Dealer,
    ) -> None:
        super().__init__(store, new_id)
        self._verify = verify_ticket
        self._roles = roles
        self._dealer = dealer

    def on_hello(self, connection_id: str, msg: Incoming) -> list[Outgoing]:
        """HELLO -> CHALLENGE("ticket") (BP "HELLO", AP "Ticket-based Authentication")."""
        if msg.uri != REALM:
            return self.abort(connection_id, NO_SUCH_REALM, f"no realm {msg.uri!r}; use {REALM!r}", cleanup=False)
        roles = msg.options.get("roles")
        if not isinstance(roles, dict) or not _CLIENT_ROLES & roles.keys():
            raise ProtocolViolation("HELLO.Details.roles must announce at least one client role")
        methods = msg.options.get("authmethods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ProtocolViolation("HELLO.Details.authmethods must be a list of strings")
        if "ticket" not in methods:
            return self.abort(
                connection_id, NO_AUTH_METHOD, "this router authenticates with 'ticket' only", cleanup=False
            )
        authid = msg.options.get("authid")
        if authid is not None and not isinstance(authid, str):
            raise ProtocolViolation("HELLO.Details.authid must be a string")
        self._store.put_session(Session(connection_id, CHALLENGING, requested_authid=authid))
        return [Outgoing(connection_id, [Code.CHALLENGE, "ticket", {}])]

    def on_authenticate(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """AUTHENTICATE(ticket) -> WELCOME or ABORT (AP "Ticket-based Authentication").

        The ticket is a device or admin bearer token. An authid given in HELLO must be the one
        the ticket belongs to (the device id, or the admin's authid).
        """
        conn = session.connection_id
        try:
            identity = self._verify(msg.signature)
        except UnauthorizedError:
            return self.abort(conn, AUTHENTICATION_FAILED, "invalid ticket")
        except ForbiddenError as e:  # a disabled device
            return self.abort(conn, NOT_AUTHORIZED, e.message)
        except StorageUnavailableError:
            return [Outgoing(conn, _abort_message(AUTHORIZATION_FAILED, "try again later"), close=True)]
        if session.requested_authid is not None and session.requested_authid != identity.authid:
            return self.abort(conn, AUTHENTICATION_FAILED, "the ticket does not belong to the authid given")
        session_id = self._new_id()
        self._store.put_session(Session(conn, ESTABLISHED, session_id, session.requested_authid, identity))
        details = {
            "authid": identity.authid,
            "authrole": identity.role,
            "authmethod": "ticket",
            "authprovider": AUTHPROVIDER,
            "realm": REALM,
            "agent": AGENT,
            "roles": self._roles,
        }
        return [Outgoing(conn, [Code.WELCOME, session_id, details])]

    def abort(self, connection_id: str, reason: str, text: str, *, cleanup: bool = True) -> list[Outgoing]:
        """ABORT and close; a session's resources are disposed of first (BP "Protocol errors")."""
        out = self.end(connection_id) if cleanup else []
        return [*out, Outgoing(connection_id, _abort_message(reason, text), close=True)]

    def end(self, connection_id: str) -> list[Outgoing]:
        """Dispose of a connection's session and everything it holds; its pending calls' callers
        are told (BP "Callee Leaving")."""
        return self._dealer.connection_left(connection_id, self._store.drop_connection(connection_id))


def _abort_message(reason: str, text: str) -> list[Any]:
    return [Code.ABORT, {"message": text}, reason]
