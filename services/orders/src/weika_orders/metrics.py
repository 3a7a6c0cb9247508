"""The orders service's business metrics, declared once (Prometheus naming, low-cardinality labels)."""

from prometheus_client import Counter

ORDERS_CREATED = Counter("weika_orders_created_total", "Orders placed (creating -> pending_payment), by mode.",
                         ["mode"])
ORDERS_PAID = Counter("weika_orders_paid_total", "Orders paid, by mode and payment channel.", ["mode", "channel"])
ORDERS_CANCELLED = Counter("weika_orders_cancelled_total", "Unpaid orders cancelled, by mode.", ["mode"])
ORDER_CREATIONS_ABANDONED = Counter(
    "weika_order_creations_abandoned_total",
    "Order creations given up: refused upstream (refused) or stuck in creating too long (timed_out).",
    ["outcome"])
PAYMENT_NOTIFICATIONS = Counter("weika_payment_notifications_total",
                                "Provider payment notifications received, by channel and verdict.",
                                ["channel", "verdict"])
STRAY_PAYMENTS = Counter(
    "weika_stray_payments_total",
    "Payments notified for orders that could no longer be paid (cancelled, or paid through another channel), "
    "by channel and outcome: recorded, refunded, retrying (a refund attempt failed), failed (gave up).",
    ["channel", "outcome"])
REFUND_OUTCOMES = Counter(
    "weika_refund_outcomes_total",
    "Where providers say refunded money is (refunds and stray payments' returns), by channel and outcome: "
    "processing (accepted, result pending), succeeded (back with the customer), abnormal and closed (not "
    "returned: the merchant must act).",
    ["channel", "outcome"])
