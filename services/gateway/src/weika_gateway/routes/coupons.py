"""Coupons issued for an order, served by the redemption service."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from weika.redemption.v1 import redemption_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.state import state
from weika_gateway.validation import invalid

bp = Blueprint("coupons", __name__, url_prefix="/v1")

# One order's coupons are few (one per unit bought); the cap only stops a runaway page chain.
MAX_PAGES = 100


@bp.get("/coupons")
@api_key_required
def list_coupons() -> dict[str, Any]:
    order_id = (request.args.get("order_id") or "").strip()
    if not order_id:
        raise invalid("order_id", "the order_id query parameter is required", "required")
    caller = current_caller()
    coupons: list[dict[str, Any]] = []
    page_token = ""
    for _ in range(MAX_PAGES):
        page = state().clients.list_coupons(
            caller, redemption_pb2.ListCouponsRequest(order_id=order_id, page_token=page_token))
        coupons.extend(serializers.coupon(c) for c in page.coupons)
        page_token = page.next_page_token
        if not page_token:
            break
    return {"data": coupons}
