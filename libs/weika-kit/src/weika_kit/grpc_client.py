"""gRPC clients: one channel per target, carrying request id and caller; errors come back as RemoteError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from weika_kit import context
from weika_kit.config import service_address
from weika_kit.errors import RemoteError

T = TypeVar("T")


class _ContextInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        extra = context.outgoing_metadata()
        if extra:
            metadata = list(client_call_details.metadata or []) + extra
            client_call_details = client_call_details._replace(metadata=metadata) \
                if hasattr(client_call_details, "_replace") else _Details(client_call_details, metadata)
        return continuation(client_call_details, request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: grpc.ClientCallDetails, metadata: list[tuple[str, str]]):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


_channels: dict[str, grpc.Channel] = {}
_lock = threading.Lock()


def channel(service_or_target: str) -> grpc.Channel:
    """A shared channel to a service by name (address from config) or to an explicit host:port."""
    target = service_address(service_or_target) if ":" not in service_or_target else service_or_target
    with _lock:
        if target not in _channels:
            # round_robin over every address the name resolves to (a headless Service gives one per pod).
            raw = grpc.insecure_channel(target, options=[("grpc.keepalive_time_ms", 30000),
                                                         ("grpc.lb_policy_name", "round_robin"),
                                                         # product images (5 MiB) exceed the 4 MiB default
                                                         ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                                                         ("grpc.max_send_message_length", 8 * 1024 * 1024)])
            _channels[target] = grpc.intercept_channel(raw, _ContextInterceptor())
        return _channels[target]


def stub(stub_class: Callable[[grpc.Channel], T], service_or_target: str) -> T:
    return stub_class(channel(service_or_target))


def call(method: Callable[..., Any], request: Any, *, timeout_s: float = 10.0) -> Any:
    """Call a stub method; a failed call raises RemoteError carrying the domain error code."""
    try:
        return method(request, timeout=timeout_s)
    except grpc.RpcError as error:
        raise RemoteError.from_rpc_error(error) from None


def forget(target: str) -> None:
    """Drop the shared channel to `target` (a server that went away; the next call dials afresh)."""
    with _lock:
        ch = _channels.pop(target, None)
    if ch is not None:
        ch.close()


def close_all() -> None:
    with _lock:
        for ch in _channels.values():
            ch.close()
        _channels.clear()
