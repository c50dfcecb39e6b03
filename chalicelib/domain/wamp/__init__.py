"""A WAMP v2 router (Basic Profile, JSON serialization) for API Gateway WebSocket connections.

API Gateway delivers every frame as a separate Lambda invocation, so the router keeps no state
in memory: each entry point loads what it needs from a store, decides, writes back, and returns
the messages to post to connection ids. The package, one job per module:

- `protocol`: the specification's vocabulary: message codes, error and close URIs, the URI
  rule, ids, the realm and this router's limits.
- `codec`: text frames to messages (`Incoming`) and the answers (`Outgoing`) to text: decode
  with shape checks, encode, sizes.
- `store`: the state the router keeps (sessions, subscriptions, registrations, pending calls)
  and `RouterStore`, the protocol its storage adapters implement.
- `sessions`: HELLO, the ticket challenge, WELCOME, ABORT and the end of a session.
- `broker`: publish/subscribe: SUBSCRIBE, UNSUBSCRIBE, PUBLISH and the EVENTs.
- `dealer`: calls: REGISTER, UNREGISTER, CALL, CANCEL, YIELD, a callee's ERROR, call timeouts
  and the calls made for HTTP commands.
- `router`: `Router`, the one entry point: checks each frame against the session's state and
  hands it to the session, broker or dealer.

References are to the WAMP specification (wamp-proto.org, draft-oberstet-hybi-crossbar-wamp),
Basic Profile (BP) and Advanced Profile (AP) sections:

- BP "Building Blocks": URIs (loose rule), IDs in [1, 2^53], "Protocol errors" (ABORT
  `wamp.error.protocol_violation`, dispose the session's subscriptions and registrations).
- BP "Messages": message codes and shapes; empty Arguments/ArgumentsKw are left out.
- BP "Sessions": HELLO, WELCOME, ABORT, GOODBYE; AP "Ticket-based Authentication".
- BP "Publish and Subscribe"; AP "Publisher Exclusion", "Publisher Identification",
  "Pattern-based Subscription" (prefix only, opt-in).
- BP "Remote Procedure Calls" (incl. "Callee Leaving"); AP "Call Timeouts" (dealer-initiated),
  "Caller Identification", "Call Canceling" (mode `skip` only, tolerated but not announced).
- BP "URI reference": the error and close URIs.

Deliberate choices, each explained where it is made: request ids from clients are not checked
for sequence (API Gateway may run a connection's frames concurrently, and older clients send
random ids); every call gets a dealer-side timeout (the default when `CALL.Options.timeout` is
absent or 0), because a serverless router must bound the state it keeps.
"""

from __future__ import annotations
