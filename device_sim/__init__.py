"""iotcloud device simulator: a fleet of fake devices posting telemetry over HTTP.

Run it with ``python -m device_sim --help``. This package talks to the iotcloud
API over HTTP only; it never imports the server code (``chalicelib``).
"""

from __future__ import annotations

__version__ = "1.0.0"

__all__ = ["__version__"]
