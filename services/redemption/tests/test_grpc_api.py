"""The RedemptionService over a real gRPC server: caller from metadata, refusals as statuses with stable codes."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from weika.redemption.v1 import redemption_pb2 as pb
from weika.redemption.v1 import redemption_pb2_grpc
from weika_kit.context import Caller
from weika_kit.errors import RemoteError
from weika_kit.grpc_server import GrpcServer
from weika_kit.protos import from_timestamp
from weika_redemption.bootstrap import DEFINITION, registrations

OWNER = Caller("mch_tea", "live", staff_id="stf_owner", role="owner")


@pytest.fixture
def stub(db):
    server = GrpcServer("redemption", "127.0.0.1:0", registrations(db), DEFINITION.grpc_service_names, max_workers=2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield redemption_pb2_grpc.RedemptionServiceStub(channel)
    channel.close()
    server.stop(0)


def remote_error(call, request, caller: Caller) -> RemoteError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=caller.to_metadata())
    return RemoteError.from_rpc_error(caught.value)


def test_list_coupons_shows_the_order_coupons_with_codes_to_their_merchant_only(db, stub, pay, make):
    paid = pay(make.coupon_line(quantity=2, threshold=20000, store_ids=["sto_a"]))

    listed = stub.ListCoupons(pb.ListCouponsRequest(order_id=paid.order_id), metadata=OWNER.to_metadata())
    rival = stub.ListCoupons(pb.ListCouponsRequest(order_id=paid.order_id),
                             metadata=Caller("mch_rival", "live").to_metadata())

    assert len(listed.coupons) == 2 and listed.next_page_token == ""
    coupon = listed.coupons[0]
    assert len(coupon.code) == 21 and coupon.code.count("-") == 4
    assert (coupon.status, coupon.order_id, coupon.threshold, list(coupon.store_ids)) == (
        "issued", paid.order_id, 20000, ["sto_a"])
    assert from_timestamp(coupon.valid_until) == make.PAID_AT + timedelta(days=30)
    assert not coupon.HasField("redeemed_at")
    assert list(rival.coupons) == []


def test_redeem_coupon_over_grpc_uses_the_caller_staff_as_operator(db, stub, pay, make):
    paid = pay(make.coupon_line())
    [code] = make.codes_of(db, OWNER, paid.order_id)

    redemption = stub.RedeemCoupon(pb.RedeemCouponRequest(code=code, store_id="sto_a", order_amount=5000,
                                                          device_id="till-1"), metadata=OWNER.to_metadata())
    listed = stub.ListCoupons(pb.ListCouponsRequest(order_id=paid.order_id), metadata=OWNER.to_metadata())

    assert (redemption.operator_id, redemption.store_id, redemption.order_amount, redemption.face_value) == (
        "stf_owner", "sto_a", 5000, 5000)
    assert from_timestamp(redemption.redeemed_at) == make.PAID_AT
    assert (listed.coupons[0].status, listed.coupons[0].redeemed_store_id) == ("redeemed", "sto_a")


def test_refusals_cross_grpc_with_status_code_message_and_details(db, clock, stub, issue_code):
    code = issue_code(validity_days=12)
    clock.advance(days=13)
    request = pb.RedeemCouponRequest(code=code, store_id="sto_a")

    expired = remote_error(stub.RedeemCoupon, request, OWNER)
    unknown = remote_error(stub.RedeemCoupon, request, Caller("mch_rival", "live"))

    assert (expired.status, expired.code, expired.message) == (
        grpc.StatusCode.FAILED_PRECONDITION, "coupon_expired", "Coupon expired on 2026-06-30")
    assert expired.details["valid_until"].startswith("2026-06-30T02:16:41")
    assert (unknown.status, unknown.code) == (grpc.StatusCode.NOT_FOUND, "coupon_not_found")


def test_a_call_without_caller_metadata_is_unauthenticated(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.RedeemCoupon(pb.RedeemCouponRequest(code="x", store_id="sto_a"))
    assert RemoteError.from_rpc_error(caught.value).code == "caller_required"


def test_qr_redemption_reversal_settings_and_lists_over_grpc(db, stub, clock, pay, make):
    paid = pay(make.coupon_line(max_uses=2))
    [listed] = stub.ListCoupons(pb.ListCouponsRequest(order_id=paid.order_id), metadata=OWNER.to_metadata()).coupons
    assert (listed.uses_total, listed.uses_left) == (2, 2)
    fetched = stub.GetCoupon(pb.GetCouponRequest(coupon_id=listed.id), metadata=OWNER.to_metadata())
    assert (fetched.code, fetched.qr_payload) == (listed.code, listed.qr_payload)
    assert remote_error(stub.GetCoupon, pb.GetCouponRequest(coupon_id=listed.id),
                        Caller("mch_rival", "live")).code == "coupon_not_found"

    redemption = stub.RedeemCoupon(pb.RedeemCouponRequest(qr_payload=listed.qr_payload, store_id="sto_a",
                                                          device_id="till-9"), metadata=OWNER.to_metadata())
    assert redemption.device_id == "till-9"
    stub.UpdateRedemptionSettings(pb.RedemptionSettings(reversal_window_minutes=10), metadata=OWNER.to_metadata())
    assert stub.GetRedemptionSettings(pb.GetRedemptionSettingsRequest(),
                                      metadata=OWNER.to_metadata()).reversal_window_minutes == 10
    clock.advance(minutes=11)
    late = remote_error(stub.ReverseRedemption, pb.ReverseRedemptionRequest(redemption_id=redemption.id, reason="x"),
                        OWNER)
    assert (late.status, late.code) == (grpc.StatusCode.FAILED_PRECONDITION, "reversal_window_passed")

    page = stub.ListRedemptions(pb.ListRedemptionsRequest(store_id="sto_a"), metadata=OWNER.to_metadata())
    assert [r.id for r in page.redemptions] == [redemption.id]
    attempts = stub.ListRedemptionAttempts(pb.ListRedemptionsRequest(), metadata=OWNER.to_metadata()).attempts
    assert [(a.result, a.device_id, len(a.code_fingerprint)) for a in attempts] == [("ok", "till-9", 12)]
