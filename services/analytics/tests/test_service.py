"""The wired service: the kit's host runs its migrations, consumer group and gRPC server from the definition."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import grpc

from weika.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from weika_analytics.bootstrap import DEFINITION
from weika_analytics.entrypoints.events import HANDLERS
from weika_kit.bus import OutgoingMessage
from weika_kit.bus.embedded import EmbeddedLog
from weika_kit.config import ServiceSettings
from weika_kit.context import Caller
from weika_kit.service import ServiceHost
from weika_kit.topics import topic_specs

T0 = datetime(2025, 6, 18, tzinfo=UTC)


def test_host_consumes_events_in_group_analytics_events_and_serves_the_overview(tmp_path, ev):
    bus = EmbeddedLog(tmp_path / "events.sqlite3", default_partitions=1)
    bus.ensure_topics(topic_specs(1))
    settings = ServiceSettings(
        name="analytics", database_url=f"sqlite:///{tmp_path / 'analytics.sqlite3'}", grpc_bind="127.0.0.1:0",
        http_port=0, kafka_bootstrap_servers=None, redis_url=None, topic_partitions=1, log_level="INFO",
        instance_id="analytics-test")
    host = ServiceHost(DEFINITION, settings, bus=bus)
    messages = [ev.order_paid("ord_1", 4200, T0), ev.coupon_issued("cpn_1", T0),
                ev.coupon_redeemed("rdm_1", "cpn_1", T0)]
    bus.publish([OutgoingMessage(m.topic, m.key or b"", m.value, m.headers) for m in messages])
    host.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{host.grpc.port}")
    stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
    try:
        deadline = time.monotonic() + 10
        while True:
            overview = stub.GetOverview(analytics_pb2.GetOverviewRequest(),
                                        metadata=Caller(ev.merchant_id, "live").to_metadata())
            if overview.coupons_redeemed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        channel.close()
        host.stop()

    assert [c.group for c in host.consumers] == ["analytics.events"]
    assert set(host.consumers[0].handlers) == set(HANDLERS)
    assert (overview.orders_paid, overview.gmv, overview.coupons_issued, overview.coupons_redeemed) == (1, 4200, 1, 1)
