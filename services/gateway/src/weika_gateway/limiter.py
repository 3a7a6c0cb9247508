"""The brute-force limiter on redemption attempts: unknown codes counted per store, per operator and per client address.

PRODUCT.md §4: codes cannot be guessed — high entropy (the redemption service), rate-limited attempts (here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
from flask import current_app

from weika_gateway.metrics import RATELIMIT_ERRORS, REDEMPTION_ATTEMPTS_BLOCKED
from weika_kit import crypto
from weika_kit.context import Caller
from weika_kit.hotstate import FailureLimiter, scope_key

log = logging.getLogger(__name__)

EXTENSION = "weika_gateway.redemption_limiter"
LIMITER_NAME = "redeem"
# The redemption service's refusal for a code it does not know (bad check symbol, unknown, another
# merchant's): the one refusal that smells of guessing. Already redeemed, expired, wrong store... are
# refusals of a real code and do not count.
GUESSING_REFUSALS = frozenset({"coupon_not_found"})
STORE, OPERATOR, ADDRESS = "store", "operator", "address"
# Keyed hash (WEIKA_SECRET_KEY, shared by every replica): a Redis key never reveals a client's address,
# and unlike a plain sha256 it cannot be reversed by hashing all 2^32 IPv4 addresses.
ADDRESS_PURPOSE = "redeem-limiter-client-address"
ADDRESS_HASH_CHARS = 32


def hash_client_address(address: str) -> str:
    return crypto.fingerprint(address, purpose=ADDRESS_PURPOSE)[:ADDRESS_HASH_CHARS]


@dataclass(frozen=True)
class Block:
    """The caller may not attempt a redemption for `retry_after_s` seconds, because of `scope`."""

    scope: str
    retry_after_s: int


class RedemptionLimiter:
    """Checks the three scopes before a redemption and counts a guessing refusal on all three after it.

    Fails OPEN: when Redis cannot be reached, the redemption goes ahead (a warning is logged and
    `weika_ratelimit_errors_total` counts it). Refusing every redemption at 300 counters because Redis
    blinked would hurt merchants far more than a few minutes of unlimited guessing at 80-bit codes.
    """

    def __init__(self, client: redis.Redis, *, limit: int, window_s: float,
                 hash_address: Callable[[str], str] = hash_client_address):
        self.failures = FailureLimiter(client, LIMITER_NAME, limit, window_s)
        self.hash_address = hash_address

    def keys(self, caller: Caller, store_id: str, client_address: str | None) -> dict[str, str]:
        """scope -> limiter key; a scope without a subject (no operator id, no address) is not limited."""
        subjects = {STORE: store_id, OPERATOR: caller.staff_id,
                    ADDRESS: self.hash_address(client_address) if client_address else ""}
        return {scope: scope_key(caller.merchant_id, caller.mode, scope, subject)
                for scope, subject in subjects.items() if subject}

    def check(self, caller: Caller, store_id: str, client_address: str | None) -> Block | None:
        """The block with the longest wait among the blocked scopes, or None (also when Redis is away)."""
        scope_by_key = {key: scope for scope, key in self.keys(caller, store_id, client_address).items()}
        try:
            blocked = self.failures.blocked_keys(list(scope_by_key))
        except redis.RedisError as error:
            self._failed_open("check", error, caller, store_id)
            return None
        if not blocked:
            return None
        # the caller may try again only once every blocked scope has expired
        key, retry_after_s = max(blocked.items(), key=lambda item: item[1])
        block = Block(scope_by_key[key], retry_after_s)
        REDEMPTION_ATTEMPTS_BLOCKED.labels(block.scope).inc()
        log.info("redemption attempt blocked", extra={
            "merchant_id": caller.merchant_id, "mode": caller.mode, "store_id": store_id,
            "operator_id": caller.staff_id, "scope": block.scope, "retry_after_s": retry_after_s})
        return block

    def record_refusal(self, caller: Caller, store_id: str, client_address: str | None, code: str) -> None:
        """Count the refusal on every scope when it is a guessing refusal; other refusals change nothing."""
        if code not in GUESSING_REFUSALS:
            return
        keys = self.keys(caller, store_id, client_address)
        try:
            outcome = self.failures.record_failures(keys.values())
        except redis.RedisError as error:
            self._failed_open("record", error, caller, store_id)
            return
        now_blocked = sorted(scope for scope, key in keys.items() if outcome[key] is not None)
        if now_blocked:
            log.warning("redemption attempts limited after unknown codes", extra={
                "merchant_id": caller.merchant_id, "mode": caller.mode, "store_id": store_id,
                "operator_id": caller.staff_id, "scopes": now_blocked,
                "limit": self.failures.limit, "window_s": self.failures.window_ms / 1000})

    @staticmethod
    def _failed_open(operation: str, error: redis.RedisError, caller: Caller, store_id: str) -> None:
        RATELIMIT_ERRORS.labels(operation).inc()
        log.warning("redemption limiter unavailable, letting the attempt through", extra={
            "operation": operation, "error_type": type(error).__name__, "error": str(error),
            "merchant_id": caller.merchant_id, "mode": caller.mode, "store_id": store_id})


def redemption_limiter() -> RedemptionLimiter:
    """The current app's limiter (set by create_app)."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
