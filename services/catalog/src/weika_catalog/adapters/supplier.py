"""Top-up suppliers: the adapter a `top_up` virtual product delivers through (a simulator for now).

A supplier is asked with a reference unique per (order, product); real suppliers deduplicate on it, so a
redelivered order-paid that calls again tops up once. The simulator answers the same way for the same
reference.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from weika_kit.config import env


class TopUpSupplier(Protocol):
    name: str

    def top_up(self, *, sku: str, account: str, quantity: int, reference: str) -> str:
        """Top `account` up with `quantity` units of `sku`; the supplier's transaction id."""
        ...


class SimulatedSupplier:
    """Always succeeds, instantly; the transaction id is derived from the reference (idempotent)."""

    name = "simulated"

    def top_up(self, *, sku: str, account: str, quantity: int, reference: str) -> str:
        digest = hashlib.sha256(f"{sku}|{account}|{quantity}|{reference}".encode()).hexdigest()
        return f"sim_{digest[:20]}"


def configured_supplier() -> TopUpSupplier:
    """WEIKA_CATALOG_TOPUP_SUPPLIER; only "simulated" (the default) exists so far."""
    name = env("WEIKA_CATALOG_TOPUP_SUPPLIER") or "simulated"
    if name != "simulated":
        raise ValueError(f"unknown top-up supplier {name!r}; only 'simulated' exists")
    return SimulatedSupplier()
