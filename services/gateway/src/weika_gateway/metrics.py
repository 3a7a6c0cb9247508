"""The gateway's Prometheus metrics, declared once: HTTP requests by route template (never the raw path), limiter counters."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "weika_http_requests_total",
    "HTTP requests answered by the gateway, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "weika_http_request_duration_seconds",
    "Time to answer an HTTP request, in seconds, by method and route template.",
    ["method", "route"],
    unit="seconds",
)
REDEMPTION_ATTEMPTS_BLOCKED = Counter(
    "weika_redemption_attempts_blocked_total",
    "Redemption attempts refused with 429 before reaching the service, by the limiter scope that decided "
    "(store, operator, address).",
    ["scope"],
)
RATELIMIT_ERRORS = Counter(
    "weika_ratelimit_errors_total",
    "Rate-limiter calls to Redis that failed, by operation (check, record); the request went ahead (fail open).",
    ["operation"],
)
