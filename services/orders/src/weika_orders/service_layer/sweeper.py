"""The background sweeper: gives up on orders stuck in `creating` and makes sure their stock goes back.

An order stays `creating` when its creator died (or the catalog or marketing failed without an answer) and
nobody retried. After STUCK_AFTER the sweeper claims it (`creating -> failed`, a conditional update, so a
late retry completing it at the same moment cannot both win), then asks the catalog to release its stock,
and records the release only once the catalog confirmed it; unconfirmed releases are retried every sweep.
It also retries the refunds of stray payments (payments.retry_stray_refunds) whose backoff has passed, and
queries the provider about refunds still processing there (payments.query_processing_refunds).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from weika_kit import context
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError
from weika_orders import metrics
from weika_orders.adapters.repository import (
    OrdersRepository,
    failed_orders_holding_stock,
    orders_stuck_in_creating,
)
from weika_orders.adapters.upstream import CatalogClient
from weika_orders.config import PaymentSettings
from weika_orders.domain.model import CREATING, FAILED
from weika_orders.service_layer.payments import query_processing_refunds, retry_stray_refunds

log = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=2)
SWEEP_INTERVAL_S = 30.0


def _as_tenant(merchant_id: str, mode: str):  # type: ignore[no-untyped-def]
    return context.bound(caller=Caller(merchant_id, mode, role="system"), request_id=context.new_request_id())


def sweep_once(db: Database, catalog: CatalogClient) -> int:
    """One pass over every tenant; returns how many stuck orders it marked failed."""
    with db.unit_of_work() as uow:
        stuck = orders_stuck_in_creating(uow, db.clock() - STUCK_AFTER)
    failed = 0
    for row in stuck:
        with _as_tenant(row.merchant_id, row.mode):
            caller = context.require_caller()
            with db.unit_of_work() as uow:
                repo = OrdersRepository(uow, caller)
                if repo.move(row.id, CREATING, FAILED):
                    repo.add_history(row.id, CREATING, FAILED, "system", "creation_timed_out")
                    uow.commit()
                    failed += 1
                    metrics.ORDER_CREATIONS_ABANDONED.labels("timed_out").inc()
                    log.warning("order stuck in creating marked failed", extra={"order_id": row.id})
    with db.unit_of_work() as uow:
        holding = failed_orders_holding_stock(uow)
    for row in holding:
        with _as_tenant(row.merchant_id, row.mode):
            try:
                catalog.release_stock(row.id, "order_creation_failed")
            except DomainError:
                log.warning("stock release of a failed order failed; retrying next sweep", exc_info=True,
                            extra={"order_id": row.id})
                continue
            with db.unit_of_work() as uow:
                OrdersRepository(uow, context.require_caller()).set_stock_released(row.id, True)
                uow.commit()
    return failed


def run_sweeper(db: Database, catalog: CatalogClient, stop: threading.Event,
                interval_s: float = SWEEP_INTERVAL_S, payment_settings: PaymentSettings | None = None) -> None:
    """Sweep until `stop` is set; a failed sweep is logged and the next one tries again."""
    while not stop.is_set():
        try:
            sweep_once(db, catalog)
        except Exception:
            log.exception("order sweep failed")
        if payment_settings is not None:
            try:
                retry_stray_refunds(db, payment_settings)
            except Exception:
                log.exception("stray payment refund sweep failed")
            try:
                query_processing_refunds(db, payment_settings)
            except Exception:
                log.exception("refund query sweep failed")
        stop.wait(interval_s)
