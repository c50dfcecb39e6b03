"""Domain errors: every one the code raises, each with its stable error code.

`HTTP_STATUS` is the one table from error code to HTTP status. Two renderers read it: the
JSON API's (chalicelib/api/responses.py) and the dashboard's HTML pages
(chalicelib/web/error_page.py); the route helper (chalicelib/api/routing.py) picks one
per route. Everything else only raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, with where it is.

    `index` and `metric`: the record and the metric of a telemetry payload. `field`: the
    member of a JSON body (a device's, a rule's, a command's) that is wrong, or unknown.
    """

    code: str
    message: str
    index: int | None = None
    metric: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.index is not None:
            out["index"] = self.index
        if self.metric is not None:
            out["metric"] = self.metric
        if self.field is not None:
            out["field"] = self.field
        return out


# Error code -> HTTP status: the one table both renderers (JSON and HTML) answer from.
HTTP_STATUS: dict[str, int] = {
    "internal_error": 500,
    "malformed_payload": 400,
    "invalid_parameter": 400,
    "too_many_buckets": 400,
    "window_too_long": 400,
    "ambiguous_unit": 400,
    "not_numeric": 400,
    "unknown_time_zone": 400,
    "interval_not_whole_days": 400,
    "cursor_mismatch": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "device_disabled": 403,
    "csrf_failed": 403,
    "device_not_found": 404,
    "report_not_found": 404,
    "rule_not_found": 404,
    "alert_not_found": 404,
    "command_not_found": 404,
    "realtime_not_configured": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "device_exists": 409,
    "command_already_completed": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_failed": 422,
    "storage_unavailable": 503,
    "archive_unavailable": 503,
    "mail_unavailable": 503,
    "scaling_target_unavailable": 503,
}


class IotCloudError(Exception):
    """Base of every domain error; `code` is stable and documented, its status is HTTP_STATUS[code]."""

    code = "internal_error"
    retry_after_seconds: int | None = None  # set where a retry later is the cure

    def __init__(self, message: str, details: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[Problem] = details or []

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]


class MalformedPayloadError(IotCloudError):
    """The body cannot be parsed at all (bad JSON/XML syntax, bad encoding, too deep)."""

    code = "malformed_payload"


class InvalidParameterError(IotCloudError):
    """A query-string parameter or cursor is invalid."""

    code = "invalid_parameter"


class TooManyBucketsError(InvalidParameterError):
    """An aggregated query whose interval cuts its window into more buckets than a request may have."""

    code = "too_many_buckets"


class WindowTooLongError(InvalidParameterError):
    """An aggregated query over a window longer than the longest one a request may span."""

    code = "window_too_long"


class AmbiguousUnitError(InvalidParameterError):
    """An aggregated metric found in several units: `unit` must say which."""

    code = "ambiguous_unit"


class NotNumericError(InvalidParameterError):
    """avg, min, max or sum of a metric without numbers (strings, booleans): only count, first, last."""

    code = "not_numeric"


class UnknownTimeZoneError(InvalidParameterError):
    """`tz` names no IANA time zone."""

    code = "unknown_time_zone"


class IntervalNotWholeDaysError(InvalidParameterError):
    """`tz` buckets are local days: the interval must be whole days."""

    code = "interval_not_whole_days"


class CursorMismatchError(InvalidParameterError):
    """An aggregation cursor given with other parameters than the query that issued it."""

    code = "cursor_mismatch"


class UnauthorizedError(IotCloudError):
    """No bearer token, or one that matches no device or admin."""

    code = "unauthorized"


class ForbiddenError(IotCloudError):
    """The caller is known but may not do this."""

    code = "forbidden"


class DeviceDisabledError(ForbiddenError):
    """The device's token is valid but the device is disabled."""

    code = "device_disabled"


class DeviceNotFoundError(IotCloudError):
    code = "device_not_found"


class DeviceExistsError(IotCloudError):
    code = "device_exists"


class PayloadTooLargeError(IotCloudError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(IotCloudError):
    code = "unsupported_media_type"


class ValidationError(IotCloudError):
    """Well-formed input with invalid content; `details` lists every problem."""

    code = "validation_failed"


class StorageUnavailableError(IotCloudError):
    """The store refused or throttled us after retries; the client should retry later."""

    code = "storage_unavailable"
    retry_after_seconds = 1


class ArchiveUnavailableError(IotCloudError):
    """S3 refused an archive write; the stream batch must be retried."""

    code = "archive_unavailable"


class MailUnavailableError(IotCloudError):
    """The mail service refused or could not take a message (after retries when transient)."""

    code = "mail_unavailable"


class ReportNotFoundError(IotCloudError):
    code = "report_not_found"


class RuleNotFoundError(IotCloudError):
    code = "rule_not_found"


class AlertNotFoundError(IotCloudError):
    code = "alert_not_found"


class CommandNotFoundError(IotCloudError):
    code = "command_not_found"


class CommandConflictError(IotCloudError):
    code = "command_already_completed"


class ScalingTargetError(IotCloudError):
    """A target's capacity could not be read or changed."""

    code = "scaling_target_unavailable"


class SignInRequiredError(UnauthorizedError):
    """No valid dashboard session: pages redirect to sign-in, the pages' JSON answers 401."""

    def __init__(self, expired: bool) -> None:
        super().__init__("your session has expired: sign in again" if expired else "sign in to use the dashboard")
        self.expired = expired


class CsrfError(ForbiddenError):
    """A dashboard form or call without this session's CSRF token."""

    code = "csrf_failed"


class RealtimeNotConfiguredError(IotCloudError):
    """The stage has no public WebSocket URL, so the dashboard has no live updates."""

    code = "realtime_not_configured"


class StaticNotFoundError(IotCloudError):
    """No such dashboard script or stylesheet."""

    code = "not_found"


class RouteNotFoundError(IotCloudError):
    """No route at this path (the Function URL door serves device ingestion only)."""

    code = "not_found"


class MethodNotAllowedError(IotCloudError):
    """The path exists but not with this method; `allow` lists the methods it takes."""

    code = "method_not_allowed"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow
