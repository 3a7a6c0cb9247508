"""Campaigns and quotes through the use cases and gRPC: tenancy, live windows, validation over the wire."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest

from weika.marketing.v1 import marketing_pb2 as pb
from weika.marketing.v1 import marketing_pb2_grpc
from weika_kit.config import ServiceSettings
from weika_kit.context import Caller
from weika_kit.errors import RemoteError
from weika_kit.grpc_server import GrpcServer
from weika_kit.protos import to_timestamp
from weika_kit.service import ServiceHost
from weika_kit.testing import FakeBus
from weika_marketing.bootstrap import DEFINITION, registrations
from weika_marketing.service_layer import services

LIVE = Caller("mch_mkt_a", "live", staff_id="stf_1", role="owner")
TEST = Caller("mch_mkt_a", "test", staff_id="stf_1", role="owner")
OTHER = Caller("mch_mkt_b", "live", staff_id="stf_9", role="owner")


def test_quote_without_any_campaign_is_the_subtotal(marketing):
    result = marketing.quote(LIVE, 12000, 8000)

    assert (result.subtotal, result.discount_amount, result.total, result.applied) == (20000, 0, 20000, ())


def test_another_merchants_campaign_never_applies(marketing):
    marketing.campaign(OTHER, (20000, 5000))

    assert marketing.quote(LIVE, 20000).discount_amount == 0
    assert marketing.quote(OTHER, 20000).discount_amount == 5000


def test_test_mode_campaign_never_applies_live_and_the_other_way_round(marketing):
    test_campaign = marketing.campaign(TEST, (20000, 5000), name="rehearsal")
    live_campaign = marketing.campaign(LIVE, (20000, 3000), name="real")

    assert [a.campaign_id for a in marketing.quote(TEST, 20000).applied] == [test_campaign.id]
    assert [a.campaign_id for a in marketing.quote(LIVE, 20000).applied] == [live_campaign.id]


def test_list_campaigns_shows_only_the_callers_merchant_and_mode(marketing):
    first = marketing.campaign(LIVE, (20000, 5000), name="first")
    marketing.clock.now += timedelta(seconds=1)
    second = marketing.campaign(LIVE, (10000, 1000), (30000, 6000), name="second", stackable=True)
    marketing.campaign(TEST, (20000, 5000))
    marketing.campaign(OTHER, (20000, 5000))

    listed = services.list_campaigns(marketing.db, LIVE)

    assert listed == [first, second]


def test_campaign_applies_only_within_its_window_by_the_service_clock(marketing, clock):
    starts = clock.now + timedelta(hours=1)
    marketing.campaign(LIVE, (20000, 5000), starts_at=starts, ends_at=starts + timedelta(hours=2))

    before = marketing.quote(LIVE, 20000).discount_amount
    clock.now = starts
    during = marketing.quote(LIVE, 20000).discount_amount
    clock.now = starts + timedelta(hours=2)
    after = marketing.quote(LIVE, 20000).discount_amount

    assert (before, during, after) == (0, 5000, 0)


@pytest.fixture
def stub(marketing):
    server = GrpcServer("marketing", "127.0.0.1:0", registrations(marketing.db), [], max_workers=2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield marketing_pb2_grpc.MarketingServiceStub(channel)
    channel.close()
    server.stop(0)


def _create_request(clock, **kw) -> pb.CreateCampaignRequest:
    values = dict(name="618 满200减50", kind="full_reduction", tiers=[pb.FullReductionTier(threshold=20000,
                                                                                            reduction=5000)],
                  stackable=False, starts_at=to_timestamp(clock.now - timedelta(days=1)),
                  ends_at=to_timestamp(clock.now + timedelta(days=30)))
    return pb.CreateCampaignRequest(**{**values, **kw})


def test_grpc_create_list_and_quote_explain_applied_and_refused_discounts(stub, clock):
    md = LIVE.to_metadata()
    big = stub.CreateCampaign(_create_request(clock), metadata=md)
    clock.now += timedelta(seconds=1)  # listed oldest first
    small = stub.CreateCampaign(_create_request(clock, name="满200减30", tiers=[
        pb.FullReductionTier(threshold=20000, reduction=3000)]), metadata=md)
    clock.now += timedelta(seconds=1)
    high = stub.CreateCampaign(_create_request(clock, name="满500减120", tiers=[
        pb.FullReductionTier(threshold=50000, reduction=12000)]), metadata=md)

    listed = stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=md)
    quote = stub.QuotePrice(pb.QuotePriceRequest(lines=[
        pb.QuoteLine(product_id="prd_1", category_id="cat_1", quantity=2, unit_price=10000)]), metadata=md)
    elsewhere = stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=OTHER.to_metadata())

    assert [c.id for c in listed.campaigns] == [big.id, small.id, high.id]
    assert (big.kind, big.active, [(t.threshold, t.reduction) for t in big.tiers]) == \
        ("full_reduction", True, [(20000, 5000)])
    assert (quote.subtotal, quote.discount_amount, quote.total) == (20000, 5000, 15000)
    assert [(a.rule_id, a.kind, a.amount) for a in quote.applied] == [(big.id, "full_reduction", 5000)]
    assert sorted((r.rule_id, r.reason_code, r.shortfall) for r in quote.refused) == sorted([
        (small.id, "not_stackable", 0), (high.id, "threshold_not_met", 30000)])
    assert list(elsewhere.campaigns) == []


@pytest.mark.parametrize(("changes", "code"), [
    ({"kind": "group_buy"}, "unsupported_campaign_kind"),
    ({"tiers": [pb.FullReductionTier(threshold=20000, reduction=5000),
                pb.FullReductionTier(threshold=10000, reduction=6000)]}, "tiers_not_ascending"),
    ({"tiers": [pb.FullReductionTier(threshold=5000, reduction=5000)]}, "reduction_not_below_threshold"),
    ({"ends_at": None}, "invalid_campaign"),
])
def test_grpc_refuses_invalid_campaigns_with_invalid_argument_and_a_stable_code(stub, clock, changes, code):
    request = _create_request(clock)
    for field, value in changes.items():
        if value is None:
            request.ClearField(field)
        else:
            request.ClearField(field)
            if field == "tiers":
                request.tiers.extend(value)
            else:
                setattr(request, field, value)

    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateCampaign(request, metadata=LIVE.to_metadata())

    refused = RemoteError.from_rpc_error(caught.value)
    assert (refused.status, refused.code) == (grpc.StatusCode.INVALID_ARGUMENT, code)
    assert list(stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=LIVE.to_metadata()).campaigns) == []


def test_grpc_refuses_bad_lines_and_callerless_quotes(stub):
    with pytest.raises(grpc.RpcError) as zero:
        stub.QuotePrice(pb.QuotePriceRequest(lines=[pb.QuoteLine(product_id="prd_1", quantity=0, unit_price=100)]),
                        metadata=LIVE.to_metadata())
    with pytest.raises(grpc.RpcError) as negative:
        stub.QuotePrice(pb.QuotePriceRequest(lines=[pb.QuoteLine(product_id="prd_1", quantity=1, unit_price=-5)]),
                        metadata=LIVE.to_metadata())
    with pytest.raises(grpc.RpcError) as anonymous:
        stub.QuotePrice(pb.QuotePriceRequest(lines=[pb.QuoteLine(product_id="prd_1", quantity=1, unit_price=5)]))

    assert RemoteError.from_rpc_error(zero.value).code == "invalid_quantity"
    assert RemoteError.from_rpc_error(negative.value).code == "invalid_unit_price"
    assert RemoteError.from_rpc_error(zero.value).details["field"] == "lines[0]"
    assert RemoteError.from_rpc_error(anonymous.value).code == "caller_required"


def test_host_serves_marketing_from_its_definition(tmp_path):
    settings = ServiceSettings(
        name="marketing", database_url=f"sqlite:///{tmp_path / 'marketing.sqlite3'}", grpc_bind="127.0.0.1:0",
        http_port=0, kafka_bootstrap_servers=None, redis_url=None, topic_partitions=1, log_level="INFO",
        instance_id="marketing-test")
    host = ServiceHost(DEFINITION, settings, bus=FakeBus())
    host.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{host.grpc.port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=5)
        started = time.monotonic()
        quote = marketing_pb2_grpc.MarketingServiceStub(channel).QuotePrice(
            pb.QuotePriceRequest(lines=[pb.QuoteLine(product_id="prd_1", quantity=3, unit_price=700)]),
            metadata=LIVE.to_metadata())
    finally:
        channel.close()
        host.stop()

    assert time.monotonic() - started < 5
    assert (quote.subtotal, quote.total) == (2100, 2100)
    assert host.consumers == []
