"""The Flask app factory: blueprints, request ids, metrics and access logs, and one error envelope for all."""

from __future__ import annotations

import contextlib
import logging
import re
import time

import redis
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from weika_gateway import errors, limiter
from weika_gateway.adapters.repository import AuditRepository
from weika_gateway.clients import GrpcServiceClients, ServiceClients
from weika_gateway.config import MAX_BODY_BYTES, GatewaySettings
from weika_gateway.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from weika_gateway.routes import (
    catalog,
    coupons,
    customers,
    deliveries,
    health,
    merchants,
    order_lifecycle,
    orders,
    payments,
    redemptions,
    reports,
    staff,
    stores,
)
from weika_gateway.state import EXTENSION, GatewayState, state
from weika_kit import context, hotstate
from weika_kit.db import Database
from weika_kit.errors import DomainError, RemoteError

log = logging.getLogger(__name__)
access_log = logging.getLogger("weika_gateway.access")

BLUEPRINTS = (merchants.bp, stores.bp, catalog.bp, orders.bp, deliveries.bp, coupons.bp, redemptions.bp, reports.bp,
              health.bp, payments.bp, order_lifecycle.bp, customers.bp, staff.bp)
REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is echoed into headers and logs: printable ASCII, no spaces, bounded.
_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_HTTP_CODES = {400: errors.BAD_REQUEST, 404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED,
               413: errors.PAYLOAD_TOO_LARGE}
UNMATCHED_ROUTE = "unmatched"


def create_app(db: Database, clients: ServiceClients | None = None,
               settings: GatewaySettings | None = None, hot_state: redis.Redis | None = None) -> Flask:
    """The gateway app on `db`; `clients` defaults to gRPC clients of the real services, `hot_state` to
    `weika_kit.hotstate.redis_client()` (REDIS_URL, else a process-local fakeredis)."""
    settings = settings or GatewaySettings.from_env()
    app = Flask("weika_gateway")
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=settings.trusted_proxies, x_host=settings.trusted_proxies)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = GatewayState(
        db=db, clients=clients or GrpcServiceClients(timeout_s=settings.grpc_timeout_s), settings=settings)
    app.extensions[limiter.EXTENSION] = limiter.RedemptionLimiter(
        hot_state if hot_state is not None else hotstate.redis_client(),
        limit=settings.redeem_failure_limit, window_s=settings.redeem_failure_window_s)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(RemoteError, _remote_error)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _begin_request() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _VALID_REQUEST_ID.fullmatch(given) else context.new_request_id()
    g.started = time.perf_counter()
    # Bound for the whole request: logs carry it, and service calls send it in gRPC metadata.
    g.bound_context = contextlib.ExitStack()
    g.bound_context.enter_context(context.bound(request_id=g.request_id))


def _finish_request(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    HTTP_REQUEST_SECONDS.labels(request.method, route).observe(elapsed)
    request_id = g.get("request_id") or context.new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    access_log.info("http request", extra={
        "request_id": request_id, "method": request.method, "route": route, "status": response.status_code,
        "duration_ms": round(elapsed * 1000, 2), **_caller_fields()})
    _audit(response.status_code, request_id)
    return response


def _audit(status: int, request_id: str) -> None:
    """Every change an authenticated caller asked for, allowed or refused, goes to the audit log."""
    caller = g.get("caller")
    if caller is None or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    try:
        with state().db.unit_of_work() as uow:
            AuditRepository(uow, caller).add(actor_id=caller.staff_id, role=caller.role, method=request.method,
                                             path=request.path, status=status, request_id=request_id)
            uow.commit()
    except Exception:  # the answer stands; a lost audit line is an operational alarm, not the caller's error
        log.exception("could not write the audit log", extra={"request_id": request_id})


def _caller_fields() -> dict[str, str]:
    """Who the request acted for, for log lines written after the caller's binding has ended."""
    caller = g.get("caller")
    if caller is None:
        return {}
    return {"merchant_id": caller.merchant_id, "mode": caller.mode, "actor_id": caller.staff_id, "role": caller.role}


def _end_request(_error: BaseException | None) -> None:
    stack = g.pop("bound_context", None)
    if stack is not None:
        stack.close()


def _request_id() -> str:
    return str(g.get("request_id") or context.request_id() or context.new_request_id())


def _respond(error: errors.HttpError) -> tuple[Response, int]:
    response = jsonify(error.body())
    response.headers.update(error.headers)
    return response, error.status


def _domain_error(error: DomainError) -> tuple[Response, int]:
    return _respond(errors.from_domain_error(error, _request_id()))


def _remote_error(error: RemoteError) -> tuple[Response, int]:
    answer = errors.from_remote_error(error, _request_id())
    if answer.status >= 500:
        log.error("service call failed", extra={"grpc_status": error.status.name, "code": error.code,
                                                "remote_message": error.message, "details": error.details,
                                                **_caller_fields()})
    return _respond(answer)


def _http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code = _HTTP_CODES.get(status) or re.sub(r"\W+", "_", (error.name or "error").lower()).strip("_")
    message = error.description or error.name
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    response = jsonify(errors.HttpError(status, code, message).body())
    response.status_code = status
    if status == 405:
        # 405 must say which methods the route does accept
        response.headers["Allow"] = ", ".join(sorted(getattr(error, "valid_methods", None) or ()))
    return response


def _unexpected_error(error: Exception) -> tuple[Response, int]:
    log.exception("unhandled error", extra={"error_type": type(error).__name__, **_caller_fields()})
    return _respond(errors.internal_error(_request_id()))
