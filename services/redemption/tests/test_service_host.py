"""The service as the kit hosts it: an order-paid on the bus becomes coupons listed over gRPC and coupon-issued events."""

from __future__ import annotations

import time

import grpc

from weika.redemption.v1 import redemption_pb2 as pb
from weika.redemption.v1 import redemption_pb2_grpc
from weika_kit.bus import OutgoingMessage
from weika_kit.config import ServiceSettings
from weika_kit.context import Caller
from weika_kit.service import ServiceHost
from weika_kit.testing import FakeBus
from weika_redemption.bootstrap import DEFINITION

OWNER = Caller("mch_tea", "live", staff_id="stf_owner", role="owner")


def wait_for(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_hosted_service_issues_coupons_from_the_bus_and_publishes_coupon_issued(tmp_path, make):
    settings = ServiceSettings(
        name="redemption", database_url=f"sqlite:///{tmp_path / 'redemption.sqlite3'}", grpc_bind="127.0.0.1:0",
        http_port=0, kafka_bootstrap_servers=None, redis_url=None, topic_partitions=1, log_level="INFO",
        instance_id="redemption-test")
    bus = FakeBus()
    host = ServiceHost(DEFINITION, settings, bus=bus)
    host.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{host.grpc.port}")
    try:
        paid = make.order_paid(make.coupon_line(quantity=2))
        message = make.bus_message(paid)
        bus.publish([OutgoingMessage(message.topic, message.key or b"", message.value, message.headers)])
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)

        listed = wait_for(lambda: stub.ListCoupons(pb.ListCouponsRequest(order_id=paid.order_id),
                                                   metadata=OWNER.to_metadata()).coupons)
        published = wait_for(lambda: len(bus.log.get(make.ISSUED_TOPIC, [])) == 2 and bus.log[make.ISSUED_TOPIC])

        assert len(listed) == 2
        assert {m.key.decode() for m in published} == {c.id for c in listed}
    finally:
        channel.close()
        host.stop()
