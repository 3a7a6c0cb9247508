"""The marketing gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

from weika.marketing.v1 import marketing_pb2 as pb
from weika.marketing.v1 import marketing_pb2_grpc
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import from_timestamp, to_timestamp
from weika_marketing.domain.model import Campaign, QuoteLine, Tier
from weika_marketing.service_layer import services


def campaign_to_pb(c: Campaign) -> pb.Campaign:
    return pb.Campaign(
        id=c.id, name=c.name, kind=c.kind,
        tiers=[pb.FullReductionTier(threshold=tier.threshold, reduction=tier.reduction) for tier in c.tiers],
        stackable=c.stackable, starts_at=to_timestamp(c.starts_at), ends_at=to_timestamp(c.ends_at),
        active=c.active, created_at=to_timestamp(c.created_at))


class MarketingServicer(marketing_pb2_grpc.MarketingServiceServicer):
    def __init__(self, db: Database):
        self.db = db

    def QuotePrice(self, request: pb.QuotePriceRequest, context) -> pb.Quote:  # noqa: N802
        lines = [QuoteLine(product_id=line.product_id, category_id=line.category_id, quantity=line.quantity,
                           unit_price=line.unit_price) for line in request.lines]
        quote = services.quote_price(self.db, require_caller(), lines)
        return pb.Quote(
            subtotal=quote.subtotal, discount_amount=quote.discount_amount, total=quote.total,
            applied=[pb.AppliedDiscount(rule_id=a.campaign_id, kind=a.kind, amount=a.amount,
                                        description=a.description) for a in quote.applied],
            refused=[pb.RefusedDiscount(rule_id=r.campaign_id, kind=r.kind, reason_code=r.reason_code,
                                        description=r.description, shortfall=r.shortfall) for r in quote.refused])

    def CreateCampaign(self, request: pb.CreateCampaignRequest, context) -> pb.Campaign:  # noqa: N802
        new = services.NewCampaign(
            kind=request.kind, name=request.name,
            tiers=tuple(Tier(threshold=tier.threshold, reduction=tier.reduction) for tier in request.tiers),
            stackable=request.stackable,
            starts_at=from_timestamp(request.starts_at, present=request.HasField("starts_at")),
            ends_at=from_timestamp(request.ends_at, present=request.HasField("ends_at")))
        return campaign_to_pb(services.create_campaign(self.db, require_caller(), new))

    def ListCampaigns(self, request: pb.ListCampaignsRequest, context) -> pb.ListCampaignsResponse:  # noqa: N802
        return pb.ListCampaignsResponse(
            campaigns=[campaign_to_pb(c) for c in services.list_campaigns(self.db, require_caller())])
