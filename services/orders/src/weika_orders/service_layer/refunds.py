"""Refunds by the merchant's rules: claim, void the coupons, return the money, then record the outcome.

1. One transaction: the rules (status refundable, refund window from payment, partial refunds allowed,
   quantities not refunded yet), `<status> -> refund_requested` by conditional update, the refund row (its
   partial unique index allows one in flight per order) and its lines, history.
2. The catalog withdraws that many undelivered units per virtual line (WithdrawDeliveries: no card key
   allocated, no top-up performed; also before it handled order-paid), then redemption voids that many
   unredeemed coupons per coupon line; each all or nothing and idempotent per refund id. A refusal (a key
   already shown or a top-up performed: `virtual_goods_delivered`; a coupon redeemed, or expired while the
   merchant does not refund expired ones) ends the refund as `refused`, the order back where it was, and the
   caller gets `refund_refused` naming the cause. A void refused after the withdrawal first gives the units
   back (RestoreDeliveries, once per refund id), so the buyer keeps the goods the money was not returned for.
3. The money goes back through the channel (the provider's refund API, idempotent per refund id; nothing to
   do for `simulated`). The provider's answer is the refund's money status (provider_status): Alipay's
   `succeeded`; WeChat's `succeeded` or `processing`, settled later by notification or the sweeper's query
   (payments.py).
4. One transaction: the refund `succeeded`, the order `refunded` (nothing left) or back where it was (partial),
   history and OrderRefunded (the catalog returns the stock from it).
A failure without an answer in 2 or 3 (the restore included) leaves the refund in flight: calling RefundOrder
again resumes it with the same refund id, so nothing is voided, restored or paid back twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError
from weika_orders.adapters.refunds_repository import RefundsRepository
from weika_orders.adapters.repository import OrdersRepository
from weika_orders.adapters.upstream import is_refusal
from weika_orders.config import PaymentSettings
from weika_orders.domain import errors
from weika_orders.domain.model import (
    REFUND_REQUESTED,
    REFUNDABLE_STATUSES,
    REFUNDED,
    Order,
    OrderLine,
    normalize_cancel_reason,
    transition_refused,
)
from weika_orders.domain.payment_channels import PROVIDER_CHANNELS
from weika_orders.service_layer import messages, payments
from weika_orders.service_layer.services import Upstreams, _must_get, actor_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefundResult:
    id: str
    order_id: str
    status: str
    amount: int
    items: dict[str, int]
    reason: str
    voided_coupon_ids: list[str]
    order_status: str
    provider_status: str  # the money at the provider: processing | succeeded | abnormal | closed; "" if none


def _wanted(order: Order, taken: dict[str, int], items: list[tuple[str, int]]) -> dict[str, int]:
    """Product -> quantity to refund; everything not refunded yet when no items are given."""
    remaining = {line.product_id: line.quantity - taken.get(line.product_id, 0) for line in order.lines}
    if not items:
        wanted = {p: q for p, q in remaining.items() if q > 0}
        if not wanted:
            raise errors.InvalidRefundQuantity("everything in this order has been refunded already",
                                               details={"order_id": order.id})
        return wanted
    wanted: dict[str, int] = {}
    for product_id, quantity in items:
        wanted[product_id] = wanted.get(product_id, 0) + quantity
    for product_id, quantity in wanted.items():
        if product_id not in remaining:
            raise errors.InvalidRefundQuantity(f"{product_id} is not in this order",
                                               details={"product_id": product_id})
        if not 1 <= quantity <= remaining[product_id]:
            raise errors.InvalidRefundQuantity(
                f"{remaining[product_id]} of {product_id} can still be refunded, not {quantity}",
                details={"product_id": product_id, "refundable": str(remaining[product_id]),
                         "requested": str(quantity)})
    return wanted


def _claim(db: Database, caller: Caller, order_id: str, items: list[tuple[str, int]], reason: str) -> str:
    """Step 1: the rules, then the order and the refund claimed in one transaction; the refund id."""
    with db.unit_of_work() as uow:
        repo, refunds = OrdersRepository(uow, caller), RefundsRepository(uow, caller)
        order = _must_get(repo, caller, order_id)
        in_flight = refunds.in_flight(order_id)
        if in_flight is not None:
            return str(in_flight.id)  # resume it
        if order.status not in REFUNDABLE_STATUSES:
            raise transition_refused(order.status, REFUND_REQUESTED)
        settings = repo.settings()
        if settings.refund_window_days == 0:
            raise errors.RefundNotAllowed("this merchant does not take refunds (refund_window_days is 0)",
                                          details={"order_id": order_id})
        if order.paid_at is not None and uow.now() > order.paid_at + timedelta(days=settings.refund_window_days):
            closed = (order.paid_at + timedelta(days=settings.refund_window_days)).date().isoformat()
            raise errors.RefundNotAllowed(f"the refund window of this order closed on {closed}",
                                          details={"order_id": order_id, "window_closed_on": closed})
        taken = refunds.refunded_quantities(order_id)
        wanted = _wanted(order, taken, items)
        everything = all(taken.get(line.product_id, 0) + wanted.get(line.product_id, 0) == line.quantity
                         for line in order.lines)
        if not everything and not settings.allow_partial_refunds:
            raise errors.RefundNotAllowed("this merchant refunds whole orders only (allow_partial_refunds is off)",
                                          details={"order_id": order_id})
        prices = {line.product_id: line.unit_price for line in order.lines}
        lines_amount = sum(prices[p] * q for p, q in wanted.items())
        # Discounts are shared in proportion; the last refund takes the rest, so refunds add up to what was paid.
        amount = (order.paid_amount - refunds.refunded_amount(order_id) if everything
                  else lines_amount * order.paid_amount // max(order.total_amount, 1))
        if not repo.move(order_id, order.status, REFUND_REQUESTED):
            raise transition_refused(repo.status_of(order_id) or order.status, REFUND_REQUESTED)
        refund_id = ids.new_id("rfd")
        refunds.add(refund_id, order_id, order.status, amount, reason,
                    {p: (q, prices[p] * q) for p, q in wanted.items()})
        repo.add_history(order_id, order.status, REFUND_REQUESTED, actor_of(caller), reason)
        uow.commit()
    log.info("refund requested", extra={"order_id": order_id, "refund_id": refund_id, "amount": amount})
    return refund_id


def refund_order(db: Database, upstreams: Upstreams, settings: PaymentSettings, caller: Caller, order_id: str,
                 items: list[tuple[str, int]], reason: str) -> RefundResult:
    reason = normalize_cancel_reason(reason or "customer_request")
    refund_id = _claim(db, caller, order_id, items, reason)
    with db.unit_of_work() as uow:
        order = _must_get(OrdersRepository(uow, caller), caller, order_id)
        refunds = RefundsRepository(uow, caller)
        refund, wanted = refunds.get(refund_id), refunds.lines(refund_id)
        allow_expired = OrdersRepository(uow, caller).settings().refund_expired_coupons
    assert refund is not None
    kinds = {line.product_id: line.product_kind for line in order.lines}
    virtual_lines = [(p, q) for p, q in sorted(wanted.items()) if kinds.get(p) == "virtual"]
    if virtual_lines:
        try:
            upstreams.catalog.withdraw_deliveries(order_id, refund_id, virtual_lines)
        except DomainError as error:
            if is_refusal(error):
                _refuse(db, caller, order_id, refund_id, refund.previous_status, error)
            raise  # no answer: the refund stays in flight; calling again resumes it
    coupon_lines = [(p, q) for p, q in sorted(wanted.items()) if kinds.get(p) == "coupon"]
    voided: list[str] = []
    if coupon_lines:
        if upstreams.redemption is None:
            raise errors.RefundNotAllowed("refunds of coupons need the redemption service", details={})
        try:
            voided = upstreams.redemption.void_order_coupons(order_id, refund_id, coupon_lines, allow_expired)
        except DomainError as error:
            if is_refusal(error):
                if virtual_lines:
                    # Without an answer this raises and the refund stays in flight: calling again redoes the
                    # void, is refused again and retries the restore (the catalog restores once per refund).
                    restored = upstreams.catalog.restore_deliveries(order_id, refund_id)
                    log.info("withdrawal restored", extra={"order_id": order_id, "refund_id": refund_id,
                                                           "units": sum(restored.values())})
                _refuse(db, caller, order_id, refund_id, refund.previous_status, error)
            raise  # no answer: the refund stays in flight; calling again resumes it
    money_status = None
    if order.channel in PROVIDER_CHANNELS:
        money_status = payments.refund_through_channel(db, settings, caller, order, refund_id, refund.amount)
    return _finish(db, caller, order_id, refund_id, refund.previous_status, refund.amount, reason, wanted, voided,
                   money_status)


def _refuse(db: Database, caller: Caller, order_id: str, refund_id: str, previous_status: str,
            cause: DomainError) -> None:
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, caller)
        if RefundsRepository(uow, caller).finish(refund_id, "refused", []):
            repo.move(order_id, REFUND_REQUESTED, previous_status)
            repo.add_history(order_id, REFUND_REQUESTED, previous_status, actor_of(caller), "refund_refused")
        uow.commit()
    log.info("refund refused", extra={"order_id": order_id, "refund_id": refund_id, "code": cause.code})
    raise errors.RefundRefused(f"refund refused: {cause.message}",
                               details={**cause.details, "refused_because": cause.code, "refund_id": refund_id})


def _finish(db: Database, caller: Caller, order_id: str, refund_id: str, previous_status: str, amount: int,
            reason: str, wanted: dict[str, int], voided: list[str], money_status: str | None) -> RefundResult:
    with db.unit_of_work() as uow:
        repo, refunds = OrdersRepository(uow, caller), RefundsRepository(uow, caller)
        order = _must_get(repo, caller, order_id)
        if money_status is not None:
            payments.record_refund_answer(uow, caller, refund_id, order_id, money_status)
        finished = refunds.finish(refund_id, "succeeded", voided)
        if finished:
            taken = refunds.refunded_quantities(order_id)
            nothing_left = all(taken.get(line.product_id, 0) >= line.quantity for line in order.lines)
            target = REFUNDED if nothing_left else previous_status
            repo.move(order_id, REFUND_REQUESTED, target)
            repo.add_history(order_id, REFUND_REQUESTED, target, actor_of(caller), "refunded" if nothing_left
                             else "partially_refunded")
            refunded_lines = [OrderLine(line.product_id, line.product_name, line.product_kind, line.category_id,
                                        wanted[line.product_id], line.unit_price, line.coupon)
                              for line in order.lines if line.product_id in wanted]
            uow.add_event(messages.order_refunded(order, refund_id, refunded_lines, amount, reason, uow.now()))
        uow.commit()
        if finished:
            log.info("order refunded", extra={"order_id": order_id, "refund_id": refund_id, "amount": amount,
                                              "money_status": money_status})
        row = refunds.get(refund_id)
        status = repo.status_of(order_id) or order.status
    return RefundResult(refund_id, order_id, "succeeded", amount, wanted, reason, voided, status,
                        (row.provider_status if row is not None else None) or "")
