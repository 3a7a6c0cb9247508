"""Redemption use cases: issue coupons for a paid order, list them, check and redeem a code exactly once (or N
times), reverse a redemption within the merchant's window, list redemptions and attempts."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from weika.events.v1 import redemption_pb2 as events
from weika_kit import crypto, ids
from weika_kit.context import Caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.errors import DomainError, InvalidArgument
from weika_kit.protos import to_timestamp
from weika_redemption.adapters.repository import RedemptionRepository
from weika_redemption.domain import codes, errors
from weika_redemption.domain.model import ISSUED, REDEEMED, Attempt, Coupon, CouponTerms, Redemption
from weika_redemption.metrics import COUPONS_ISSUED, REDEMPTION_ATTEMPTS

log = logging.getLogger(__name__)

CODE_PURPOSE = "coupon-code"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_STORE_ID_LENGTH = 40
MAX_DEVICE_ID_LENGTH = 100
MAX_QR_PAYLOAD_LENGTH = 200
MAX_REASON_LENGTH = 200
DEFAULT_REVERSAL_WINDOW_MINUTES = 30
MAX_REVERSAL_WINDOW_MINUTES = 7 * 24 * 60
CHECK_PREFIX = "check:"


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
    qr_payload: str = ""

    @property
    def method(self) -> str:
        """How the counter presented the coupon: "qr" (scanned) or "code" (typed)."""
        return "qr" if self.qr_payload else "code"


@dataclass(frozen=True)
class CheckResult:
    """What a redemption would answer, without redeeming: redeemable, or the refusal with its details."""

    redeemable: bool
    coupon: Coupon
    reason_code: str = ""
    message: str = ""
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class RedemptionPage:
    redemptions: list[Redemption]
    next_page_token: str


@dataclass(frozen=True)
class AttemptPage:
    attempts: list[Attempt]
    next_page_token: str


@dataclass(frozen=True)
class ListFilter:
    store_id: str = ""
    operator_id: str = ""
    start: datetime | None = None
    end: datetime | None = None
    page_size: int = 0
    page_token: str = ""


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
        line.terms.validate_usage()
        for _ in range(max(line.quantity, 0)):
            unit_index = next_unit.get(line.product_id, 0)
            next_unit[line.product_id] = unit_index + 1
            coupon = Coupon(
                id=ids.new_id("cpn"), merchant_id=caller.merchant_id, mode=caller.mode, order_id=order.order_id,
                product_id=line.product_id, unit_index=unit_index, category_id=line.category_id,
                customer_id=order.customer_id, status=ISSUED, face_value=line.terms.face_value,
                threshold=line.terms.threshold, store_ids=line.terms.store_ids,
                redeem_methods=line.terms.redeem_methods, valid_from=valid_from, valid_until=valid_until,
                issued_at=issued_at, usage_windows=line.terms.usage_windows, uses_total=line.terms.max_uses,
                uses_left=line.terms.max_uses)
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
    if len(request.qr_payload) > MAX_QR_PAYLOAD_LENGTH:
        raise InvalidArgument("qr_payload is too long", code="invalid_qr_payload", details={"field": "qr_payload"})
    if bool(request.code) == bool(request.qr_payload):
        raise InvalidArgument("give either code or qr_payload", code="code_or_qr_payload_required",
                              details={"field": "code"})


def _resolve_code(request: RedeemRequest) -> tuple[str, str, str | None]:
    """(normalized code, its fingerprint, the coupon id a QR names) of what the counter typed or scanned.

    An edited or foreign QR payload gives an invalid code (so it is refused as coupon_not_found and counted by
    the limiter like any unknown code); its fingerprint still ties repeated tries of one payload together.
    """
    if request.qr_payload:
        parsed = codes.parse_qr(request.qr_payload)
        if parsed is None:
            return "", crypto.fingerprint(request.qr_payload.strip(), purpose=CODE_PURPOSE), None
        coupon_id, normalized = parsed
        return normalized, crypto.fingerprint(normalized, purpose=CODE_PURPOSE), coupon_id
    normalized = codes.normalize(request.code)
    return normalized, crypto.fingerprint(normalized, purpose=CODE_PURPOSE), None


def _find_coupon(repo: RedemptionRepository, normalized: str, fingerprint: str, qr_coupon_id: str | None) -> Coupon:
    if not codes.is_valid(normalized):
        # A typo, a guess or an edited QR: refused by the check symbol or signature alone, before any lookup.
        raise errors.CouponNotFound("No coupon has this code")
    coupon = repo.find_by_fingerprint(fingerprint)
    if coupon is None or (qr_coupon_id is not None and coupon.id != qr_coupon_id):
        raise errors.CouponNotFound("No coupon has this code")
    return coupon


def _coupon_redeemed(coupon: Coupon, redemption: Redemption) -> events.CouponRedeemed:
    return events.CouponRedeemed(
        redemption_id=redemption.id, coupon_id=coupon.id, merchant_id=coupon.merchant_id, mode=coupon.mode,
        order_id=coupon.order_id, product_id=coupon.product_id, category_id=coupon.category_id,
        customer_id=coupon.customer_id, store_id=redemption.store_id, operator_id=redemption.operator_id,
        order_amount=redemption.order_amount, face_value=redemption.face_value,
        redeemed_at=to_timestamp(redemption.redeemed_at))


def redeem_coupon(db: Database, caller: Caller, request: RedeemRequest) -> Redemption:
    """Redeem the coupon with this code (or QR payload) at this store, once per use it has; every attempt is
    recorded, refused or not."""
    normalized, fingerprint, qr_coupon_id = _resolve_code(request)
    coupon_id: str | None = None
    try:
        _check_request(request)
        with db.unit_of_work() as uow:
            repo = RedemptionRepository(uow, caller)
            coupon = _find_coupon(repo, normalized, fingerprint, qr_coupon_id)
            coupon_id = coupon.id
            now = uow.now()
            coupon.check_redeemable(store_id=request.store_id, order_amount=request.order_amount,
                                    caller_store_ids=caller.store_ids, now=now, method=request.method)
            if not repo.mark_redeemed(coupon.id, at=now, store_id=request.store_id, operator_id=caller.staff_id):
                _refuse_lost_race(repo, coupon, request, caller, now)
            redemption = Redemption(
                id=ids.new_id("rdm"), coupon_id=coupon.id, store_id=request.store_id, operator_id=caller.staff_id,
                order_amount=request.order_amount, face_value=coupon.face_value, redeemed_at=now,
                device_id=request.device_id)
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
                                 caller_store_ids=caller.store_ids, now=now, method=request.method)
    raise errors.CouponAlreadyRedeemed("Coupon already redeemed", details={"coupon_id": coupon.id})


def check_coupon(db: Database, caller: Caller, request: RedeemRequest) -> CheckResult:
    """Whether RedeemCoupon would succeed here and now, and if not the exact refusal; changes no coupon.

    Bad input and an unknown code are raised exactly as a redemption raises them (the gateway's limiter counts
    unknown codes of checks and redemptions alike); refusals of a real coupon come back as the result.
    The attempt is logged as `check:ok` or `check:<reason>`.
    """
    normalized, fingerprint, qr_coupon_id = _resolve_code(request)
    coupon_id: str | None = None
    try:
        _check_request(request)
        with db.unit_of_work() as uow:
            coupon = _find_coupon(RedemptionRepository(uow, caller), normalized, fingerprint, qr_coupon_id)
            coupon_id = coupon.id
            now = uow.now()
    except DomainError as refusal:
        _record_refusal(db, caller, request, fingerprint, coupon_id, CHECK_PREFIX + refusal.code)
        raise
    try:
        coupon.check_redeemable(store_id=request.store_id, order_amount=request.order_amount,
                                caller_store_ids=caller.store_ids, now=now, method=request.method)
    except DomainError as refusal:
        _record_refusal(db, caller, request, fingerprint, coupon_id, CHECK_PREFIX + refusal.code)
        return CheckResult(False, coupon, refusal.code, refusal.message, dict(refusal.details or {}))
    _record_refusal(db, caller, request, fingerprint, coupon_id, CHECK_PREFIX + "ok")
    return CheckResult(True, coupon)


def get_coupon(db: Database, caller: Caller, coupon_id: str) -> CouponWithCode:
    """One of the caller's coupons with its code; another merchant's or mode's is not found."""
    with db.unit_of_work() as uow:
        found = RedemptionRepository(uow, caller).coupon_with_code(coupon_id)
    if found is None:
        raise errors.CouponNotFound("No such coupon", details={"coupon_id": coupon_id})
    return CouponWithCode(*found)


