"""The real gRPC clients against an in-process catalog server: metadata, error details, health, unavailability."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from weika.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from weika_gateway.app import create_app
from weika_gateway.clients import SERVICES, GrpcServiceClients
from weika_kit import context
from weika_kit.errors import InvalidArgument
from weika_kit.grpc_server import GrpcServer
from weika_kit.protos import to_timestamp


class RecordingCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """Answers CreateCategory, remembering who asked; refuses the name "bad" like the real catalog would."""

    def __init__(self) -> None:
        self.seen: list[tuple[context.Caller | None, str | None]] = []

    def CreateCategory(self, request, ctx):  # noqa: N802
        self.seen.append((context.current_caller(), context.request_id()))
        if request.name == "bad":
            raise InvalidArgument("category name is bad", code="invalid_category", details={"field": "name"})
        return catalog_pb2.Category(id="cat_1", name=request.name, created_at=to_timestamp(None))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def catalog_server() -> Iterator[tuple[RecordingCatalog, int]]:
    servicer = RecordingCatalog()
    server = GrpcServer("catalog", "127.0.0.1:0",
                        [lambda s: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, s)],
                        [catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name])
    server.start()
    server.set_serving(True)
    yield servicer, server.port
    server.stop(grace_s=0)


@pytest.fixture
def real_client(db, settings, catalog_server):
    _, port = catalog_server
    nowhere = f"127.0.0.1:{_closed_port()}"
    targets = {service: nowhere for service in SERVICES} | {"catalog": f"127.0.0.1:{port}"}
    return create_app(db, clients=GrpcServiceClients(targets=targets, timeout_s=2), settings=settings).test_client()


@pytest.fixture
def live_key(real_client, operator):
    return real_client.post("/v1/merchants", json={"name": "Tea"}, headers=operator).get_json()


def test_caller_and_request_id_travel_in_grpc_metadata(real_client, live_key, catalog_server):
    servicer, _ = catalog_server
    response = real_client.post("/v1/categories", json={"name": "Dining"},
                                headers={"Authorization": f"Bearer {live_key['api_keys']['live']}",
                                         "X-Request-Id": "req-grpc-1"})

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["created_at"] is None  # unset timestamp
    caller, request_id = servicer.seen[0]
    assert request_id == "req-grpc-1"
    assert (caller.merchant_id, caller.mode, caller.role) == (live_key["id"], "live", "owner")
    assert caller.staff_id.startswith("key_")


def test_a_domain_error_crosses_grpc_with_its_code_and_details(real_client, live_key, assert_error):
    response = real_client.post("/v1/categories", json={"name": "bad"},
                                headers={"Authorization": f"Bearer {live_key['api_keys']['live']}"})
    error = assert_error(response, 422, "invalid_category")
    assert error["details"] == {"field": "name"}


def test_an_unreachable_service_is_503_service_unavailable_naming_it(real_client, live_key, assert_error):
    response = real_client.get("/v1/orders/ord_1", headers={"Authorization": f"Bearer {live_key['api_keys']['live']}"})
    error = assert_error(response, 503, "service_unavailable")
    assert error["details"]["service"] == "orders"


def test_healthz_asks_the_real_health_service_of_each(real_client):
    response = real_client.get("/healthz")

    assert response.status_code == 503
    services = response.get_json()["services"]
    assert services["catalog"] == "SERVING"
    assert all(services[name] == "UNAVAILABLE" for name in SERVICES if name != "catalog")
