"""Redemption use cases: issue coupons for a paid order, list an order's coupons, redeem a code exactly once."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from weika.events.v1 import redemption_pb2 as events
from weika_kit import crypto, ids
from weika_kit.context import Caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.errors import DomainError, InvalidArgument
from weika_kit.protos import to_timestamp
from weika_redemption.adapters.repository import RedemptionRepository
from weika_redemption.domain import codes, errors
from weika_redemption.domain.model import ISSUED, REDEEMED, Coupon, CouponTerms, Redemption
from weika_redemption.metrics import COUPONS_ISSUED, REDEMPTION_ATTEMPTS

log = logging.getLogger(__name__)

CODE_PURPOSE = "coupon-code"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_STORE_ID_LENGTH = 40
MAX_DEVICE_ID_LENGTH = 100


@dataclass(frozen=True)
class PaidCouponLine:
    product_id: str
    category_id: str
    quantity: int
    terms: CouponTerms


@dataclass(frozen=True)
class PaidOrder:
    """The coupon lines of an order-paid event; other lines issue nothing."""

    order_id: str
    merchant_id: str
    mode: str
    customer_id: str
    coupon_lines: list[PaidCouponLine]


@dataclass(frozen=True)
class CouponWithCode:
    coupon: Coupon
    code: str


@dataclass(frozen=True)
class CouponPage:
    coupons: list[CouponWithCode]
    next_page_token: str
    as_of: datetime  # the moment "expired" is judged at


@dataclass(frozen=True)
class RedeemRequest:
    code: str
    store_id: str
    order_amount: int
    device_id: str


def code_fingerprint(code: str) -> str:
    """The lookup key of a code as typed: the same code in any spelling gives the same fingerprint."""
    return crypto.fingerprint(codes.normalize(code), purpose=CODE_PURPOSE)


def _coupon_issued(coupon: Coupon) -> events.CouponIssued:
    return events.CouponIssued(
        coupon_id=coupon.id, merchant_id=coupon.merchant_id, mode=coupon.mode, order_id=coupon.order_id,
        product_id=coupon.product_id, category_id=coupon.category_id, customer_id=coupon.customer_id,
        face_value=coupon.face_value, threshold=coupon.threshold, store_ids=list(coupon.store_ids),
        valid_from=to_timestamp(coupon.valid_from), valid_until=to_timestamp(coupon.valid_until),
        issued_at=to_timestamp(coupon.issued_at))


def issue_coupons(uow: UnitOfWork, caller: Caller, order: PaidOrder, issued_at: datetime) -> list[Coupon]:
    """One coupon per unit of each coupon line. Idempotent per order: units that already have a coupon get none."""
    if order.merchant_id and (order.merchant_id, order.mode) != (caller.merchant_id, caller.mode):
        raise InvalidArgument("the order-paid payload belongs to another merchant or mode than its envelope",
                              code="event_tenant_mismatch", details={"order_id": order.order_id})
    repo = RedemptionRepository(uow, caller)
    issued = []
    # Units are numbered per product across the order's lines, so a replay numbers them the same way.
    next_unit: dict[str, int] = {}
    for line in order.coupon_lines:
        valid_from, valid_until = line.terms.validity_window(issued_at)
        for _ in range(max(line.quantity, 0)):
            unit_index = next_unit.get(line.product_id, 0)
            next_unit[line.product_id] = unit_index + 1
            coupon = Coupon(
                id=ids.new_id("cpn"), merchant_id=caller.merchant_id, mode=caller.mode, order_id=order.order_id,
                product_id=line.product_id, unit_index=unit_index, category_id=line.category_id,
                customer_id=order.customer_id, status=ISSUED, face_value=line.terms.face_value,
                threshold=line.terms.threshold, store_ids=line.terms.store_ids,
                redeem_methods=line.terms.redeem_methods, valid_from=valid_from, valid_until=valid_until,
                issued_at=issued_at)
            code = codes.new_code()
            if repo.add_coupon_once(coupon, code, code_fingerprint(code)):
                uow.add_event(_coupon_issued(coupon))
                issued.append(coupon)
    if issued:
        COUPONS_ISSUED.labels(caller.mode).inc(len(issued))
        log.info("coupons issued", extra={"order_id": order.order_id, "coupons": len(issued)})
    return issued


def _encode_page_token(coupon: Coupon) -> str:
    return base64.urlsafe_b64encode(json.dumps([coupon.product_id, coupon.unit_index]).encode()).decode()


def _decode_page_token(token: str) -> tuple[str, int]:
    try:
        product_id, unit_index = json.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(product_id, str) and isinstance(unit_index, int):
            return product_id, unit_index
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidArgument("page_token is not one this service handed out", code="invalid_page_token",
                          details={"field": "page_token"})


def list_coupons(db: Database, caller: Caller, order_id: str, page_size: int = 0, page_token: str = "") -> CouponPage:
    """The caller's coupons of one order, codes included; another merchant's or mode's order reads as empty."""
    if not order_id:
        raise InvalidArgument("order_id is required", code="order_id_required", details={"field": "order_id"})
    size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
    after = _decode_page_token(page_token) if page_token else None
    with db.unit_of_work() as uow:
        rows = RedemptionRepository(uow, caller).coupons_of_order(order_id, after=after, limit=size + 1)
        now = uow.now()
    page = [CouponWithCode(coupon, code) for coupon, code in rows[:size]]
    token = _encode_page_token(page[-1].coupon) if len(rows) > size else ""
    return CouponPage(page, token, now)


