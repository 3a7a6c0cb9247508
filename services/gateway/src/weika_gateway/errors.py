"""The gateway's stable error codes, its own refusals, and how any error becomes an HTTP status and envelope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc

from weika_kit.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RemoteError,
    TooManyRequests,
    Unauthenticated,
)

# Codes the gateway itself answers with (the services' codes pass through unchanged).
UNAUTHENTICATED = "unauthenticated"
OPERATOR_TOKEN_REQUIRED = "operator_token_required"
OPERATOR_TOKEN_NOT_CONFIGURED = "operator_token_not_configured"
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
UNKNOWN_STORE = "unknown_store"
STORE_NOT_FOUND = "store_not_found"
STORE_CODE_TAKEN = "store_code_taken"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
BAD_REQUEST = "bad_request"
SERVICE_UNAVAILABLE = "service_unavailable"
SERVICE_TIMEOUT = "service_timeout"
INTERNAL_ERROR = "internal_error"
TOO_MANY_ATTEMPTS = "too_many_attempts"
ROLE_NOT_ALLOWED = "role_not_allowed"
ROLE_NOT_ASSIGNABLE = "role_not_assignable"
STAFF_NOT_FOUND = "staff_not_found"

HTTP_STATUS_BY_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class GatewayError(DomainError):
    """A refusal with no gRPC equivalent: it names its HTTP status directly."""

    http_status: ClassVar[int] = 400


class InvalidJson(GatewayError):
    code = INVALID_JSON
    http_status = 400


class OperatorTokenNotConfigured(GatewayError):
    code = OPERATOR_TOKEN_NOT_CONFIGURED
    http_status = 503


class InvalidRequest(InvalidArgument):
    """The body or query does not have the documented shape; details name the field."""

    code = INVALID_REQUEST


class IdempotencyKeyRequired(InvalidArgument):
    code = IDEMPOTENCY_KEY_REQUIRED


class UnknownStore(InvalidArgument):
    """A store id in the body is not one of the caller's stores (in the caller's mode)."""

    code = UNKNOWN_STORE


class StoreNotFound(NotFound):
    code = STORE_NOT_FOUND


class StoreCodeTaken(AlreadyExists):
    code = STORE_CODE_TAKEN


class NotAuthenticated(Unauthenticated):
    code = UNAUTHENTICATED


class OperatorTokenRequired(PermissionDenied):
    code = OPERATOR_TOKEN_REQUIRED


class RoleNotAllowed(PermissionDenied):
    """The caller's role may not do this (a clerk changing the catalog, an analyst redeeming)."""

    code = ROLE_NOT_ALLOWED


class RoleNotAssignable(PermissionDenied):
    """Only the owner appoints managers; nobody appoints an owner."""

    code = ROLE_NOT_ASSIGNABLE


class StaffNotFound(NotFound):
    code = STAFF_NOT_FOUND


class TooManyAttempts(TooManyRequests):
    """Too many unknown codes from this store, operator or address: answered 429 with `Retry-After`."""

    code = TOO_MANY_ATTEMPTS

    def __init__(self, message: str, *, retry_after_s: int, details: dict[str, Any] | None = None):
        super().__init__(message, details={**(details or {}), "retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class HttpError:
    """What the client sees: status, and the body `{"error": {"code", "message", "details"}}`."""

    status: int
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def internal_error(request_id: str) -> HttpError:
    """Never a traceback or a service's raw message: the request id is what operators search the logs for."""
    return HttpError(500, INTERNAL_ERROR, f"internal error (request {request_id})", {"request_id": request_id})


def from_domain_error(error: DomainError, request_id: str) -> HttpError:
    status = error.http_status if isinstance(error, GatewayError) else HTTP_STATUS_BY_GRPC.get(error.status)
    if status is None:
        return internal_error(request_id)
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, TooManyAttempts) else {}
    return HttpError(status, error.code, error.message, dict(error.details), headers)


def from_remote_error(error: RemoteError, request_id: str) -> HttpError:
    """A service's refusal keeps its code, message and details; transport failures get the gateway's codes."""
    status = HTTP_STATUS_BY_GRPC.get(error.status)
    details: dict[str, Any] = dict(error.details)
    if status is None:
        return internal_error(request_id)
    if error.status == grpc.StatusCode.UNAVAILABLE:
        service = details.get("service", "a service")
        return HttpError(503, SERVICE_UNAVAILABLE, f"{service} is unavailable; retry shortly", details)
    if error.status == grpc.StatusCode.DEADLINE_EXCEEDED:
        service = details.get("service", "a service")
        return HttpError(504, SERVICE_TIMEOUT, f"{service} did not answer in time; retry shortly", details)
    return HttpError(status, error.code, error.message, details)