def _record_refusal(db: Database, caller: Caller, request: RedeemRequest, fingerprint: str,
                    coupon_id: str | None, result: str) -> None:
    """The refused (or checked) attempt, in a transaction of its own: a refusal rolls the redemption back, not
    its trace."""
    with db.unit_of_work() as uow:
        RedemptionRepository(uow, caller).add_attempt(
            fingerprint=fingerprint, coupon_id=coupon_id, store_id=request.store_id, operator_id=caller.staff_id,
            device_id=request.device_id, result=result)
        uow.commit()
    REDEMPTION_ATTEMPTS.labels(caller.mode, result).inc()
    log.info("redemption refused", extra={"result": result, "coupon_id": coupon_id, "store_id": request.store_id})


# --- reversal


def reversal_window_minutes(db: Database, caller: Caller) -> int:
    with db.unit_of_work() as uow:
        minutes = RedemptionRepository(uow, caller).reversal_window_minutes()
    return DEFAULT_REVERSAL_WINDOW_MINUTES if minutes is None else minutes


def set_reversal_window_minutes(db: Database, caller: Caller, minutes: int) -> int:
    if not 1 <= minutes <= MAX_REVERSAL_WINDOW_MINUTES:
        raise InvalidArgument(f"reversal_window_minutes must be 1..{MAX_REVERSAL_WINDOW_MINUTES}",
                              code="invalid_reversal_window", details={"field": "reversal_window_minutes"})
    with db.unit_of_work() as uow:
        RedemptionRepository(uow, caller).put_reversal_window_minutes(minutes, at=uow.now(), by=caller.staff_id)
        uow.commit()
    log.info("reversal window set", extra={"reversal_window_minutes": minutes, "by": caller.staff_id})
    return minutes


