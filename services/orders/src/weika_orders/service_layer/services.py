"""Orders use cases: each state change runs in one unit of work, for one caller, with the events it causes.

CreateOrder is crash-safe across three services. (1) One transaction upserts the customer and inserts the
order as `creating` under its idempotency key. (2) The catalog reserves stock, idempotently per order id.
(3) Marketing quotes the price. (4) One transaction moves `creating -> pending_payment` with lines, amounts,
history and OrderCreated. A retry with the same key after a crash anywhere resumes at (2) with the same
order id; the sweeper (service_layer/sweeper.py) gives up on orders left `creating` too long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from weika_kit import faults, ids
from weika_kit.context import Caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.errors import DomainError
from weika_orders import metrics
from weika_orders.adapters.repository import OrdersRepository
from weika_orders.adapters.upstream import CatalogClient, MarketingClient, RedemptionClient, is_refusal
from weika_orders.domain import errors
from weika_orders.domain.model import (
    AWAITING_SHIPMENT,
    CANCELLED,
    CREATING,
    FAILED,
    PAID,
    PAYMENT_CHANNELS,
    PENDING_PAYMENT,
    SIMULATED_CHANNEL,
    Amounts,
    Discount,
    NewOrder,
    Order,
    OrderLine,
    normalize_cancel_reason,
    transition_refused,
)
from weika_orders.service_layer import delivery, messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upstreams:
    """The services orders calls; tests point them at fakes."""

    catalog: CatalogClient
    marketing: MarketingClient
    redemption: RedemptionClient | None = None  # refunds void coupons through it


@dataclass(frozen=True)
class CreationTicket:
    """Where an idempotency key stands: its order, that order's status, its customer."""

    order_id: str
    status: str
    customer_id: str


def actor_of(caller: Caller) -> str:
    return caller.staff_id or caller.role or "system"


def _must_get(repo: OrdersRepository, caller: Caller, order_id: str) -> Order:
    order = repo.get_order(order_id) if order_id else None
    if order is None:
        raise errors.OrderNotFound(f"order {order_id} does not exist", details={"order_id": order_id})
    # Store staff reach their stores' orders only, as in the lists: not another store's, nor an online order.
    if caller.store_ids and order.store_id not in caller.store_ids:
        raise errors.StoreNotAllowed("this order belongs to a store you do not work at",
                                     details={"order_id": order_id, "store_id": order.store_id})
    return order


def get_order(db: Database, caller: Caller, order_id: str) -> Order:
    with db.unit_of_work() as uow:
        return _must_get(OrdersRepository(uow, caller), caller, order_id)


# --- CreateOrder


def create_order(db: Database, upstreams: Upstreams, caller: Caller, new: NewOrder) -> Order:
    """Place an order, or return (or resume) the one this idempotency key already placed."""
    if new.store_id and not caller.may_act_at_store(new.store_id):
        raise errors.StoreNotAllowed("you cannot place orders for a store you do not work at",
                                     details={"store_id": new.store_id})
    ticket = begin_order_creation(db, caller, new)
    if ticket.status == CREATING:
        faults.crash_point("orders.create.after_begin")
        _fix_stock_and_price(db, upstreams, caller, ticket, new.items)
    return get_order(db, caller, ticket.order_id)


def begin_order_creation(db: Database, caller: Caller, new: NewOrder) -> CreationTicket:
    """Step 1: the customer and a `creating` order under the key, or the order the key already names."""
    try:
        return _insert_or_find(db, caller, new)
    except IntegrityError:
        # The same key was inserted concurrently: the winner's order answers this request too.
        return _insert_or_find(db, caller, new)


def _insert_or_find(db: Database, caller: Caller, new: NewOrder) -> CreationTicket:
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        existing = repo.find_by_idempotency_key(new.idempotency_key)
        if existing is not None:
            return _replay(existing.id, existing.status, existing.request_fingerprint, existing.customer_id, new)
        customer_id = repo.upsert_customer(new.customer)
        order_id = ids.new_id("ord")
        repo.add_creating_order(order_id, new.idempotency_key, new.request_fingerprint, customer_id, new.store_id)
        uow.commit()
    log.info("order creation begun", extra={"order_id": order_id})
    return CreationTicket(order_id, CREATING, customer_id)


