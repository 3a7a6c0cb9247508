"""Wires the redemption service: its migrations, gRPC servicer and event handlers, on the kit's host."""

from __future__ import annotations

from pathlib import Path

from weika.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from weika_kit.db import Database
from weika_kit.service import ServiceDefinition
from weika_redemption.entrypoints import events
from weika_redemption.entrypoints.grpc_api import RedemptionServicer

MIGRATIONS = str(Path(__file__).parent / "migrations")


def registrations(db: Database) -> list:
    servicer = RedemptionServicer(db)
    return [lambda server: redemption_pb2_grpc.add_RedemptionServiceServicer_to_server(servicer, server)]


DEFINITION = ServiceDefinition(
    name="redemption",
    migrations=MIGRATIONS,
    registrations=registrations,
    grpc_service_names=[redemption_pb2.DESCRIPTOR.services_by_name["RedemptionService"].full_name],
    consumers=events.handlers,
)