def _check_request(request: RedeemRequest) -> None:
    if not request.store_id:
        raise InvalidArgument("store_id is required", code="store_id_required", details={"field": "store_id"})
    if len(request.store_id) > MAX_STORE_ID_LENGTH:
        raise InvalidArgument("store_id is too long", code="invalid_store_id", details={"field": "store_id"})
    if request.order_amount < 0:
        raise InvalidArgument("order_amount cannot be negative", code="invalid_order_amount",
                              details={"field": "order_amount"})
    if len(request.device_id) > MAX_DEVICE_ID_LENGTH:
        raise InvalidArgument("device_id is too long", code="invalid_device_id", details={"field": "device_id"})


def _coupon_redeemed(coupon: Coupon, redemption: Redemption) -> events.CouponRedeemed:
    return events.CouponRedeemed(
        redemption_id=redemption.id, coupon_id=coupon.id, merchant_id=coupon.merchant_id, mode=coupon.mode,
        order_id=coupon.order_id, product_id=coupon.product_id, category_id=coupon.category_id,
        customer_id=coupon.customer_id, store_id=redemption.store_id, operator_id=redemption.operator_id,
        order_amount=redemption.order_amount, face_value=redemption.face_value,
        redeemed_at=to_timestamp(redemption.redeemed_at))


def redeem_coupon(db: Database, caller: Caller, request: RedeemRequest) -> Redemption:
    """Redeem the coupon with this code at this store, at most once; every attempt is recorded, refused or not."""
    normalized = codes.normalize(request.code)
    fingerprint = crypto.fingerprint(normalized, purpose=CODE_PURPOSE)
    coupon_id: str | None = None
    try:
        _check_request(request)
        if not codes.is_valid(normalized):
            # A typo or a guess: refused by the check symbol alone, before any lookup.
            raise errors.CouponNotFound("No coupon has this code")
        with db.unit_of_work() as uow:
            repo = RedemptionRepository(uow, caller)
            coupon = repo.find_by_fingerprint(fingerprint)
            if coupon is None:
                raise errors.CouponNotFound("No coupon has this code")
            coupon_id = coupon.id
            now = uow.now()
            coupon.check_redeemable(store_id=request.store_id, order_amount=request.order_amount,
                                    caller_store_ids=caller.store_ids, now=now)
            if not repo.mark_redeemed(coupon.id, at=now, store_id=request.store_id, operator_id=caller.staff_id):
                _refuse_lost_race(repo, coupon, request, caller, now)
            redemption = Redemption(
                id=ids.new_id("rdm"), coupon_id=coupon.id, store_id=request.store_id, operator_id=caller.staff_id,
                order_amount=request.order_amount, face_value=coupon.face_value, redeemed_at=now)
            repo.add_redemption(redemption)
            repo.add_attempt(fingerprint=fingerprint, coupon_id=coupon.id, store_id=request.store_id,
                             operator_id=caller.staff_id, device_id=request.device_id, result="ok")
            uow.add_event(_coupon_redeemed(coupon, redemption))
            uow.commit()
    except DomainError as refusal:
        _record_refusal(db, caller, request, fingerprint, coupon_id, refusal.code)
        raise
    REDEMPTION_ATTEMPTS.labels(caller.mode, "ok").inc()
    log.info("coupon redeemed", extra={"coupon_id": redemption.coupon_id, "redemption_id": redemption.id,
                                       "store_id": redemption.store_id, "operator_id": redemption.operator_id})
    return redemption


