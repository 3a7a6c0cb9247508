"""The redemption service's gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

import json
from datetime import datetime

from weika.redemption.v1 import redemption_pb2 as pb
from weika.redemption.v1 import redemption_pb2_grpc
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import from_timestamp, to_timestamp
from weika_redemption.domain import codes
from weika_redemption.domain.model import Attempt, Coupon, Redemption
from weika_redemption.service_layer import services

ATTEMPT_FINGERPRINT_CHARS = 12


def _coupon_fields(c: Coupon, as_of: datetime) -> pb.Coupon:
    return pb.Coupon(
        id=c.id, status=c.status_at(as_of), order_id=c.order_id, product_id=c.product_id,
        customer_id=c.customer_id, face_value=c.face_value, threshold=c.threshold, store_ids=list(c.store_ids),
        redeem_methods=list(c.redeem_methods), valid_from=to_timestamp(c.valid_from),
        valid_until=to_timestamp(c.valid_until), issued_at=to_timestamp(c.issued_at),
        redeemed_at=to_timestamp(c.redeemed_at), redeemed_store_id=c.redeemed_store_id or "",
        usage_windows=[pb.UsageWindow(weekdays=list(w.weekdays), start_hour=w.start_hour, end_hour=w.end_hour)
                       for w in c.usage_windows],
        uses_total=c.uses_total, uses_left=c.uses_left, redeemed_by=c.redeemed_by or "")


def coupon_to_pb(item: services.CouponWithCode, as_of: datetime) -> pb.Coupon:
    message = _coupon_fields(item.coupon, as_of)
    message.code = item.code
    message.qr_payload = codes.qr_payload(item.coupon.id, item.code)
    return message


def redemption_to_pb(r: Redemption) -> pb.Redemption:
    return pb.Redemption(id=r.id, coupon_id=r.coupon_id, store_id=r.store_id, operator_id=r.operator_id,
                         order_amount=r.order_amount, redeemed_at=to_timestamp(r.redeemed_at),
                         face_value=r.face_value, reversed_at=to_timestamp(r.reversed_at),
                         reversed_by=r.reversed_by, reversal_reason=r.reversal_reason, device_id=r.device_id)


def attempt_to_pb(a: Attempt) -> pb.RedemptionAttempt:
    return pb.RedemptionAttempt(id=a.id, coupon_id=a.coupon_id or "", store_id=a.store_id, operator_id=a.operator_id,
                                device_id=a.device_id, result=a.result, at=to_timestamp(a.at),
                                code_fingerprint=a.code_fingerprint[:ATTEMPT_FINGERPRINT_CHARS])


def _redeem_request(request: pb.RedeemCouponRequest | pb.CheckCouponRequest) -> services.RedeemRequest:
    return services.RedeemRequest(code=request.code, store_id=request.store_id, order_amount=request.order_amount,
                                  device_id=request.device_id, qr_payload=request.qr_payload)


def _list_filter(request: pb.ListRedemptionsRequest) -> services.ListFilter:
    return services.ListFilter(
        store_id=request.store_id, operator_id=request.operator_id,
        start=from_timestamp(getattr(request, "from"), present=request.HasField("from")),
        end=from_timestamp(request.to, present=request.HasField("to")),
        page_size=request.page_size, page_token=request.page_token)


class RedemptionServicer(redemption_pb2_grpc.RedemptionServiceServicer):
    def __init__(self, db: Database):
        self.db = db

    def ListCoupons(self, request: pb.ListCouponsRequest, context) -> pb.ListCouponsResponse:  # noqa: N802
        page = services.list_coupons(self.db, require_caller(), request.order_id, request.page_size,
                                     request.page_token)
        return pb.ListCouponsResponse(coupons=[coupon_to_pb(item, page.as_of) for item in page.coupons],
                                      next_page_token=page.next_page_token)

    def GetCoupon(self, request: pb.GetCouponRequest, context) -> pb.Coupon:  # noqa: N802
        item = services.get_coupon(self.db, require_caller(), request.coupon_id)
        return coupon_to_pb(item, self.db.clock())

    def RedeemCoupon(self, request: pb.RedeemCouponRequest, context) -> pb.Redemption:  # noqa: N802
        return redemption_to_pb(services.redeem_coupon(self.db, require_caller(), _redeem_request(request)))

    def CheckCoupon(self, request: pb.CheckCouponRequest, context) -> pb.CheckCouponResponse:  # noqa: N802
        result = services.check_coupon(self.db, require_caller(), _redeem_request(request))
        return pb.CheckCouponResponse(
            redeemable=result.redeemable, reason_code=result.reason_code, message=result.message,
            coupon=_coupon_fields(result.coupon, self.db.clock()),
            details_json=json.dumps(result.details or {}, sort_keys=True, default=str))

    def ReverseRedemption(self, request: pb.ReverseRedemptionRequest, context) -> pb.Redemption:  # noqa: N802
        return redemption_to_pb(services.reverse_redemption(self.db, require_caller(), request.redemption_id,
                                                            request.reason))

    def GetRedemptionSettings(self, request: pb.GetRedemptionSettingsRequest,  # noqa: N802
                              context) -> pb.RedemptionSettings:
        return pb.RedemptionSettings(
            reversal_window_minutes=services.reversal_window_minutes(self.db, require_caller()))

    def UpdateRedemptionSettings(self, request: pb.RedemptionSettings,  # noqa: N802
                                 context) -> pb.RedemptionSettings:
        minutes = services.set_reversal_window_minutes(self.db, require_caller(), request.reversal_window_minutes)
        return pb.RedemptionSettings(reversal_window_minutes=minutes)

    def ListRedemptions(self, request: pb.ListRedemptionsRequest,  # noqa: N802
                        context) -> pb.ListRedemptionsResponse:
        page = services.list_redemptions(self.db, require_caller(), _list_filter(request))
        return pb.ListRedemptionsResponse(redemptions=[redemption_to_pb(r) for r in page.redemptions],
                                          next_page_token=page.next_page_token)

    def ListRedemptionAttempts(self, request: pb.ListRedemptionsRequest,  # noqa: N802
                               context) -> pb.ListRedemptionAttemptsResponse:
        page = services.list_attempts(self.db, require_caller(), _list_filter(request))
        return pb.ListRedemptionAttemptsResponse(attempts=[attempt_to_pb(a) for a in page.attempts],
                                                 next_page_token=page.next_page_token)

    def VoidOrderCoupons(self, request: pb.VoidOrderCouponsRequest,  # noqa: N802
                         context) -> pb.VoidOrderCouponsResponse:
        voided = services.void_order_coupons(
            self.db, require_caller(), request.order_id, request.refund_id,
            [(line.product_id, line.quantity) for line in request.lines], request.allow_expired)
        return pb.VoidOrderCouponsResponse(coupon_ids=voided)
