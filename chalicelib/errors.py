"""Domain errors. Each class carries its stable error code and HTTP status.

The API layer (chalicelib/api/responses.py) is the only place that turns these
into HTTP answers; everything else raises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, with where it is (record index, metric)."""

    code: str
    message: str
    index: int | None = None
    metric: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.index is not None:
            out["index"] = self.index
        if self.metric is not None:
            out["metric"] = self.metric
        return out


class IotCloudError(Exception):
    """Base of every domain error; `code` is stable and documented."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[Problem] = details or []


class MalformedPayloadError(IotCloudError):
    """The body cannot be parsed at all (bad JSON/XML syntax, bad encoding, too deep)."""

    status = 400
    code = "malformed_payload"


class InvalidParameterError(IotCloudError):
    """A query-string parameter or cursor is invalid."""

    status = 400
    code = "invalid_parameter"


class UnauthorizedError(IotCloudError):
    """No bearer token, or one that matches no device or admin."""

    status = 401
    code = "unauthorized"


class ForbiddenError(IotCloudError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class DeviceDisabledError(ForbiddenError):
    """The device's token is valid but the device is disabled."""

    code = "device_disabled"


class DeviceNotFoundError(IotCloudError):
    status = 404
    code = "device_not_found"


class DeviceExistsError(IotCloudError):
    status = 409
    code = "device_exists"


class PayloadTooLargeError(IotCloudError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(IotCloudError):
    status = 415
    code = "unsupported_media_type"


class ValidationError(IotCloudError):
    """Well-formed input with invalid content; `details` lists every problem."""

    status = 422
    code = "validation_failed"


class StorageUnavailableError(IotCloudError):
    """The store refused or throttled us after retries; the client should retry later."""

    status = 503
    code = "storage_unavailable"
    retry_after_seconds = 1


class ArchiveUnavailableError(IotCloudError):
    """S3 refused an archive write; the stream batch must be retried."""

    status = 503
    code = "archive_unavailable"


class MailUnavailableError(IotCloudError):
    """The mail service refused or could not take a message (after retries when transient)."""

    status = 503
    code = "mail_unavailable"


class ReportNotFoundError(IotCloudError):
    status = 404
    code = "report_not_found"
