"""Probes and metrics: /healthz (the whole platform: every service SERVING and the database answering), /readyz
(this gateway can serve: its database answers), /livez, /metrics."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from weika_gateway.clients import SERVICES
from weika_gateway.config import HEALTH_CHECK_TIMEOUT_S
from weika_gateway.state import GatewayState, state

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

SERVING = "SERVING"


def _service_status(gateway: GatewayState, service: str) -> str:
    try:
        return gateway.clients.health(service, HEALTH_CHECK_TIMEOUT_S)
    except Exception:  # a failing check means "not serving", never a crashed probe
        log.warning("health check failed", extra={"service": service}, exc_info=True)
        return "UNAVAILABLE"


def _database_status(gateway: GatewayState) -> str:
    try:
        with gateway.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        log.warning("database check failed", exc_info=True)
        return "unavailable"
    return "ok"


def _check() -> tuple[dict[str, Any], int]:
    gateway = state()
    # Concurrently, so one hung service costs one timeout, not five.
    with ThreadPoolExecutor(max_workers=len(SERVICES), thread_name_prefix="health") as pool:
        futures = {service: pool.submit(_service_status, gateway, service) for service in SERVICES}
        database = _database_status(gateway)
        services = {service: future.result() for service, future in futures.items()}
    healthy = database == "ok" and all(status == SERVING for status in services.values())
    body = {"status": "ok" if healthy else "unavailable", "services": services, "database": database}
    return body, 200 if healthy else 503


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    return _check()


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Whether this gateway can take traffic. Deliberately not the backends: one service's outage must not take
    the whole REST face out of its Kubernetes Service (the other routes still work; /healthz tells the story)."""
    database = _database_status(state())
    return {"status": "ready" if database == "ok" else "not_ready", "database": database}, \
        200 if database == "ok" else 503


@bp.get("/livez")
def livez() -> dict[str, Any]:
    """The process answers; for a liveness probe that must not restart the gateway when a service is down."""
    return {"status": "ok"}


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
