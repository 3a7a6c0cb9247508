"""Idempotent event consumers: the event id is recorded with the effect in one transaction.

Offsets are committed only after the effect; a failing message is retried, then sent to `<topic>.dlq`
with the error, and the rest go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from weika_kit import context, faults, metrics
from weika_kit.bus import Consumer, EventBus, Message, OutgoingMessage
from weika_kit.db import KIT_TABLES, Database, UnitOfWork
from weika_kit.envelope import Envelope, EnvelopeError

log = logging.getLogger(__name__)
INBOX = KIT_TABLES["inbox"]
DLQ_SUFFIX = ".dlq"
LAG_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Event:
    envelope: Envelope
    payload: ProtoMessage
    message: Message


Handler = Callable[[Event, UnitOfWork], None]


class TransientFailure(Exception):
    """The message could not be applied because something it needs is down (database, broker, a service).

    Retrying later will work, so it must never go to the dead-letter topic: the consumer leaves the group
    without committing, waits, rejoins, and the message is delivered again."""


def is_transient(exc: BaseException) -> bool:
    """Outages, not bad messages: a database that is unreachable or locked, a broker or service that is down."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from weika_kit.bus import BusError
    from weika_kit.errors import RemoteError

    if isinstance(exc, (OperationalError, InterfaceError, BusError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, RemoteError) and exc.code in ("service_unavailable", "service_timeout")


class PoisonMessage(Exception):
    """The message can never be handled (undecodable, or a handler found it contradictory): it goes to the
    dead-letter topic at once instead of being retried."""


class EventConsumer:
    """One consumer group of one service: a table of handlers, one per topic."""

    def __init__(self, db: Database, bus: EventBus, *, group: str, handlers: Mapping[str, Handler],
                 max_attempts: int = 5, retry_backoff_s: float = 0.2, client_id: str | None = None,
                 payload_types: Mapping[str, type[ProtoMessage]] | None = None):
        self.db = db
        self.bus = bus
        self.group = group
        self.handlers = dict(handlers)
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.client_id = client_id
        # topic -> payload class; unset topics are looked up in the topic registry
        self.payload_types = dict(payload_types or {})
        self.running = threading.Event()

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                self._consume(stop)
                backoff = 1.0
            except TransientFailure as exc:
                # Leave the group uncommitted; the message comes back once the outage is over.
                log.warning("event not applied during an outage; retrying", extra={
                    "group": self.group, "error": str(exc), "retry_in_s": backoff})
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:
                log.exception("consumer loop failed; rejoining", extra={"group": self.group})
                stop.wait(1.0)

    def _consume(self, stop: threading.Event) -> None:
        consumer = self.bus.consumer(self.group, sorted(self.handlers), client_id=self.client_id)
        self.running.set()
        lag_measured = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - lag_measured > LAG_INTERVAL_S:
                    lag_measured = time.monotonic()
                    self._measure_lag(consumer)
                processed = []
                for message in consumer.poll(timeout_s=0.5):
                    if stop.is_set():
                        break  # the rest are redelivered to whoever owns the partition next
                    self.process(message)
                    faults.crash_point("consumer.after_effect_before_commit")
                    processed.append(message)
                if processed:
                    consumer.commit(processed)
        finally:
            self.running.clear()
            consumer.close()

    def _measure_lag(self, consumer: Consumer) -> None:
        try:
            for topic, behind in consumer.lag().items():
                metrics.CONSUMER_LAG.labels(self.group, topic).set(behind)
        except Exception:  # the metric is best effort; consuming goes on
            log.debug("could not measure consumer lag", exc_info=True)

    def process(self, message: Message) -> str:
        """Apply one message exactly once in effect; return the outcome (applied, duplicate, dead_lettered)."""
        try:
            event = self.decode(message)
        except PoisonMessage as exc:
            return self._dead_letter(message, f"undecodable: {exc}")
        handler = self.handlers[message.topic]
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                outcome = self._apply_once(event, handler)
                metrics.EVENTS_CONSUMED.labels(self.group, message.topic, outcome).inc()
                return outcome
            except PoisonMessage as exc:  # the handler knows retrying cannot help
                return self._dead_letter(message, f"poison: {exc}")
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                metrics.EVENT_HANDLER_FAILURES.labels(self.group, message.topic).inc()
                log.warning("event handler failed", exc_info=True, extra={
                    "group": self.group, "topic": message.topic, "event_id": event.envelope.id, "attempt": attempt})
                if attempt < self.max_attempts:
                    time.sleep(self.retry_backoff_s * attempt)
                elif is_transient(exc):
                    # An outage is not the message's fault: dead-lettering would skip it (and reorder its key).
                    raise TransientFailure(error) from exc
        return self._dead_letter(message, error)

    def decode(self, message: Message) -> Event:
        from weika_kit.topics import decode

        try:
            envelope = Envelope.from_headers(message.headers)
            payload_type = self.payload_types.get(message.topic)
            if payload_type is not None:
                payload = payload_type.FromString(message.value)
            else:
                payload = decode(message.topic, message.value)
        except (EnvelopeError, DecodeError, KeyError, ValueError) as exc:
            raise PoisonMessage(str(exc)) from exc
        return Event(envelope, payload, message)

    def _apply_once(self, event: Event, handler: Handler) -> str:
        env = event.envelope
        caller = context.Caller(merchant_id=env.merchant_id, mode=env.mode, role="system") \
            if env.mode in context.MODES and env.merchant_id else None
        with context.bound(caller=caller, request_id=env.request_id or None), self.db.unit_of_work() as uow:
            seen = uow.execute(
                select(INBOX.c.event_id).where(INBOX.c.consumer_group == self.group, INBOX.c.event_id == env.id)
            ).first()
            if seen:
                return "duplicate"
            handler(event, uow)
            # Surface the handler's own (ORM) constraint violations here, so the except below can only be ours.
            uow.session.flush()
            try:
                uow.execute(insert(INBOX).values(
                    consumer_group=self.group, event_id=env.id, topic=event.message.topic, processed_at=uow.now()))
            except IntegrityError:
                # A twin consumer applied the same event concurrently and won the insert (PostgreSQL makes us
                # wait for its commit, then refuses ours): leaving the unit of work rolls our effect back.
                return "duplicate"
            uow.commit()
        return "applied"

    def _dead_letter(self, message: Message, error: str) -> str:
        headers = tuple(message.headers) + (
            ("x-weika-dlq-error", error[:2000].encode()),
            ("x-weika-dlq-group", self.group.encode()),
            ("x-weika-dlq-original-partition", str(message.partition).encode()),
            ("x-weika-dlq-original-offset", str(message.offset).encode()),
        )
        self.bus.publish([OutgoingMessage(message.topic + DLQ_SUFFIX, message.key or b"", message.value, headers)])
        metrics.EVENTS_CONSUMED.labels(self.group, message.topic, "dead_lettered").inc()
        log.error("event sent to the dead-letter topic", extra={
            "group": self.group, "topic": message.topic, "offset": message.offset, "error": error})
        return "dead_lettered"
