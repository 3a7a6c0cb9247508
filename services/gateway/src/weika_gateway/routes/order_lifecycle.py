"""Orders after creation: cancel, ship, refund, history, the filtered and paginated list, status counts, settings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from weika.orders.v1 import orders_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.routes import body_fields, json_body
from weika_gateway.state import state
from weika_gateway.validation import INT32_MAX, Fields, digits, invalid, query_instant
from weika_kit.protos import to_timestamp

bp = Blueprint("order_lifecycle", __name__, url_prefix="/v1")

STATUSES = ("pending_payment", "paid", "delivered", "awaiting_shipment", "shipped", "completed", "cancelled",
            "refund_requested", "refunded")
MAX_LIMIT = 100


@bp.post("/orders/<order_id>/cancel")
@api_key_required
def cancel_order(order_id: str) -> dict[str, Any]:
    reason = Fields(json_body()).optional_text("reason", max_length=64) if request.get_data() else None
    order = state().clients.cancel_order(current_caller(), orders_pb2.CancelOrderRequest(order_id=order_id,
                                                                                         reason=reason or ""))
    return serializers.order(order)


@bp.post("/orders/<order_id>/ship")
@api_key_required
def ship_order(order_id: str) -> dict[str, Any]:
    fields = body_fields()
    order = state().clients.ship_order(current_caller(), orders_pb2.ShipOrderRequest(
        order_id=order_id, carrier=fields.text("carrier", max_length=64),
        tracking_number=fields.text("tracking_number", max_length=64)))
    return serializers.order(order)


@bp.post("/orders/<order_id>/refund")
@api_key_required
def refund_order(order_id: str) -> dict[str, Any]:
    fields = Fields(json_body()) if request.get_data() else Fields({})
    items = [orders_pb2.OrderItem(product_id=item.text("product_id", max_length=64),
                                  quantity=item.integer("quantity", minimum=1, maximum=INT32_MAX))
             for item in fields.objects("items", max_items=100)] if fields.data.get("items") is not None else []
    answer = state().clients.refund_order(current_caller(), orders_pb2.RefundOrderRequest(
        order_id=order_id, items=items, reason=fields.optional_text("reason", max_length=64) or ""))
    return {"id": answer.id, "order_id": answer.order_id, "status": answer.status, "amount": int(answer.amount),
            "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in answer.items],
            "reason": answer.reason, "voided_coupon_ids": list(answer.voided_coupon_ids),
            "order_status": answer.order_status, "provider_status": serializers.text_or_none(answer.provider_status)}


@bp.get("/orders/<order_id>/history")
@api_key_required
def order_history(order_id: str) -> dict[str, Any]:
    answer = state().clients.order_history(current_caller(), order_id)
    return {"order_id": answer.order_id, "data": [
        {"from_status": t.from_status, "to_status": t.to_status, "actor": t.actor, "reason": t.reason,
         "at": serializers.ts(t, "at")} for t in answer.transitions]}


def _filters() -> orders_pb2.ListOrdersRequest:
    args = request.args
    status = args.get("status", "")
    if status and status not in STATUSES:
        raise invalid("status", f"must be one of {', '.join(STATUSES)}", "choice", choices=list(STATUSES))
    created_from, created_to = query_instant(args, "from"), query_instant(args, "to", end_of_day=True)
    filters = orders_pb2.ListOrdersRequest(
        status=status, store_id=args.get("store_id", "")[:64], customer_id=args.get("customer_id", "")[:64],
        product_id=args.get("product_id", "")[:64])
    if created_from is not None:
        filters.created_from.CopyFrom(to_timestamp(created_from))
    if created_to is not None:
        filters.created_to.CopyFrom(to_timestamp(created_to))
    return filters


@bp.get("/orders")
@api_key_required
def list_orders() -> dict[str, Any]:
    filters = _filters()
    limit = request.args.get("limit", "20")
    if not digits(limit) or not 1 <= int(limit) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer between 1 and {MAX_LIMIT}", "range", minimum=1, maximum=MAX_LIMIT)
    filters.page_size = int(limit)
    filters.cursor = request.args.get("cursor", "")[:512]
    answer = state().clients.list_orders(current_caller(), filters)
    return {"data": [serializers.order(o) for o in answer.orders], "next_cursor": answer.next_cursor or None}


@bp.get("/orders/counts")
@api_key_required
def count_orders() -> dict[str, Any]:
    answer = state().clients.count_orders(current_caller(), _filters())
    return {"by_status": {status: int(answer.by_status.get(status, 0)) for status in STATUSES},
            "total": int(answer.total)}


def _order_settings(message: orders_pb2.OrderSettings) -> dict[str, Any]:
    return {"auto_cancel_minutes": message.auto_cancel_minutes, "auto_confirm_days": message.auto_confirm_days,
            "refund_window_days": message.refund_window_days,
            "refund_expired_coupons": message.refund_expired_coupons,
            "allow_partial_refunds": message.allow_partial_refunds, "updated_at": serializers.ts(message, "updated_at")}


def _boolean(fields: Fields, name: str, default: bool) -> bool:
    value = fields.data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(fields.field(name), "must be true or false", "type", expected="boolean")
    return value


@bp.get("/settings/orders")
@api_key_required
def get_order_settings() -> dict[str, Any]:
    return _order_settings(state().clients.get_order_settings(current_caller()))


@bp.put("/settings/orders")
@api_key_required
def put_order_settings() -> dict[str, Any]:
    fields = body_fields()
    current = state().clients.get_order_settings(current_caller())
    # absent fields keep their current value, so a client may send only what it changes
    wanted = orders_pb2.OrderSettings(
        auto_cancel_minutes=fields.optional_integer("auto_cancel_minutes", minimum=1, maximum=10080)
        or current.auto_cancel_minutes,
        auto_confirm_days=fields.optional_integer("auto_confirm_days", minimum=1, maximum=90)
        or current.auto_confirm_days,
        refund_window_days=_optional(fields.optional_integer("refund_window_days", maximum=365),
                                     current.refund_window_days),
        refund_expired_coupons=_boolean(fields, "refund_expired_coupons", current.refund_expired_coupons),
        allow_partial_refunds=_boolean(fields, "allow_partial_refunds", current.allow_partial_refunds))
    return _order_settings(state().clients.put_order_settings(current_caller(), wanted))


def _optional(value: int | None, default: int) -> int:
    return default if value is None else value
