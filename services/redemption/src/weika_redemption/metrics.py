"""The redemption service's business metrics, declared once (the kit declares the gRPC, outbox and consumer ones)."""

from prometheus_client import Counter

REDEMPTION_ATTEMPTS = Counter(
    "weika_redemption_attempts_total",
    "Coupon redemption attempts at store counters, by result: ok or the refusal code.",
    ["mode", "result"],
)
COUPONS_ISSUED = Counter("weika_coupons_issued_total", "Coupons issued for paid coupon lines.", ["mode"])
