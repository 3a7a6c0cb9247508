"""Explicit JSON shapes per resource: money as JSON integers (fen), times as ISO 8601 UTC, unset as null.

No MessageToDict: its JSON mapping renders int64 as strings and drops fields at their default value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from weika.analytics.v1 import analytics_pb2
from weika.catalog.v1 import catalog_pb2
from weika.orders.v1 import orders_pb2
from weika.redemption.v1 import redemption_pb2

Json = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    """"2026-06-18T08:00:00Z" (UTC, whole seconds), or None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts(message: Message, name: str) -> str | None:
    """A Timestamp field as ISO 8601 UTC; None when the field is unset."""
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    if value.seconds == 0 and value.nanos == 0:
        return None
    return iso(value.ToDatetime(tzinfo=UTC))


def text_or_none(value: str) -> str | None:
    return value or None


def merchant(row: Row[Any] | dict[str, Any], mode: str | None = None) -> Json:
    data = row if isinstance(row, dict) else row._mapping
    body: Json = {"id": data["id"], "name": data["name"], "contact": data["contact"],
                  "created_at": iso(data["created_at"])}
    if mode is not None:
        body["mode"] = mode
    return body


def store(row: Row[Any] | dict[str, Any]) -> Json:
    data = row if isinstance(row, dict) else row._mapping
    return {"id": data["id"], "name": data["name"], "code": data["code"], "region": data["region"],
            "address": data["address"], "created_at": iso(data["created_at"])}


def staff_member(row: Row[Any] | dict[str, Any], key_hints: list[str]) -> Json:
    data = row if isinstance(row, dict) else row._mapping
    return {"id": data["id"], "name": data["name"], "role": data["role"],
            "store_ids": [s for s in data["store_ids"].split(",") if s], "active": bool(data["active"]),
            "api_key_hints": key_hints, "created_at": iso(data["created_at"]), "updated_at": iso(data["updated_at"])}


def audit_entry(row: Row[Any]) -> Json:
    return {"id": str(row.id), "at": iso(row.at), "actor_id": row.actor_id, "role": row.role,
            "method": row.method, "path": row.path, "status": row.status, "request_id": row.request_id}


def category(message: catalog_pb2.Category) -> Json:
    return {"id": message.id, "name": message.name, "parent_id": text_or_none(message.parent_id),
            "position": int(message.position), "created_at": ts(message, "created_at")}


def validity(message: catalog_pb2.Validity) -> Json:
    """Only the fields of its mode, so a merchant sees at a glance which rule a coupon follows."""
    if message.mode == "relative":
        return {"mode": "relative", "days": int(message.days), "starts_after_days": int(message.starts_after_days)}
    return {"mode": message.mode, "starts_at": ts(message, "starts_at"), "ends_at": ts(message, "ends_at")}


def coupon_rule(message: catalog_pb2.CouponRule) -> Json:
    return {"face_value": int(message.face_value), "threshold": int(message.threshold),
            "store_ids": list(message.store_ids), "redeem_methods": list(message.redeem_methods),
            "validity": validity(message.validity),
            "discount_rate": int(message.discount_rate) or None, "max_discount": int(message.max_discount) or None,
            "usage_windows": [{"weekdays": list(w.weekdays), "start_hour": int(w.start_hour),
                               "end_hour": int(w.end_hour)} for w in message.usage_windows],
            "max_uses": int(message.max_uses) or 1}


def product(message: catalog_pb2.Product) -> Json:
    unlimited = message.stock.mode == "unlimited"
    return {
        "id": message.id, "kind": message.kind, "name": message.name, "description": message.description,
        "category_id": message.category_id, "price": int(message.price), "on_shelf": bool(message.on_shelf),
        "stock": {"mode": message.stock.mode, "quantity": None if unlimited else int(message.stock.quantity),
                  "reserved": int(message.reserved)},
        "coupon": coupon_rule(message.coupon) if message.HasField("coupon") else None,
        "virtual": virtual_spec(message.virtual) if message.HasField("virtual") else None,
        "physical": {"weight_grams": int(message.physical.weight_grams), "spec": message.physical.spec}
        if message.HasField("physical") else None,
        "purchase_limit": int(message.purchase_limit) or None,
        "images": [product_image(i) for i in message.images],
        "created_at": ts(message, "created_at"), "updated_at": ts(message, "updated_at"),
    }


def product_image(message: catalog_pb2.ProductImage) -> Json:
    """Metadata; the bytes are served at `url`."""
    return {"id": message.id, "url": f"/v1/products/{message.product_id}/images/{message.id}",
            "content_type": message.content_type, "size": int(message.size),
            "width": int(message.width) or None, "height": int(message.height) or None}


def virtual_spec(message: catalog_pb2.VirtualSpec) -> Json:
    card_keys = message.delivery == "card_key"
    return {"delivery": message.delivery, "supplier_sku": text_or_none(message.supplier_sku),
            "low_stock_threshold": int(message.low_stock_threshold),
            "card_keys_available": int(message.card_keys_available) if card_keys else None,
            "low_on_stock": bool(message.low_on_stock)}


def customer(message: orders_pb2.Customer) -> Json:
    return {"id": text_or_none(message.customer_id), "external_id": text_or_none(message.external_id),
            "phone": text_or_none(message.phone_masked), "birth_year": int(message.birth_year) or None,
            "region": text_or_none(message.region), "tags": list(message.tags)}


