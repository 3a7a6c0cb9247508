"""Coupons issued for an order and their QR codes, served by the redemption service."""

from __future__ import annotations

import io
from typing import Any

import segno
from flask import Blueprint, Response, request

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


QR_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
QR_SCALE = 8  # pixels per module: about 300 px for a payload of this length, easy for counter scanners


@bp.get("/coupons/<coupon_id>/qr.<fmt>")
@api_key_required
def coupon_qr(coupon_id: str, fmt: str) -> Response:
    """The coupon's signed QR payload (`WK1.<coupon_id>.<code>.<signature>`) as a PNG or SVG image."""
    if fmt not in QR_FORMATS:
        raise invalid("format", "must be qr.png or qr.svg", "choice", choices=[f"qr.{f}" for f in QR_FORMATS])
    coupon = state().clients.redemption(current_caller(), "GetCoupon",
                                        redemption_pb2.GetCouponRequest(coupon_id=coupon_id[:64]))
    image = io.BytesIO()
    segno.make(coupon.qr_payload, error="m").save(image, kind=fmt, scale=QR_SCALE, border=4)
    response = Response(image.getvalue(), mimetype=QR_FORMATS[fmt])
    # The image is a bearer secret: no shared cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response
