"""The wiring one app's views share: its database, its service clients and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from weika_gateway.clients import ServiceClients
from weika_gateway.config import GatewaySettings
from weika_kit.db import Database

EXTENSION = "weika_gateway"


@dataclass(frozen=True)
class GatewayState:
    db: Database
    clients: ServiceClients
    settings: GatewaySettings


def state() -> GatewayState:
    """The current app's wiring (set by create_app)."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
