"""Entry point: ``python -m device_sim``."""

from __future__ import annotations

from device_sim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
