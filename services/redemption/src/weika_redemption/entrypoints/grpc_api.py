"""The redemption service's gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

from datetime import datetime

from weika.redemption.v1 import redemption_pb2 as pb
from weika.redemption.v1 import redemption_pb2_grpc
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import to_timestamp
from weika_redemption.domain.model import Redemption
from weika_redemption.service_layer import services


def coupon_to_pb(item: services.CouponWithCode, as_of: datetime) -> pb.Coupon:
    c = item.coupon
    return pb.Coupon(
        id=c.id, code=item.code, status=c.status_at(as_of), order_id=c.order_id, product_id=c.product_id,
        customer_id=c.customer_id, face_value=c.face_value, threshold=c.threshold, store_ids=list(c.store_ids),
        redeem_methods=list(c.redeem_methods), valid_from=to_timestamp(c.valid_from),
        valid_until=to_timestamp(c.valid_until), issued_at=to_timestamp(c.issued_at),
        redeemed_at=to_timestamp(c.redeemed_at), redeemed_store_id=c.redeemed_store_id or "")


def redemption_to_pb(r: Redemption) -> pb.Redemption:
    return pb.Redemption(id=r.id, coupon_id=r.coupon_id, store_id=r.store_id, operator_id=r.operator_id,
                         order_amount=r.order_amount, redeemed_at=to_timestamp(r.redeemed_at),
                         face_value=r.face_value)


class RedemptionServicer(redemption_pb2_grpc.RedemptionServiceServicer):
    def __init__(self, db: Database):
        self.db = db

    def ListCoupons(self, request: pb.ListCouponsRequest, context) -> pb.ListCouponsResponse:  # noqa: N802
        page = services.list_coupons(self.db, require_caller(), request.order_id, request.page_size,
                                     request.page_token)
        return pb.ListCouponsResponse(coupons=[coupon_to_pb(item, page.as_of) for item in page.coupons],
                                      next_page_token=page.next_page_token)

    def RedeemCoupon(self, request: pb.RedeemCouponRequest, context) -> pb.Redemption:  # noqa: N802
        redemption = services.redeem_coupon(self.db, require_caller(), services.RedeemRequest(
            code=request.code, store_id=request.store_id, order_amount=request.order_amount,
            device_id=request.device_id))
        return redemption_to_pb(redemption)

    def VoidOrderCoupons(self, request: pb.VoidOrderCouponsRequest,  # noqa: N802
                         context) -> pb.VoidOrderCouponsResponse:
        voided = services.void_order_coupons(
            self.db, require_caller(), request.order_id, request.refund_id,
            [(line.product_id, line.quantity) for line in request.lines], request.allow_expired)
        return pb.VoidOrderCouponsResponse(coupon_ids=voided)
