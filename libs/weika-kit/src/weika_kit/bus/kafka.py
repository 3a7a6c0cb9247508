"""The Apache Kafka adapter of the event bus (kafka-python): idempotent acks=all producer, manual commits."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from weika_kit.bus import BusError, Message, OutgoingMessage, TopicSpec

log = logging.getLogger(__name__)


class KafkaBus:
    """`namespace` (WEIKA_KAFKA_NAMESPACE) prefixes every Kafka topic and consumer group this bus touches, so
    several platforms (staging beside production, parallel test runs) share one cluster without meeting; the
    platform itself keeps using the registry's names (a received message's topic has the prefix removed)."""

    def __init__(self, bootstrap_servers: str, *, client_id: str = "weika", replication_factor: int = 1,
                 session_timeout_ms: int = 10000, namespace: str = ""):
        self.bootstrap_servers = bootstrap_servers
        self.namespace = namespace
        self.client_id = client_id
        self.replication_factor = replication_factor
        self.session_timeout_ms = session_timeout_ms
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def kafka_topic(self, topic: str) -> str:
        return self.namespace + topic

    def platform_topic(self, kafka_topic: str) -> str:
        return kafka_topic[len(self.namespace):] if kafka_topic.startswith(self.namespace) else kafka_topic

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=f"{self.client_id}-producer",
                    acks="all",
                    enable_idempotence=True,
                    retries=2**31 - 1,
                    # kafka-python's idempotent producer requires one request in flight per connection.
                    max_in_flight_requests_per_connection=1,
                    linger_ms=2,
                    delivery_timeout_ms=120000,
                    request_timeout_ms=30000,
                    # send() waits this long at most for a topic's metadata (default 60 s): a publish must end
                    # well within the outbox relay's lease.
                    max_block_ms=3000,
                )
            return self._producer

    def ensure_topics(self, topics: Sequence[TopicSpec]) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin")
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(self.kafka_topic(t.name), t.partitions, self.replication_factor,
                         topic_configs={"retention.ms": str(t.retention_ms)})
                for t in topics if self.kafka_topic(t.name) not in existing
            ]
            for topic in missing:
                # Another service may create it between our list and our create.
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([topic])
            if missing:
                self._await_leaders(admin, {self.kafka_topic(t.name): t.partitions for t in topics
                                            if self.kafka_topic(t.name) not in existing})
        finally:
            admin.close()

    @staticmethod
    def _await_leaders(admin: KafkaAdminClient, partitions: dict[str, int], timeout_s: float = 30.0) -> None:
        """Return once every new partition has a leader: a consumer group that joins while the metadata is
        still propagating sees "no partition metadata", and its members churn through extra rebalances."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = admin.describe_topics(list(partitions))
            ready = {
                d["topic"] for d in described
                if not d.get("error_code") and d.get("topic") in partitions
                and sum(1 for p in d.get("partitions", []) if p.get("leader", -1) >= 0) >= partitions[d["topic"]]
            }
            if ready >= set(partitions):
                return
            time.sleep(0.1)
        log.warning("topics created but not all partitions have a leader yet", extra={"topics": sorted(partitions)})

    def publish(self, messages: Sequence[OutgoingMessage], timeout_s: float = 30.0) -> None:
        if not messages:
            return
        # Everything, including waiting for metadata in send() (bounded by max_block_ms), ends within timeout_s:
        # the outbox relay relies on it to finish before its lease runs out.
        deadline = time.monotonic() + timeout_s
        try:
            producer = self._get_producer()
            futures = [producer.send(self.kafka_topic(m.topic), key=m.key, value=m.value, headers=list(m.headers))
                       for m in messages]
            producer.flush(timeout=max(deadline - time.monotonic(), 0.01))
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.01))
        except KafkaError as exc:
            # Drop what is still queued: the caller (the outbox relay) publishes the same rows again, and a
            # producer kept alive would send this batch a second time for every retry during an outage.
            self._discard_producer()
            raise BusError(f"Kafka publish failed: {exc}") from exc

    def _discard_producer(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # closing a broken producer must not hide the publish error
                log.debug("closing the failed producer raised", exc_info=True)

    def consumer(self, group_id: str, topics: Sequence[str], client_id: str | None = None) -> KafkaGroupConsumer:
        return KafkaGroupConsumer(self, group_id, topics, client_id or self.client_id)

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-offsets")
        try:
            partitions = consumer.partitions_for_topic(self.kafka_topic(topic)) or set()
            ends = consumer.end_offsets([TopicPartition(self.kafka_topic(topic), p) for p in partitions])
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            consumer.close()

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None


class KafkaGroupConsumer:
    def __init__(self, bus: KafkaBus, group_id: str, topics: Sequence[str], client_id: str):
        self.group_id = group_id
        self._bus = bus
        topics = [bus.kafka_topic(t) for t in topics]
        self._consumer = KafkaConsumer(
            bootstrap_servers=bus.bootstrap_servers,
            group_id=bus.namespace + group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=bus.session_timeout_ms,
            heartbeat_interval_ms=max(1000, bus.session_timeout_ms // 3),
            max_poll_interval_ms=300000,
        )
        # Load the topics' metadata before joining, so the group leader never assigns from an empty view
        # ("no partition metadata") and the group does not churn through extra rebalances.
        deadline = time.monotonic() + 30
        for topic in topics:
            while not self._consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
                time.sleep(0.1)
        self._consumer.subscribe(list(topics))

    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"Kafka poll failed: {exc}") from exc
        out: list[Message] = []
        for records in batches.values():
            out.extend(
                Message(
                    topic=self._bus.platform_topic(r.topic), partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                    headers=tuple((k, v or b"") for k, v in (r.headers or [])), timestamp_ms=r.timestamp,
                )
                for r in records
            )
        return out

    def commit(self, messages: Iterable[Message]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for m in messages:
            tp = TopicPartition(self._bus.kafka_topic(m.topic), m.partition)
            if tp not in offsets or offsets[tp].offset < m.offset + 1:
                offsets[tp] = OffsetAndMetadata(m.offset + 1, "", -1)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            # Usually a rebalance took the partition away: its new owner will see these again (deduplicated).
            log.warning("Kafka commit failed; messages will be redelivered", extra={"error": str(exc)})

    def assignment(self) -> set[tuple[str, int]]:
        return {(self._bus.platform_topic(tp.topic), tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> dict[str, int]:
        """Per topic, how many messages of this member's partitions it has not read yet."""
        owned = list(self._consumer.assignment())
        # Topics whose partitions moved away report 0, so a sum over replicas does not count them twice.
        lag: dict[str, int] = dict.fromkeys((self._bus.platform_topic(t) for t in self._consumer.subscription() or ()),
                                            0)
        if not owned:
            return lag
        try:
            ends = self._consumer.end_offsets(owned)
            for tp in owned:
                position = self._consumer.position(tp, timeout_ms=1000)
                if position is not None:
                    topic = self._bus.platform_topic(tp.topic)
                    lag[topic] = lag.get(topic, 0) + max(0, ends[tp] - position)
        except KafkaError as exc:
            raise BusError(f"Kafka lag lookup failed: {exc}") from exc
        return lag

    def close(self) -> None:
        self._consumer.close(autocommit=False)
