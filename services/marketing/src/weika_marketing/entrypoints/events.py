"""The marketing event handlers, one per topic, in one visible table.

Empty until group buys and flash sales arrive: they will book order-paid and order-cancelled here.
"""

from __future__ import annotations

from weika_kit.consumer import Handler
from weika_kit.db import Database


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    return {}
