"""Redemption at a store counter (核销): check, redeem (code or signed QR), reverse, the redemption and attempt
lists and the reversal-window setting, served by the redemption service."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request

from weika.redemption.v1 import redemption_pb2
from weika_gateway import serializers
from weika_gateway.adapters.repository import StoreRepository
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.errors import StoreNotFound, TooManyAttempts
from weika_gateway.limiter import RedemptionLimiter, redemption_limiter
from weika_gateway.routes import body_fields
from weika_gateway.state import state
from weika_gateway.validation import digits, invalid, query_instant
from weika_kit.context import Caller
from weika_kit.errors import RemoteError
from weika_kit.protos import to_timestamp

bp = Blueprint("redemptions", __name__, url_prefix="/v1")

MAX_LIMIT = 100
MAX_REVERSAL_WINDOW_MINUTES = 7 * 24 * 60


def _guard(caller: Caller, store_id: str) -> RedemptionLimiter:
    """The store must be the caller's, and the caller not blocked for guessing; returns the limiter to count with."""
    with state().db.unit_of_work(read_only=True) as uow:
        store = StoreRepository(uow, caller).get(store_id)
    # Another merchant's store, a store of the other mode, or one the caller may not act at: all look absent.
    if store is None or not caller.may_act_at_store(store_id):
        raise StoreNotFound(f"store {store_id} does not exist", details={"store_id": store_id})
    # Checked after the store lookup, so limiter keys only ever hold the ids of real stores.
    limiter = redemption_limiter()
    block = limiter.check(caller, store_id, request.remote_addr)
    if block is not None:
        raise TooManyAttempts(
            f"too many unknown coupon codes (limited per {block.scope}); "
            f"try again in {block.retry_after_s} seconds",
            retry_after_s=block.retry_after_s, details={"scope": block.scope})
    return limiter


@bp.post("/redemptions")
@api_key_required
def redeem_coupon() -> tuple[dict[str, Any], int]:
    caller = current_caller()
    fields = body_fields()
    code = fields.optional_text("code", max_length=128) or ""
    qr_payload = fields.optional_text("qr_payload", max_length=200) or ""
    if bool(code) == bool(qr_payload):
        raise invalid("code", "give either code or qr_payload", "required")
    store_id = fields.text("store_id", max_length=64)
    order_amount = fields.optional_integer("order_amount") or 0
    device_id = fields.optional_text("device_id", max_length=100) or ""
    limiter = _guard(caller, store_id)
    try:
        redemption = state().clients.redeem_coupon(caller, redemption_pb2.RedeemCouponRequest(
            code=code, qr_payload=qr_payload, store_id=store_id, order_amount=order_amount, device_id=device_id))
    except RemoteError as refusal:
        limiter.record_refusal(caller, store_id, request.remote_addr, refusal.code)
        raise
    return serializers.redemption(redemption), 201


@bp.get("/coupons/<code>/check")
@api_key_required
def check_coupon(code: str) -> dict[str, Any]:
    """Would this code be redeemed here and now? 200 with the exact reason either way; an unknown code is 404
    `coupon_not_found` and counts against the limiter exactly like a redemption of it."""
    caller = current_caller()
    args = request.args
    store_id = args.get("store_id", "").strip()
    if not store_id:
        raise invalid("store_id", "the store_id query parameter is required", "required")
    if len(store_id) > 64 or len(code) > 128:
        raise invalid("store_id" if len(store_id) > 64 else "code", "too long", "length")
    raw_amount = args.get("order_amount", "0").strip() or "0"
    if not digits(raw_amount) or int(raw_amount) > 2**62:
        raise invalid("order_amount", "must be a whole number of fen, 0 or more", "type", expected="integer")
    limiter = _guard(caller, store_id)
    try:
        answer = state().clients.redemption(caller, "CheckCoupon", redemption_pb2.CheckCouponRequest(
            code=code, store_id=store_id, order_amount=int(raw_amount)))
    except RemoteError as refusal:
        limiter.record_refusal(caller, store_id, request.remote_addr, refusal.code)
        raise
    coupon = serializers.coupon(answer.coupon)
    coupon.pop("code", None)  # the caller typed it; the check never echoes a bearer secret
    coupon.pop("qr_payload", None)
    return {"redeemable": answer.redeemable, "reason_code": answer.reason_code or None,
            "message": answer.message or None, "details": json.loads(answer.details_json or "{}"),
            "coupon": coupon}


@bp.post("/redemptions/<redemption_id>/reverse")
@api_key_required
def reverse_redemption(redemption_id: str) -> dict[str, Any]:
    fields = body_fields()
    reason = fields.text("reason", max_length=200)
    answer = state().clients.redemption(current_caller(), "ReverseRedemption", redemption_pb2.ReverseRedemptionRequest(
        redemption_id=redemption_id[:64], reason=reason))
    return serializers.redemption(answer)


def _list_request() -> redemption_pb2.ListRedemptionsRequest:
    args = request.args
    limit = args.get("limit", "20")
    if not digits(limit) or not 1 <= int(limit) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer between 1 and {MAX_LIMIT}", "range", minimum=1, maximum=MAX_LIMIT)
    listing = redemption_pb2.ListRedemptionsRequest(
        store_id=args.get("store_id", "")[:64], operator_id=args.get("operator_id", "")[:64],
        page_size=int(limit), page_token=args.get("cursor", "")[:512])
    start, end = query_instant(args, "from"), query_instant(args, "to", end_of_day=True)
    if start is not None:
        getattr(listing, "from").CopyFrom(to_timestamp(start))
    if end is not None:
        listing.to.CopyFrom(to_timestamp(end))
    return listing


@bp.get("/redemptions")
@api_key_required
def list_redemptions() -> dict[str, Any]:
    """Newest first; filters store_id, operator_id, from/to (ISO dates or datetimes, [from, to)); `limit` 1..100
    (20) and the opaque `cursor` from `next_cursor`."""
    answer = state().clients.redemption(current_caller(), "ListRedemptions", _list_request())
    return {"data": [serializers.redemption(r) for r in answer.redemptions],
            "next_cursor": answer.next_page_token or None}


@bp.get("/redemption-attempts")
@api_key_required
def list_redemption_attempts() -> dict[str, Any]:
    """Every redemption and check attempt, refused or not, newest first; the same filters as /v1/redemptions."""
    answer = state().clients.redemption(current_caller(), "ListRedemptionAttempts", _list_request())
    return {"data": [serializers.redemption_attempt(a) for a in answer.attempts],
            "next_cursor": answer.next_page_token or None}


@bp.get("/settings/redemption")
@api_key_required
def get_redemption_settings() -> dict[str, Any]:
    answer = state().clients.redemption(current_caller(), "GetRedemptionSettings",
                                        redemption_pb2.GetRedemptionSettingsRequest())
    return {"reversal_window_minutes": answer.reversal_window_minutes}


@bp.put("/settings/redemption")
@api_key_required
def put_redemption_settings() -> dict[str, Any]:
    minutes = body_fields().integer("reversal_window_minutes", minimum=1, maximum=MAX_REVERSAL_WINDOW_MINUTES)
    answer = state().clients.redemption(current_caller(), "UpdateRedemptionSettings",
                                        redemption_pb2.RedemptionSettings(reversal_window_minutes=minutes))
    return {"reversal_window_minutes": answer.reversal_window_minutes}
