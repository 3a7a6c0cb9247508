"""Wires the analytics service: its migrations, gRPC servicer and event handlers, on the kit's host."""

from __future__ import annotations

from pathlib import Path

from weika.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from weika_analytics.entrypoints import events
from weika_analytics.entrypoints.grpc_api import AnalyticsServicer
from weika_kit.db import Database
from weika_kit.service import ServiceDefinition

MIGRATIONS = str(Path(__file__).parent / "migrations")


def registrations(db: Database) -> list:
    servicer = AnalyticsServicer(db)
    return [lambda server: analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)]


DEFINITION = ServiceDefinition(
    name="analytics",
    migrations=MIGRATIONS,
    registrations=registrations,
    grpc_service_names=[analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name],
    consumers=events.handlers,
)
