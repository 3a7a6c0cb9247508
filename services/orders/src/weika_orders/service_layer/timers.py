"""Order timers: unpaid orders cancel after the merchant's auto_cancel_minutes (their stock goes back);
delivered or shipped orders complete after auto_confirm_days.

Exactly once across replicas and restarts, with no lock and no timer state: each run derives what is due
from the orders themselves, and each order is claimed by one conditional update
(`UPDATE orders ... WHERE id = ? AND status = 'pending_payment' AND created_at < cutoff`). Two replicas
racing for the same order: one gets rowcount 1 and writes the history row and the event in that same
transaction; the other gets 0 and does nothing. A replica that dies before commit claimed nothing, so
the next run (on any replica) finds the order still due.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from weika_kit import context
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_orders import metrics
from weika_orders.adapters.repository import OrdersRepository, due_order_ids, tenants_with_orders_in
from weika_orders.adapters.upstream import CatalogClient
from weika_orders.domain.model import CANCELLED, COMPLETED, DELIVERED, PENDING_PAYMENT, SHIPPED
from weika_orders.service_layer import messages
from weika_orders.service_layer.services import release_stock_of

log = logging.getLogger(__name__)

TIMER_INTERVAL_S = 15.0
AUTO_CANCEL_REASON = "payment_timeout"


def _tenant(merchant_id: str, mode: str):  # type: ignore[no-untyped-def]
    return context.bound(caller=Caller(merchant_id, mode, staff_id="timer", role="system"),
                         request_id=context.new_request_id())


def cancel_unpaid_orders(db: Database, catalog: CatalogClient | None) -> list[str]:
    """Cancel every order unpaid past its merchant's auto_cancel_minutes; the ids this run cancelled."""
    cancelled: list[str] = []
    with db.unit_of_work() as uow:
        tenants = tenants_with_orders_in(uow, (PENDING_PAYMENT,))
    for tenant in tenants:
        with _tenant(tenant.merchant_id, tenant.mode):
            caller = context.require_caller()
            with db.unit_of_work() as uow:
                repo = OrdersRepository(uow, caller)
                cutoff = db.clock() - timedelta(minutes=repo.settings().auto_cancel_minutes)
                due = due_order_ids(uow, tenant.merchant_id, tenant.mode, (PENDING_PAYMENT,), "created_at", cutoff)
            for order_id in due:
                with db.unit_of_work() as uow:
                    repo = OrdersRepository(uow, caller)
                    if not repo.move(order_id, PENDING_PAYMENT, CANCELLED, unchanged_since=("created_at", cutoff)):
                        continue  # paid, cancelled or claimed by another replica in the meantime
                    order = repo.get_order(order_id)
                    assert order is not None
                    repo.add_history(order_id, PENDING_PAYMENT, CANCELLED, "system", AUTO_CANCEL_REASON)
                    uow.add_event(messages.order_cancelled(order, AUTO_CANCEL_REASON, uow.now()))
                    uow.commit()
                cancelled.append(order_id)
                metrics.ORDERS_CANCELLED.labels(tenant.mode).inc()
                log.info("unpaid order cancelled by timer", extra={"order_id": order_id})
                if catalog is not None:
                    # The event releases the stock anyway (the catalog consumes it); this is quicker.
                    release_stock_of(db, catalog, caller, order_id, "order_cancelled")
    return cancelled


def complete_confirmed_orders(db: Database) -> list[str]:
    """Complete every delivered or shipped order past its merchant's auto_confirm_days."""
    completed: list[str] = []
    with db.unit_of_work() as uow:
        tenants = tenants_with_orders_in(uow, (DELIVERED, SHIPPED))
    for tenant in tenants:
        with _tenant(tenant.merchant_id, tenant.mode):
            caller = context.require_caller()
            with db.unit_of_work() as uow:
                repo = OrdersRepository(uow, caller)
                cutoff = db.clock() - timedelta(days=repo.settings().auto_confirm_days)
                due = due_order_ids(uow, tenant.merchant_id, tenant.mode, (DELIVERED, SHIPPED), "updated_at", cutoff)
            for order_id in due:
                with db.unit_of_work() as uow:
                    repo = OrdersRepository(uow, caller)
                    status = repo.status_of(order_id)
                    if status not in (DELIVERED, SHIPPED) or not repo.move(
                            order_id, status, COMPLETED, unchanged_since=("updated_at", cutoff)):
                        continue
                    repo.add_history(order_id, status, COMPLETED, "system", "auto_confirmed")
                    order = repo.get_order(order_id)
                    assert order is not None
                    uow.add_event(messages.order_completed(order, uow.now()))
                    uow.commit()
                completed.append(order_id)
                log.info("order completed by timer", extra={"order_id": order_id})
    return completed


def run_timers(db: Database, catalog: CatalogClient, stop: threading.Event,
               interval_s: float = TIMER_INTERVAL_S) -> None:
    """Run both timers until `stop`; a failed run is logged and the next one catches up."""
    while not stop.is_set():
        try:
            cancel_unpaid_orders(db, catalog)
            complete_confirmed_orders(db)
        except Exception:
            log.exception("order timers failed")
        stop.wait(interval_s)
