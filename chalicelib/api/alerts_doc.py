"""Emptied: the alert routes declare their operations (chalicelib/api/alerts.py) and the document
generates them; these two names stay until chalicelib/api/openapi_doc.py stops merging them."""

from __future__ import annotations

from typing import Any

OPENAPI_PATHS: dict[str, Any] = {}
OPENAPI_SCHEMAS: dict[str, Any] = {}
