"""A local API Gateway WebSocket API for the Chalice app's WebSocket handlers.

`chalice local` has no WebSocket support. This gateway plays API Gateway's part: it accepts
WebSocket clients, invokes the app's `$connect`, `$default` and `$disconnect` handlers with
API Gateway's Lambda proxy event shapes and a Lambda context, and serves the `@connections`
management API that the app (through a real boto3 `apigatewaymanagementapi` client) uses to
send to clients, look them up and drop them. One job per module:

- `server`: `WebSocketGateway`, the WebSocket server: handshakes, connections, idle and
  maximum-duration closes, handler invocations in a thread pool.
- `events`: the CONNECT, MESSAGE and DISCONNECT events and their `requestContext`.
- `management`: the `@connections` API (POST, GET, DELETE) over HTTP, with AWS's error shapes.
"""
