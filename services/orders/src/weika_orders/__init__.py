"""Weika orders service: idempotent, crash-safe order creation, simulated payment, cancellation and queries."""
