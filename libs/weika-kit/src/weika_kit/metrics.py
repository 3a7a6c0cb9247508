"""Prometheus metrics shared by every service, declared once; plus the /metrics, /healthz, /readyz endpoint."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from waitress.server import create_server

log = logging.getLogger(__name__)

GRPC_HANDLED = Counter(
    "weika_grpc_server_handled_total", "gRPC calls handled, by method and status code.", ["service", "method", "code"]
)
GRPC_SECONDS = Histogram(
    "weika_grpc_server_handling_seconds", "Time to handle a gRPC call, by method.", ["service", "method"]
)
OUTBOX_BACKLOG = Gauge("weika_outbox_backlog", "Outbox events committed but not yet published.", ["service"])
OUTBOX_PUBLISHED = Counter("weika_outbox_published_total", "Outbox events published to the bus.", ["service"])
OUTBOX_PUBLISH_FAILURES = Counter(
    "weika_outbox_publish_failures_total", "Outbox publish attempts that failed (retried).", ["service"]
)
EVENTS_CONSUMED = Counter(
    "weika_events_consumed_total",
    "Events taken from the bus, by outcome: applied, duplicate, dead_lettered.",
    ["group", "topic", "outcome"],
)
EVENT_HANDLER_FAILURES = Counter(
    "weika_event_handler_failures_total", "Event handler attempts that raised (retried).", ["group", "topic"]
)
CONSUMER_LAG = Gauge("weika_consumer_lag", "Messages behind the end of the topic, by group.", ["group", "topic"])

Check = Callable[[], bool]


class ProbeServer:
    """Serves /metrics, /healthz (the process is alive) and /readyz (every readiness check passes)."""

    def __init__(self, port: int, readiness: dict[str, Check], host: str = "0.0.0.0"):
        self.readiness = readiness
        self._metrics = make_wsgi_app()
        self._server = create_server(self._app, host=host, port=port, threads=2, ident="weika")
        self._thread = threading.Thread(target=self._server.run, name="probe-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.effective_port  # type: ignore[no-any-return,attr-defined]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.close()

    def ready(self) -> dict[str, bool]:
        results = {}
        for name, check in self.readiness.items():
            try:
                results[name] = bool(check())
            except Exception:  # a failing check means "not ready", never a crashed probe
                log.warning("readiness check failed", extra={"check": name}, exc_info=True)
                results[name] = False
        return results

    def _app(self, environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            checks = self.ready()
            ok = all(checks.values())
            return _json(start_response, "200 OK" if ok else "503 Service Unavailable",
                         {"status": "ready" if ok else "not_ready", "checks": checks})
        return _json(start_response, "404 Not Found", {"error": {"code": "not_found", "message": path}})


def _json(start_response, status: str, body: dict) -> list[bytes]:  # type: ignore[no-untyped-def]
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
