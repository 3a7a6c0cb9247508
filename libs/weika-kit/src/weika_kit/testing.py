"""Fakes for unit tests of services built on the kit: an in-memory EventBus (adapters have their own contract suite)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from weika_kit.bus import BusError, Message, OutgoingMessage, TopicSpec


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
