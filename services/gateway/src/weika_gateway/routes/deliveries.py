"""What an order delivered: its card keys (卡密) in full for the buyer, units still waiting for a key, top-ups."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from weika.catalog.v1 import catalog_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.state import state

bp = Blueprint("deliveries", __name__, url_prefix="/v1")


@bp.get("/orders/<order_id>/deliveries")
@api_key_required
def list_deliveries(order_id: str) -> dict[str, Any]:
    """The buyer's view (served to the storefront): keys decrypted; `pending` lists units whose keys are
    not loaded yet (they are delivered as soon as keys are loaded). An unknown order has no deliveries."""
    answer = state().clients.catalog(current_caller(), "ListDeliveries",
                                     catalog_pb2.ListDeliveriesRequest(order_id=order_id))
    return {"order_id": order_id,
            "card_keys": [{"product_id": k.product_id, "product_name": k.product_name,
                           "unit_index": int(k.unit_index), "card_number": k.card_number, "password": k.password,
                           "delivered_at": serializers.ts(k, "delivered_at")} for k in answer.card_keys],
            "pending": [{"product_id": p.product_id, "quantity": int(p.quantity)} for p in answer.pending],
            "top_ups": [{"product_id": t.product_id, "product_name": t.product_name, "quantity": int(t.quantity),
                         "account": t.account, "status": t.status,
                         "supplier_reference": serializers.text_or_none(t.supplier_reference),
                         "delivered_at": serializers.ts(t, "delivered_at")} for t in answer.top_ups]}
