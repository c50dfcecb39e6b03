"""The dashboard's part of the OpenAPI document that is not generated from its routes.

Every dashboard route declares its operation (chalicelib/api/dashboard.py), so no path is
written here any more; the session cookie's security scheme is.
"""

from __future__ import annotations

from typing import Any

OPENAPI_SECURITY_SCHEMES: dict[str, Any] = {
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "iotcloud_session",
        "description": "the dashboard's signed session cookie, set by POST /dashboard/sign-in",
    }
}

OPENAPI_PATHS: dict[str, Any] = {}
