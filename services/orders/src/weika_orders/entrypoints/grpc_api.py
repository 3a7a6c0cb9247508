"""The orders service's gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

from weika.orders.v1 import orders_pb2 as pb
from weika.orders.v1 import orders_pb2_grpc
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import to_timestamp
from weika_orders.domain.model import CouponTerms, NewOrder, Order
from weika_orders.service_layer import services
from weika_orders.service_layer.services import Upstreams


def _terms_to_pb(terms: CouponTerms | None) -> pb.CouponTerms | None:
    if terms is None:
        return None
    return pb.CouponTerms(
        face_value=terms.face_value, threshold=terms.threshold, store_ids=list(terms.store_ids),
        redeem_methods=list(terms.redeem_methods), validity_mode=terms.validity_mode,
        validity_days=terms.validity_days, starts_after_days=terms.starts_after_days,
        starts_at=to_timestamp(terms.starts_at), ends_at=to_timestamp(terms.ends_at))


def order_to_pb(order: Order) -> pb.Order:
    c = order.customer
    return pb.Order(
        id=order.id, status=order.status,
        customer=pb.Customer(customer_id=c.id, external_id=c.external_id, phone_masked=c.phone_masked,
                             birth_year=c.birth_year or 0, region=c.region or ""),
        lines=[pb.OrderLine(product_id=line.product_id, product_name=line.product_name,
                            product_kind=line.product_kind, category_id=line.category_id, quantity=line.quantity,
                            unit_price=line.unit_price, line_amount=line.line_amount,
                            coupon=_terms_to_pb(line.coupon))
               for line in order.lines],
        total_amount=order.total_amount, discount_amount=order.discount_amount,
        payable_amount=order.payable_amount, paid_amount=order.paid_amount, channel=order.channel,
        store_id=order.store_id, created_at=to_timestamp(order.created_at), paid_at=to_timestamp(order.paid_at),
        updated_at=to_timestamp(order.updated_at),
        discounts=[pb.OrderDiscount(rule_id=d.rule_id, kind=d.kind, amount=d.amount, description=d.description)
                   for d in order.discounts])


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, db: Database, upstreams: Upstreams):
        self.db = db
        self.upstreams = upstreams

    def CreateOrder(self, request: pb.CreateOrderRequest, context) -> pb.Order:  # noqa: N802
        caller = require_caller()
        new = NewOrder.parse(
            idempotency_key=request.idempotency_key, request_fingerprint=request.request_fingerprint,
            external_id=request.customer.external_id, phone=request.customer.phone,
            birth_year=request.customer.birth_year, region=request.customer.region,
            items=[(item.product_id, item.quantity) for item in request.items], store_id=request.store_id,
            current_year=self.db.clock().year)
        return order_to_pb(services.create_order(self.db, self.upstreams, caller, new))

    def PayOrder(self, request: pb.PayOrderRequest, context) -> pb.Order:  # noqa: N802
        return order_to_pb(services.pay_order(self.db, require_caller(), request.order_id, request.channel))

    def GetOrder(self, request: pb.GetOrderRequest, context) -> pb.Order:  # noqa: N802
        return order_to_pb(services.get_order(self.db, require_caller(), request.order_id))

    def CancelOrder(self, request: pb.CancelOrderRequest, context) -> pb.Order:  # noqa: N802
        return order_to_pb(services.cancel_order(self.db, self.upstreams, require_caller(), request.order_id,
                                                 request.reason))
