"""`python -m devstack.motoserver HOST PORT [--log]`: moto in server mode, for the local stack.

What `python -m moto.server` runs (moto's WSGI app and request handler on werkzeug's threaded
server), with two differences that matter when every request thread of the stack calls it:
the listen backlog is devstack.serving.LISTEN_BACKLOG (werkzeug's is 128), and the access log
line per request is off unless asked for (the stack discards it; a 100-device run spent about
a seventh of moto's samples formatting it and waiting for the log handler's lock).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import ThreadedWSGIServer

from devstack.serving import LISTEN_BACKLOG


class MotoServer(ThreadedWSGIServer):  # type: ignore[misc]
    request_queue_size = LISTEN_BACKLOG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.motoserver", description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--log", action="store_true", help="one access-log line per request (on stderr)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it, as moto.server does
    if not args.log:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    server = MotoServer(args.host, args.port, app, handler=MotoRequestHandler)

    def stop(*_: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