def reverse_redemption(db: Database, caller: Caller, redemption_id: str, reason: str) -> Redemption:
    """Undo a redemption within the merchant's window: one use back on the coupon, audited, CouponReversed.

    Twice-safe: `UPDATE redemptions .. WHERE reversed_at IS NULL` lets one reversal through, and the coupon
    gets its use back by `UPDATE .. WHERE uses_left < uses_total`, in the same transaction.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidArgument("a reason is required", code="reversal_reason_required", details={"field": "reason"})
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidArgument("reason is too long", code="invalid_reversal_reason", details={"field": "reason"})
    with db.unit_of_work() as uow:
        repo = RedemptionRepository(uow, caller)
        redemption = repo.get_redemption(redemption_id)
        if redemption is None or not caller.may_act_at_store(redemption.store_id):
            raise errors.RedemptionNotFound("No such redemption", details={"redemption_id": redemption_id})
        if redemption.reversed_at is not None:
            raise _already_reversed(redemption)
        window = repo.reversal_window_minutes()
        window = DEFAULT_REVERSAL_WINDOW_MINUTES if window is None else window
        now = uow.now()
        deadline = redemption.redeemed_at + timedelta(minutes=window)
        if now > deadline:
            raise errors.ReversalWindowPassed(
                f"Redemptions can be reversed within {window} minutes; this one was at "
                f"{redemption.redeemed_at.isoformat()}",
                details={"redemption_id": redemption.id, "redeemed_at": redemption.redeemed_at.isoformat(),
                         "reversal_window_minutes": window, "deadline": deadline.isoformat()})
        if not repo.mark_reversed(redemption.id, at=now, operator_id=caller.staff_id, reason=reason):
            current = repo.get_redemption(redemption.id)
            raise _already_reversed(current or redemption)
        if not repo.restore_use(redemption.coupon_id):
            raise errors.CouponVoided("The coupon was voided since; the redemption cannot be reversed",
                                      details={"coupon_id": redemption.coupon_id})
        repo.add_reversal(redemption, at=now, operator_id=caller.staff_id, reason=reason)
        uow.add_event(events.CouponReversed(
            redemption_id=redemption.id, coupon_id=redemption.coupon_id, merchant_id=caller.merchant_id,
            mode=caller.mode, store_id=redemption.store_id, operator_id=caller.staff_id, reason=reason,
            reversed_at=to_timestamp(now)))
        reversed_redemption = repo.get_redemption(redemption.id)
        uow.commit()
    assert reversed_redemption is not None
    log.info("redemption reversed", extra={"redemption_id": redemption.id, "coupon_id": redemption.coupon_id,
                                           "operator_id": caller.staff_id})
    return reversed_redemption


def _already_reversed(redemption: Redemption) -> errors.RedemptionAlreadyReversed:
    at = redemption.reversed_at.isoformat() if redemption.reversed_at else ""
    return errors.RedemptionAlreadyReversed(
        "This redemption was already reversed",
        details={"redemption_id": redemption.id, "reversed_at": at, "reversed_by": redemption.reversed_by})


# --- lists


def _page_size(size: int) -> int:
    return DEFAULT_PAGE_SIZE if size <= 0 else min(size, MAX_PAGE_SIZE)


def _check_range(query: ListFilter) -> None:
    if query.start is not None and query.end is not None and query.start >= query.end:
        raise InvalidArgument("from must be before to", code="invalid_time_range", details={"field": "from"})


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _untoken(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidArgument("page_token is not one this service handed out", code="invalid_page_token",
                              details={"field": "page_token"}) from None


def _check_store_filter(caller: Caller, query: ListFilter) -> None:
    if query.store_id and not caller.may_act_at_store(query.store_id):
        raise errors.StoreNotPermitted("you do not work at this store", details={"store_id": query.store_id})


def list_redemptions(db: Database, caller: Caller, query: ListFilter) -> RedemptionPage:
    """The caller's redemptions, newest first; reversed ones included (with reversed_at). Store staff see
    their stores' only."""
    _check_range(query)
    _check_store_filter(caller, query)
    size = _page_size(query.page_size)
    after = None
    if query.page_token:
        value = _untoken(query.page_token)
        try:
            after = (datetime.fromisoformat(value[0]), str(value[1]))
        except (TypeError, ValueError, IndexError, KeyError):
            raise InvalidArgument("page_token is not one this service handed out", code="invalid_page_token",
                                  details={"field": "page_token"}) from None
    with db.unit_of_work() as uow:
        found = RedemptionRepository(uow, caller).list_redemptions(
            store_id=query.store_id, operator_id=query.operator_id, start=query.start, end=query.end,
            after=after, limit=size + 1)
    page = found[:size]
    token = _token([page[-1].redeemed_at.isoformat(), page[-1].id]) if len(found) > size else ""
    return RedemptionPage(page, token)


