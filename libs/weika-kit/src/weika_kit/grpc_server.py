"""gRPC server bootstrap: health, reflection, and the interceptor for request id, caller, errors and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from weika_kit import context, metrics
from weika_kit.errors import DomainError

log = logging.getLogger(__name__)


class ServerInterceptor(grpc.ServerInterceptor):
    """Binds request id and caller from metadata, maps DomainError to a status with details, records metrics."""

    def __init__(self, service: str):
        self.service = service

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        service = self.service

        def wrapper(request, ctx: grpc.ServicerContext):  # type: ignore[no-untyped-def]
            md = ctx.invocation_metadata() or ()
            rid = next((v for k, v in md if k == context.MD_REQUEST_ID), None) or context.new_request_id()
            caller = context.Caller.from_metadata(md)
            code = grpc.StatusCode.OK
            started = time.perf_counter()
            with context.bound(caller=caller, request_id=str(rid)):
                try:
                    return inner(request, ctx)
                except DomainError as err:
                    code = err.status
                    ctx.abort_with_status(err.to_grpc_status())
                except Exception:
                    if ctx.code() is not None:  # the handler aborted with a status of its own
                        code = ctx.code()
                        raise
                    code = grpc.StatusCode.INTERNAL
                    log.exception("unhandled error in gRPC method", extra={"method": method})
                    ctx.abort(grpc.StatusCode.INTERNAL, f"internal error (request {rid})")
                finally:
                    metrics.GRPC_HANDLED.labels(service, method, code.name).inc()
                    metrics.GRPC_SECONDS.labels(service, method).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            wrapper,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


Registration = Callable[[grpc.Server], None]


class GrpcServer:
    def __init__(self, service: str, bind: str, registrations: Sequence[Registration],
                 service_names: Sequence[str], max_workers: int = 8):
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"{service}-grpc"),
            interceptors=[ServerInterceptor(service)],
            # Clients re-resolve and spread over replicas when connections age out (Kubernetes Services).
            options=[("grpc.so_reuseport", 0), ("grpc.max_connection_age_ms", 300_000),
                     ("grpc.max_connection_age_grace_ms", 30_000),
                     # above the 4 MiB default: product images (5 MiB) travel in one message
                     ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                     ("grpc.max_send_message_length", 8 * 1024 * 1024)],
        )
        for register in registrations:
            register(self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = list(service_names)
        reflection.enable_server_reflection(
            [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            self.server,
        )
        self.port = self.server.add_insecure_port(bind)
        if self.port == 0:
            raise RuntimeError(f"cannot bind gRPC to {bind}")

    def start(self) -> None:
        self.server.start()

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            self.health.set(name, status)

    def stop(self, grace_s: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
