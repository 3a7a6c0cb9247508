"""No acknowledged event is lost when the broker restarts under load (Kafka) or the log's writer dies (embedded)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.contract.conftest import ROOT
from tests.contract.test_event_bus_contract import consume
from weika_kit.bus import TopicSpec

TOTAL = 400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_producer(bus_spec: str, topic: str, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.contract.app", "produce", "--bus", bus_spec, "--topic", topic,
         "--count", str(TOTAL), "--interval", "0.005"],
        cwd=ROOT, env=env, stdout=out.open("wb"), stderr=subprocess.DEVNULL)


def acked(out: Path) -> set[str]:
    return {f"o-{line.split()[1]}" for line in out.read_text().splitlines() if line.startswith("ACK ")}


def wait_for_acks(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(acked(out)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acked(out)) >= n


def consumed_ids(bus, topic: str, expected: int) -> set[str]:  # type: ignore[no-untyped-def]
    from weika.events.v1 import orders_pb2

    consumer = bus.consumer(f"audit-{topic}", [topic])
    messages = consume(consumer, expected, timeout=90)
    consumer.close()
    return {orders_pb2.OrderPaid.FromString(m.value).order_id for m in messages}


def stored_ids(bootstrap: str, topic: str) -> set[str]:
    """Everything the broker holds for the topic, read partition by partition from the beginning
    (no consumer group: this audits the log itself)."""
    from kafka import KafkaConsumer, TopicPartition

    from weika.events.v1 import orders_pb2

    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
    reader.assign(partitions)
    reader.seek_to_beginning(*partitions)
    ends = reader.end_offsets(partitions)
    ids: set[str] = set()
    deadline = time.monotonic() + 60
    while any(reader.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=1000).values():
            ids.update(orders_pb2.OrderPaid.FromString(r.value).order_id for r in records)
    reader.close()
    return ids


@pytest.mark.kafka
def test_kafka_broker_restart_under_load_loses_no_acknowledged_event(kafka_jars, tmp_path):
    from tools.infra import KafkaBroker
    from weika_kit.bus.kafka import KafkaBus

    broker = KafkaBroker(tmp_path / "broker", port=free_port(), controller_port=free_port())
    try:
        broker.start()
        bus = KafkaBus(broker.bootstrap, client_id="restart-test")
        topic = "contract.restart"
        bus.ensure_topics([TopicSpec(topic, partitions=3)])
        out = tmp_path / "producer.out"
        producer = start_producer(f"kafka:{broker.bootstrap}", topic, out)
        wait_for_acks(out, 100)
        broker.kill()  # SIGKILL under load, then the same node comes back on the same data
        down_at = len(acked(out))
        broker.start()
        assert producer.wait(timeout=180) == 0
        acknowledged = acked(out)
        assert len(acknowledged) == TOTAL and down_at < TOTAL
        assert acknowledged <= stored_ids(broker.bootstrap, topic)
        bus.close()
    finally:
        broker.stop()


def test_embedded_log_writer_killed_under_load_loses_no_acknowledged_event(tmp_path):
    from weika_kit.bus.embedded import EmbeddedLog

    spec = f"embedded:{tmp_path / 'events.sqlite3'}"
    log = EmbeddedLog(tmp_path / "events.sqlite3")
    topic = "contract.restart"
    log.ensure_topics([TopicSpec(topic, partitions=3)])
    out = tmp_path / "producer.out"
    producer = start_producer(spec, topic, out)
    wait_for_acks(out, 100)
    producer.send_signal(signal.SIGKILL)
    producer.wait()
    acknowledged = acked(out)
    assert 100 <= len(acknowledged) < TOTAL
    assert acknowledged <= consumed_ids(log, topic, len(acknowledged))