def coupon_terms(message: orders_pb2.CouponTerms) -> Json:
    terms: Json = {"face_value": int(message.face_value), "threshold": int(message.threshold),
                   "store_ids": list(message.store_ids), "redeem_methods": list(message.redeem_methods)}
    if message.validity_mode == "relative":
        terms["validity"] = {"mode": "relative", "days": int(message.validity_days),
                             "starts_after_days": int(message.starts_after_days)}
    else:
        terms["validity"] = {"mode": message.validity_mode, "starts_at": ts(message, "starts_at"),
                             "ends_at": ts(message, "ends_at")}
    return terms


def order_line(message: orders_pb2.OrderLine) -> Json:
    return {"product_id": message.product_id, "product_name": message.product_name,
            "product_kind": message.product_kind, "category_id": message.category_id,
            "quantity": int(message.quantity), "unit_price": int(message.unit_price),
            "line_amount": int(message.line_amount),
            "coupon": coupon_terms(message.coupon) if message.HasField("coupon") else None}


def order_discount(message: orders_pb2.OrderDiscount) -> Json:
    return {"rule_id": message.rule_id, "kind": message.kind, "amount": int(message.amount),
            "description": message.description}


def order(message: orders_pb2.Order) -> Json:
    return {
        "id": message.id, "status": message.status,
        "total_amount": int(message.total_amount), "discount_amount": int(message.discount_amount),
        "payable_amount": int(message.payable_amount), "paid_amount": int(message.paid_amount),
        "customer": customer(message.customer),
        "lines": [order_line(line) for line in message.lines],
        "discounts": [order_discount(d) for d in message.discounts],
        "channel": text_or_none(message.channel), "store_id": text_or_none(message.store_id),
        "created_at": ts(message, "created_at"), "paid_at": ts(message, "paid_at"),
        "updated_at": ts(message, "updated_at"),
        "shipment": {"carrier": message.shipment.carrier, "tracking_number": message.shipment.tracking_number,
                     "shipped_at": ts(message.shipment, "shipped_at")} if message.HasField("shipment") else None,
        "returned_payments": [{"channel": r.channel, "amount": int(r.amount), "status": r.status,
                               "provider_status": text_or_none(r.provider_status),
                               "created_at": ts(r, "created_at")} for r in message.returned_payments],
        "refunds": [{"id": r.id, "status": r.status, "amount": int(r.amount), "reason": r.reason,
                     "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in r.items],
                     "voided_coupon_ids": list(r.voided_coupon_ids), "provider_status": text_or_none(r.provider_status),
                     "created_at": ts(r, "created_at")} for r in message.refunds],
    }


def coupon(message: redemption_pb2.Coupon) -> Json:
    return {
        "id": message.id, "code": message.code, "status": message.status, "order_id": message.order_id,
        "product_id": message.product_id, "customer_id": text_or_none(message.customer_id),
        "face_value": int(message.face_value), "threshold": int(message.threshold),
        "store_ids": list(message.store_ids), "redeem_methods": list(message.redeem_methods),
        "valid_from": ts(message, "valid_from"), "valid_until": ts(message, "valid_until"),
        "issued_at": ts(message, "issued_at"), "redeemed_at": ts(message, "redeemed_at"),
        "redeemed_store_id": text_or_none(message.redeemed_store_id),
        "redeemed_by": text_or_none(message.redeemed_by),
        "uses_total": int(message.uses_total), "uses_left": int(message.uses_left),
        "usage_windows": [{"weekdays": list(w.weekdays), "start_hour": w.start_hour, "end_hour": w.end_hour}
                          for w in message.usage_windows],
        "qr_payload": text_or_none(message.qr_payload),
    }


def redemption(message: redemption_pb2.Redemption) -> Json:
    return {"id": message.id, "coupon_id": message.coupon_id, "store_id": message.store_id,
            "operator_id": text_or_none(message.operator_id), "order_amount": int(message.order_amount),
            "face_value": int(message.face_value), "redeemed_at": ts(message, "redeemed_at"),
            "device_id": text_or_none(message.device_id), "reversed_at": ts(message, "reversed_at"),
            "reversed_by": text_or_none(message.reversed_by),
            "reversal_reason": text_or_none(message.reversal_reason)}


def redemption_attempt(message: redemption_pb2.RedemptionAttempt) -> Json:
    return {"id": int(message.id), "coupon_id": text_or_none(message.coupon_id), "store_id": message.store_id,
            "operator_id": text_or_none(message.operator_id), "device_id": text_or_none(message.device_id),
            "result": message.result, "at": ts(message, "at"), "code_fingerprint": message.code_fingerprint}


def overview(message: analytics_pb2.Overview, start: datetime | None, end: datetime | None) -> Json:
    return {
        "from": iso(start), "to": iso(end),
        "orders_paid": int(message.orders_paid), "gmv": int(message.gmv),
        "coupons_issued": int(message.coupons_issued), "coupons_redeemed": int(message.coupons_redeemed),
        "redemption_rate": float(message.redemption_rate),
        "refunds": int(message.refunds), "refunded_amount": int(message.refunded_amount),
        "redemptions_reversed": int(message.redemptions_reversed),
        "coupons_voided": int(message.coupons_voided),
    }
