"""The analytics gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

from weika.analytics.v1 import analytics_pb2 as pb
from weika.analytics.v1 import analytics_pb2_grpc
from weika_analytics.domain.model import Window
from weika_analytics.service_layer import services
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import from_timestamp


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, db: Database):
        self.db = db

    def GetOverview(self, request: pb.GetOverviewRequest, context) -> pb.Overview:  # noqa: N802
        window = Window(start=from_timestamp(request.start_time, present=request.HasField("start_time")),
                        end=from_timestamp(request.end_time, present=request.HasField("end_time")))
        o = services.get_overview(self.db, require_caller(), window)
        return pb.Overview(
            orders_paid=o.orders_paid, gmv=o.gmv, coupons_issued=o.coupons_issued,
            coupons_redeemed=o.coupons_redeemed, redemption_rate=o.redemption_rate, refunds=o.refunds,
            refunded_amount=o.refunded_amount, redemptions_reversed=o.redemptions_reversed,
            coupons_voided=o.coupons_voided)
