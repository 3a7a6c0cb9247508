"""Wires the marketing service: its migrations, gRPC servicer and event handlers, on the kit's host."""

from __future__ import annotations

from pathlib import Path

from weika.marketing.v1 import marketing_pb2, marketing_pb2_grpc
from weika_kit.db import Database
from weika_kit.service import ServiceDefinition
from weika_marketing.entrypoints import events
from weika_marketing.entrypoints.grpc_api import MarketingServicer

MIGRATIONS = str(Path(__file__).parent / "migrations")


def registrations(db: Database) -> list:
    servicer = MarketingServicer(db)
    return [lambda server: marketing_pb2_grpc.add_MarketingServiceServicer_to_server(servicer, server)]


DEFINITION = ServiceDefinition(
    name="marketing",
    migrations=MIGRATIONS,
    registrations=registrations,
    grpc_service_names=[marketing_pb2.DESCRIPTOR.services_by_name["MarketingService"].full_name],
    consumers=events.handlers,
)
