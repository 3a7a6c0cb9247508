"""Reports from the analytics service's read models."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from weika.analytics.v1 import analytics_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.state import state
from weika_gateway.validation import invalid, query_instant
from weika_kit.protos import to_timestamp

bp = Blueprint("reports", __name__, url_prefix="/v1/reports")


@bp.get("/overview")
@api_key_required
def overview() -> dict[str, Any]:
    # The window is half-open [from, to); a bare date as `to` means the end of that day.
    start = query_instant(request.args, "from")
    end = query_instant(request.args, "to", end_of_day=True)
    if start is not None and end is not None and end < start:
        raise invalid("to", "must not be before from", "range")
    answer = state().clients.get_overview(current_caller(), analytics_pb2.GetOverviewRequest(
        start_time=to_timestamp(start), end_time=to_timestamp(end)))
    return serializers.overview(answer, start, end)
