"""Redemption of a coupon at a store counter (核销), served by the redemption service."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from weika.redemption.v1 import redemption_pb2
from weika_gateway import serializers
from weika_gateway.adapters.repository import StoreRepository
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.errors import StoreNotFound, TooManyAttempts
from weika_gateway.limiter import redemption_limiter
from weika_gateway.routes import body_fields
from weika_gateway.state import state
from weika_kit.errors import RemoteError

bp = Blueprint("redemptions", __name__, url_prefix="/v1")


@bp.post("/redemptions")
@api_key_required
def redeem_coupon() -> tuple[dict[str, Any], int]:
    caller = current_caller()
    fields = body_fields()
    code = fields.text("code", max_length=128)
    store_id = fields.text("store_id", max_length=64)
    order_amount = fields.optional_integer("order_amount") or 0
    device_id = fields.optional_text("device_id", max_length=100) or ""
    with state().db.unit_of_work() as uow:
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
    try:
        redemption = state().clients.redeem_coupon(caller, redemption_pb2.RedeemCouponRequest(
            code=code, store_id=store_id, order_amount=order_amount, device_id=device_id))
    except RemoteError as refusal:
        limiter.record_refusal(caller, store_id, request.remote_addr, refusal.code)
        raise
    return serializers.redemption(redemption), 201
