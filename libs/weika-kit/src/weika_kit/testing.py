"""Fakes for unit tests of services built on the kit: an in-memory EventBus (adapters have their own contract suite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import select

from weika_kit.bus import BusError, Message, OutgoingMessage, TopicSpec
from weika_kit.db import KIT_TABLES, Database
from weika_kit.envelope import Envelope


class FakeBus:
    def __init__(self) -> None:
        self.log: dict[str, list[Message]] = {}
        self.committed: dict[tuple[str, str], int] = {}
        self.fail_next_publishes = 0

    def ensure_topics(self, topics: Sequence[TopicSpec]) -> None:
        for t in topics:
            self.log.setdefault(t.name, [])

    def publish(self, messages: Sequence[OutgoingMessage], timeout_s: float = 30.0) -> None:
        if self.fail_next_publishes:
            self.fail_next_publishes -= 1
            raise BusError("broker unavailable")
        for m in messages:
            log = self.log.setdefault(m.topic, [])
            log.append(Message(m.topic, 0, len(log), m.key, m.value, m.headers))

    def consumer(self, group_id: str, topics: Sequence[str], client_id: str | None = None) -> FakeConsumer:
        return FakeConsumer(self, group_id, list(topics))

    def close(self) -> None:
        pass


class FakeConsumer:
    def __init__(self, bus: FakeBus, group: str, topics: list[str]):
        self.bus, self.group, self.topics = bus, group, topics
        self.position = {t: bus.committed.get((group, t), 0) for t in topics}

    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]:
        out: list[Message] = []
        for t in self.topics:
            batch = self.bus.log.get(t, [])[self.position[t]:self.position[t] + max_records]
            self.position[t] += len(batch)
            out.extend(batch)
        return out

    def commit(self, messages: Iterable[Message]) -> None:
        for m in messages:
            key = (self.group, m.topic)
            self.bus.committed[key] = max(self.bus.committed.get(key, 0), m.offset + 1)

    def assignment(self) -> set[tuple[str, int]]:
        return {(t, 0) for t in self.topics}

    def lag(self) -> dict[str, int]:
        return {t: len(self.bus.log.get(t, [])) - self.position[t] for t in self.topics}

    def close(self) -> None:
        pass


def delivered(payload: ProtoMessage, *, event_id: str = "", time: datetime | None = None,
              source: str = "/weika/test", merchant_id: str | None = None, offset: int = 0) -> Message:
    """A record as the bus delivers `payload`: on its registry topic and key, with its CloudEvents envelope.

    A new event id unless given (a republished copy of the same change has a new one); `merchant_id` overrides
    the envelope's, to test a payload and envelope that disagree."""
    from weika_kit.topics import topic_for

    info = topic_for(payload)
    key = str(getattr(payload, info.key))
    envelope = Envelope(
        id=event_id or str(uuid.uuid4()), source=source, type=info.name, time=time or datetime.now(UTC),
        subject=key, merchant_id=merchant_id or str(getattr(payload, "merchant_id", "")),
        mode=str(getattr(payload, "mode", "")), dataschema=info.message)
    return Message(info.name, 0, offset, key.encode(), payload.SerializeToString(), envelope.headers())


def outbox_rows(db: Database, topic: str) -> list[Any]:
    """The outbox rows of one topic, oldest first (payload bytes, headers JSON, published_at, ...)."""
    outbox = KIT_TABLES["outbox"]
    with db.engine.connect() as conn:
        return list(conn.execute(select(outbox).where(outbox.c.topic == topic).order_by(outbox.c.id)))
