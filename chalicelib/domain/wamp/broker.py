"""The WAMP broker: SUBSCRIBE, UNSUBSCRIBE and PUBLISH, and the EVENTs a publication sends
(BP "Publish and Subscribe"; AP "Publisher Exclusion", "Publisher Identification",
"Pattern-based Subscription", prefix only and opt-in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.wamp.codec import Incoming, Outgoing, option, payload_tail, refusal, removal_answer, too_large
from chalicelib.domain.wamp.protocol import (
    INVALID_URI,
    MAX_ID,
    MAX_MESSAGE_BYTES,
    MAX_PREFIX_COMPONENTS,
    NO_SUCH_SUBSCRIPTION,
    NOT_AUTHORIZED,
    OPTION_NOT_ALLOWED,
    PAYLOAD_SIZE_EXCEEDED,
    Code,
    valid_uri,
)
from chalicelib.domain.wamp.store import RouterRole, RouterStore, Session, Subscription, identity_of
from chalicelib.errors import PayloadTooLargeError


class Broker(RouterRole):
    """Subscriptions and publications over the store; every method returns the messages to post."""

    def __init__(self, store: RouterStore, new_id: Callable[[], int], *, prefix_subscriptions: bool) -> None:
        """`prefix_subscriptions` turns on AP prefix matching: each PUBLISH then costs one more
        store Query per dotted level of its topic (at most MAX_PREFIX_COMPONENTS)."""
        super().__init__(store, new_id)
        self._prefix = prefix_subscriptions

    @property
    def features(self) -> dict[str, bool]:
        """The broker's features as WELCOME announces them."""
        return {
            "publisher_exclusion": True,
            "publisher_identification": True,
            "pattern_based_subscription": self._prefix,
        }

    def publish(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], *, exclude: str | None = None
    ) -> list[Outgoing]:
        """Publish from the backend (telemetry, alerts): EVENTs to every subscriber but `exclude`.

        Raises ValueError for an invalid topic and PayloadTooLargeError when the EVENT would
        exceed MAX_MESSAGE_BYTES.
        """
        if not valid_uri(topic):
            raise ValueError(f"invalid topic URI {topic!r}")
        events = self._events(self._new_id(), topic, args, kwargs, {}, exclude)
        if events is None:
            raise PayloadTooLargeError(f"an EVENT on {topic} would exceed {MAX_MESSAGE_BYTES} bytes")
        return events

    def on_subscribe(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """SUBSCRIBE -> SUBSCRIBED or ERROR (BP "Subscribing and Unsubscribing")."""
        conn = session.connection_id
        match = option(msg.options, "match", str, "exact")
        if not valid_uri(msg.uri):
            return refusal(conn, msg, INVALID_URI, "invalid topic URI")
        if match not in ("exact", "prefix") or (match == "prefix" and not self._prefix):
            return refusal(conn, msg, OPTION_NOT_ALLOWED, f"match {match!r} is not supported")
        if match == "prefix" and msg.uri.count(".") >= MAX_PREFIX_COMPONENTS:
            text = f"prefix subscriptions may have at most {MAX_PREFIX_COMPONENTS} components"
            return refusal(conn, msg, OPTION_NOT_ALLOWED, text)
        if not identity_of(session).may_use(msg.uri):
            return refusal(conn, msg, NOT_AUTHORIZED, "not your namespace")
        subscription_id = self._store.add_subscription(Subscription(conn, self._new_id(), msg.uri, match))
        return [Outgoing(conn, [Code.SUBSCRIBED, msg.request, subscription_id])]

    def on_unsubscribe(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """UNSUBSCRIBE -> UNSUBSCRIBED, or ERROR for a subscription this session does not hold."""
        removed = self._store.remove_subscription(session.connection_id, msg.ref)
        return removal_answer(session.connection_id, msg, removed, Code.UNSUBSCRIBED, NO_SUCH_SUBSCRIPTION)

    def on_publish(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """PUBLISH -> EVENTs, and PUBLISHED or ERROR only when `acknowledge` is set (BP
        "Publishing and Events": "By default, publications are unacknowledged, and the Broker
        will not respond"). `exclude_me` defaults to true (AP "Publisher Exclusion");
        `disclose_me` adds the publisher to EVENT.Details (AP "Publisher Identification")."""
        conn = session.connection_id
        acknowledge = option(msg.options, "acknowledge", bool, False)
        exclude_me = option(msg.options, "exclude_me", bool, True)
        disclose_me = option(msg.options, "disclose_me", bool, False)
        identity = identity_of(session)

        def refuse(uri: str, text: str) -> list[Outgoing]:
            return refusal(conn, msg, uri, text) if acknowledge else []

        if not valid_uri(msg.uri) or msg.uri.startswith("wamp."):
            return refuse(INVALID_URI, "invalid topic URI")
        if not identity.may_use(msg.uri):
            return refuse(NOT_AUTHORIZED, "not your namespace")
        details: dict[str, Any] = {}
        if disclose_me:
            details = {
                "publisher": session.session_id,
                "publisher_authid": identity.authid,
                "publisher_authrole": identity.role,
            }
        publication = self._new_id()
        events = self._events(publication, msg.uri, msg.args, msg.kwargs, details, conn if exclude_me else None)
        if events is None:
            return refuse(PAYLOAD_SIZE_EXCEEDED, f"the EVENT would exceed {MAX_MESSAGE_BYTES} bytes")
        if acknowledge:
            events.append(Outgoing(conn, [Code.PUBLISHED, msg.request, publication]))
        return events

    def _events(
        self,
        publication: int,
        topic: str,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        details: dict[str, Any],
        exclude: str | None,
    ) -> list[Outgoing] | None:
        """EVENTs for every matching subscription but those of `exclude`; None if too large."""
        tail = payload_tail(args, kwargs)
        widest = {**details, "topic": topic} if self._prefix else details
        if too_large([Code.EVENT, MAX_ID, MAX_ID, widest, *tail]):
            return None
        out = []
        for sub in self._store.subscribers(topic, include_prefix=self._prefix):
            if sub.connection_id == exclude or not sub.matches(topic):
                continue
            # AP "Pattern-based Subscription": the concrete topic for pattern subscriptions.
            event_details = {**details, "topic": topic} if sub.match != "exact" else details
            out.append(
                Outgoing(sub.connection_id, [Code.EVENT, sub.subscription_id, publication, event_details, *tail])
            )
        return out