def _refuse_lost_race(repo: RedemptionRepository, coupon: Coupon, request: RedeemRequest, caller: Caller,
                      now: datetime) -> NoReturn:
    """Another counter changed the coupon between our read and our update: refuse with what it did."""
    # A new statement sees the winner's commit (READ COMMITTED; SQLite serialises writers anyway).
    current = repo.get_coupon(coupon.id)
    if current is not None:
        current.check_redeemable(store_id=request.store_id, order_amount=request.order_amount,
                                 caller_store_ids=caller.store_ids, now=now)
    raise errors.CouponAlreadyRedeemed("Coupon already redeemed", details={"coupon_id": coupon.id})


def _record_refusal(db: Database, caller: Caller, request: RedeemRequest, fingerprint: str,
                    coupon_id: str | None, result: str) -> None:
    """The refused attempt, in a transaction of its own: the refusal rolled the redemption back, not its trace."""
    with db.unit_of_work() as uow:
        RedemptionRepository(uow, caller).add_attempt(
            fingerprint=fingerprint, coupon_id=coupon_id, store_id=request.store_id, operator_id=caller.staff_id,
            device_id=request.device_id, result=result)
        uow.commit()
    REDEMPTION_ATTEMPTS.labels(caller.mode, result).inc()
    log.info("redemption refused", extra={"result": result, "coupon_id": coupon_id, "store_id": request.store_id})


# --- voiding for a refund


def void_order_coupons(db: Database, caller: Caller, order_id: str, refund_id: str,
                       lines: list[tuple[str, int]], allow_expired: bool) -> list[str]:
    """Void `quantity` unredeemed coupons per (product, quantity) of the order, all or nothing, for one refund.

    Each coupon is voided by `UPDATE .. WHERE status = 'issued'`: a coupon redeemed at a counter in the same
    instant makes the update miss, and the whole void (and so the refund) is refused naming it.
    """
    if not order_id.strip() or not refund_id.strip():
        raise InvalidArgument("order_id and refund_id are required", code="invalid_void_request",
                              details={"field": "refund_id" if order_id.strip() else "order_id"})
    with db.unit_of_work() as uow:
        repo = RedemptionRepository(uow, caller)
        already = repo.voids_of_refund(refund_id)
        if already:
            return already  # a retry of this refund: what it voided the first time
        now = uow.now()
        voided: list[str] = []
        for product_id, quantity in lines:
            coupons = repo.coupons_of_order_product(order_id, product_id)
            voidable = [c for c in coupons if c.status == ISSUED and (allow_expired or c.valid_until > now)]
            if len(voidable) < quantity:
                _refuse_void(coupons, order_id, product_id, quantity, now)
            for coupon in voidable[:quantity]:
                if not repo.mark_voided(coupon.id):
                    raise errors.CouponAlreadyRedeemed(
                        f"coupon {coupon.id} was redeemed meanwhile and cannot be refunded",
                        details={"coupon_id": coupon.id, "order_id": order_id})
                repo.add_void(refund_id, coupon, now)
                uow.add_event(events.CouponVoided(coupon_id=coupon.id, merchant_id=caller.merchant_id,
                                                  mode=caller.mode, order_id=order_id, reason="order_refunded",
                                                  voided_at=to_timestamp(now)))
                voided.append(coupon.id)
        uow.commit()
    log.info("coupons voided for a refund", extra={"order_id": order_id, "refund_id": refund_id,
                                                    "coupons": len(voided)})
    return voided


def _refuse_void(coupons: list[Coupon], order_id: str, product_id: str, quantity: int, now: datetime) -> NoReturn:
    """Why fewer than `quantity` coupons can be voided, naming the coupon that stands in the way."""
    redeemed = next((c for c in coupons if c.status == REDEEMED), None)
    if redeemed is not None:
        raise errors.CouponAlreadyRedeemed(
            f"coupon {redeemed.id} was redeemed and cannot be refunded",
            details={"coupon_id": redeemed.id, "order_id": order_id, "product_id": product_id})
    expired = next((c for c in coupons if c.status == ISSUED and c.valid_until <= now), None)
    if expired is not None:
        raise errors.CouponExpired(
            f"coupon {expired.id} expired on {expired.valid_until.date().isoformat()} and expired coupons are "
            "not refundable", details={"coupon_id": expired.id, "order_id": order_id, "product_id": product_id})
    raise errors.CouponsNotIssuedYet(
        f"{quantity} coupon(s) of {product_id} are not issued yet for this order; retry shortly",
        details={"order_id": order_id, "product_id": product_id, "issued": str(len(coupons))})
