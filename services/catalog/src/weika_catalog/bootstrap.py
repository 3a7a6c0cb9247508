"""Wires the catalog service: its migrations, gRPC servicer and event handlers, on the kit's host."""

from __future__ import annotations

from pathlib import Path

from weika.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from weika_catalog.entrypoints import events
from weika_catalog.entrypoints.grpc_api import CatalogServicer
from weika_kit.db import Database
from weika_kit.service import ServiceDefinition

MIGRATIONS = str(Path(__file__).parent / "migrations")


def registrations(db: Database) -> list:
    servicer = CatalogServicer(db)
    return [lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)]


DEFINITION = ServiceDefinition(
    name="catalog",
    migrations=MIGRATIONS,
    registrations=registrations,
    grpc_service_names=[catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name],
    consumers=events.handlers,
)
