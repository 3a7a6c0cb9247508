"""The gateway's Prometheus metrics, declared once: HTTP requests by route template (never the raw path)."""

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