def _replay(order_id: str, status: str, fingerprint: str, customer_id: str, new: NewOrder) -> CreationTicket:
    if fingerprint != new.request_fingerprint:
        raise errors.IdempotencyKeyReused(
            "this idempotency key was already used for a different order request; use a new key",
            details={"idempotency_key": new.idempotency_key, "order_id": order_id})
    if status == FAILED:
        raise errors.OrderCreationFailed(
            "this order could not be completed in time and was abandoned; place it again with a new "
            "idempotency key", details={"order_id": order_id, "current_status": status})
    return CreationTicket(order_id, status, customer_id)


def _fix_stock_and_price(db: Database, upstreams: Upstreams, caller: Caller, ticket: CreationTicket,
                         items: tuple[tuple[str, int], ...]) -> None:
    """Steps 2 to 4 for a `creating` order; safe to run again for the same order after a crash."""
    order_id = ticket.order_id
    try:
        lines = upstreams.catalog.reserve_stock(order_id, items, customer_id=ticket.customer_id)
    except DomainError as err:
        # Refused means nothing was reserved (all or nothing): forget the order so the key can be retried.
        # Any other failure may have reserved: keep the order for a retry to resume or the sweeper to undo.
        if is_refusal(err):
            _forget_creating_order(db, caller, order_id, err.code)
        raise
    faults.crash_point("orders.create.after_reserve")
    try:
        quote = upstreams.marketing.quote_price(lines, ticket.customer_id)
        amounts = Amounts.from_quote(lines, quote)
    except DomainError as err:
        if is_refusal(err) and _release_stock(upstreams, order_id, "order_creation_refused"):
            _forget_creating_order(db, caller, order_id, err.code)
        raise
    faults.crash_point("orders.create.after_quote")
    complete_order_creation(db, upstreams, caller, order_id, lines, amounts, list(quote.discounts))


def _forget_creating_order(db: Database, caller: Caller, order_id: str, why: str) -> None:
    with db.unit_of_work() as uow:
        forgotten = OrdersRepository(uow, caller).delete_creating_order(order_id)
        uow.commit()
    if forgotten:
        metrics.ORDER_CREATIONS_ABANDONED.labels("refused").inc()
        log.info("order creation refused upstream", extra={"order_id": order_id, "code": why})


def _release_stock(upstreams: Upstreams, order_id: str, reason: str) -> bool:
    """Ask the catalog to give the order's stock back; True once it confirmed (even if nothing was held)."""
    try:
        upstreams.catalog.release_stock(order_id, reason)
        return True
    except DomainError:
        log.warning("stock release failed; it will be retried", exc_info=True, extra={"order_id": order_id})
        return False


def release_stock_of(db: Database, catalog: CatalogClient, caller: Caller, order_id: str, reason: str) -> None:
    """Give a cancelled order's stock back now, recording it once the catalog confirmed (the event is the backstop)."""
    try:
        catalog.release_stock(order_id, reason)
    except DomainError:
        log.warning("stock release failed; the order-cancelled event releases it", exc_info=True,
                    extra={"order_id": order_id})
        return
    with db.unit_of_work() as uow:
        OrdersRepository(uow, caller).set_stock_released(order_id, True)
        uow.commit()


def complete_order_creation(db: Database, upstreams: Upstreams, caller: Caller, order_id: str,
                            lines: list[OrderLine], amounts: Amounts, discounts: list[Discount]) -> None:
    """Step 4: `creating -> pending_payment` with lines, amounts, history and OrderCreated, in one transaction."""
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        if repo.complete_creation(order_id, lines, amounts, discounts):
            repo.add_history(order_id, CREATING, PENDING_PAYMENT, actor_of(caller), "order_created")
            order = _must_get(repo, caller, order_id)
            uow.add_event(messages.order_created(order))
            uow.commit()
            metrics.ORDERS_CREATED.labels(caller.mode).inc()
            log.info("order created", extra={"order_id": order_id, "payable_amount": amounts.payable})
            return
        status = repo.status_of(order_id)
        if status not in (None, FAILED):
            return  # a concurrent retry of the same request completed it first
        if status == FAILED:
            repo.set_stock_released(order_id, False)  # so the sweeper releases again what we just reserved
            uow.commit()
    # The sweeper gave up on this order while we were reserving: what we reserved must go back.
    if _release_stock(upstreams, order_id, "order_creation_failed") and status == FAILED:
        with db.unit_of_work() as uow:
            OrdersRepository(uow, caller).set_stock_released(order_id, True)
            uow.commit()
    raise errors.OrderCreationFailed(
        "this order took too long to complete and was abandoned; place it again with a new idempotency key",
        details={"order_id": order_id, "current_status": status or "deleted"})


