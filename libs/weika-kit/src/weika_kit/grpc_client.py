"""gRPC clients: one channel per target, carrying request id and caller; errors come back as RemoteError."""

from __future__ import annotations

import threading
import time
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
                                                         # A restarted peer is dialled again within a second,
                                                         # not after gRPC's default backoff of up to 120 s.
                                                         ("grpc.initial_reconnect_backoff_ms", 100),
                                                         ("grpc.min_reconnect_backoff_ms", 100),
                                                         ("grpc.max_reconnect_backoff_ms", 1000),
                                                         # product images (5 MiB) exceed the 4 MiB default
                                                         ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                                                         ("grpc.max_send_message_length", 8 * 1024 * 1024)])
            _channels[target] = grpc.intercept_channel(raw, _ContextInterceptor())
        return _channels[target]


def stub(stub_class: Callable[[grpc.Channel], T], service_or_target: str) -> T:
    return stub_class(channel(service_or_target))


# How long a call whose peer could not be reached keeps trying while the channel reconnects (its backoff is at most
# a second, plus jitter): a peer restarted on its address is reached again, and a peer that is down costs a caller
# no more than this before it hears "unavailable".
RECONNECT_WAIT_S = 1.5

# What gRPC says when the request never left this process (no connection): sending it again cannot apply it twice.
_NOT_SENT = ("failed to connect to all addresses", "connections to all backends failing")


def _never_sent(error: grpc.RpcError) -> bool:
    if error.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
        return False
    details = (error.details() or "").lower()  # type: ignore[attr-defined]
    return any(marker in details for marker in _NOT_SENT)


def call(method: Callable[..., Any], request: Any, *, timeout_s: float = 10.0) -> Any:
    """Call a stub method; a failed call raises RemoteError carrying the domain error code.

    A channel whose peer went away fails calls fast until its next reconnect attempt. A call that failed because no
    connection could be made (the request was never sent) is sent again for up to RECONNECT_WAIT_S, so a peer that
    restarted on the same address is reached; anything else that happens is the answer."""
    started = time.monotonic()
    give_up_at = started + min(timeout_s, RECONNECT_WAIT_S)
    while True:
        remaining = timeout_s - (time.monotonic() - started)
        try:
            return method(request, timeout=max(remaining, 0.01))
        except grpc.RpcError as error:
            if not _never_sent(error) or time.monotonic() + 0.1 >= give_up_at:
                raise RemoteError.from_rpc_error(error) from None
        time.sleep(0.1)


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
