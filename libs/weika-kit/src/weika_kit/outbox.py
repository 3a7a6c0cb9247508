"""The outbox relay: publishes committed outbox rows in order, retries until published, marks them sent.

Only one relay per service database publishes at a time (a lease row), so replicas never reorder a key's
events. The lease is renewed immediately before every publish and a publish may take at most half the lease's
time (the bus gives up after that), so a relay's publish always ends while its lease still holds: a second relay
cannot take over and publish alongside a slow one. A crash after publishing but before marking re-publishes those
rows: consumers deduplicate by id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from weika_kit import faults, metrics
from weika_kit.bus import EventBus, OutgoingMessage
from weika_kit.db import KIT_TABLES, Database
from weika_kit.envelope import Envelope

log = logging.getLogger(__name__)
OUTBOX = KIT_TABLES["outbox"]
LEASES = KIT_TABLES["leases"]


class Lease:
    """A named, expiring lock held in the service's own database (works on SQLite and PostgreSQL)."""

    def __init__(self, db: Database, name: str, holder: str, ttl_s: float):
        self.db, self.name, self.holder, self.ttl = db, name, holder, timedelta(seconds=ttl_s)

    def acquire(self) -> bool:
        now = self.db.clock()
        with self.db.engine.begin() as conn:
            taken = conn.execute(
                update(LEASES)
                .where(LEASES.c.name == self.name)
                .where((LEASES.c.holder == self.holder) | (LEASES.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl)
            ).rowcount
        if taken:
            return True
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(LEASES).values(name=self.name, holder=self.holder, expires_at=now + self.ttl))
            return True
        except IntegrityError:
            return False

    def release(self) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(LEASES)
                .where(LEASES.c.name == self.name, LEASES.c.holder == self.holder)
                .values(expires_at=self.db.clock() - self.ttl)
            )


class OutboxRelay:
    def __init__(self, db: Database, bus: EventBus, *, holder: str, batch_size: int = 500,
                 idle_wait_s: float = 0.5, lease_ttl_s: float = 10.0, retry_backoff_s: float = 0.5):
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.retry_backoff_s = retry_backoff_s
        self.lease = Lease(db, "outbox-relay", holder, lease_ttl_s)
        self.publish_timeout_s = lease_ttl_s / 2
        self._wake = threading.Event()
        db.on_outbox_commit.append(self._wake.set)

    def wake(self) -> None:
        self._wake.set()

    def backlog(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(OUTBOX.c.published_at.is_(None))).scalar_one())

    def publish_pending(self) -> int:
        """Publish one batch of unpublished rows, oldest first; return how many were published."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.payload, OUTBOX.c.headers)
                .where(OUTBOX.c.published_at.is_(None))
                .order_by(OUTBOX.c.id)
                .limit(self.batch_size)
            ).all()
        if not rows:
            return 0
        messages = [
            OutgoingMessage(
                topic=row.topic,
                key=row.key.encode(),
                value=row.payload,
                headers=Envelope.from_dict(json.loads(row.headers)).headers(),
            )
            for row in rows
        ]
        # Fencing by time: renew, then publish within half the lease, so no other relay can hold it meanwhile.
        if not self.lease.acquire():
            return 0
        faults.crash_point("relay.before_publish")
        self.bus.publish(messages, timeout_s=self.publish_timeout_s)
        faults.crash_point("relay.after_publish")
        with self.db.engine.begin() as conn:
            conn.execute(
                update(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])).values(published_at=self.db.clock())
            )
        metrics.OUTBOX_PUBLISHED.labels(self.db.service).inc(len(rows))
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        """Publish until `stop` is set. Failures are logged and retried with backoff; nothing is skipped."""
        backoff = self.retry_backoff_s
        last_gauge = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_gauge > 2.0:
                    metrics.OUTBOX_BACKLOG.labels(self.db.service).set(self.backlog())
                    last_gauge = time.monotonic()
                if not self.lease.acquire():
                    stop.wait(self.lease.ttl.total_seconds() / 3)
                    continue
                published = self.publish_pending()
                backoff = self.retry_backoff_s
                if published < self.batch_size:
                    self._wake.wait(self.idle_wait_s)
                    self._wake.clear()
            except Exception:
                metrics.OUTBOX_PUBLISH_FAILURES.labels(self.db.service).inc()
                log.warning("outbox publish failed; retrying", exc_info=True)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        try:
            self.lease.release()
        except Exception:
            log.debug("could not release the outbox lease", exc_info=True)
