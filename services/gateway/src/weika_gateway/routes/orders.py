"""Orders, served by the orders service: creation is idempotent per Idempotency-Key, then payment."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from weika.orders.v1 import orders_pb2
from weika_gateway import serializers
from weika_gateway.adapters.repository import IdempotencyRepository
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.errors import IdempotencyKeyRequired
from weika_gateway.routes import check_stores_known, json_body, payments
from weika_gateway.state import state
from weika_gateway.validation import INT32_MAX, Fields, fingerprint, invalid

log = logging.getLogger(__name__)

bp = Blueprint("orders", __name__, url_prefix="/v1")

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255


def idempotency_key() -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or not key.strip():
        raise IdempotencyKeyRequired(
            f"creating an order needs an {IDEMPOTENCY_HEADER} header (1 to {MAX_IDEMPOTENCY_KEY_LENGTH} "
            "characters) so a retry cannot create it twice", details={"header": IDEMPOTENCY_HEADER})
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise invalid(IDEMPOTENCY_HEADER, f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters", "length",
                      max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    return key


def _customer(fields: Fields) -> orders_pb2.CustomerInput:
    return orders_pb2.CustomerInput(
        external_id=fields.text("external_id", max_length=64),
        phone=fields.optional_text("phone", max_length=32) or "",
        birth_year=fields.optional_integer("birth_year", maximum=9999) or 0,
        region=fields.optional_text("region", max_length=40) or "")


@bp.post("/orders")
@api_key_required
def create_order() -> tuple[dict[str, Any], int]:
    caller = current_caller()
    key = idempotency_key()
    body = json_body()
    fields = Fields(body)
    customer = _customer(fields.object("customer"))
    items = [orders_pb2.OrderItem(product_id=item.text("product_id", max_length=64),
                                  quantity=item.integer("quantity", minimum=1, maximum=INT32_MAX))
             for item in fields.objects("items", min_items=1, max_items=100)]
    store_id = fields.optional_text("store_id", max_length=64)
    if store_id is not None:
        check_stores_known(caller, [store_id])
    request_fingerprint = fingerprint(body)
    order = state().clients.create_order(caller, orders_pb2.CreateOrderRequest(
        idempotency_key=key, request_fingerprint=request_fingerprint, customer=customer, items=items,
        store_id=store_id or ""))
    return serializers.order(order), 201 if _first_answer(key, request_fingerprint, order.id) else 200


def _first_answer(key: str, request_fingerprint: str, order_id: str) -> bool:
    """Record the key; False when it was recorded before (a replay).

    The orders service already answered a replay with the first order: the record only tells the first
    answer (201) from a replay (200), and its primary key settles two concurrent first attempts.
    """
    try:
        with state().db.unit_of_work() as uow:
            IdempotencyRepository(uow, current_caller()).add(
                idempotency_key=key, request_fingerprint=request_fingerprint, order_id=order_id)
            uow.commit()
    except IntegrityError:
        return False
    except SQLAlchemyError:
        # The order exists either way; losing only the 201/200 distinction beats answering 500.
        log.warning("could not record the idempotency key", extra={"order_id": order_id}, exc_info=True)
    return True


@bp.post("/orders/<order_id>/pay")
@api_key_required
def pay_order(order_id: str) -> dict[str, Any]:
    fields = Fields(json_body())
    channel = fields.text("channel", max_length=32)
    order = state().clients.pay_order(current_caller(), orders_pb2.PayOrderRequest(order_id=order_id,
                                                                                   channel=channel))
    body = serializers.order(order)
    if order.HasField("payment_prompt"):
        # wechat / alipay: the order stays pending until the provider's verified notification pays it
        body["payment"] = payments.payment_prompt(order.payment_prompt)
    return body


@bp.get("/orders/<order_id>")
@api_key_required
def get_order(order_id: str) -> dict[str, Any]:
    return serializers.order(state().clients.get_order(current_caller(), order_id))
