"""The dashboard's static files: its own (static/) and the front-end libraries (static/vendor/).

`make assets` installs the libraries from the npm registry (web/package-lock.json) and copies
their built files into static/vendor/; they ship inside chalicelib/, so Chalice packages them
and the app serves them itself (no CDN). URLs carry a digest of the content (`?v=`), so a
browser may keep a file for a year and still never runs an old one after a deployment.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.app import Request, Response

from chalicelib.api.dashboard_ops import STATIC_NAME
from chalicelib.errors import StaticNotFoundError

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
LONG_CACHE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=300"


@dataclass(frozen=True)
class StaticFile:
    name: str
    text: str
    content_type: str
    digest: str


@functools.cache
def find(name: str, suffix: str) -> StaticFile | None:
    """A static file by name (ours first, then the vendored libraries), or None."""
    # Any name outside STATIC_NAME (the route documents it) is refused here: it never reaches the file system.
    if not STATIC_NAME.match(name) or not name.endswith(suffix) or suffix not in CONTENT_TYPES:
        return None
    for folder in (STATIC_DIR, VENDOR_DIR):
        path = folder / name
        if path.is_file():
            data = path.read_bytes()
            return StaticFile(name, data.decode("utf-8"), CONTENT_TYPES[suffix], hashlib.sha256(data).hexdigest()[:12])
    return None


def url_of(base: str, name: str) -> str:
    """The URL of a static file, with its digest (or without, when it is missing)."""
    suffix = Path(name).suffix
    found = find(name, suffix)
    version = f"?v={found.digest}" if found else ""
    return f"{base}/dashboard/{suffix[1:]}/{name}{version}"


def cache_control(found: StaticFile, version: str | None) -> str:
    return LONG_CACHE if version == found.digest else SHORT_CACHE


def vendored(name: str) -> bool:
    return (VENDOR_DIR / name).is_file()


def static_file(request: Request, name: str, suffix: str) -> Response:
    """GET /dashboard/js/{name} and /dashboard/css/{name}: the file, or 304 when the browser has it."""
    found = find(name, suffix)
    if found is None:
        hint = " (the front-end libraries are built by `make assets`)" if suffix == ".js" else ""
        raise StaticNotFoundError(f"no file {name!r}{hint}")
    version = dict(request.query_params or {}).get("v")
    headers: dict[str, Any] = {
        "Content-Type": found.content_type,
        "Cache-Control": cache_control(found, version),
        "ETag": f'"{found.digest}"',
        "X-Content-Type-Options": "nosniff",
    }
    if (request.headers.get("if-none-match") or "").strip() == f'"{found.digest}"':
        return Response(body="", status_code=304, headers=headers)
    return Response(body=found.text, status_code=200, headers=headers)
