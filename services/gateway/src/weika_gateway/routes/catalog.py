"""Categories and products, served by the catalog service; the gateway checks the store ids it owns."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from weika.catalog.v1 import catalog_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.routes import body_fields, check_stores_known
from weika_gateway.state import state
from weika_gateway.validation import INT32_MAX, Fields
from weika_kit.context import Caller
from weika_kit.protos import to_timestamp

bp = Blueprint("catalog", __name__, url_prefix="/v1")

PRODUCT_KINDS = ("coupon", "virtual", "physical")
STOCK_MODES = ("limited", "unlimited")
VALIDITY_MODES = ("relative", "fixed")


@bp.post("/categories")
@api_key_required
def create_category() -> tuple[dict[str, Any], int]:
    fields = body_fields()
    request = catalog_pb2.CreateCategoryRequest(name=fields.text("name", max_length=100),
                                                parent_id=fields.optional_text("parent_id", max_length=64) or "")
    return serializers.category(state().clients.create_category(current_caller(), request)), 201


@bp.get("/categories")
@api_key_required
def list_categories() -> dict[str, Any]:
    answer = state().clients.list_categories(current_caller())
    return {"data": [serializers.category(c) for c in answer.categories]}


def _validity(fields: Fields) -> catalog_pb2.Validity:
    mode = fields.text("mode", choices=VALIDITY_MODES)
    if mode == "relative":
        return catalog_pb2.Validity(
            mode=mode, days=fields.integer("days", maximum=INT32_MAX),
            starts_after_days=fields.optional_integer("starts_after_days", maximum=INT32_MAX) or 0)
    return catalog_pb2.Validity(mode=mode, starts_at=to_timestamp(fields.instant("starts_at")),
                                ends_at=to_timestamp(fields.instant("ends_at")))


def _coupon_rule(fields: Fields, caller: Caller) -> catalog_pb2.CouponRule:
    face_value = fields.integer("face_value")
    threshold = fields.optional_integer("threshold") or 0
    # empty or absent: every store of the merchant
    store_ids = fields.strings("store_ids", max_items=1000)
    redeem_methods = fields.strings("redeem_methods", required=True, max_items=2, max_length=16)
    validity = _validity(fields.object("validity"))
    check_stores_known(caller, store_ids)
    return catalog_pb2.CouponRule(face_value=face_value, threshold=threshold, store_ids=store_ids,
                                  redeem_methods=redeem_methods, validity=validity)


@bp.post("/products")
@api_key_required
def create_product() -> tuple[dict[str, Any], int]:
    caller = current_caller()
    fields = body_fields()
    kind = fields.text("kind", choices=PRODUCT_KINDS)
    name = fields.text("name")
    description = fields.optional_text("description", max_length=5000) or ""
    category_id = fields.text("category_id", max_length=64)
    price = fields.integer("price")
    stock = fields.object("stock")
    stock_mode = stock.text("mode", choices=STOCK_MODES)
    quantity = stock.integer("quantity") if stock_mode == "limited" else 0
    coupon = fields.optional_object("coupon")
    request = catalog_pb2.CreateProductRequest(
        kind=kind, name=name, description=description, category_id=category_id, price=price,
        stock=catalog_pb2.StockSpec(mode=stock_mode, quantity=quantity),
        coupon=_coupon_rule(coupon, caller) if coupon is not None else None)
    return serializers.product(state().clients.create_product(caller, request)), 201


@bp.get("/products/<product_id>")
@api_key_required
def get_product(product_id: str) -> dict[str, Any]:
    return serializers.product(state().clients.get_product(current_caller(), product_id))
