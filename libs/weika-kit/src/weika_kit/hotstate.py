"""Hot state in Redis: the shared client (REDIS_URL, else a process-local fakeredis) and a failure limiter.

Where the client points:
- `REDIS_URL` set: that server. `make run` always sets it — tools/run.py starts the Redis stand-in
  (`weika_kit.redis_standin`, fakeredis's TCP server) and hands its URL to every process — so all local
  processes share one state there, as replicas share the real Redis in Kubernetes.
- `REDIS_URL` unset (one process on its own, unit tests): a `fakeredis.FakeRedis()` private to this
  process, one per process. Counters then hold only within the process.

Timeouts are short (0.5 s to connect, 0.5 s per command) and redis-py's retries are off: a counter in
front of a request must never stall that request; the caller decides what a failure means (for the
redemption limiter: fail open).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import fakeredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from weika_kit.config import env

CONNECT_TIMEOUT_S = 0.5
COMMAND_TIMEOUT_S = 0.5
KEY_PREFIX = "weika:limit"


def redis_client() -> redis.Redis:
    """The process's shared client: REDIS_URL's server, or (unset) one process-local fakeredis."""
    return _client_for(env("REDIS_URL"))


@functools.cache
def _client_for(url: str | None) -> redis.Redis:
    # cached per URL so every caller shares one connection pool (and, without a URL, one fake's state)
    if url is None:
        return fakeredis.FakeRedis()
    return connect(url)


def connect(url: str) -> redis.Redis:
    """A client of `url` with the short timeouts and no retries (a new pool: prefer `redis_client()`)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        # redis-py retries 3 times with backoff by default: seconds of stall when Redis is away
        retry=Retry(NoBackoff(), 0),
    )


class FailureLimiter:
    """At most `limit` failures per key per window; the `limit`-th failure blocks the key until it expires.

    A fixed window, opened by the key's first failure: INCR and PEXPIRE NX in one MULTI, so the count and
    its expiry are set together and later failures never push the expiry out. Why not a sliding window:
    one integer key per scope, one round trip, and no clock of ours; its worst case — up to 2×limit
    failures across the edge of two windows — is immaterial against 80-bit codes, while a sliding log
    costs a sorted set of `limit` members per key. A blocked caller is not counted (the attempt never
    happens), so a block lasts at most `window_s`.

    Keys are `weika:limit:<name>:<key>`; callers build `key` from ids and hashed addresses only
    (`scope_key`), never from a code. Requires Redis >= 7.0 (PEXPIRE NX). Redis errors propagate
    (`redis.RedisError`): whether to fail open or closed is the caller's decision.
    """

    def __init__(self, client: redis.Redis, name: str, limit: int, window_s: float):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.client = client
        self.name = name
        self.limit = limit
        self.window_ms = max(1, round(window_s * 1000))

    def redis_key(self, key: str) -> str:
        return f"{KEY_PREFIX}:{self.name}:{key}"

    def blocked(self, key: str) -> int | None:
        """Seconds until `key` may fail again, or None when it is not blocked."""
        return self.blocked_keys([key]).get(key)

    def record_failure(self, key: str) -> int | None:
        """Count one failure; the seconds `key` is now blocked for, or None while it is under the limit."""
        return self.record_failures([key])[key]

    def blocked_keys(self, keys: Iterable[str]) -> dict[str, int]:
        """The blocked ones among `keys`, with their retry-after in seconds: one round trip for all."""
        keys = list(keys)
        pipe = self.client.pipeline(transaction=True)
        for key in keys:
            pipe.get(self.redis_key(key))
            pipe.pttl(self.redis_key(key))
        answers = pipe.execute()
        blocked = {}
        for index, key in enumerate(keys):
            count, ttl_ms = answers[2 * index], answers[2 * index + 1]
            if count is not None and int(count) >= self.limit:
                blocked[key] = self._retry_after_s(ttl_ms)
        return blocked

    def record_failures(self, keys: Iterable[str]) -> dict[str, int | None]:
        """Count one failure on each of `keys` atomically (one MULTI); each key's answer as `record_failure`."""
        keys = list(keys)
        pipe = self.client.pipeline(transaction=True)
        for key in keys:
            pipe.incr(self.redis_key(key))
            pipe.pexpire(self.redis_key(key), self.window_ms, nx=True)
            pipe.pttl(self.redis_key(key))
        answers = pipe.execute()
        outcome: dict[str, int | None] = {}
        for index, key in enumerate(keys):
            count, ttl_ms = answers[3 * index], answers[3 * index + 2]
            outcome[key] = self._retry_after_s(ttl_ms) if int(count) >= self.limit else None
        return outcome

    def _retry_after_s(self, ttl_ms: int) -> int:
        # whole seconds, rounded up (HTTP Retry-After); a key without expiry cannot arise from
        # record_failures, but if one did, a full window is the honest answer
        remaining_ms = ttl_ms if ttl_ms > 0 else self.window_ms
        return max(1, math.ceil(remaining_ms / 1000))


def scope_key(merchant_id: str, mode: str, scope: str, subject: str) -> str:
    """`<merchant>:<mode>:<scope>:<subject>` — tenancy first, so no two merchants or modes share a count."""
    for part in (merchant_id, mode, scope, subject):
        if not part or ":" in part:
            raise ValueError(f"limiter key parts must be non-empty and free of ':', got {part!r}")
    return f"{merchant_id}:{mode}:{scope}:{subject}"