# --- PayOrder


def pay_order(db: Database, caller: Caller, order_id: str, channel: str) -> Order:
    """`pending_payment -> paid`: exactly one payment and one OrderPaid, however many concurrent attempts."""
    channel = channel.strip()
    if channel not in PAYMENT_CHANNELS:
        raise errors.UnsupportedPaymentChannel(
            f"payment channel {channel!r} is not available: pay with 'wechat' or 'alipay' (configured per "
            f"merchant), or {SIMULATED_CHANNEL!r} in test mode",
            details={"channel": channel})
    if channel == SIMULATED_CHANNEL and caller.mode != "test":
        raise errors.SimulatedPaymentTestModeOnly(
            "simulated payment works in test mode only; live orders are paid through the real channels "
            "(WeChat Pay, Alipay) configured per merchant", details={"channel": channel, "mode": caller.mode})
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        order = _must_get(repo, caller, order_id)
        paid = record_payment(uow, repo, caller, order, channel, actor_of(caller))
        if paid is None:
            raise transition_refused(repo.status_of(order_id) or order.status, PAID)
        uow.commit()
    metrics.ORDERS_PAID.labels(caller.mode, channel).inc()
    return paid


def record_payment(uow: UnitOfWork, repo: OrdersRepository, caller: Caller, order: Order, channel: str, actor: str,
                   provider_transaction_id: str | None = None) -> Order | None:
    """`pending_payment -> paid` with its payment row, history and OrderPaid in `uow`; None if not pending.

    The conditional update is the one gate for every channel: a second payment attempt or a duplicate
    notification finds the order no longer pending and changes nothing.
    """
    if not repo.mark_paid(order.id, channel):
        return None
    payment_id = repo.add_payment(order.id, channel, order.payable_amount, provider_transaction_id)
    repo.add_history(order.id, PENDING_PAYMENT, PAID, actor, f"paid_{channel}")
    paid = _must_get(repo, caller, order.id)
    uow.add_event(messages.order_paid(paid, payment_id))
    if any(line.product_kind == "physical" for line in paid.lines) and repo.move(order.id, PAID, AWAITING_SHIPMENT):
        # Physical goods wait for the merchant's carrier and tracking number: the "to ship" tab.
        repo.add_history(order.id, PAID, AWAITING_SHIPMENT, "system", "physical_goods")
        paid = _must_get(repo, caller, order.id)
    log.info("order paid", extra={"order_id": order.id, "payment_id": payment_id, "amount": paid.paid_amount,
                                  "channel": channel})
    # Deliveries are caused by order-paid, so none should be waiting; if one is (a replayed event), it counts.
    if delivery.deliver_if_complete(repo, order.id, delivery.COUPONS_ISSUED):
        return _must_get(repo, caller, order.id)
    return paid


# --- CancelOrder


def cancel_order(db: Database, upstreams: Upstreams, caller: Caller, order_id: str, reason: str) -> Order:
    """`pending_payment -> cancelled`, stock released, OrderCancelled; cancelling again changes nothing."""
    reason = normalize_cancel_reason(reason)
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        order = _must_get(repo, caller, order_id)
        if order.status == CANCELLED:
            return order
        if not repo.move(order_id, PENDING_PAYMENT, CANCELLED):
            current = repo.status_of(order_id) or order.status
            if current == CANCELLED:  # a concurrent cancel won; the outcome is the one asked for
                return _must_get(repo, caller, order_id)
            raise transition_refused(current, CANCELLED)
        repo.add_history(order_id, PENDING_PAYMENT, CANCELLED, actor_of(caller), reason)
        # The event alone gets the stock back (the catalog consumes it); the direct call below is quicker.
        uow.add_event(messages.order_cancelled(order, reason, uow.now()))
        uow.commit()
    metrics.ORDERS_CANCELLED.labels(caller.mode).inc()
    log.info("order cancelled", extra={"order_id": order_id, "reason": reason})
    if _release_stock(upstreams, order_id, "order_cancelled"):
        with db.unit_of_work() as uow:
            OrdersRepository(uow, caller).set_stock_released(order_id, True)
            uow.commit()
    return get_order(db, caller, order_id)
