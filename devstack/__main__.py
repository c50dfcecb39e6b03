"""`python -m devstack up`: run the local stack until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from devstack.stack import LocalStack


def cmd_up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack(api_port=args.api_port, moto_port=args.moto_port, stage=args.stage) as stack:
        print(f"iotcloud local stack is up (stage {stack.stage})")
        print(f"  API:          {stack.api_url}")
        print(f"  admin token:  {stack.admin_token}")
        print(f"  moto (AWS):   {stack.moto_url}")
        print(f"  written to    {stack.state_dir / 'connection.json'}")
        print("Try:")
        print(
            f"  curl -s -X POST {stack.api_url}/v1/devices -H 'Authorization: Bearer {stack.admin_token}' "
            '-d \'{"name": "demo"}\''
        )
        print("Ctrl-C stops everything.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("\nstopping...", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start moto + the app on 127.0.0.1 until Ctrl-C")
    up.add_argument("--api-port", type=int, default=8000)
    up.add_argument("--moto-port", type=int, default=5000)
    up.add_argument("--stage", default="dev")
    up.set_defaults(func=cmd_up)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
