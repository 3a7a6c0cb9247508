"""Domain errors with stable codes, and their mapping to gRPC status (with google.rpc.ErrorInfo details)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "weika"


class DomainError(Exception):
    """A refusal the caller can act on. `code` is stable and machine-readable; `message` is for people."""

    code: ClassVar[str] = "domain_error"
    status: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, *, code: str | None = None, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.details = dict(details or {})

    def to_grpc_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.code,
            domain=ERROR_DOMAIN,
            metadata={k: _as_text(v) for k, v in self.details.items()},
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        proto = status_pb2.Status(code=self.status.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(proto)


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


class InvalidArgument(DomainError):
    code = "invalid_argument"
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = "not_found"
    status = grpc.StatusCode.NOT_FOUND


class Conflict(DomainError):
    """The request is valid but the current state refuses it (already redeemed, out of stock, ...)."""

    code = "conflict"
    status = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(DomainError):
    code = "already_exists"
    status = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = grpc.StatusCode.UNAUTHENTICATED


class TooManyRequests(DomainError):
    code = "too_many_requests"
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class RemoteError(Exception):
    """A DomainError as seen by the caller of a gRPC method: status, stable code, message, details."""

    def __init__(self, status: grpc.StatusCode, code: str, message: str, details: dict[str, str]):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> RemoteError:
        status_code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        message = error.details() if isinstance(error, grpc.Call) else str(error)
        code, details = _fallback_code(status_code), {}
        status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
        if status is not None:
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
                    code, details = info.reason, dict(info.metadata)
        return cls(status_code, code, message or code, details)


def _fallback_code(status: grpc.StatusCode) -> str:
    return {
        grpc.StatusCode.UNAVAILABLE: "service_unavailable",
        grpc.StatusCode.DEADLINE_EXCEEDED: "service_timeout",
    }.get(status, "internal_error")
