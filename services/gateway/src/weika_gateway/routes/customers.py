"""Customers (members), served by the orders service: listed with their totals, shown with their orders."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from weika.orders.v1 import orders_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.routes import json_body
from weika_gateway.state import state
from weika_gateway.validation import digits, invalid

bp = Blueprint("customers", __name__, url_prefix="/v1")

MAX_LIMIT = 100


def customer_summary(message: orders_pb2.CustomerSummary) -> dict[str, Any]:
    return {**serializers.customer(message.customer), "order_count": int(message.order_count),
            "paid_amount": int(message.paid_amount), "first_seen_at": serializers.ts(message, "first_seen_at"),
            "last_order_at": serializers.ts(message, "last_order_at")}


@bp.get("/customers")
@api_key_required
def list_customers() -> dict[str, Any]:
    limit = request.args.get("limit", "20")
    if not digits(limit) or not 1 <= int(limit) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer between 1 and {MAX_LIMIT}", "range", minimum=1, maximum=MAX_LIMIT)
    answer = state().clients.list_customers(current_caller(), orders_pb2.ListCustomersRequest(
        page_size=int(limit), cursor=request.args.get("cursor", "")[:512], region=request.args.get("region", "")[:16],
        tag=request.args.get("tag", "")[:32]))
    return {"data": [customer_summary(c) for c in answer.customers], "next_cursor": answer.next_cursor or None}


@bp.get("/customers/<customer_id>")
@api_key_required
def get_customer(customer_id: str) -> dict[str, Any]:
    answer = state().clients.get_customer(current_caller(), customer_id)
    return {**customer_summary(answer.summary), "orders": [serializers.order(o) for o in answer.orders]}


@bp.put("/customers/<customer_id>/tags")
@api_key_required
def set_customer_tags(customer_id: str) -> dict[str, Any]:
    """Replace the customer's tags: {tags: [..]}, at most 20 of 1..32 characters (checked by the orders service)."""
    tags = json_body().get("tags")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise invalid("tags", "must be a list of strings", "type")
    if len(tags) > 100:  # far past the limit of 20: refused here without a call
        raise invalid("tags", "at most 20 tags", "range", maximum=20)
    return customer_summary(state().clients.set_customer_tags(current_caller(), customer_id, tags))