def list_attempts(db: Database, caller: Caller, query: ListFilter) -> AttemptPage:
    """Every attempt (redemptions and checks, refused or not), newest first. Store staff see their stores' only."""
    _check_range(query)
    _check_store_filter(caller, query)
    size = _page_size(query.page_size)
    after_id = None
    if query.page_token:
        value = _untoken(query.page_token)
        if not isinstance(value, int):
            raise InvalidArgument("page_token is not one this service handed out", code="invalid_page_token",
                                  details={"field": "page_token"})
        after_id = value
    with db.unit_of_work() as uow:
        found = RedemptionRepository(uow, caller).list_attempts(
            store_id=query.store_id, operator_id=query.operator_id, start=query.start, end=query.end,
            after_id=after_id, limit=size + 1)
    page = found[:size]
    return AttemptPage(page, _token(page[-1].id) if len(found) > size else "")


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


def void_refunded_coupons(uow: UnitOfWork, caller: Caller, order_id: str, refund_id: str,
                          lines: list[tuple[str, int]]) -> list[str]:
    """On order-refunded: the money went back, so the refunded units' coupons must not be used any more.

    The orders service voids them through VoidOrderCoupons before it refunds, so this usually finds the refund
    done and changes nothing; it is the safety net for a refund whose void answer was lost. Here the refund is a
    fact, not a request: coupons still issued are voided (expired ones too), and a redeemed one is only logged.
    """
    repo = RedemptionRepository(uow, caller)
    if repo.voids_of_refund(refund_id):
        return []
    now = uow.now()
    voided: list[str] = []
    for product_id, quantity in lines:
        coupons = [c for c in repo.coupons_of_order_product(order_id, product_id) if c.status == ISSUED]
        for coupon in coupons[:quantity]:
            if repo.mark_voided(coupon.id):
                repo.add_void(refund_id, coupon, now)
                uow.add_event(events.CouponVoided(coupon_id=coupon.id, merchant_id=caller.merchant_id,
                                                  mode=caller.mode, order_id=order_id, reason="order_refunded",
                                                  voided_at=to_timestamp(now)))
                voided.append(coupon.id)
        if len(coupons) < quantity:
            log.warning("refunded coupons already used or not issued", extra={
                "order_id": order_id, "refund_id": refund_id, "product_id": product_id,
                "refunded": quantity, "voidable": len(coupons)})
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
