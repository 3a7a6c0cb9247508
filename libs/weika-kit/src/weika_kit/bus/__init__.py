"""The event bus interface shared by the Kafka adapter and the embedded durable log.

Semantics both adapters honour (the contract suite in tests/contract proves them):
- a topic has a fixed number of partitions; a message's key picks its partition, so one key's
  messages keep their order;
- `publish` returns only once every message is durably stored (Kafka: acks=all, idempotent
  producer; embedded: fsynced SQLite commit), and raises if that cannot be guaranteed;
- consumers in one group share a topic's partitions; each partition belongs to one member at a time;
- a consumer starts a partition at its group's committed offset (earliest when none), so whatever
  was not committed is delivered again; `commit` stores "next offset to read" per partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Consumer(Protocol):
    """A member of a consumer group. Not thread-safe: one thread polls and commits."""

    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]:
        """Messages from this member's partitions, each partition in offset order; [] after timeout."""

    def commit(self, messages: Iterable[Message]) -> None:
        """Mark these messages (and everything before them in their partitions) as processed."""

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member owns right now."""

    def lag(self) -> dict[str, int]:
        """Per subscribed topic, messages in this member's partitions not read yet (for the lag metric)."""

    def close(self) -> None:
        """Leave the group, so its partitions move to the other members."""


class EventBus(Protocol):
    def ensure_topics(self, topics: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""

    def publish(self, messages: Sequence[OutgoingMessage], timeout_s: float = 30.0) -> None:
        """Durably store every message, in order per partition; raise BusError if not all were."""

    def consumer(self, group_id: str, topics: Sequence[str], client_id: str | None = None) -> Consumer:
        """Join `group_id` subscribed to `topics`."""

    def close(self) -> None: ...


class BusError(Exception):
    """Publishing or consuming failed; the caller retries (the outbox relay does)."""
