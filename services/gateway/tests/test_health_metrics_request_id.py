"""Probes ask every service concurrently; metrics label routes by template; every response carries a request id."""

from __future__ import annotations

import logging
import time

from prometheus_client.parser import text_string_to_metric_families

from weika_gateway.app import create_app
from weika_gateway.clients import SERVICES
from weika_kit.db import Database


def test_probe_is_ok_when_every_service_serves_and_the_database_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["services"] == dict.fromkeys(SERVICES, "SERVING")
    assert body["database"] == "ok"


def test_readiness_is_the_gateways_own_and_survives_a_backend_outage(client, fake):
    fake.health_status["redemption"] = "NOT_SERVING"

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "database": "ok"}


def test_probe_is_503_naming_the_service_that_does_not_serve(client, fake):
    fake.health_status["redemption"] = "NOT_SERVING"
    fake.health_status["analytics"] = "UNAVAILABLE"

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["services"]["redemption"] == "NOT_SERVING"
    assert body["services"]["analytics"] == "UNAVAILABLE"
    assert body["services"]["catalog"] == "SERVING"


def test_a_health_checker_that_raises_counts_as_unavailable(client, fake):
    fake.fail("health", ConnectionError("boom"))
    body = client.get("/healthz").get_json()
    assert body["services"] == dict.fromkeys(SERVICES, "UNAVAILABLE")


def test_probe_is_503_when_the_gateways_database_does_not_answer(tmp_path, fake, settings):
    unreachable = Database(f"sqlite:///{tmp_path / 'no-such-dir' / 'gateway.sqlite3'}", service="gateway")

    response = create_app(unreachable, clients=fake, settings=settings).test_client().get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["database"] == "unavailable"


def test_services_are_checked_concurrently(client, fake):
    fake.health_delay_s = 0.3

    started = time.perf_counter()
    assert client.get("/healthz").status_code == 200
    elapsed = time.perf_counter() - started

    assert elapsed < 0.3 * len(SERVICES) * 0.6, f"{elapsed:.2f}s looks sequential"


def test_liveness_does_not_depend_on_the_services(client, fake):
    fake.health_status["catalog"] = "NOT_SERVING"
    assert client.get("/livez").status_code == 200


def _samples(client, name):
    text = client.get("/metrics").get_data(as_text=True)
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def test_metrics_label_requests_by_route_template_never_the_raw_path(client, merchant, make_store):
    store = make_store(merchant.live)
    client.get(f"/v1/stores/{store['id']}", headers=merchant.live)
    client.get("/v1/stores/sto_missing", headers=merchant.live)

    requests = _samples(client, "weika_http_requests_total")
    routes = {s.labels["route"] for s in requests}
    assert "/v1/stores/<store_id>" in routes
    assert not any(store["id"] in route or "sto_missing" in route for route in routes)
    found = [s for s in requests if s.labels == {"method": "GET", "route": "/v1/stores/<store_id>", "status": "404"}]
    assert found and found[0].value >= 1
    durations = _samples(client, "weika_http_request_duration_seconds_count")
    assert any(s.labels == {"method": "GET", "route": "/v1/stores/<store_id>"} for s in durations)


def test_unmatched_paths_share_one_route_label(client):
    client.get("/v1/nowhere/abc123")
    routes = {s.labels["route"] for s in _samples(client, "weika_http_requests_total")}
    assert "unmatched" in routes and not any("abc123" in r for r in routes)


def test_metrics_are_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")


def test_a_given_request_id_is_echoed(client, merchant):
    response = client.get("/v1/stores", headers={**merchant.live, "X-Request-Id": "req-abc-123"})
    assert response.headers["X-Request-Id"] == "req-abc-123"


def test_a_request_id_is_generated_when_absent_or_unusable(client):
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz", headers={"X-Request-Id": "has spaces\tand tabs"}).headers["X-Request-Id"]
    assert len(first) == 32 and len(second) == 32 and first != second


def test_error_responses_carry_the_request_id_too(client):
    assert client.get("/v1/nowhere", headers={"X-Request-Id": "req-404"}).headers["X-Request-Id"] == "req-404"


def test_the_request_id_travels_to_the_services_and_into_the_logs(client, merchant, fake, caplog):
    seen = []
    original = fake.list_categories

    def spy(caller):
        from weika_kit import context
        seen.append(context.request_id())
        return original(caller)

    fake.list_categories = spy
    with caplog.at_level(logging.INFO, logger="weika_gateway.access"):
        client.get("/v1/categories", headers={**merchant.live, "X-Request-Id": "req-log-1"})

    assert seen == ["req-log-1"]
    access = [r for r in caplog.records if r.name == "weika_gateway.access"]
    assert access and access[-1].request_id == "req-log-1" and access[-1].route == "/v1/categories"
