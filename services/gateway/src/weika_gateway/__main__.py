"""Run the gateway: `python -m weika_gateway` or `weika-gateway` (migrations, then waitress until SIGTERM/SIGINT)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import waitress

from weika_gateway.app import create_app
from weika_gateway.config import GatewaySettings
from weika_kit import grpc_client, logs, migrations
from weika_kit.config import database_url
from weika_kit.db import Database

MIGRATIONS = str(Path(__file__).parent / "migrations")

log = logging.getLogger("weika_gateway")


_stopping = threading.Event()


def _stop(signum: int, _frame: object) -> None:
    # waitress's run loop catches SystemExit, then lets its worker threads finish their requests;
    # a second signal during that shutdown must not interrupt it.
    if _stopping.is_set():
        return
    _stopping.set()
    log.info("stopping", extra={"signal": signum})
    raise SystemExit(0)


def main() -> None:
    settings = GatewaySettings.from_env()
    logs.configure("gateway", settings.log_level)
    url = database_url("gateway")
    migrations.upgrade(url, MIGRATIONS)
    db = Database(url, service="gateway")
    app = create_app(db, settings=settings)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("gateway starting", extra={"host": settings.host, "port": settings.port})
    try:
        waitress.serve(app, host=settings.host, port=settings.port, threads=8, ident="weika-gateway")
    finally:
        grpc_client.close_all()
        db.dispose()
        log.info("gateway stopped")


if __name__ == "__main__":
    main()
